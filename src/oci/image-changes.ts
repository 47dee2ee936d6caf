import path = require('node:path');
import { ValidationError } from '../errors';
import type { ContainerConfig } from './image-spec';

/**
 * Dockerfile instructions applied to an image config, as `docker import -c`
 * and `docker commit -c` take them: `CMD ["sh"]`, `ENV A=1 B="x y"`,
 * `WORKDIR /app`, `EXPOSE 80/tcp`... Variables ($A) are not expanded.
 */
export interface ImageConfigChanges {
  cmd?: string[];
  entrypoint?: string[];
  /** In order; a later value for a key wins. */
  env?: [string, string][];
  workingDir?: string;
  user?: string;
  /** `80/tcp`, `53/udp`: port/protocol. */
  exposedPorts?: string[];
  labels?: [string, string][];
  volumes?: string[];
  stopSignal?: string;
}

/** The instructions Docker accepts in -c, except ONBUILD, which the OCI config has no field for. */
export const SUPPORTED_INSTRUCTIONS = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR'] as const;

function invalid(change: string, why: string): ValidationError {
  return new ValidationError('change', `${JSON.stringify(change)}: ${why}`);
}

/**
 * Splits on unquoted whitespace (unless `split` is false) and removes the
 * quoting, as the Dockerfile parser does for ENV and LABEL: "double"
 * (where \ escapes " \ and $), 'single' (literal), and \ before any
 * character outside quotes.
 */
function splitWords(text: string, change: string, split = true): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (split && /\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === '\\' && i + 1 < text.length) {
      word += text[++i];
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end === -1) throw invalid(change, 'unterminated single quote');
      word += text.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let closed = false;
      for (i++; i < text.length; i++) {
        if (text[i] === '"') {
          closed = true;
          break;
        }
        if (text[i] === '\\' && i + 1 < text.length && '"\\$'.includes(text[i + 1])) i++;
        word += text[i];
      }
      if (!closed) throw invalid(change, 'unterminated double quote');
    } else {
      word += c;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** `KEY=VALUE ...`, or the legacy one-pair `KEY VALUE WITH SPACES`. */
function parsePairs(args: string, change: string): [string, string][] {
  const words = splitWords(args, change);
  if (words.length === 0) throw invalid(change, 'needs KEY=VALUE');
  if (!words[0].includes('=')) {
    const legacy = /^(\S+)\s+(\S[\s\S]*)$/.exec(args);
    if (!legacy) throw invalid(change, `${words[0]} has no value (use KEY=VALUE)`);
    return [[legacy[1], splitWords(legacy[2], change, false).join('')]];
  }
  return words.map((word) => {
    const eq = word.indexOf('=');
    if (eq <= 0) throw invalid(change, `${JSON.stringify(word)} is not KEY=VALUE`);
    return [word.slice(0, eq), word.slice(eq + 1)];
  });
}

/** The exec form `["a", "b"]`, or the shell form run by /bin/sh -c, as Docker treats a line that is not a JSON array. */
function parseCommand(args: string): string[] {
  const trimmed = args.trim();
  if (trimmed.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(trimmed);
      if (Array.isArray(parsed) && parsed.every((a) => typeof a === 'string')) return parsed;
    } catch {
      // Not JSON: Docker runs it as a shell command, and so do we.
    }
  }
  return ['/bin/sh', '-c', trimmed];
}

function parsePorts(args: string, change: string): string[] {
  const ports: string[] = [];
  for (const word of splitWords(args, change)) {
    const match = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(word);
    const first = Number(match?.[1]);
    const last = match?.[2] === undefined ? first : Number(match[2]);
    if (!match || first < 1 || last > 65535 || last < first) throw invalid(change, `${JSON.stringify(word)} is not a port (PORT[-PORT][/tcp|udp|sctp])`);
    for (let port = first; port <= last; port++) ports.push(`${port}/${(match[3] ?? 'tcp').toLowerCase()}`);
  }
  if (ports.length === 0) throw invalid(change, 'needs at least one port');
  return ports;
}

