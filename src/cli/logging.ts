import fs = require('node:fs');
import type { Logger } from '../logger';

export type LogFormat = 'json' | 'text';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const RANK: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
const NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** pino's JSON lines as `time LEVEL msg key=value ...` for people. */
function textStream(out: NodeJS.WritableStream | fs.WriteStream): { write(line: string): void } {
  return {
    write(line: string) {
      const { level, time, msg, pid: _pid, hostname: _hostname, ...fields } = JSON.parse(line) as Record<string, unknown>;
      const extra = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      out.write(`${new Date(time as number).toISOString()} ${NAMES[level as number] ?? level} ${msg ?? ''}${extra ? ` ${extra}` : ''}\n`);
    },
  };
}

/**
 * A pino logger to stderr or `file`. pino is loaded on the first record at
 * or above `level`, so a quiet run does not pay for it at start-up.
 */
export function createLogger(level: LogLevel, format: LogFormat, file?: string): Logger {
  let pinoLogger: Logger | undefined;
  const get = (): Logger => {
    if (!pinoLogger) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const pino = require('pino') as typeof import('pino');
      const out = file ? fs.createWriteStream(file, { flags: 'a' }) : process.stderr;
      const destination = format === 'text' ? textStream(out) : file ? pino.destination({ dest: file, sync: true }) : pino.destination(2);
      pinoLogger = pino.pino({ level, base: undefined }, destination);
    }
    return pinoLogger;
  };
  const at =
    (name: Exclude<LogLevel, 'silent' | 'trace' | 'fatal'>) =>
    (obj: object, msg?: string): void => {
      if (RANK[name] >= RANK[level]) get()[name](obj, msg);
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
