import { StateError } from '../errors';

/**
 * A container's status as the OCI runtime spec names it
 * (https://github.com/opencontainers/runtime-spec/blob/main/runtime.md#state),
 * plus `paused`, which runc and crun report for a frozen container.
 */
export type OciStatus = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

export type Operation = 'start' | 'kill' | 'stop' | 'exec' | 'attach' | 'pause' | 'resume' | 'delete' | 'remove' | 'wait' | 'restart';

/**
 * The statuses each operation may start from: the one table every command
 * checks. `delete` is the OCI runtime's (stopped only; a created container
 * needs --force, as the spec says), `remove` is `tsrun rm`'s (Docker removes
 * created and exited containers without -f).
 */
const ALLOWED: Record<Operation, readonly OciStatus[]> = {
  start: ['created'],
  kill: ['created', 'running', 'paused'],
  stop: ['created', 'running', 'paused', 'stopped'],
  exec: ['running'],
  attach: ['running'],
  pause: ['running'],
  resume: ['paused'],
  delete: ['stopped'],
  remove: ['created', 'stopped'],
  wait: ['created', 'running', 'paused', 'stopped'],
  restart: ['created', 'running', 'paused', 'stopped'],
};

/** What `force` adds: any status but creating, where another process is still at work. */
const FORCED: readonly OciStatus[] = ['created', 'running', 'paused', 'stopped'];

export function allowed(operation: Operation, status: OciStatus, options: { force?: boolean } = {}): boolean {
  return ALLOWED[operation].includes(status) || (options.force === true && FORCED.includes(status));
}

/** Throws a StateError naming the container, its status and what the operation needs. */
export function checkOperation(container: string, status: OciStatus, operation: Operation, options: { force?: boolean } = {}): void {
  if (allowed(operation, status, options)) return;
  const needs = `${operation} needs a ${ALLOWED[operation].join(' or ')} container`;
  const hint = (operation === 'delete' || operation === 'remove') && FORCED.includes(status) ? 'stop it first or use --force' : needs;
  throw new StateError(container, status, operation, `cannot ${operation} ${status} container ${container}: ${hint}`);
}
