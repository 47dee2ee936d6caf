import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Debian's docker-registry (distribution v2) on 127.0.0.1, with its own
 * config and storage in a temp dir, for the registry tests; and a proxy in
 * front of it that counts requests and can break responses the way a bad
 * network or a bad registry does.
 */

export interface RegistryInstance {
  /** `127.0.0.1:PORT`, as image references name it. */
  host: string;
  port: number;
  dir: string;
  /** What the registry printed (its access log included). */
  output(): string;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** Require these credentials (htpasswd, a Basic challenge without tokens). */
  htpasswd?: { user: string; password: string };
  /** Require bearer tokens from this token server (see token-server.ts). */
  token?: { realm: string; service: string; issuer: string; certificate: string };
  /** Serve HTTPS only, with a self-signed certificate for 127.0.0.1. */
  tls?: boolean;
}

const READY_TIMEOUT_MS = 15_000;

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function ping(port: number, secure: boolean): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = (secure ? https : http).get({ host: '127.0.0.1', port, path: '/v2/', agent: false, rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(undefined));
  });
}

async function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export async function startRegistry(options: RegistryOptions = {}): Promise<RegistryInstance> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-registry-'));
  const port = await freePort();
  let auth = '';
  if (options.htpasswd) {
    const file = path.join(dir, 'htpasswd');
    fs.writeFileSync(file, execFileSync('htpasswd', ['-Bbn', options.htpasswd.user, options.htpasswd.password]));
    auth = `auth:\n  htpasswd:\n    realm: tsrun-test\n    path: ${file}\n`;
  } else if (options.token) {
    const { realm, service, issuer, certificate } = options.token;
    auth = `auth:\n  token:\n    realm: ${realm}\n    service: ${service}\n    issuer: ${issuer}\n    rootcertbundle: ${certificate}\n`;
  }
  let tls = '';
  if (options.tls) {
    const [key, certificate] = [path.join(dir, 'tls.key'), path.join(dir, 'tls.crt')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', certificate, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    tls = `  tls:\n    certificate: ${certificate}\n    key: ${key}\n`;
  }
  fs.writeFileSync(
    path.join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: ${path.join(dir, 'data')}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: tsrun-test\n${tls}${auth}`,
  );
  // setpriv --pdeathsig: the registry dies with this process, even when jest is killed.
  const child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', '--', 'docker-registry', 'serve', path.join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (data: Buffer): void => {
    output = (output + data.toString('utf8')).slice(-1_000_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const stop = async (): Promise<void> => {
    child.kill('SIGTERM');
    if (!(await waitForExit(child, 5000))) {
      child.kill('SIGKILL');
      await waitForExit(child, 5000);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const status = await ping(port, options.tls === true);
    if (status === 200 || status === 401) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not start on 127.0.0.1:${port}:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { host: `127.0.0.1:${port}`, port, dir, output: () => output, stop };
}

/** A registry for the file's tests, stopped after them even when they fail. */
export function useRegistry(options: RegistryOptions = {}): () => RegistryInstance {
  let registry: RegistryInstance | undefined;
  beforeAll(async () => {
    registry = await startRegistry(options);
  });
  afterAll(async () => {
    await registry?.stop();
  });
  return () => {
    if (!registry) throw new Error('useRegistry: the registry did not start');
    return registry;
  };
}

/** What the proxy does to one response. */
export type Sabotage =
  /** Flips one byte in the middle of the body: same length, wrong digest. */
  | { kind: 'corrupt' }
  /** Sends this many bytes of the body, then drops the connection. */
  | { kind: 'cut'; after: number }
  /** Answers this instead of asking the registry. */
  | { kind: 'respond'; status: number; headers?: Record<string, string>; body?: string };

interface Rule {
  method: string;
  path: RegExp;
  sabotage: Sabotage;
  /** How many matching requests go through untouched first. */
  skip: number;
  /** How many more requests it applies to. */
  times: number;
}

export interface ProxiedRequest {
  method: string;
  path: string;
  range?: string;
  contentRange?: string;
  status?: number;
}

/**
 * An HTTP proxy on 127.0.0.1 in front of a real registry: it forwards
 * every request (Host kept, so the registry's Location headers point back
 * at the proxy), records it, and applies sabotage rules to matching ones.
 */
export class RegistryProxy {
  readonly requests: ProxiedRequest[] = [];
  private rules: Rule[] = [];

  private constructor(
    private readonly server: http.Server,
    readonly host: string,
  ) {}

  static async start(target: RegistryInstance): Promise<RegistryProxy> {
    let proxy: RegistryProxy | undefined;
    const server = http.createServer((req, res) => proxy?.handle(req, res, target.port));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new RegistryProxy(server, `127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    return proxy;
  }

  /** Applies `sabotage` to `times` requests of `method` whose path matches, after letting `skip` of them through. */
  sabotage(method: string, pathPattern: RegExp, sabotage: Sabotage, times = 1, skip = 0): void {
    this.rules.push({ method, path: pathPattern, sabotage, times, skip });
  }

  /** Forgets the recorded requests and the rules left. */
  reset(): void {
    this.requests.length = 0;
    this.rules = [];
  }

  /** Recorded requests for blobs (GET), the way a download is counted. */
  blobGets(): ProxiedRequest[] {
    return this.requests.filter((r) => r.method === 'GET' && /\/blobs\/sha256:/.test(r.path));
  }

  private takeRule(method: string, url: string): Sabotage | undefined {
    const rule = this.rules.find((r) => r.times > 0 && r.method === method && r.path.test(url));
    if (!rule) return undefined;
    if (rule.skip > 0) {
      rule.skip--;
      return undefined;
    }
    rule.times--;
    return rule.sabotage;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse, targetPort: number): void {
    const record: ProxiedRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      ...(req.headers.range ? { range: String(req.headers.range) } : {}),
      ...(req.headers['content-range'] ? { contentRange: String(req.headers['content-range']) } : {}),
    };
    this.requests.push(record);
    const sabotage = this.takeRule(record.method, record.path);
    if (sabotage?.kind === 'respond') {
      record.status = sabotage.status;
      req.resume();
      res.writeHead(sabotage.status, { 'Content-Type': 'text/plain', ...sabotage.headers }).end(sabotage.body ?? 'sabotaged by the test proxy\n');
      return;
    }
    const upstream = http.request({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers, agent: false }, (answer) => {
      record.status = answer.statusCode;
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      let sent = 0;
      let flipped = false;
      answer.on('data', (chunk: Buffer) => {
        let data = chunk;
        if (sabotage?.kind === 'corrupt' && !flipped) {
          const total = Number(answer.headers['content-length'] ?? 0);
          const middle = Math.floor(total / 2) - sent;
          if (middle >= 0 && middle < data.length) {
            data = Buffer.from(data);
            data[middle] ^= 0xff;
            flipped = true;
          }
        }
        if (sabotage?.kind === 'cut' && sent + data.length >= sabotage.after) {
          res.write(data.subarray(0, sabotage.after - sent), () => res.socket?.destroy());
          answer.destroy();
          sent = sabotage.after;
          return;
        }
        sent += data.length;
        if (!res.write(data)) answer.pause();
      });
      res.on('drain', () => answer.resume());
      answer.on('end', () => res.end());
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  }

  /** Drops the connections clients left open, and waits until they are closed. */
  async dropConnections(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => setImmediate(resolve));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** A proxy in front of `target()` for the file's tests; its connections are dropped after each test. */
export function useRegistryProxy(target: () => RegistryInstance): () => RegistryProxy {
  let proxy: RegistryProxy | undefined;
  beforeAll(async () => {
    proxy = await RegistryProxy.start(target());
  });
  afterEach(async () => {
    proxy?.reset();
    await proxy?.dropConnections();
  });
  afterAll(async () => {
    await proxy?.close();
  });
  return () => {
    if (!proxy) throw new Error('useRegistryProxy: the proxy did not start');
    return proxy;
  };
}
