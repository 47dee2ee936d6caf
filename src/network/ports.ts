import { ValidationError } from '../errors';

/** One `-p`: what CNI's portmap plugin takes as a `portMappings` entry. */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
  /** The host address to listen on; absent or empty: every address. */
  hostIP?: string;
}

function port(field: string, text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || value > 65535) throw new ValidationError(field, `${JSON.stringify(text)} is not a port (1-65535)`);
  return value;
}

/** `-p [IP:]HOST:CONTAINER[/tcp|udp]`, or `-p CONTAINER` (Docker picks a host port: give `hostPort: 0` to pickHostPorts). */
export function parsePublish(value: string): PortMapping {
  const [spec, proto = 'tcp', ...more] = value.split('/');
  if (more.length > 0 || (proto !== 'tcp' && proto !== 'udp')) throw new ValidationError('publish', `${JSON.stringify(value)}: the protocol must be tcp or udp`);
  // An IPv6 host address comes in brackets: [::1]:8080:80.
  const bracketed = /^\[([0-9a-fA-F:.]+)\]:(.*)$/.exec(spec);
  const parts = bracketed ? [bracketed[1], ...bracketed[2].split(':')] : spec.split(':');
  if (parts.length > 3 || parts.length === 0) throw new ValidationError('publish', `${JSON.stringify(value)} is not [IP:]HOST:CONTAINER[/PROTO]`);
  const containerPort = port('publish', parts[parts.length - 1]);
  const hostText = parts.length >= 2 ? parts[parts.length - 2] : '';
  const hostIP = parts.length === 3 ? parts[0] : '';
  if (hostIP && !/^(\d{1,3}\.){3}\d{1,3}$|:/.test(hostIP)) throw new ValidationError('publish', `${JSON.stringify(hostIP)} is not an IP address`);
  return { hostPort: hostText === '' ? 0 : port('publish', hostText), containerPort, protocol: proto, ...(hostIP ? { hostIP } : {}) };
}

/** The ports an image's ExposedPorts names (`8080/tcp`), for `-P`; each gets a host port picked at run. */
export function exposedPorts(exposed: Record<string, unknown> | undefined | null): PortMapping[] {
  return Object.keys(exposed ?? {}).map((key) => {
    const [text, proto = 'tcp'] = key.split('/');
    if (proto !== 'tcp' && proto !== 'udp') throw new ValidationError('ExposedPorts', `${JSON.stringify(key)}: the protocol must be tcp or udp`);
    return { hostPort: 0, containerPort: port('ExposedPorts', text), protocol: proto };
  });
}

/** Gives each mapping without a host port a free one, as the kernel hands out ephemeral ports. */
export async function pickHostPorts(mappings: PortMapping[]): Promise<PortMapping[]> {
  const net = await import('node:net');
  const dgram = await import('node:dgram');
  const free = async (m: PortMapping): Promise<number> => {
    if (m.protocol === 'udp') {
      const socket = dgram.createSocket('udp4');
      await new Promise<void>((resolve, reject) => socket.once('error', reject).bind(0, m.hostIP || undefined, resolve));
      const { port: picked } = socket.address();
      socket.close();
      return picked;
    }
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, m.hostIP || undefined, resolve));
    const picked = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve));
    return picked;
  };
  const result: PortMapping[] = [];
  for (const m of mappings) result.push(m.hostPort === 0 ? { ...m, hostPort: await free(m) } : m);
  return result;
}
