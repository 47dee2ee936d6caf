import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BuildError, build, run } from '../../src';
import type { BuildEvent, BuildOptions, BuildResult } from '../../src';
import { Store } from '../../src/storage/store';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { pyTar, writeTree } from '../helpers/images';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { useRegistry } from '../helpers/registry';
import { collectOutput } from '../helpers/run';
import { tempPodman } from '../helpers/podman';

const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');

describeAsRoot('tsrun build', () => {
  const tmp = useTempDir('tsrun-build-');
  const root = () => path.join(tmp(), 'store');
  const stateDir = () => path.join(tmp(), 'state');
  let contexts = 0;
  const registry = useRegistry();
  checkLeaksAfterEach();

  beforeAll(async () => {
    const tar = path.join(tmp(), 'busybox.tar');
    execFileSync('tar', ['-C', busyboxRootfs(), '-cf', tar, '.']);
    await Store.open(root()).importRootfs(tar, 'busybox:test', { changes: ['CMD ["sh"]'] });
  });

  /** A fresh build context holding `files` (path -> content; a Dockerfile among them). */
  function context(files: Record<string, string>): string {
    return writeTree(path.join(tmp(), `context-${++contexts}`), files);
  }

  async function buildIn(dir: string, options: Partial<BuildOptions> = {}): Promise<BuildResult & { events: BuildEvent[] }> {
    const events: BuildEvent[] = [];
    const result = await build({ context: dir, root: root(), stateDir: stateDir(), onProgress: (e) => events.push(e), ...options });
    return { ...result, events };
  }

  async function runImage(image: string, args?: string[], user?: string): Promise<{ stdout: string; stderr: string; exitCode: number }> {
    const { stdout, stderr, exitCode } = await collectOutput(await run({ image, args, user, root: root(), stateDir: stateDir(), stdio: 'pipe', autoRemove: true }));
    return { stdout, stderr, exitCode };
  }

  function tsrun(args: string[], input = ''): { status: number | null; stdout: string; stderr: string } {
    const result = spawnSync('unshare', ['--mount', '--propagation', 'private', TSRUN, '--root', root(), '--state', stateDir(), ...args], { input, encoding: 'utf8', timeout: 120_000 });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  async function buildFails(dir: string, options: Partial<BuildOptions> = {}): Promise<BuildError> {
    const error = await buildIn(dir, options).then(
      () => new Error('expected the build to fail'),
      (err: Error) => err,
    );
    expect(error).toBeInstanceOf(BuildError);
    return error as BuildError;
  }

  const APP_DOCKERFILE = [
    'FROM busybox:test',
    'ENV GREETING="hello from the image" \\',
    '    APP=/app',
    'RUN mkdir -p $APP/data && echo made-by-run > $APP/data/run.txt',
    'ADD start.sh /usr/local/bin/',
    'WORKDIR $APP',
    'CMD ["start.sh"]',
    '',
  ].join('\n');
  const START_SH = '#!/bin/sh\necho "$GREETING in $(pwd)"\ncat data/run.txt\n';

  function appContext(): string {
    const dir = context({ Dockerfile: APP_DOCKERFILE, 'start.sh': START_SH });
    fs.chmodSync(path.join(dir, 'start.sh'), 0o755);
    return dir;
  }

  test('FROM a local busybox with ENV, RUN, ADD of a script, WORKDIR, CMD: a layer per RUN and ADD, history as Docker writes it, and the image runs the script', async () => {
    const store = Store.open(root());
    const base = store.inspect('busybox:test');
    const { image, steps } = await buildIn(appContext(), { tags: ['app:1', 'app:latest'] });
    expect(steps.map((s) => [s.line, s.layer, s.cached])).toEqual([
      [1, false, false],
      [2, false, false],
      [4, true, false],
      [5, true, false],
      [6, false, false],
      [7, false, false],
    ]);

    const inspect = store.inspect('app:1');
    expect(inspect.Id).toBe(image.id);
    expect(inspect.RepoTags).toEqual(['app:1', 'app:latest']);
    // One more layer for the RUN and one for the ADD; ENV, WORKDIR and CMD only change the config.
    expect(inspect.RootFS.Layers).toHaveLength(base.RootFS.Layers.length + 2);
    expect(inspect.RootFS.Layers.slice(0, base.RootFS.Layers.length)).toEqual(base.RootFS.Layers);
    expect(inspect.Config).toMatchObject({ Env: ['GREETING=hello from the image', 'APP=/app'], WorkingDir: '/app', Cmd: ['start.sh'] });

    const history = image.config.history ?? [];
    expect(history.slice(1).map((h) => [h.created_by, h.empty_layer ?? false])).toEqual([
      ['/bin/sh -c #(nop)  ENV GREETING=hello from the image APP=/app', true],
      ['/bin/sh -c mkdir -p $APP/data && echo made-by-run > $APP/data/run.txt', false],
      [expect.stringMatching(/^\/bin\/sh -c #\(nop\) ADD file:[0-9a-f]{64} in \/usr\/local\/bin\/ $/), false],
      ['/bin/sh -c #(nop) WORKDIR /app', true],
      ['/bin/sh -c #(nop)  CMD ["start.sh"]', true],
    ]);
    // The layers a step made hold only what it changed.
    const [runLayer, addLayer] = image.layers.slice(-2).map((l) => l.dir);
    expect(fs.readFileSync(path.join(runLayer, 'app', 'data', 'run.txt'), 'utf8')).toBe('made-by-run\n');
    expect(fs.existsSync(path.join(runLayer, 'usr', 'local', 'bin', 'start.sh'))).toBe(false);
    expect(fs.statSync(path.join(addLayer, 'usr', 'local', 'bin', 'start.sh')).mode & 0o777).toBe(0o755);
    expect(fs.readdirSync(addLayer)).toEqual(['usr']);

    expect(await runImage('app:1')).toEqual({ stdout: 'hello from the image in /app\nmade-by-run\n', stderr: '', exitCode: 0 });
    // Intermediate images are hidden, as docker images hides them.
    expect(store.images().map((i) => i.repoTags)).toEqual([['app:1', 'app:latest'], ['busybox:test']]);
    expect(store.images({ all: true }).length).toBe(4);
  });

  test('a second build is fully cached; editing the script rebuilds from its ADD step only; touching it alone changes nothing', async () => {
    const dir = appContext();
    const first = await buildIn(dir, { tags: ['cached:1'] });
    const second = await buildIn(dir, { tags: ['cached:1'] });
    expect(second.steps.filter((s) => s.layer).map((s) => s.cached)).toEqual([true, true]);
    expect(second.events.filter((e) => e.type === 'cached')).toHaveLength(2);
    expect(second.image.id).toBe(first.image.id);

    // Docker's cache looks at contents, not times.
    const script = path.join(dir, 'start.sh');
    fs.utimesSync(script, new Date(2001, 1, 1), new Date(2001, 1, 1));
    expect((await buildIn(dir)).image.id).toBe(first.image.id);

    fs.writeFileSync(script, `${START_SH}echo edited\n`);
    const third = await buildIn(dir, { tags: ['cached:1'] });
    expect(third.steps.map((s) => [s.line, s.cached])).toEqual([
      [1, false],
      [2, false],
      [4, true],
      [5, false],
      [6, false],
      [7, false],
    ]);
    expect(third.image.layers.slice(0, -1)).toEqual(first.image.layers.slice(0, -1));
    expect(third.image.layers.at(-1)?.diffID).not.toBe(first.image.layers.at(-1)?.diffID);
    expect((await runImage('cached:1')).stdout).toBe('hello from the image in /app\nmade-by-run\nedited\n');

    // --no-cache runs every step again.
    const fresh = await buildIn(dir, { noCache: true });
    expect(fresh.steps.filter((s) => s.layer).map((s) => s.cached)).toEqual([false, false]);
  });

  test('intermediate images: hidden by images, kept by prune while an image above them stays, removed with the last image using them', async () => {
    const store = Store.open(root());
    const dir = context({ Dockerfile: 'FROM busybox:test\nRUN echo one > /one\nRUN echo two > /two\nLABEL step=last\n' });
    const { image } = await buildIn(dir, { tags: ['chain:1'] });
    const chain = [image.id];
    for (let at = store.inspect(image.id).Parent; at !== ''; at = store.inspect(at).Parent) chain.push(at);
    // The final config-only image, the two RUN images, then the base.
    expect(chain).toHaveLength(4);
    expect(chain[3]).toBe(store.resolve('busybox:test').id);
    const ids = (all: boolean): string[] => store.images({ all }).map((i) => i.id);
    expect(ids(false)).not.toContain(chain[1]);
    expect(ids(true)).toEqual(expect.arrayContaining(chain));

    expect((await store.prune()).deleted).not.toEqual(expect.arrayContaining([chain[1]]));
    expect(ids(true)).toEqual(expect.arrayContaining(chain));
    // Another tag keeps the image; its last tag going removes it and the RUN images below it, not the base.
    await store.tag('chain:1', 'chain:2');
    expect(await store.removeImage('chain:1')).toEqual(['Untagged: chain:1']);
    const removed = await store.removeImage('chain:2');
    expect(removed.slice(0, 4)).toEqual(['Untagged: chain:2', `Deleted: ${chain[0]}`, `Deleted: ${chain[1]}`, `Deleted: ${chain[2]}`]);
    expect(ids(true)).not.toEqual(expect.arrayContaining([chain[1]]));
    expect(ids(true)).toContain(chain[3]);
    // The cache entries of the removed images miss: the next build runs its steps again.
    expect((await buildIn(dir)).steps.filter((s) => s.layer).map((s) => s.cached)).toEqual([false, false]);
  });

  test('the CLI: -f, repeated -t, --progress plain shows the steps, their output and CACHED; the context or the Dockerfile on stdin', async () => {
    const dir = appContext();
    // A label first, so that no step is in the cache from the other tests.
    fs.writeFileSync(path.join(dir, 'app.Dockerfile'), `${APP_DOCKERFILE.replace('FROM busybox:test\n', 'FROM busybox:test\nLABEL test=cli\n')}RUN echo output of a step\n`);
    const args = ['build', '--progress', 'plain', '-f', path.join(dir, 'app.Dockerfile'), '-t', 'cli:1', '-t', 'cli:2', dir];
    const first = tsrun(args);
    expect(first).toMatchObject({ status: 0, stdout: '' });
    expect(first.stderr).toMatch(/^#1 \[stage-0 1\/8\] FROM busybox:test\n/);
    expect(first.stderr).toMatch(/^#8 \[stage-0 8\/8\] RUN echo output of a step\n#8 \d+\.\d{3} output of a step\n#8 DONE \d+\.\ds$/m);
    expect(first.stderr).toMatch(/^naming to cli:1 done\nnaming to cli:2 done\n$/m);
    expect(first.stderr).not.toMatch(/CACHED/);
    const second = tsrun(args);
    expect(second.status).toBe(0);
    expect(second.stderr.match(/^#\d+ CACHED$/gm)).toHaveLength(3);
    expect(tsrun(['build', '-q', '-f', path.join(dir, 'app.Dockerfile'), dir]).stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    // An ignore file beside the Dockerfile, named after it, wins over the context's.
    fs.writeFileSync(path.join(dir, 'app.Dockerfile.dockerignore'), 'start.sh\n');
    expect(tsrun(args)).toMatchObject({ status: 1, stderr: expect.stringMatching(/^tsrun: app\.Dockerfile:6: start\.sh: not found in the build context \(or excluded by \.dockerignore\)$/m) });
    fs.rmSync(path.join(dir, 'app.Dockerfile.dockerignore'));
    // -f - reads the Dockerfile from stdin.
    const piped = tsrun(['build', '-q', '-f', '-', '-t', 'cli:stdin', dir], 'FROM busybox:test\nCOPY start.sh /\n');
    expect(piped).toMatchObject({ status: 0, stderr: '' });
    expect(Store.open(root()).inspect('cli:stdin').Id).toBe(piped.stdout.trim());
    // The context itself on stdin: a gzipped tar (with -f naming a file in it), or a Dockerfile alone.
    const tarred = execFileSync('tar', ['-C', dir, '-czf', '-', '.']);
    const fromTar = spawnSync('unshare', ['--mount', '--propagation', 'private', TSRUN, '--root', root(), 'build', '-q', '-f', 'app.Dockerfile', '-t', 'cli:tar', '-'], { input: tarred, encoding: 'utf8' });
    expect(fromTar).toMatchObject({ status: 0, stderr: '' });
    expect((await runImage('cli:tar')).stdout).toBe('hello from the image in /app\nmade-by-run\n');
    const alone = tsrun(['build', '-q', '-t', 'cli:alone', '-'], 'FROM busybox:test\nRUN echo alone > /alone\n');
    expect(alone).toMatchObject({ status: 0, stderr: '' });
    expect(tsrun(['build', '-q', '-'], 'FROM busybox:test\nCOPY app.Dockerfile /\n')).toMatchObject({ status: 1, stderr: 'tsrun: Dockerfile:2: app.Dockerfile: not found in the build context (or excluded by .dockerignore)\n' });
    expect(fs.readdirSync(os.tmpdir()).filter((d) => d.startsWith('tsrun-context-'))).toEqual([]);
  });

  test('a multi-stage build: the final image lacks the builder stage files; COPY --from a stage (by name and index) and from an image', async () => {
    const dir = context({
      Dockerfile: [
        'FROM busybox:test AS builder',
        'RUN mkdir -p /src /out/lib && echo compiled > /out/app && echo secret > /src/source.c && echo old > /out/lib/gone',
        'FROM builder AS tester',
        'RUN echo tested > /out/tested && rm /out/lib/gone && echo new > /out/lib/kept',
        'FROM scratch',
        'COPY --from=builder /out/app /bin/app',
        'COPY --from=1 /out/tested /bin/',
        'COPY --from=busybox:test /bin/busybox /bin/sh',
        'COPY --from=busybox:test /bin/busybox /bin/cat',
        'COPY --from=busybox:test /bin/busybox /bin/ls',
        // What a later layer of the stage deleted is not copied.
        'COPY --from=tester /out/lib /lib/',
        'CMD ["cat", "/bin/app", "/bin/tested"]',
        '',
      ].join('\n'),
    });
    const { image, steps } = await buildIn(dir, { tags: ['multi:1'] });
    expect(steps.filter((s) => s.stage === 'stage-2' && s.layer)).toHaveLength(6);
    // Only the final stage's layers: no busybox base layer, no builder layer.
    expect(image.layers).toHaveLength(6);
    expect((await runImage('multi:1', ['ls', '/lib'])).stdout).toBe('kept\n');
    expect(await runImage('multi:1')).toMatchObject({ stdout: 'compiled\ntested\n', exitCode: 0 });
    expect((await runImage('multi:1', ['sh', '-c', 'cat /src/source.c 2>&1; echo $?'])).stdout).toMatch(/No such file or directory\n1\n$/);

    // --target stops at a stage.
    const builder = await buildIn(dir, { target: 'builder', tags: ['multi:builder'] });
    expect((await runImage('multi:builder', ['cat', '/src/source.c'])).stdout).toBe('secret\n');
    expect(builder.steps.every((s) => s.stage === 'builder')).toBe(true);
    expect(builder.events.find((e) => e.type === 'step')).toMatchObject({ total: 2 });
    expect((await buildFails(dir, { target: 'nope' })).message).toBe('Dockerfile: target stage "nope" could not be found');
  });

  test('.dockerignore, COPY of directories and wildcards, --chown and --chmod, ADD of local archives (tar, gzip, xz, bzip2), ARG and --build-arg, USER', async () => {
    const dir = context({
      Dockerfile: [
        'ARG BASE=busybox:test',
        'FROM --platform=$BUILDPLATFORM $BASE',
        'ARG DEST=/opt/site',
        'ARG VERSION TARGETARCH',
        'COPY site/ $DEST/',
        'COPY *.txt /texts/',
        'COPY --chown=nobody:nogroup --chmod=640 conf.ini /etc/app.ini',
        'ADD bundle.tar /unpacked',
        'ADD bundle.tar.gz /unpacked-gz/',
        'ADD bundle.tar.xz bundle.tar.bz2 /unpacked-more/',
        // Compressed, but no tar: copied as it is.
        'ADD notes.gz /notes/',
        'RUN echo "version=$VERSION on $TARGETARCH" > /version',
        // Through a symlink the image has, into the directory it points to; /tmp keeps its mode.
        'RUN mkdir /real && ln -s /real /linked',
        'COPY a.txt /linked/',
        'COPY b.txt /tmp/',
        'WORKDIR /ctx',
        'COPY . .',
        'ENV PATH=$PATH:/ctx/bin',
        'USER nobody',
        'RUN id -u > /tmp/uid',
        '',
      ].join('\n'),
      '.dockerignore': '# not sent\n**/*.secret\nsite/drafts\ndocs\n!docs/keep.md\n',
      'docs/keep.md': 'kept\n',
      'docs/drop.md': 'dropped\n',
      'site/index.html': '<h1>hi</h1>\n',
      'site/drafts/next.html': 'unfinished\n',
      'site/pass.secret': 'hunter2\n',
      'a.txt': 'a\n',
      'b.txt': 'b\n',
      'conf.ini': 'k=v\n',
      'bin/tool': '#!/bin/sh\necho tool on the PATH\n',
    });
    fs.chmodSync(path.join(dir, 'bin', 'tool'), 0o755);
    const bundle = pyTar([{ name: 'pkg', type: 'dir' }, { name: 'pkg/file', data: 'from the tar\n', mode: 0o600, uid: 7, gid: 8 }, { name: 'pkg/link', type: 'symlink', linkname: 'file' }]);
    fs.writeFileSync(path.join(dir, 'bundle.tar'), bundle);
    fs.writeFileSync(path.join(dir, 'bundle.tar.gz'), execFileSync('gzip', ['-c'], { input: bundle }));
    fs.writeFileSync(path.join(dir, 'bundle.tar.xz'), execFileSync('xz', ['-c'], { input: bundle }));
    fs.writeFileSync(path.join(dir, 'bundle.tar.bz2'), execFileSync('bzip2', ['-c'], { input: pyTar([{ name: 'other', data: 'bz2\n' }]) }));
    fs.writeFileSync(path.join(dir, 'notes.gz'), execFileSync('gzip', ['-c'], { input: 'just notes\n' }));

    const { image, events } = await buildIn(dir, { tags: ['misc:1'], buildArgs: { VERSION: '2.5', UNUSED: 'x' } });
    expect(events).toContainEqual({ type: 'warning', message: 'one or more build-args [UNUSED] were not consumed' });
    const check = await runImage('misc:1', [
      'sh',
      '-c',
      'find /opt/site | sort; ls /texts; stat -c "%U:%G %a" /etc/app.ini; cat /unpacked/pkg/link /unpacked-gz/pkg/file; stat -c "%u:%g %a" /unpacked/pkg/file; cat /version /tmp/uid; ls /real; stat -c %a /tmp; readlink /linked; ls -A /ctx; ls /ctx/docs; tool; cat /unpacked-more/pkg/file /unpacked-more/other; zcat /notes/notes.gz',
    ], 'root');
    expect(check).toMatchObject({ exitCode: 0, stderr: '' });
    expect(check.stdout).toBe(['/opt/site', '/opt/site/index.html', 'a.txt', 'b.txt', 'nobody:nogroup 640', 'from the tar', 'from the tar', '7:8 600', `version=2.5 on ${image.config.architecture}`, '65534', 'a.txt', '1777', '/real', '.dockerignore', 'Dockerfile', 'a.txt', 'b.txt', 'bin', 'bundle.tar', 'bundle.tar.bz2', 'bundle.tar.gz', 'bundle.tar.xz', 'conf.ini', 'docs', 'notes.gz', 'site', 'keep.md', 'tool on the PATH', 'from the tar', 'bz2', 'just notes', ''].join('\n'));
    expect(image.config.config?.User).toBe('nobody');
    // The ARG value is in the RUN step's history, as Docker writes it.
    expect(image.config.history?.map((h) => h.created_by)).toContain(`|3 DEST=/opt/site VERSION=2.5 TARGETARCH=${image.config.architecture} /bin/sh -c echo "version=$VERSION on $TARGETARCH" > /version`);

    // Another value for the ARG invalidates from its declaration on.
    const again = await buildIn(dir, { buildArgs: { VERSION: '2.6' } });
    expect(again.steps.filter((s) => s.layer).every((s) => !s.cached)).toBe(true);
  });

  test('config instructions: LABEL, EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL, ENTRYPOINT; ONBUILD is stored and runs in the next build', async () => {
    const parent = await buildIn(
      context({
        Dockerfile: [
          'FROM busybox:test',
          'LABEL org.example.name="a b" version=1',
          'EXPOSE 80 53/udp',
          'VOLUME ["/data"]',
          'STOPSIGNAL SIGQUIT',
          'HEALTHCHECK --interval=30s --retries=3 CMD wget -q -O- localhost || exit 1',
          'SHELL ["/bin/sh", "-ec"]',
          'RUN echo shell-form-with-the-new-shell',
          'ENTRYPOINT ["echo", "entry"]',
          'CMD ["default"]',
          'ONBUILD RUN echo triggered > /onbuild.txt',
          '',
        ].join('\n'),
      }),
      { tags: ['config:parent'] },
    );
    expect(parent.image.config.config).toMatchObject({
      Labels: { 'org.example.name': 'a b', version: '1' },
      ExposedPorts: { '80/tcp': {}, '53/udp': {} },
      Volumes: { '/data': {} },
      StopSignal: 'SIGQUIT',
      Healthcheck: { Test: ['CMD-SHELL', 'wget -q -O- localhost || exit 1'], Interval: 30_000_000_000, Retries: 3 },
      Shell: ['/bin/sh', '-ec'],
      Entrypoint: ['echo', 'entry'],
      Cmd: ['default'],
      OnBuild: ['RUN echo triggered > /onbuild.txt'],
    });
    expect(parent.image.config.history?.map((h) => h.created_by)).toContain('/bin/sh -ec echo shell-form-with-the-new-shell');
    expect(await runImage('config:parent')).toMatchObject({ stdout: 'entry default\n', exitCode: 0 });
    // image inspect shows them as docker does, and the image the last step was made on as Parent.
    const inspect = Store.open(root()).inspect('config:parent');
    expect(inspect.Config).toMatchObject({ OnBuild: ['RUN echo triggered > /onbuild.txt'], Shell: ['/bin/sh', '-ec'], Healthcheck: { Test: ['CMD-SHELL', 'wget -q -O- localhost || exit 1'] } });
    expect(inspect.Parent).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(Store.open(root()).inspect(inspect.Parent).RootFS.Layers).toEqual(inspect.RootFS.Layers);

    const child = await buildIn(context({ Dockerfile: 'FROM config:parent\nENTRYPOINT ["cat"]\n' }), { tags: ['config:child'] });
    // The trigger ran at FROM; it is not inherited further, and the new ENTRYPOINT drops the inherited CMD.
    expect(child.image.config.config).toMatchObject({ OnBuild: null, Entrypoint: ['cat'], Cmd: null });
    expect(await runImage('config:child', ['/onbuild.txt'])).toMatchObject({ stdout: 'triggered\n', exitCode: 0 });
  });

  test('here-documents: a RUN script, a document fed to a command, COPY of documents', async () => {
    const dir = context({
      Dockerfile: [
        'FROM busybox:test',
        'ARG WHO=world',
        'RUN <<EOF',
        'set -e',
        'mkdir -p /hd',
        'echo "script for $WHO" > /hd/script',
        'EOF',
        'RUN cat <<-"END" > /hd/fed',
        '\tliteral $WHO',
        '\tEND',
        'COPY <<greeting <<"raw" /hd/',
        'hello $WHO',
        'greeting',
        'raw $WHO',
        'raw',
        '',
      ].join('\n'),
    });
    await buildIn(dir, { tags: ['heredoc:1'] });
    expect((await runImage('heredoc:1', ['sh', '-c', 'cd /hd && cat script fed greeting raw'])).stdout).toBe('script for world\nliteral $WHO\nhello world\nraw $WHO\n');
  });

  test('errors name the Dockerfile line: an unknown instruction, a bad FROM, a failing RUN, a missing source, an ADD of a URL; nothing is tagged', async () => {
    const dockerfile = (text: string): string => context({ Dockerfile: text });
    const unknown = await buildFails(dockerfile('FROM busybox:test\nRUN true\n\nFOOBAR x\n'), { tags: ['broken:1'] });
    expect(unknown).toMatchObject({ line: 4, file: 'Dockerfile', message: 'Dockerfile:4: unknown instruction: FOOBAR' });
    expect((await buildFails(dockerfile('# base\nFROM Not_A/Valid:Ref!\n'))).message).toMatch(/^Dockerfile:2: FROM Not_A\/Valid:Ref!: .*invalid reference format/);
    expect((await buildFails(dockerfile('FROM 127.0.0.1:1/nothing:here\n'))).message).toMatch(/^Dockerfile:1: FROM 127\.0\.0\.1:1\/nothing:here: cannot reach registry/);
    expect((await buildFails(dockerfile('FROM busybox:test as a b\n'))).message).toBe('Dockerfile:1: FROM requires either one or three arguments (FROM IMAGE [AS NAME]), got "busybox:test as a b"');
    expect((await buildFails(dockerfile('RUN true\nFROM busybox:test\n'))).message).toBe('Dockerfile:1: RUN before the first FROM: only ARG may come before it');
    expect((await buildFails(dockerfile('FROM busybox:test\nRUN echo hi\nRUN exit 3\n'))).message).toBe("Dockerfile:3: The command '/bin/sh -c exit 3' returned a non-zero code: 3");
    expect((await buildFails(dockerfile('FROM busybox:test\nCOPY nothing.txt /\n'))).message).toBe('Dockerfile:2: nothing.txt: not found in the build context (or excluded by .dockerignore)');
    expect((await buildFails(dockerfile('FROM busybox:test\nCOPY ../outside /\n'))).message).toBe('Dockerfile:2: ../outside: forbidden path outside the build context');
    expect((await buildFails(dockerfile('FROM busybox:test\n\nEXPOSE 80 http\n'))).message).toBe('Dockerfile:3: "EXPOSE 80 http": "http" is not a port (PORT[-PORT][/tcp|udp|sctp])');
    expect((await buildFails(dockerfile('FROM busybox:test\nADD https://example.com/x.tgz /\n'))).message).toMatch(/^Dockerfile:2: ADD https:\/\/example\.com\/x\.tgz: tsrun build does not download/);
    expect(() => Store.open(root()).resolve('broken:1')).toThrow(/No such image/);

    const cli = tsrun(['build', '--progress', 'plain', dockerfile('FROM busybox:test\nFOOBAR\n')]);
    expect(cli).toMatchObject({ status: 1, stdout: '', stderr: 'tsrun: Dockerfile:2: unknown instruction: FOOBAR\n' });
  });

  test('a base image the store lacks is pulled from its registry, as docker build does', async () => {
    const archive = path.join(tmp(), 'for-registry.tar');
    await Store.open(root()).save(['busybox:test'], archive);
    execFileSync('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci-archive:${archive}`, `docker://${registry().host}/base:1`]);
    const reference = `${registry().host}/base:1`;
    const { image, events } = await buildIn(context({ Dockerfile: `FROM ${reference}\nRUN echo built > /built\n` }), { tags: ['from-registry:1'] });
    expect(events).toContainEqual({ type: 'output', step: 1, stream: 'stderr', data: `Unable to find image '${reference}' locally: pulling it\n` });
    expect(Store.open(root()).resolve(reference).layers).toEqual(image.layers.slice(0, -1));
    expect((await runImage('from-registry:1', ['cat', '/built'])).stdout).toBe('built\n');
  });

  test('aborting a build kills the running step and leaves no container behind', async () => {
    const controller = new AbortController();
    const dir = context({ Dockerfile: 'FROM busybox:test\nRUN echo started; sleep 60\n' });
    const error = await buildFails(dir, {
      signal: controller.signal,
      onProgress: (event) => {
        if (event.type === 'output') controller.abort(new Error('stop'));
      },
    });
    expect(error.message).toBe('Dockerfile:2: the build was cancelled');
    expect(fs.readdirSync(path.join(root(), 'containers')).filter((e) => e !== 'names')).toEqual([]);
  });

  test('tsrun save of a built image loads into podman and runs there', async () => {
    await buildIn(appContext(), { tags: ['tsrun/built:podman'] });
    const archive = path.join(tmp(), 'built.tar');
    expect(tsrun(['save', '-o', archive, 'tsrun/built:podman'])).toMatchObject({ status: 0, stderr: '' });
    const podman = tempPodman(path.join(tmp(), 'podman'));
    try {
      expect(podman.cli('load', '-i', archive)).toMatch(/Loaded image.*tsrun\/built:podman/);
      const [loaded] = JSON.parse(podman.cli('image', 'inspect', 'tsrun/built:podman'));
      expect(loaded.RootFS.Layers).toEqual(Store.open(root()).inspect('tsrun/built:podman').RootFS.Layers);
      expect(podman.run('tsrun/built:podman', [])).toEqual({ stdout: 'hello from the image in /app\nmade-by-run\n', stderr: '', status: 0 });
    } finally {
      podman.dispose();
    }
  });
});
