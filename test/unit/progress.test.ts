import { PassThrough } from 'node:stream';
import { progressRenderer } from '../../src/cli/progress';

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; output: () => string } {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream & PassThrough;
  let output = '';
  stream.on('data', (d: Buffer) => (output += d.toString()));
  Object.assign(stream, { isTTY, columns: 200 });
  return { stream, output: () => output };
}

describe('pull and push progress', () => {
  test('without a terminal: one line per status change, never one per chunk', async () => {
    const { stream, output } = fakeStream(false);
    const progress = progressRenderer(stream);
    progress.update({ id: 'aaaaaaaaaaaa', status: 'Pulling fs layer' });
    progress.update({ id: 'bbbbbbbbbbbb', status: 'Already exists' });
    for (let current = 0; current <= 3000; current += 1000) progress.update({ id: 'aaaaaaaaaaaa', status: 'Downloading', current, total: 3000 });
    progress.update({ id: 'aaaaaaaaaaaa', status: 'Retrying', detail: 'aborted; retrying in 1 s (1)' });
    progress.update({ id: 'aaaaaaaaaaaa', status: 'Pull complete' });
    progress.update({ id: 'cccccccccccc', status: 'Mounted', detail: 'library/busybox' });
    progress.finish();
    await new Promise((resolve) => setImmediate(resolve));
    expect(output()).toBe(
      [
        'aaaaaaaaaaaa: Pulling fs layer',
        'bbbbbbbbbbbb: Already exists',
        'aaaaaaaaaaaa: Downloading',
        'aaaaaaaaaaaa: Retrying (aborted; retrying in 1 s (1))',
        'aaaaaaaaaaaa: Pull complete',
        'cccccccccccc: Mounted from library/busybox',
        '',
      ].join('\n'),
    );
  });

  test('on a terminal: a line per layer with a bar, redrawn in place', async () => {
    const { stream, output } = fakeStream(true);
    const progress = progressRenderer(stream);
    progress.update({ id: 'aaaaaaaaaaaa', status: 'Downloading', current: 1_500_000, total: 3_000_000 });
    progress.update({ id: 'bbbbbbbbbbbb', status: 'Already exists' });
    progress.finish();
    progress.update({ id: 'aaaaaaaaaaaa', status: 'Pull complete' });
    progress.finish();
    await new Promise((resolve) => setImmediate(resolve));
    const half = `[${'='.repeat(24)}>${' '.repeat(25)}]`;
    expect(output()).toBe(
      `\x1b[2Kaaaaaaaaaaaa: Downloading ${half}  1.500MB/3.000MB\n\x1b[2Kbbbbbbbbbbbb: Already exists\n` +
        `\x1b[2A\x1b[2Kaaaaaaaaaaaa: Pull complete\n\x1b[2Kbbbbbbbbbbbb: Already exists\n`,
    );
  });
});
