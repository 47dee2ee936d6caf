import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setSpareNetworkNamespace } from '../../src';
import { prepareSpareNetworkNamespace, spareNetworkNamespaceSettled } from '../../src/linux/spare-netns';
import { buildSpec } from '../../src/runtime/options';
import { loadNative } from '../../src/native';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach, openFdTargets } from '../helpers/leaks';
import { runCollect } from '../helpers/run';

/** The network namespaces this process holds an fd of, as "net:[inode]". */
function heldNetworkNamespaces(): string[] {
  return openFdTargets().filter((target) => target.startsWith('net:['));
}

/** Starts from no spare: none held, none being made. */
async function dropSpare(): Promise<void> {
  await spareNetworkNamespaceSettled();
  setSpareNetworkNamespace(false);
  setSpareNetworkNamespace(true);
}

/** The spare, once the worker thread that makes it during a run has called back. */
async function spareMade(): Promise<string> {
  await spareNetworkNamespaceSettled();
  const held = heldNetworkNamespaces();
  expect(held).toHaveLength(1);
  return held[0];
}

const WIDE = [{ containerID: 0, hostID: 200000, size: 65536 }];
/** What a container says of its network: its namespace, its links, whether loopback answers. */
const NETWORK_REPORT = ['sh', '-c', 'readlink /proc/self/ns/net; ip -o link | cut -d: -f2; ping -c1 -W1 127.0.0.1 >/dev/null && echo lo-ok'];

describeAsRoot('spare network namespaces', () => {
  const tmp = useTempDir('tsrun-spare-netns-');
  const state = () => path.join(tmp(), 'state');
  checkLeaksAfterEach();
  afterEach(() => setSpareNetworkNamespace(true));

  test('the addon makes an empty network namespace with loopback up, held by an fd', async () => {
    const fd = await new Promise<number>((resolve, reject) => {
      loadNative().newNetworkNamespace((error, made) => (error ? reject(error) : resolve(made as number)));
    });
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      expect(target).toMatch(/^net:\[\d+\]$/);
      expect(target).not.toBe(fs.readlinkSync('/proc/self/ns/net'));
      expect(fs.fstatSync(fd).isFile()).toBe(true);
      expect(fcntlCloexec(fd)).toBe(true);
      const links = execFileSync('nsenter', [`--net=/proc/${process.pid}/fd/${fd}`, path.join(busyboxRootfs(), 'bin', 'busybox'), 'ip', '-o', 'link'], { encoding: 'utf8' });
      expect(links.trim().split('\n')).toHaveLength(1);
      expect(links).toMatch(/^1: lo: <LOOPBACK,UP,LOWER_UP>/);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('a container joins the spare made during the run before it: a namespace of its own, loopback up', async () => {
    await runCollect(['true'], { stateDir: state(), autoRemove: true });
    const spare = await spareMade();
    const r = await runCollect(NETWORK_REPORT, { stateDir: state(), autoRemove: true });
    expect(r).toMatchObject({ exitCode: 0, stderr: '' });
    expect(r.stdout).toBe(`${spare}\n lo\nlo-ok\n`);
    // Taken, closed here once the container had it, and a new one made.
    await spareMade();
  });

  test('a container with a user namespace makes its own, owned by that namespace; the spare is kept', async () => {
    await runCollect(['true'], { stateDir: state(), autoRemove: true });
    const spare = await spareMade();
    const r = await runCollect([...NETWORK_REPORT.slice(0, 2), `${NETWORK_REPORT[2]}; ip link set lo down && echo configured`], {
      stateDir: state(),
      autoRemove: true,
      idMappings: { uid: WIDE, gid: WIDE },
      capAdd: ['NET_ADMIN'],
    });
    expect(r).toMatchObject({ exitCode: 0, stderr: '' });
    const [own, ...rest] = r.stdout.split('\n');
    expect(own).not.toBe(spare);
    // Its root may configure it, which it could not in a spare owned by the host's user namespace.
    expect(rest.join('\n')).toBe(' lo\nlo-ok\nconfigured\n');
    expect(heldNetworkNamespaces()).toEqual([spare]);
  });

  test('switched off, the spare is closed and containers clone their own', async () => {
    await runCollect(['true'], { stateDir: state(), autoRemove: true });
    await spareMade();
    setSpareNetworkNamespace(false);
    expect(heldNetworkNamespaces()).toEqual([]);
    const r = await runCollect(NETWORK_REPORT, { stateDir: state(), autoRemove: true });
    expect(r.stdout).toMatch(/^net:\[\d+\]\n lo\nlo-ok\n$/);
    await spareNetworkNamespaceSettled();
    expect(heldNetworkNamespaces()).toEqual([]);
  });

  test('switched off while one is being made, that one is closed when it comes', async () => {
    await dropSpare();
    prepareSpareNetworkNamespace(buildSpec({ rootfs: busyboxRootfs(), args: ['true'] }, 'f'.repeat(64)));
    setSpareNetworkNamespace(false);
    setSpareNetworkNamespace(true);
    await spareNetworkNamespaceSettled();
    expect(heldNetworkNamespaces()).toEqual([]);
  });

  test('host networking takes no spare and makes none', async () => {
    await dropSpare();
    const r = await runCollect(['readlink', '/proc/self/ns/net'], { stateDir: state(), autoRemove: true, network: 'host' });
    expect(r.stdout).toBe(`${fs.readlinkSync('/proc/self/ns/net')}\n`);
    await spareNetworkNamespaceSettled();
    expect(heldNetworkNamespaces()).toEqual([]);
  });
});

/** Whether FD_CLOEXEC is set: the spare must not reach a program this process execs. */
function fcntlCloexec(fd: number): boolean {
  const flags = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^flags:\s+(\d+)$/m);
  return flags !== null && (parseInt(flags[1], 8) & 0o2000000) !== 0;
}
