import { parseMountFlag, parseVolumeFlag, rootPropagationFor } from '../../src/runtime/volumes';

describe('volume flags', () => {
  test('-v: host path, volume name, anonymous, options', () => {
    expect(parseVolumeFlag('/srv:/data:ro,rshared')).toEqual({ type: 'bind', source: '/srv', target: '/data', createSource: true, readOnly: true, propagation: 'rshared' });
    expect(parseVolumeFlag('cache:/var/cache:nocopy')).toEqual({ type: 'volume', source: 'cache', target: '/var/cache', noCopy: true });
    expect(parseVolumeFlag('/data')).toEqual({ type: 'volume', source: undefined, target: '/data' });
    expect(() => parseVolumeFlag('/a:/b:/c:/d')).toThrow(/invalid volume specification/);
    expect(() => parseVolumeFlag('/a:relative')).toThrow(/must be an absolute path/);
    expect(() => parseVolumeFlag('/a:/')).toThrow(/cannot be \//);
    expect(() => parseVolumeFlag('name:/b:shared')).toThrow(/bind mounts only/);
  });

  test('--mount: keys, booleans, tmpfs size and mode; unknown keys are refused', () => {
    expect(parseMountFlag('type=bind,src=/a,dst=/b,readonly,bind-propagation=rslave')).toEqual({ type: 'bind', source: '/a', target: '/b', readOnly: true, propagation: 'rslave' });
    expect(parseMountFlag('type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777')).toMatchObject({ type: 'tmpfs', tmpfsSize: 64 * 1024 * 1024, tmpfsMode: 0o1777 });
    expect(() => parseMountFlag('type=bind,source=/a')).toThrow(/target is required/);
    expect(() => parseMountFlag('type=nfs,target=/a')).toThrow(/not bind, volume or tmpfs/);
    expect(() => parseMountFlag('type=volume,target=/a,bind-propagation=shared')).toThrow(/unknown option "bind-propagation"/);
  });

  test('the root is rshared when a mount shares both ways, rslave when one only receives, else rprivate', () => {
    expect(rootPropagationFor([parseVolumeFlag('/a:/b')])).toBe('rprivate');
    expect(rootPropagationFor([parseVolumeFlag('/a:/b:rslave')])).toBe('rslave');
    expect(rootPropagationFor([parseVolumeFlag('/a:/b:rslave'), parseVolumeFlag('/c:/d:shared')])).toBe('rshared');
  });
});
