import { DetachKeyFilter, parseDetachKeys } from '../../src/runtime/detach-keys';

async function typed(keys: string, chunks: string[]): Promise<{ passed: string; detaches: number }> {
  const filter = new DetachKeyFilter(parseDetachKeys(keys));
  let passed = '';
  let detaches = 0;
  filter.on('data', (d: Buffer) => (passed += d.toString('latin1')));
  filter.on('detach', () => detaches++);
  for (const chunk of chunks) filter.write(Buffer.from(chunk, 'latin1'));
  filter.end();
  await new Promise((resolve) => filter.once('end', resolve));
  return { passed, detaches };
}

describe('--detach-keys', () => {
  test('Docker\'s notation: ctrl-<c> and single characters', () => {
    expect([...parseDetachKeys('ctrl-p,ctrl-q')]).toEqual([0x10, 0x11]);
    expect([...parseDetachKeys('ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_')]).toEqual([0, 27, 28, 29, 30, 31]);
    expect([...parseDetachKeys('a,ctrl-A')]).toEqual([0x61, 1]);
    expect(() => parseDetachKeys('ctrl-1')).toThrow(/"ctrl-1" is not a key/);
    expect(() => parseDetachKeys('ab')).toThrow(/"ab" is not a key/);
  });

  test('the sequence is taken out and reported, also across chunks; the rest passes as typed', async () => {
    expect(await typed('ctrl-p,ctrl-q', ['ls\r\x10\x11more'])).toEqual({ passed: 'ls\rmore', detaches: 1 });
    expect(await typed('ctrl-p,ctrl-q', ['a\x10', '\x11b'])).toEqual({ passed: 'ab', detaches: 1 });
  });

  test('a sequence that breaks off is let through whole, and may start again at once', async () => {
    expect(await typed('ctrl-p,ctrl-q', ['\x10x'])).toEqual({ passed: '\x10x', detaches: 0 });
    expect(await typed('ctrl-p,ctrl-q', ['\x10\x10\x11'])).toEqual({ passed: '\x10', detaches: 1 });
    expect(await typed('ctrl-p,ctrl-q', ['tail\x10'])).toEqual({ passed: 'tail\x10', detaches: 0 });
  });
});
