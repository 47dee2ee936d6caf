import { ValidationError } from '../../src/errors';
import { CAPABILITIES, DEFAULT_CAPABILITIES, allCapabilities, capabilityMask, capabilitySteps, dockerCapabilities, ownBoundingSet } from '../../src/linux/capabilities';
import type { PlanStep } from '../../src/runtime/plan';

const sorted = (names: readonly string[]): string[] => [...names].sort((a, b) => CAPABILITIES[a] - CAPABILITIES[b]);
const available = (): string[] => allCapabilities().filter((n) => (ownBoundingSet() >> BigInt(CAPABILITIES[n])) & 1n);

describe('dockerCapabilities: docker run\'s --cap-add, --cap-drop and --privileged', () => {
  test('root gets the default set as bounding, effective and permitted; another user the bounding set only', () => {
    const set = sorted(DEFAULT_CAPABILITIES);
    expect(capabilityMask('x', DEFAULT_CAPABILITIES)).toBe(0xa80425fbn);
    expect(dockerCapabilities({ uid: 0 })).toEqual({ bounding: set, effective: set, permitted: set });
    expect(dockerCapabilities({ uid: 1000 })).toEqual({ bounding: set });
  });

  test('names in any case, with or without CAP_; ALL on either side', () => {
    expect(dockerCapabilities({ uid: 0, capAdd: ['net_admin'], capDrop: ['CAP_CHOWN', 'kill'] }).effective).toEqual(
      sorted([...DEFAULT_CAPABILITIES.filter((c) => c !== 'CAP_CHOWN' && c !== 'CAP_KILL'), 'CAP_NET_ADMIN']),
    );
    expect(dockerCapabilities({ uid: 0, capDrop: ['ALL'], capAdd: ['SETUID'] }).bounding).toEqual(['CAP_SETUID']);
    expect(dockerCapabilities({ uid: 0, capAdd: ['ALL'], capDrop: ['SYS_ADMIN'] }).bounding).toEqual(available().filter((c) => c !== 'CAP_SYS_ADMIN'));
    expect(dockerCapabilities({ uid: 0, privileged: true, capDrop: ['ALL'] }).bounding).toEqual(available());
  });

  test('an unknown name is an error naming the flag and the position', () => {
    expect(() => dockerCapabilities({ uid: 0, capAdd: ['CHOWN', 'WINGS'] })).toThrow(new ValidationError('capAdd[1]', 'unknown capability "WINGS"'));
    expect(() => dockerCapabilities({ uid: 0, capDrop: ['CAP_'] })).toThrow(/capDrop\[0\]/);
  });
});

describe('capabilitySteps: the OCI sets in the kernel\'s order', () => {
  const setUser: PlanStep[] = [{ op: 'Setresuid', args: [1000, 1000, 1000], phase: 'process' }];

  test('bounding drops, keep-caps, the uid change, capset, then ambient raises', () => {
    const steps = capabilitySteps(
      { bounding: ['CAP_NET_BIND_SERVICE', 'CAP_CHOWN'], permitted: ['CAP_NET_BIND_SERVICE'], effective: ['CAP_NET_BIND_SERVICE'], inheritable: ['CAP_NET_BIND_SERVICE'], ambient: ['CAP_NET_BIND_SERVICE'] },
      setUser,
      40,
    );
    const drops = steps.filter((s) => s.op === 'Prctl' && s.args?.[0] === 24);
    expect(drops.map((s) => s.args?.[1])).toEqual(Array.from({ length: 41 }, (_, i) => i).filter((c) => c !== 0 && c !== 10));
    const ops = steps.filter((s) => !drops.includes(s)).map((s) => `${s.op}${s.op === 'Prctl' ? `(${s.args?.[0]})` : ''}`);
    expect(ops).toEqual(['Prctl(8)', 'Setresuid', 'Capset', 'Prctl(47)']);
    const bit = 1n << 10n;
    expect(steps.find((s) => s.op === 'Capset')?.args).toEqual([bit, bit, bit]);
    expect(steps[steps.length - 1].args).toEqual([47, 2, 10]);
  });

  test('sets that the kernel would refuse are errors; capabilities newer than the kernel are left out', () => {
    expect(() => capabilitySteps({ effective: ['CAP_KILL'], permitted: [] }, setUser, 40)).toThrow(/effective: CAP_KILL not in the permitted set/);
    expect(() => capabilitySteps({ permitted: ['CAP_KILL'], ambient: ['CAP_KILL'] }, setUser, 40)).toThrow(/ambient: CAP_KILL must be permitted and inheritable/);
    expect(() => capabilitySteps({ bounding: ['CAP_FLY'] }, setUser, 40)).toThrow(/bounding\[0\]: unknown capability/);
    const old = capabilitySteps({ bounding: ['CAP_BPF'], permitted: ['CAP_BPF', 'CAP_KILL'], effective: ['CAP_BPF'] }, setUser, 38);
    expect(old.find((s) => s.op === 'Capset')?.args).toEqual([0n, 1n << 5n, 0n]);
    expect(old.filter((s) => s.op === 'Prctl' && s.args?.[0] === 24)).toHaveLength(39);
  });
});
