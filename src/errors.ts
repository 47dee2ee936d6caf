import util = require('node:util');

/** Every error tsrun throws on purpose. `code` is stable for programs. */
export class TsrunError extends Error {
  /** A failure while cleaning up after this error, which it must not hide. */
  cleanupError?: unknown;

  constructor(
    message: string,
    readonly code: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** [code, message] for a positive errno, e.g. 2 -> ['ENOENT', 'no such file or directory']. */
function describeErrno(errno: number): [string, string] {
  const known = util.getSystemErrorMap().get(-Math.abs(errno));
  return known ?? [`E${Math.abs(errno)}`, `errno ${Math.abs(errno)}`];
}

/**
 * A system call failed, in tsrun or in the container's setup.
 * Example message: `rootfs: mount proc on /proc: EPERM (operation not permitted)`.
 */
export class SyscallError extends TsrunError {
  /** Positive errno value, as the kernel reports it. */
  readonly errno: number;

  constructor(
    readonly step: string,
    readonly syscall: string,
    errno: number,
    readonly path?: string,
    readonly detail?: string,
    options?: ErrorOptions,
  ) {
    const [code, text] = describeErrno(errno);
    const where = path ? ` ${path}` : '';
    const extra = detail ? `; ${detail}` : '';
    super(`${step}: ${syscall}${where}: ${code} (${text}${extra})`, code, options);
    this.errno = Math.abs(errno);
  }
}

/** Bad input: names the field and what is wrong with it. */
export class ValidationError extends TsrunError {
  constructor(
    readonly field: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${field}: ${message}`, 'EINVAL', options);
  }
}

/** Something named by the caller does not exist (a user, a container...). */
export class NotFoundError extends TsrunError {
  constructor(
    readonly kind: string,
    readonly what: string,
    message?: string,
  ) {
    super(message ?? `${kind} ${JSON.stringify(what)} not found`, 'ENOENT');
  }
}

/** A name or id is already taken. */
export class ConflictError extends TsrunError {
  constructor(message: string) {
    super(message, 'EEXIST');
  }
}

/**
 * An operation the container's state does not allow: starting a running
 * container, deleting a created one without force.
 * Example message: `cannot start container web: it is running (start needs created)`.
 */
export class StateError extends TsrunError {
  constructor(
    readonly container: string,
    readonly status: string,
    readonly operation: string,
    message: string,
  ) {
    super(message, 'ESTATE');
  }
}

/**
 * Content that is not what it claims to be: a corrupt or truncated archive,
 * a tar entry that would escape its root, a malformed manifest. `subject`
 * names the thing (`layer sha256:ab12...`, `manifest.json`), `entry` the tar
 * entry at fault when there is one.
 * Example message: `layer sha256:ab12...: ../../etc/x: path escapes the layer`.
 */
export class ContentError extends TsrunError {
  constructor(
    readonly subject: string,
    message: string,
    readonly entry?: string,
    options?: ErrorOptions,
  ) {
    super(`${subject}: ${entry === undefined ? '' : `${entry}: `}${message}`, 'EBADCONTENT', options);
  }
}

/** Content whose sha256 is not the digest it was named by. */
export class DigestMismatchError extends ContentError {
  constructor(
    subject: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(subject, `digest mismatch: expected ${expected}, got ${actual}`);
  }
}

/** A lock another tsrun process held for longer than the wait allowed. */
export class LockTimeoutError extends TsrunError {
  constructor(
    readonly file: string,
    timeoutMs: number,
  ) {
    super(`timed out after ${timeoutMs} ms waiting for the lock ${file}: another tsrun process holds it`, 'ETIMEDOUT');
  }
}

/** Wraps a Node errno exception (fs, addon) into a SyscallError for `step`. */
export function syscallErrorFrom(step: string, err: unknown, detail?: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.errno === 'number' && typeof e.syscall === 'string') {
    return new SyscallError(step, e.syscall, e.errno, e.path, detail, { cause: err });
  }
  return err;
}

/** What a registry error is about: the request, the HTTP status (none when no response came), the image, the distribution API's error code. */
export interface RegistryErrorDetails {
  url: string;
  status?: number;
  reference?: string;
  /** `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`, `DENIED`... */
  registryCode?: string;
}

/**
 * A registry refused a request or could not be reached.
 * Example message: `manifest for 127.0.0.1:5000/busybox:2 not found: manifest unknown`.
 */
export class RegistryError extends TsrunError {
  readonly url: string;
  readonly status?: number;
  readonly reference?: string;
  readonly registryCode?: string;

  constructor(message: string, details: RegistryErrorDetails, options?: ErrorOptions, code = details.status === 404 ? 'ENOTFOUND' : 'EREGISTRY') {
    super(message, code, options);
    this.url = details.url;
    this.status = details.status;
    this.reference = details.reference;
    this.registryCode = details.registryCode;
  }
}

/** A registry or its token server refused the credentials, or asked for some and there were none (HTTP 401 or 403). */
export class AuthError extends RegistryError {
  constructor(message: string, details: RegistryErrorDetails & { status: number }, options?: ErrorOptions) {
    super(message, details, options, 'EAUTH');
  }
}

/**
 * A Dockerfile that cannot be parsed or built: names the file and the line
 * of the instruction at fault.
 * Example message: `Dockerfile:3: unknown instruction: FOOBAR`.
 */
export class BuildError extends TsrunError {
  constructor(
    message: string,
    readonly file?: string,
    readonly line?: number,
    options?: ErrorOptions,
  ) {
    super(`${file === undefined ? '' : `${file}${line === undefined ? '' : `:${line}`}: `}${message}`, 'EBUILD', options);
  }
}

/**
 * A CNI plugin failed (its error result, or its exit without one).
 * Example message: `network tsrun-test: CNI ADD bridge: failed to allocate for range 0: no IP addresses available (code 11)`.
 */
export class NetworkError extends TsrunError {
  constructor(
    readonly network: string,
    readonly command: string,
    readonly plugin: string,
    message: string,
    /** The CNI error code (spec: 1-99), when the plugin reported one. */
    readonly cniCode?: number,
    options?: ErrorOptions,
  ) {
    super(`network ${network}: CNI ${command} ${plugin}: ${message}${cniCode !== undefined ? ` (code ${cniCode})` : ''}`, 'ENETWORK', options);
  }
}
