import { ValidationError } from '../../src/errors';
import { overlayOptions } from '../../src/linux/overlay';

const layout = (lower: string[], upper = 'ab12/diff', work = 'ab12/work') => ({ base: '/var/lib/tsrun/overlay2', lower, upper, work, merged: '/var/lib/tsrun/overlay2/ab12/merged' });

describe('overlayOptions', () => {
  test('lowerdir top first, then upperdir and workdir, relative to the base', () => {
    expect(overlayOptions(layout(['l/TOP', 'l/BOTTOM']))).toBe('lowerdir=l/TOP:l/BOTTOM,upperdir=ab12/diff,workdir=ab12/work');
  });

  test('at least one lower layer', () => {
    expect(() => overlayOptions(layout([]))).toThrow(new ValidationError('overlay', 'needs at least one lower layer'));
  });

  test.each(['l/A,B', 'l/A:B', 'l\\A'])('a path overlayfs cannot carry: %j', (bad) => {
    expect(() => overlayOptions(layout([bad]))).toThrow(/has a character overlayfs options cannot carry/);
    expect(() => overlayOptions(layout(['l/OK'], bad))).toThrow(ValidationError);
    expect(() => overlayOptions(layout(['l/OK'], 'u', bad))).toThrow(ValidationError);
  });

  test('the option string must fit in one page (4095 bytes and the NUL)', () => {
    // 26-character short links, as the store makes: "l/" + 26 + ":" = 29 per layer.
    const link = (i: number): string => `l/${String(i).padStart(26, 'A')}`;
    const fixed = ',upperdir=ab12/diff,workdir=ab12/work'.length + 'lowerdir='.length;
    const fits = Math.floor((4095 - fixed + 1) / 29);
    const ok = overlayOptions(layout(Array.from({ length: fits }, (_, i) => link(i))));
    expect(ok.length).toBeLessThanOrEqual(4095);
    expect(() => overlayOptions(layout(Array.from({ length: fits + 1 }, (_, i) => link(i))))).toThrow(`${fits + 1} layers make a`);
    expect(fits).toBeGreaterThanOrEqual(128);
  });
});
