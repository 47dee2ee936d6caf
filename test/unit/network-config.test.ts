import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseAddHost } from '../../src/network/attachments';
import { NetworkStore } from '../../src/network/networks';
import { exposedPorts, parsePublish } from '../../src/network/ports';

describe('-p', () => {
  test('[IP:]HOST:CONTAINER[/proto], a bare CONTAINER port, IPv6 in brackets', () => {
    expect(parsePublish('127.0.0.1:18080:8080')).toEqual({ hostIP: '127.0.0.1', hostPort: 18080, containerPort: 8080, protocol: 'tcp' });
    expect(parsePublish('53:53/udp')).toEqual({ hostPort: 53, containerPort: 53, protocol: 'udp' });
    expect(parsePublish('80')).toEqual({ hostPort: 0, containerPort: 80, protocol: 'tcp' });
    expect(parsePublish('[::1]:8080:80')).toEqual({ hostIP: '::1', hostPort: 8080, containerPort: 80, protocol: 'tcp' });
  });

  test('bad ports, protocols and addresses are refused, naming what is wrong', () => {
    expect(() => parsePublish('0:80')).toThrow(/"0" is not a port/);
    expect(() => parsePublish('80:80/sctp')).toThrow(/tcp or udp/);
    expect(() => parsePublish('nohost:80:80')).toThrow(/"nohost" is not an IP address/);
    expect(() => parsePublish('1:2:3:4')).toThrow(/is not \[IP:\]HOST:CONTAINER/);
  });

  test('-P takes the image\'s ExposedPorts', () => {
    expect(exposedPorts({ '8080/tcp': {}, '53/udp': {} })).toEqual([
      { hostPort: 0, containerPort: 8080, protocol: 'tcp' },
      { hostPort: 0, containerPort: 53, protocol: 'udp' },
    ]);
    expect(exposedPorts(undefined)).toEqual([]);
  });
});

test('--add-host NAME:IP', () => {
  expect(parseAddHost('db:10.0.0.5')).toEqual(['db', '10.0.0.5']);
  expect(parseAddHost('v6:fd00::1')).toEqual(['v6', 'fd00::1']);
  expect(() => parseAddHost('db')).toThrow(/is not HOST:IP/);
  expect(() => parseAddHost('bad name:1.2.3.4')).toThrow(/is not HOST:IP/);
});

describe('network store', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-netstore-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('the default network takes the first /24, user networks the next free ones; a conflist any CNI tool reads', () => {
    const store = new NetworkStore(dir);
    expect(store.find('bridge').info).toMatchObject({ bridge: 'tsrun0', subnet: '10.89.0.0/24', gateway: '10.89.0.1' });
    const made = store.create('one', {});
    expect(made.info.subnet).toBe('10.89.1.0/24');
    expect(made.info.bridge).toMatch(/^tsrun-[0-9a-f]{8}$/);
    expect(store.create('custom', { subnet: '10.89.2.7/24' }).info).toMatchObject({ subnet: '10.89.2.0/24', gateway: '10.89.2.1' });
    expect(store.create('two', {}).info.subnet).toBe('10.89.3.0/24');
    const conflist = JSON.parse(fs.readFileSync(path.join(dir, 'networks', 'one.conflist'), 'utf8')) as { name: string; plugins: { type: string }[] };
    expect(conflist.name).toBe('one');
    expect(conflist.plugins.map((p) => p.type)).toEqual(['bridge', 'portmap', 'firewall']);
    expect(store.list().map((n) => n.name)).toEqual(['bridge', 'custom', 'one', 'two']);
  });

  test('names and subnets that clash or are malformed are refused', () => {
    const store = new NetworkStore(dir);
    store.create('one', { subnet: '10.50.0.0/16' });
    expect(() => store.create('one', {})).toThrow(/already exists/);
    expect(() => store.create('other', { subnet: '10.50.3.0/24' })).toThrow(/overlaps with the subnet 10.50.0.0\/16/);
    expect(() => store.create('bad', { subnet: '10.0.0.0/33' })).toThrow(/not an IPv4 CIDR/);
    expect(() => store.create('none', {})).toThrow(/invalid network name/);
    expect(() => store.find('missing')).toThrow(/network missing not found/);
  });
});
