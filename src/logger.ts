/** The part of pino's Logger tsrun uses; any pino logger fits. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const ignore = (): void => undefined;

/** The library's default: embedding programs opt in to logs by passing one. */
export const silentLogger: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore };
