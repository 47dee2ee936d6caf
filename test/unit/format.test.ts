import { binarySize, humanDuration, humanSize, table } from '../../src/cli/format';
import { formatPlatform, platformMatches } from '../../src/oci/platform';

describe('humanDuration (docker ps / images)', () => {
  const s = 1000;
  const h = 3600 * s;
  test.each<[number, string]>([
    [-5000, 'Less than a second'],
    [400, 'Less than a second'],
    [s, '1 second'],
    [59 * s, '59 seconds'],
    [60 * s, 'About a minute'],
    [89 * s, 'About a minute'],
    [45 * 60 * s, '45 minutes'],
    [h, 'About an hour'],
    [47 * h, '47 hours'],
    [48 * h, '2 days'],
    [14 * 24 * h, '2 weeks'],
    [60 * 24 * h, '2 months'],
    [2 * 365 * 24 * h, '2 years'],
  ])('%i ms is %j', (ms, text) => {
    expect(humanDuration(ms)).toBe(text);
  });
});

describe('sizes (docker images, docker stats)', () => {
  test.each<[number, string]>([
    [0, '0B'],
    [856, '856B'],
    [4_260_000, '4.26MB'],
    [1000, '1kB'],
    [1_500_000_000, '1.5GB'],
  ])('humanSize(%i) is %j', (bytes, text) => {
    expect(humanSize(bytes)).toBe(text);
  });

  test.each<[number, string]>([
    [0, '0B'],
    [1023, '1023B'],
    [1024, '1KiB'],
    [1536 * 1024, '1.5MiB'],
    [1_536_000, '1.465MiB'],
    [32 * 1024 ** 3 - 780 * 1024 ** 2, '31.24GiB'],
  ])('binarySize(%i) is %j', (bytes, text) => {
    expect(binarySize(bytes)).toBe(text);
  });
});

describe('table', () => {
  test('columns padded to the widest cell, three spaces apart, no trailing spaces', () => {
    expect(table(['ID', 'NAME'], [['a', 'web'], ['bcdef', '']])).toBe('ID      NAME\na       web\nbcdef\n');
    expect(table(['A', 'B'], [])).toBe('A   B\n');
  });
});

describe('platforms', () => {
  test('os and architecture must match; a missing variant matches any', () => {
    const arm64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };
    expect(platformMatches({ os: 'linux', architecture: 'arm64' }, arm64)).toBe(true);
    expect(platformMatches(arm64, { os: 'linux', architecture: 'arm64' })).toBe(true);
    expect(platformMatches({ ...arm64, variant: 'v9' }, arm64)).toBe(false);
    expect(platformMatches({ os: 'linux', architecture: 'amd64' }, arm64)).toBe(false);
    expect(platformMatches({ os: 'windows', architecture: 'arm64' }, arm64)).toBe(false);
  });

  test('os/architecture[/variant]', () => {
    expect(formatPlatform({ os: 'linux', architecture: 'arm', variant: 'v7' })).toBe('linux/arm/v7');
    expect(formatPlatform({ os: 'linux', architecture: 'amd64' })).toBe('linux/amd64');
  });
});
