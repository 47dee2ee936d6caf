import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { storeSnapshot, tarOf } from '../helpers/images';
import { checkLeaksAfterEach } from '../helpers/leaks';

const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');
const TSRUN_OCI = path.resolve(__dirname, '..', '..', 'bin', 'tsrun-oci');
const FIXTURES = path.resolve(__dirname, '..', 'fixtures', 'hostile');

interface HostileCase {
  name: string;
  /** `oci`: fed to tsrun-oci (a bundle), whose state root must stay empty; else to tsrun. */
  runtime?: 'oci';
  args: string[];
  exit: number;
  error: string;
}

const CASES = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'cases.json'), 'utf8')) as HostileCase[];
/** Where the tar cases try to write on the host. */
const TARGETS = ['/etc/tsrun-escaped', '/tmp/tsrun-escaped', '/escaped', path.resolve(FIXTURES, '..', 'escaped')];

/**
 * The hostile input corpus (test/fixtures/hostile, made by make.py): each
 * case is refused with one clear error line and its exit code, writes
 * nothing outside the store, and leaves the store as it was, which
 * `tsrun system check` confirms; a bundle leaves no container in
 * tsrun-oci's state root (and, as every case, no mount, cgroup or process).
 */
describeAsRoot('hostile input corpus', () => {
  const tmp = useTempDir('tsrun-hostile-');
  checkLeaksAfterEach();
  const root = (): string => path.join(tmp(), 'store');

  const ociRoot = (): string => path.join(tmp(), 'oci');

  function tsrun(args: string[]): { status: number | null; stdout: string; stderr: string } {
    return spawnSync(TSRUN, ['--root', root(), '--state', path.join(tmp(), 'state'), ...args], { encoding: 'utf8', input: '', timeout: 60_000 });
  }

  function tsrunOci(args: string[]): { status: number | null; stdout: string; stderr: string } {
    return spawnSync(TSRUN_OCI, ['--root', ociRoot(), ...args], { encoding: 'utf8', input: '', timeout: 60_000 });
  }

  beforeAll(() => {
    const tar = path.join(tmp(), 'busybox.tar');
    fs.writeFileSync(tar, tarOf(busyboxRootfs()));
    expect(tsrun(['import', '-c', 'CMD ["sh"]', tar, 'busybox:base']).status).toBe(0);
    expect(tsrun(['run', '--rm', 'busybox:base', 'true']).status).toBe(0);
  });

  test('the corpus has at least 20 cases, each with its fixture', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(20);
    for (const c of CASES) for (const arg of c.args.filter((a) => a.includes('{fixtures}'))) expect(fs.existsSync(arg.replace('{fixtures}', FIXTURES))).toBe(true);
  });

  test.each(CASES.map((c) => [c.name, c]))('%s', (_, hostile) => {
    const before = storeSnapshot(root());
    const args = hostile.args.map((a) => a.replace('{fixtures}', FIXTURES));
    const result = hostile.runtime === 'oci' ? tsrunOci(args) : tsrun(args);
    expect({ status: result.status, stdout: result.stdout }).toEqual({ status: hostile.exit, stdout: '' });
    const lines = result.stderr.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(hostile.runtime === 'oci' ? /^tsrun-oci: / : /^tsrun: /);
    expect(lines[0]).toMatch(new RegExp(hostile.error));
    for (const target of TARGETS) expect(fs.existsSync(target)).toBe(false);
    expect(storeSnapshot(root())).toEqual(before);
    expect(fs.existsSync(ociRoot()) ? fs.readdirSync(ociRoot()) : []).toEqual([]);
    expect(tsrun(['system', 'check'])).toMatchObject({ status: 0, stdout: expect.stringMatching(/^store OK: 1 images, /) });
  });
});
