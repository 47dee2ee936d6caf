import { PassThrough } from 'node:stream';
import type { BuildEvent } from '../../src/build/builder';
import { buildRenderer } from '../../src/cli/build-progress';

function fakeStream(): { stream: NodeJS.WriteStream; output: () => string } {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream & PassThrough;
  let output = '';
  stream.on('data', (d: Buffer) => (output += d.toString()));
  Object.assign(stream, { isTTY: true, columns: 200 });
  return { stream, output: () => output };
}

const EVENTS: BuildEvent[] = [
  { type: 'step', step: 1, total: 3, stage: 'stage-0', instruction: 'FROM busybox', line: 1 },
  { type: 'done', step: 1 },
  { type: 'step', step: 2, total: 3, stage: 'stage-0', instruction: 'COPY  a \n b', line: 2 },
  { type: 'cached', step: 2 },
  { type: 'done', step: 2, image: 'sha256:1' },
  { type: 'step', step: 3, total: 3, stage: 'stage-0', instruction: 'RUN make', line: 3 },
  { type: 'output', step: 3, stream: 'stdout', data: 'first li' },
  { type: 'output', step: 3, stream: 'stderr', data: 'ne\nsecond line\n' },
  { type: 'warning', message: 'one or more build-args [X] were not consumed' },
];

describe('build progress', () => {
  test('plain: a line per event, output lines whole and numbered by their step', async () => {
    const { stream, output } = fakeStream();
    const renderer = buildRenderer('plain', stream);
    EVENTS.forEach((e) => renderer.update(e));
    renderer.update({ type: 'done', step: 3, image: 'sha256:2' });
    renderer.update({ type: 'image', id: 'sha256:2', tags: ['a:1', 'a:2'] });
    renderer.finish(false);
    await new Promise((resolve) => setImmediate(resolve));
    expect(output().replace(/DONE \d+\.\ds/g, 'DONE T').replace(/^(#3) \d+\.\d{3} /gm, '$1 T ')).toBe(
      [
        '#1 [stage-0 1/3] FROM busybox',
        '#1 DONE T',
        '#2 [stage-0 2/3] COPY a b',
        '#2 CACHED',
        '#2 DONE T',
        '#3 [stage-0 3/3] RUN make',
        '#3 T first line',
        '#3 T second line',
        'WARNING: one or more build-args [X] were not consumed',
        '#3 DONE T',
        'writing image sha256:2 done',
        'naming to a:1 done',
        'naming to a:2 done',
        '',
      ].join('\n'),
    );
  });

  test('tty: redrawn in place; a failure shows the failing step with all its output', async () => {
    const { stream, output } = fakeStream();
    const renderer = buildRenderer('tty', stream);
    EVENTS.forEach((e) => renderer.update(e));
    renderer.finish(true);
    await new Promise((resolve) => setImmediate(resolve));
    const lines = output().replace(/\x1b\[2K/g, '').replace(/\d+\.\ds/g, 'T').split('\n');
    expect(lines).toEqual([
      '[+] Building T (2/3) FAILED',
      ' => [stage-0 1/3] FROM busybox T',
      ' => CACHED [stage-0 2/3] COPY a b',
      ' => [stage-0 3/3] RUN make T',
      ' => => first line',
      ' => => second line',
      'WARNING: one or more build-args [X] were not consumed',
      '',
    ]);
  });
});