/** Parses `-c` values; throws ValidationError naming the bad one. */
export function parseChanges(lines: readonly string[]): ImageConfigChanges {
  const changes: ImageConfigChanges = {};
  for (const line of lines) {
    const match = /^\s*([A-Za-z]+)(?:\s+([\s\S]*))?$/.exec(line);
    if (!match) throw invalid(line, 'expected INSTRUCTION ARGUMENTS');
    const instruction = match[1].toUpperCase();
    const args = (match[2] ?? '').trim();
    if (!(SUPPORTED_INSTRUCTIONS as readonly string[]).includes(instruction)) {
      throw invalid(line, `${instruction} is not supported (use ${SUPPORTED_INSTRUCTIONS.join(', ')})`);
    }
    if (args === '' && instruction !== 'CMD' && instruction !== 'ENTRYPOINT') throw invalid(line, `${instruction} needs an argument`);
    switch (instruction) {
      case 'CMD':
        changes.cmd = parseCommand(args);
        break;
      case 'ENTRYPOINT':
        changes.entrypoint = parseCommand(args);
        break;
      case 'ENV':
        changes.env = [...(changes.env ?? []), ...parsePairs(args, line)];
        break;
      case 'LABEL':
        changes.labels = [...(changes.labels ?? []), ...parsePairs(args, line)];
        break;
      case 'EXPOSE':
        changes.exposedPorts = [...(changes.exposedPorts ?? []), ...parsePorts(args, line)];
        break;
      case 'VOLUME': {
        const volumes = args.startsWith('[') ? parseCommand(args) : splitWords(args, line);
        if (volumes.length === 0 || (volumes[0] === '/bin/sh' && args.startsWith('['))) throw invalid(line, 'expected VOLUME ["/path"] or VOLUME /path ...');
        changes.volumes = [...(changes.volumes ?? []), ...volumes];
        break;
      }
      case 'WORKDIR':
        // Relative to the previous WORKDIR, as in a Dockerfile; resolved when applied.
        changes.workingDir = changes.workingDir === undefined || args.startsWith('/') ? args : path.posix.join(changes.workingDir, args);
        break;
      case 'USER':
        changes.user = args;
        break;
      case 'STOPSIGNAL':
        if (!/^(?:SIG[A-Z0-9+-]+|[A-Z0-9+-]+|\d+)$/.test(args)) throw invalid(line, `${JSON.stringify(args)} is not a signal`);
        changes.stopSignal = args;
        break;
    }
  }
  return changes;
}

/** `base` with `changes` applied; `base` is not modified. */
export function applyChanges(base: ContainerConfig | undefined, changes: ImageConfigChanges): ContainerConfig {
  const config: ContainerConfig = structuredClone(base ?? {});
  if (changes.env) {
    const env = [...(config.Env ?? [])];
    for (const [key, value] of changes.env) {
      const at = env.findIndex((entry) => entry.split('=', 1)[0] === key);
      if (at === -1) env.push(`${key}=${value}`);
      else env[at] = `${key}=${value}`;
    }
    config.Env = env;
  }
  if (changes.entrypoint) {
    config.Entrypoint = changes.entrypoint;
    // A Dockerfile's ENTRYPOINT drops the CMD it inherited, which was
    // written for the old entrypoint; only a CMD given with it survives.
    if (!changes.cmd) config.Cmd = null;
  }
  if (changes.cmd) config.Cmd = changes.cmd;
  if (changes.workingDir !== undefined) config.WorkingDir = path.posix.resolve(config.WorkingDir || '/', changes.workingDir);
  if (changes.user !== undefined) config.User = changes.user;
  if (changes.exposedPorts) config.ExposedPorts = { ...config.ExposedPorts, ...Object.fromEntries(changes.exposedPorts.map((p) => [p, {}])) };
  if (changes.labels) config.Labels = { ...config.Labels, ...Object.fromEntries(changes.labels) };
  if (changes.volumes) config.Volumes = { ...config.Volumes, ...Object.fromEntries(changes.volumes.map((v) => [v, {}])) };
  if (changes.stopSignal !== undefined) config.StopSignal = changes.stopSignal;
  return config;
}
