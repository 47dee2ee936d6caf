import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pluginDirs } from '../../src/network/cni';
import { Store } from '../../src/storage/store';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { until } from '../helpers/until';

const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');
const PLUGINS = ['bridge', 'host-local', 'portmap', 'firewall'];
const missing = PLUGINS.filter((p) => !pluginDirs().some((dir) => fs.existsSync(path.join(dir, p))));
const tools = ['ip', 'nsenter', 'iptables-save'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
const describeNetwork = missing.length === 0 && tools.length === 0 ? describeAsRoot : describe.skip;
if (missing.length > 0 || tools.length > 0) {
  console.warn(`skipped the network tests: missing CNI plugins [${missing.join(', ')}] or tools [${tools.join(', ')}] (scripts/setup.sh installs them)`);
}

/** Plugin-wide chains the portmap and firewall plugins create once and keep; anything else named CNI- belongs to one container. */
const SHARED_CHAINS = /^CNI-(ADMIN|FORWARD|HOSTPORT-DNAT|HOSTPORT-MASQ|HOSTPORT-SETMARK)$/;

function hostVeths(): string[] {
  return spawnSync('ip', ['-o', 'link', 'show', 'type', 'veth'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
}

/**
 * Everything runs in a network namespace the test makes (`ip netns add`):
 * the bridge, the veths, the iptables rules and the traffic (127.0.0.1
 * and the bridge's subnet) exist only there, and go with it.
 */
describeNetwork('networks: CNI bridge, -p, names, teardown', () => {
  const tmp = useTempDir('tsrun-net-');
  const root = () => path.join(tmp(), 'store');
  const state = () => path.join(tmp(), 'state');
  const netns = `tsrun-test-${process.pid}`;
  let runNetnsWasMount = false;
  let vethsBefore: string[] = [];
  const background: ChildProcess[] = [];

  const inNetns = (command: string[], input?: string) =>
    spawnSync('nsenter', [`--net=/run/netns/${netns}`, ...command], { encoding: 'utf8', timeout: 60_000, input });
  const tsrun = (args: string[]) => inNetns([TSRUN, '--root', root(), '--state', state(), ...args]);
  const tsrunInBackground = (args: string[]): { child: ChildProcess; output: () => string; exit: Promise<number | null> } => {
    const child = spawn('nsenter', [`--net=/run/netns/${netns}`, TSRUN, '--root', root(), '--state', state(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    background.push(child);
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (output += d));
    return { child, output: () => output, exit: new Promise((resolve) => child.on('close', resolve)) };
  };
  const fetchFromHost = (url: string) => inNetns(['wget', '-qO-', '-T', '5', url]);
  /** Rules of one container: its address, or a chain that is not one of the plugins' shared ones. */
  const containerRules = (): string[] =>
    inNetns(['iptables-save'])
      .stdout.split('\n')
      .filter((line) => /10\.89\./.test(line) || (line.match(/CNI-[A-Za-z0-9-]+/g) ?? []).some((chain) => !SHARED_CHAINS.test(chain)));
  const veths = () => inNetns(['ip', '-o', 'link', 'show', 'type', 'veth']).stdout.trim();
  // The records only: a record being written is a temp file next to them for a moment.
  const attachments = () => fs.readdirSync(path.join(root(), 'networks', 'attachments')).filter((f) => f.endsWith('.json'));

  // Before the leak check (afterEach hooks run in the order they are declared): a failed test's containers are killed and detached.
  afterEach(async () => {
    for (const child of background.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await new Promise((resolve) => child.once('close', resolve));
      }
    }
    if (fs.existsSync(path.join(root(), 'networks', 'attachments')) && attachments().length > 0) tsrun(['system', 'prune', '-f']);
  });
  checkLeaksAfterEach();

  beforeAll(async () => {
    const tar = path.join(tmp(), 'busybox.tar');
    spawnSync('tar', ['-C', busyboxRootfs(), '-cf', tar, '.']);
    await Store.open(root()).importRootfs(tar, 'busybox:net', { changes: ['EXPOSE 8080/tcp'] });
    fs.mkdirSync(path.join(tmp(), 'www'));
    fs.writeFileSync(path.join(tmp(), 'www', 'index.html'), 'hello from web\n');
    runNetnsWasMount = spawnSync('mountpoint', ['-q', '/run/netns']).status === 0;
    vethsBefore = hostVeths();
    const added = spawnSync('ip', ['netns', 'add', netns], { encoding: 'utf8' });
    if (added.status !== 0) throw new Error(`ip netns add: ${added.stderr}`);
    inNetns(['ip', 'link', 'set', 'lo', 'up']);
  });

  afterAll(() => {
    spawnSync('ip', ['netns', 'delete', netns]);
    // `ip netns add` makes /run/netns a mount point of its own; it goes if it was not one before.
    if (!runNetnsWasMount && spawnSync('mountpoint', ['-q', '/run/netns']).status === 0) spawnSync('umount', ['/run/netns']);
    expect(hostVeths()).toEqual(vethsBefore);
  });

  test('two containers on a user network: one serves on 8080, the other fetches it by name, the host through -p 127.0.0.1:18080:8080; nothing remains after', async () => {
    expect(tsrun(['network', 'create', 'testnet']).status).toBe(0);
    const web = tsrunInBackground(['run', '--rm', '--name', 'web', '--network', 'testnet', '-p', '127.0.0.1:18080:8080', '-v', `${path.join(tmp(), 'www')}:/www:ro`, 'busybox:net', 'httpd', '-f', '-p', '8080', '-h', '/www']);
    await until(() => (fetchFromHost('http://127.0.0.1:18080/').stdout === 'hello from web\n' ? true : web.child.exitCode !== null ? (() => { throw new Error(web.output()); })() : undefined), 'the web container');

    const client = tsrun(['run', '--rm', '--network', 'testnet', 'busybox:net', 'sh', '-c', 'wget -qO- http://web:8080/ && grep -w web /etc/hosts | cut -f1']);
    expect(client).toMatchObject({ stderr: '', status: 0 });
    const [body, webAddress] = client.stdout.split('\n');
    if (!webAddress) throw new Error(JSON.stringify(client.stdout));
    expect(body).toBe('hello from web');
    expect(webAddress).toMatch(/^10\.89\.\d+\.\d+$/);
    const inspected = JSON.parse(tsrun(['network', 'inspect', 'testnet']).stdout) as { Containers: Record<string, unknown> }[];
    expect(Object.values(inspected[0].Containers)).toEqual([{ Name: 'web', IPv4Address: webAddress }]);
    expect(containerRules().length).toBeGreaterThan(0);

    expect(tsrun(['rm', '-f', 'web']).status).toBe(0);
    await web.exit;
    expect(veths()).toBe('');
    expect(containerRules()).toEqual([]);
    expect(attachments()).toEqual([]);
    expect(fetchFromHost('http://127.0.0.1:18080/').status).not.toBe(0);
    expect(tsrun(['network', 'rm', 'testnet'])).toMatchObject({ status: 0, stdout: 'testnet\n' });
    expect(inNetns(['ip', '-o', 'link', 'show', 'type', 'bridge']).stdout).not.toMatch(/tsrun-/);
  });

  test('a killed tsrun leaves its attachment; system prune runs the DEL', async () => {
    const web = tsrunInBackground(['run', '--network', 'bridge', '-p', '127.0.0.1:18081:8080', '-v', `${path.join(tmp(), 'www')}:/www:ro`, 'busybox:net', 'httpd', '-f', '-p', '8080', '-h', '/www']);
    await until(() => (fetchFromHost('http://127.0.0.1:18081/').status === 0 ? true : undefined), 'the web container');
    // nsenter execs tsrun, so this kills tsrun; its death kills the container (PR_SET_PDEATHSIG).
    const [file] = attachments();
    const { pid } = JSON.parse(fs.readFileSync(path.join(root(), 'networks', 'attachments', file), 'utf8')) as { pid: number };
    web.child.kill('SIGKILL');
    await web.exit;
    await until(() => (fs.existsSync(`/proc/${pid}`) ? undefined : true), 'the container to die with its tsrun');
    // Its namespace is still held (so that DEL can clean inside it): the veth is still there.
    expect(veths()).not.toBe('');
    expect(containerRules().length).toBeGreaterThan(0);

    const prune = tsrun(['system', 'prune', '-f']);
    expect(prune.status).toBe(0);
    expect(prune.stdout).toMatch(/Detached from their networks:\n[0-9a-f]{64}\n/);
    expect(attachments()).toEqual([]);
    expect(containerRules()).toEqual([]);
    expect(fs.readdirSync(path.join(state(), 'netns'))).toEqual([]);
    tsrun(['rm', '-f', ...tsrun(['ps', '-aq']).stdout.split('\n').filter(Boolean)]);
  });

  test('--dns, --dns-search and --add-host fill resolv.conf and hosts; container:NAME shares the namespace; CHECK notices a changed interface', async () => {
    const first = tsrunInBackground(['run', '--rm', '--name', 'first', '--network', 'bridge', '--dns', '192.0.2.53', '--dns-search', 'example.test', '--add-host', 'db.internal:192.0.2.10', 'busybox:net', 'sh', '-c', 'ip -4 -o addr show eth0 > /dev/shm/x; sleep 600']);
    await until(() => (tsrun(['ps']).stdout.includes('first') ? true : undefined), 'the first container');
    const second = tsrun(['run', '--rm', '--network', 'container:first', 'busybox:net', 'sh', '-c', 'cat /etc/resolv.conf; grep db.internal /etc/hosts; ip -4 -o addr show eth0 | wc -l']);
    expect(second.status).toBe(0);
    expect(second.stdout).toMatch(/^nameserver 192\.0\.2\.53\nsearch example\.test\n/);
    expect(second.stdout).toContain('192.0.2.10\tdb.internal\n');
    expect(second.stdout.trim().split('\n').pop()).toBe('1');

    // Without -p: Debian's portmap 1.1.1 fails CHECK on IPv4-only containers (containernetworking/plugins#819).
    expect(tsrun(['network', 'check', 'first'])).toMatchObject({ status: 0, stdout: 'first\n' });
    // A changed MAC address: what CHECK compares with the ADD's result, while DEL still finds the interface and its address.
    const [held] = fs.readdirSync(path.join(state(), 'netns'));
    expect(spawnSync('nsenter', [`--net=${path.join(state(), 'netns', held)}`, 'ip', 'link', 'set', 'eth0', 'address', '02:00:00:00:00:01']).status).toBe(0);
    const check = tsrun(['network', 'check', 'first']);
    expect(check.status).not.toBe(0);
    expect(check.stderr).toMatch(/CNI CHECK bridge/);
    expect(tsrun(['rm', '-f', 'first']).status).toBe(0);
    await first.exit;
    expect(attachments()).toEqual([]);
    expect(containerRules()).toEqual([]);
  });

  test('-P publishes the EXPOSEd port on a free host port', async () => {
    const web = tsrunInBackground(['run', '--rm', '--name', 'exposed', '-P', '--network', 'bridge', '-v', `${path.join(tmp(), 'www')}:/www:ro`, 'busybox:net', 'httpd', '-f', '-p', '8080', '-h', '/www']);
    const file = await until(() => (fs.existsSync(path.join(root(), 'networks', 'attachments')) ? attachments()[0] : undefined), 'the attachment');
    const record = JSON.parse(fs.readFileSync(path.join(root(), 'networks', 'attachments', file), 'utf8')) as { runtimeConfig: { portMappings: { hostPort: number; containerPort: number }[] } };
    const [mapping] = record.runtimeConfig.portMappings;
    expect(mapping.containerPort).toBe(8080);
    expect(mapping.hostPort).toBeGreaterThan(0);
    const [inspected] = JSON.parse(await until(() => { const r = tsrun(['inspect', 'exposed']); return r.status === 0 && r.stdout.includes('NetworkSettings') ? r.stdout : undefined; }, 'inspect')) as { NetworkSettings: { IPAddress: string; Ports: unknown; Networks: Record<string, unknown> } }[];
    expect(inspected.NetworkSettings.Ports).toEqual({ '8080/tcp': [{ HostIp: '0.0.0.0', HostPort: String(mapping.hostPort) }] });
    expect(inspected.NetworkSettings.IPAddress).toMatch(/^10\.89\.0\.\d+$/);
    expect(Object.keys(inspected.NetworkSettings.Networks)).toEqual(['bridge']);
    await until(() => (fetchFromHost(`http://127.0.0.1:${mapping.hostPort}/`).stdout === 'hello from web\n' ? true : undefined), 'the published port');
    expect(tsrun(['rm', '-f', 'exposed']).status).toBe(0);
    await web.exit;
    expect(attachments()).toEqual([]);
    expect(containerRules()).toEqual([]);
  });

  test('a --rootfs container on a CNI network: its hosts and resolv.conf are bound from its state directory', () => {
    // A copy: the bind targets are created in the root filesystem, as runc does, and the shared fixture stays untouched.
    const rootfs = path.join(tmp(), 'rootfs');
    spawnSync('cp', ['-a', busyboxRootfs(), rootfs]);
    const result = tsrun(['run', '--rm', '--network', 'bridge', '--hostname', 'plain', '--dns', '192.0.2.53', '--rootfs', rootfs, 'sh', '-c', 'grep -w plain /etc/hosts; head -1 /etc/resolv.conf; ip -4 -o addr show eth0 | wc -l']);
    expect(result).toMatchObject({ status: 0, stderr: '' });
    expect(result.stdout).toMatch(/^10\.89\.0\.\d+\tplain [0-9a-f]{12}\nnameserver 192\.0\.2\.53\n1\n$/);
    expect(attachments()).toEqual([]);
    expect(fs.readdirSync(state()).filter((e) => /^[0-9a-f]{64}$/.test(e))).toEqual([]);
  });

  test('bad requests fail before anything is made', () => {
    expect(tsrun(['run', '--rm', '--network', 'nosuchnet', 'busybox:net', 'true'])).toMatchObject({ status: 125, stderr: expect.stringMatching(/network nosuchnet not found/) });
    expect(tsrun(['run', '--rm', '--network', 'none', '-p', '80:80', 'busybox:net', 'true']).stderr).toMatch(/ports cannot be published with --network none/);
    expect(tsrun(['run', '--rm', '--network', 'bridge', '-p', '99999:80', 'busybox:net', 'true']).stderr).toMatch(/"99999" is not a port/);
    expect(tsrun(['network', 'create', 'host']).stderr).toMatch(/invalid network name/);
    expect(attachments()).toEqual([]);
  });
});
