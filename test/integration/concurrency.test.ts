import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { tarOf, writeOciLayout, writeTree } from '../helpers/images';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { useRegistry } from '../helpers/registry';

const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');

interface Result {
  args: string[];
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Twenty tsrun processes at once on one store: pulls of one image, runs,
 * commits, an rmi of an image in use (refused), prunes and readers. Each
 * must end as it would alone, and the store must check clean after.
 */
describeAsRoot('concurrency: 20 operations on one store at once', () => {
  const tmp = useTempDir('tsrun-concurrency-');
  const registry = useRegistry();
  checkLeaksAfterEach();
  const root = (): string => path.join(tmp(), 'store');
  const state = (): string => path.join(tmp(), 'state');

  function tsrunSync(...args: string[]): Result {
    return { args, ...spawnSync(TSRUN, ['--root', root(), '--state', state(), ...args], { encoding: 'utf8', input: '', timeout: 60_000 }) };
  }

  function tsrun(...args: string[]): Promise<Result> {
    return new Promise((resolve, reject) => {
      const child = spawn(TSRUN, ['--root', root(), '--state', state(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', reject);
      child.on('close', (status) => resolve({ args, status, stdout, stderr }));
    });
  }

  beforeAll(() => {
    const tar = path.join(tmp(), 'busybox.tar');
    fs.writeFileSync(tar, tarOf(busyboxRootfs()));
    expect(tsrunSync('import', '-c', 'CMD ["sh"]', tar, 'busybox:base').status).toBe(0);
    const layout = path.join(tmp(), 'layout');
    writeOciLayout(layout, [tarOf(busyboxRootfs()), tarOf(writeTree(path.join(tmp(), 'marker'), { 'etc/pulled': 'yes\n' }))], { cmd: ['cat', '/etc/pulled'] });
    execFileSync('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}`, `docker://${registry().host}/shared:1`]);
    for (const n of [1, 2, 3]) expect(tsrunSync('run', '--name', `source-${n}`, 'busybox:base', 'sh', '-c', `echo ${n} > /made`).status).toBe(0);
  });

  test('pulls, runs, commits, rmi of an image in use, prunes and readers', async () => {
    const reference = `${registry().host}/shared:1`;
    const operations = [
      ...Array.from({ length: 5 }, () => tsrun('pull', '-q', reference)),
      ...Array.from({ length: 5 }, (_, n) => tsrun('run', '--rm', 'busybox:base', 'echo', `run ${n}`)),
      ...[1, 2, 3].map((n) => tsrun('commit', `source-${n}`, `committed:${n}`)),
      ...Array.from({ length: 3 }, () => tsrun('rmi', 'busybox:base')),
      ...Array.from({ length: 2 }, () => tsrun('image', 'prune', '-f')),
      tsrun('images', '-q'),
      tsrun('ps', '-a', '-q'),
    ];
    expect(operations).toHaveLength(20);
    const results = await Promise.all(operations);
    const byCommand = (command: string): Result[] => results.filter((r) => r.args[0] === command);

    for (const pull of byCommand('pull')) expect(pull).toMatchObject({ status: 0, stdout: `${reference}\n`, stderr: '' });
    byCommand('run').forEach((r, n) => expect(r).toMatchObject({ status: 0, stdout: `run ${n}\n`, stderr: '' }));
    for (const commit of byCommand('commit')) expect(commit).toMatchObject({ status: 0, stdout: expect.stringMatching(/^sha256:[0-9a-f]{64}\n$/), stderr: '' });
    for (const rmi of byCommand('rmi')) {
      expect(rmi).toMatchObject({ status: 1, stdout: '' });
      expect(rmi.stderr).toMatch(/^tsrun: unable to remove repository reference "busybox:base" \(must force\) - container [0-9a-f]{12} \([\w-]+\) is using its referenced image [0-9a-f]{12}\n$/);
    }
    for (const prune of byCommand('image')) expect(prune).toMatchObject({ status: 0, stderr: '' });
    for (const reader of [...byCommand('images'), ...byCommand('ps')]) expect(reader).toMatchObject({ status: 0, stderr: '' });

    // Everything made is whole: the pulled image runs, each commit has its container's file; busybox's layer is shared, its blobs (tar from import, gzip from the registry) are two.
    expect(tsrunSync('run', '--rm', reference)).toMatchObject({ status: 0, stdout: 'yes\n' });
    for (const n of [1, 2, 3]) expect(tsrunSync('run', '--rm', `committed:${n}`, 'cat', '/made')).toMatchObject({ status: 0, stdout: `${n}\n` });
    expect(tsrunSync('system', 'check', '--content')).toMatchObject({ status: 0, stdout: 'store OK: 5 images, 5 layers, 16 blobs, 3 containers\n' });
    for (const n of [1, 2, 3]) expect(tsrunSync('rm', `source-${n}`).status).toBe(0);
  });
});
