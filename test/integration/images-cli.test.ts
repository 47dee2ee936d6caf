import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { storeSnapshot, tarOf } from '../helpers/images';

const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');

describeAsRoot('tsrun image commands', () => {
  const tmp = useTempDir('tsrun-images-cli-');
  const root = () => path.join(tmp(), 'store');
  const busyboxTar = () => path.join(tmp(), 'busybox.tar');

  beforeAll(() => {
    fs.writeFileSync(busyboxTar(), tarOf(busyboxRootfs()));
  });

  function tsrun(args: string[], options: { input?: string | Buffer; encoding?: 'buffer' } = {}): { status: number | null; stdout: string; stderr: string; raw: Buffer } {
    const result = spawnSync(TSRUN, ['--root', root(), ...args], { input: options.input ?? '', timeout: 60_000, maxBuffer: 1 << 30 });
    return { status: result.status, stdout: result.stdout.toString(), stderr: result.stderr.toString(), raw: result.stdout };
  }

  test('import (file and stdin), images, tag, inspect, rmi, prune', () => {
    const imported = tsrun(['image', 'import', '-c', 'CMD ["sh"]', '-c', 'ENV A=1', '-m', 'hello', busyboxTar(), 'busybox:cli']);
    expect(imported).toMatchObject({ status: 0, stderr: '' });
    expect(imported.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    const id = imported.stdout.trim();
    const fromStdin = tsrun(['import', '-', 'busybox:stdin'], { input: fs.readFileSync(busyboxTar()) });
    expect(fromStdin).toMatchObject({ status: 0, stderr: '' });
    expect(fromStdin.stdout.trim()).not.toBe(id); // Another history entry ("Imported from -"), so another config.

    expect(tsrun(['tag', 'busybox:cli', 'registry.local:5000/team/box:v1'])).toMatchObject({ status: 0, stdout: '', stderr: '' });
    const images = tsrun(['images']);
    expect(images.status).toBe(0);
    const lines = images.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    expect(lines).toHaveLength(4);
    expect(images.stdout).toMatch(new RegExp(`^busybox\\s+cli\\s+${id.slice(7, 19)}\\s+(Less than a second|1 second|\\d+ seconds) ago\\s+\\d+(\\.\\d+)?MB$`, 'm'));
    expect(images.stdout).toMatch(/^registry\.local:5000\/team\/box\s+v1\s+/m);
    expect(tsrun(['images', '-q']).stdout.split('\n').filter(Boolean)).toHaveLength(2);
    expect(tsrun(['image', 'ls', 'busybox']).stdout.trimEnd().split('\n')).toHaveLength(3);
    const json = tsrun(['images', '--format', 'json']).stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(json).toContainEqual(expect.objectContaining({ ID: id.slice(7, 19), Repository: 'busybox', Tag: 'cli' }));

    const inspect = tsrun(['image', 'inspect', 'busybox:cli', id.slice(7, 15)]);
    expect(inspect.status).toBe(0);
    const [first, second] = JSON.parse(inspect.stdout);
    expect(first).toMatchObject({ Id: id, RepoTags: ['busybox:cli', 'registry.local:5000/team/box:v1'], Comment: 'hello', Config: { Cmd: ['sh'], Env: ['A=1'] } });
    expect(second.Id).toBe(id);

    expect(tsrun(['rmi', 'registry.local:5000/team/box:v1'])).toMatchObject({ status: 0, stdout: 'Untagged: registry.local:5000/team/box:v1\n' });
    const rmi = tsrun(['image', 'rm', 'busybox:cli', 'nosuch:1']);
    expect(rmi.status).toBe(1);
    expect(rmi.stdout).toBe(`Untagged: busybox:cli\nDeleted: ${id}\n`);
    expect(rmi.stderr).toBe('tsrun: No such image: nosuch:1\n');

    // Untag the stdin image by moving its tag, then prune it.
    const stdinId = fromStdin.stdout.trim();
    expect(tsrun(['import', busyboxTar(), 'busybox:stdin']).status).toBe(0);
    const prune = tsrun(['image', 'prune', '-f']);
    expect(prune.status).toBe(0);
    expect(prune.stdout).toMatch(new RegExp(`^Deleted Images:\\ndeleted: ${stdinId}\\n\\nTotal reclaimed space: \\d+(\\.\\d+)?k?B\\n$`));
    expect(tsrun(['image', 'prune', '-f']).stdout).toBe('Total reclaimed space: 0B\n');
    // Without -f it asks, and anything but yes is no.
    expect(tsrun(['image', 'prune'], { input: 'n\n' })).toMatchObject({ status: 0, stdout: '', stderr: expect.stringMatching(/Are you sure you want to continue\? \[y\/N\] $/) });
  });

  test('save -o, save to a pipe, load -i, load from stdin', () => {
    expect(tsrun(['import', busyboxTar(), 'saved:1']).status).toBe(0);
    const file = path.join(tmp(), 'saved.tar');
    expect(tsrun(['save', '-o', file, 'saved:1'])).toMatchObject({ status: 0, stdout: '', stderr: '' });
    const piped = tsrun(['save', 'saved:1']);
    expect(piped.status).toBe(0);
    expect(piped.raw.equals(fs.readFileSync(file))).toBe(true);
    expect(execFileSync('tar', ['-tf', file], { encoding: 'utf8' })).toMatch(/^oci-layout$/m);

    expect(tsrun(['rmi', 'saved:1']).status).toBe(0);
    expect(tsrun(['load', '-i', file])).toMatchObject({ status: 0, stdout: 'Loaded image: saved:1\n', stderr: '' });
    expect(tsrun(['load'], { input: fs.readFileSync(file) })).toMatchObject({ status: 0, stdout: 'Loaded image: saved:1\n', stderr: '' });

    // An untagged image is reported by id.
    const untagged = tsrun(['save', JSON.parse(tsrun(['image', 'inspect', 'saved:1']).stdout)[0].Id]);
    expect(tsrun(['rmi', 'saved:1']).status).toBe(0);
    expect(tsrun(['load'], { input: untagged.raw }).stdout).toMatch(/^Loaded image ID: sha256:[0-9a-f]{64}\n$/);
  });

  test('errors: one line, 125 for usage and invalid input, 1 for what the store refuses, and the store unchanged', () => {
    expect(tsrun(['import', busyboxTar(), 'errors:1']).status).toBe(0);
    const before = storeSnapshot(root());
    const cases: [string[], number, RegExp][] = [
      [['rmi'], 125, /^tsrun: "tsrun rmi" requires at least one image\nSee 'tsrun --help'.\n$/],
      [['tag', 'errors:1'], 125, /requires exactly 2 arguments/],
      [['tag', 'errors:1', 'Bad:1'], 125, /^tsrun: reference: invalid reference format "Bad:1": repository name must be lowercase\n$/],
      [['image', 'inspect', 'nosuch'], 1, /^tsrun: No such image: nosuch\n$/],
      [['rmi', 'nosuch'], 1, /^tsrun: No such image: nosuch\n$/],
      [['save', '-o', path.join(tmp(), 'x.tar'), 'nosuch'], 1, /^tsrun: No such image: nosuch\n$/],
      [['load', '-i', path.join(tmp(), 'nonexistent.tar')], 1, /^tsrun: load: stat .*nonexistent\.tar: ENOENT \(no such file or directory\)/],
      [['load', '-i', busyboxTar()], 1, /^tsrun: .*busybox\.tar: not an image archive/],
      [['import', '-c', 'RUN x', busyboxTar(), 'x:1'], 125, /^tsrun: change: "RUN x": RUN is not supported/],
      [['import', busyboxTar()], 125, /requires a file \(or - for stdin\) and an image name/],
    ];
    for (const [args, status, stderr] of cases) {
      const result = tsrun(args);
      expect({ args, status: result.status }).toEqual({ args, status });
      expect(result.stderr).toMatch(stderr);
      expect(storeSnapshot(root())).toEqual(before);
    }
    expect(tsrun(['image', 'inspect', 'nosuch']).stdout).toBe('[]\n');
    expect(fs.existsSync(path.join(tmp(), 'x.tar'))).toBe(false);
  });
});
