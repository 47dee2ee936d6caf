import { TsrunError } from '../errors';

/**
 * Asks on the terminal and reads one line from it; `hidden` reads with no
 * echo (a password). The terminal's mode is restored however it ends.
 */
export async function prompt(question: string, options: { hidden: boolean }): Promise<string> {
  const input = process.stdin;
  if (!input.isTTY) throw new TsrunError('Cannot perform an interactive login from a non TTY device', 'ENOTTY');
  process.stdout.write(question);
  input.setRawMode(true);
  input.setEncoding('utf8');
  input.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let answer = '';
      const onData = (text: string): void => {
        for (const char of text) {
          if (char === '\r' || char === '\n') {
            input.off('data', onData);
            process.stdout.write('\n');
            resolve(answer);
            return;
          }
          if (char === '\u0003') {
            input.off('data', onData);
            process.stdout.write('\n');
            reject(new TsrunError('interrupted', 'EINTR'));
            return;
          }
          if (char === '\u007f' || char === '\b') {
            if (answer.length > 0 && !options.hidden) process.stdout.write('\b \b');
            answer = answer.slice(0, -1);
          } else {
            answer += char;
            if (!options.hidden) process.stdout.write(char);
          }
        }
      };
      input.on('data', onData);
    });
  } finally {
    input.setRawMode(false);
    input.pause();
  }
}

/** All of stdin, without the line end after it (`echo pass | tsrun login --password-stdin`). */
export async function readStdin(): Promise<string> {
  let text = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) text += chunk as string;
  return text.replace(/\r?\n$/, '');
}

/** Asks on stderr and reads one answer line from stdin; no answer is no (as Docker's prune prompts). */
export async function confirm(question: string): Promise<boolean> {
  process.stderr.write(question);
  const { createInterface } = await import('node:readline');
  const lines = createInterface({ input: process.stdin });
  try {
    for await (const line of lines) return /^y(es)?$/i.test(line.trim());
    return false;
  } finally {
    lines.close();
  }
}
