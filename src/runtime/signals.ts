import type os = require('node:os');
import { ValidationError } from '../errors';

/**
 * node:os is compiled at its first require, so it is loaded only when a
 * signal is named: a container that runs and exits never needs it.
 */
function signalNumbers(): typeof os.constants.signals {
  return (require('node:os') as typeof os).constants.signals;
}

/** Signal number from a name (`TERM`, `SIGTERM`) or a number, as `kill -s` takes it. */
export function signalNumber(signal: string | number): number {
  if (typeof signal === 'number') {
    if (!Number.isInteger(signal) || signal < 1 || signal > 64) throw new ValidationError('signal', `${signal} is not a signal number`);
    return signal;
  }
  const text = signal.trim().toUpperCase();
  if (/^\d+$/.test(text)) return signalNumber(Number(text));
  const name = (text.startsWith('SIG') ? text : `SIG${text}`) as keyof ReturnType<typeof signalNumbers>;
  const number = signalNumbers()[name];
  if (number === undefined) throw new ValidationError('signal', `unknown signal ${JSON.stringify(signal)}`);
  return number;
}

/** The name of a signal number, e.g. 15 -> "SIGTERM". */
export function signalName(signal: number): NodeJS.Signals | string {
  const entry = Object.entries(signalNumbers()).find(([, n]) => n === signal);
  return entry ? (entry[0] as NodeJS.Signals) : `SIG${signal}`;
}
