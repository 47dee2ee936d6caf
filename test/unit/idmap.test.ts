import { ValidationError } from '../../src/errors';
import { formatIdMap, isMapped, validateIdMappings } from '../../src/linux/idmap';
import type { IdMapping } from '../../src/oci/runtime-spec';

const m = (containerID: number, hostID: number, size: number): IdMapping => ({ containerID, hostID, size });

function fieldAndMessage(mappings: IdMapping[]): string {
  try {
    validateIdMappings('uidMappings', mappings);
  } catch (err) {
    if (err instanceof ValidationError) return err.message;
    throw err;
  }
  return 'valid';
}

describe('validateIdMappings', () => {
  test('accepts adjacent, unordered and maximal ranges', () => {
    expect(fieldAndMessage([m(0, 100000, 65536)])).toBe('valid');
    expect(fieldAndMessage([m(1, 1001, 9), m(0, 1000, 1)])).toBe('valid');
    expect(fieldAndMessage([m(0, 0, 2 ** 32 - 1)])).toBe('valid');
    expect(fieldAndMessage(Array.from({ length: 340 }, (_, i) => m(i, 1000 + i, 1)))).toBe('valid');
  });

  test('no ranges, or more than the kernel takes', () => {
    expect(fieldAndMessage([])).toBe('uidMappings: a user namespace needs at least one mapping');
    expect(fieldAndMessage(Array.from({ length: 341 }, (_, i) => m(i, 1000 + i, 1)))).toBe('uidMappings: the kernel accepts at most 340 ranges');
  });

  test('each number must be a non-negative integer; size at least 1', () => {
    expect(fieldAndMessage([m(0, 0, 1), m(-1, 5, 1)])).toBe('uidMappings[1].containerID: must be a non-negative integer');
    expect(fieldAndMessage([m(0, 1.5, 1)])).toBe('uidMappings[0].hostID: must be a non-negative integer');
    expect(fieldAndMessage([m(0, 0, NaN)])).toBe('uidMappings[0].size: must be a non-negative integer');
    expect(fieldAndMessage([{ containerID: '0', hostID: 0, size: 1 } as unknown as IdMapping])).toBe('uidMappings[0].containerID: must be a non-negative integer');
    expect(fieldAndMessage([m(0, 0, 0)])).toBe('uidMappings[0].size: must be at least 1');
  });

  test('a range past 2^32-1 on either side', () => {
    expect(fieldAndMessage([m(2 ** 32 - 2, 0, 2)])).toBe('uidMappings[0]: range exceeds 2^32-1');
    expect(fieldAndMessage([m(0, 2 ** 32 - 10, 11)])).toBe('uidMappings[0]: range exceeds 2^32-1');
  });

  test('overlap inside or outside, whatever the order', () => {
    expect(fieldAndMessage([m(0, 1000, 10), m(9, 2000, 1)])).toBe('uidMappings: ranges overlap on containerID');
    expect(fieldAndMessage([m(50, 5000, 1), m(0, 4990, 11)])).toBe('uidMappings: ranges overlap on hostID');
    expect(fieldAndMessage([m(0, 1000, 1), m(0, 2000, 1)])).toBe('uidMappings: ranges overlap on containerID');
  });
});

describe('formatIdMap and isMapped', () => {
  test('one "inside outside count" line per range', () => {
    expect(formatIdMap([m(0, 100000, 1), m(1, 200001, 65535)])).toBe('0 100000 1\n1 200001 65535\n');
    expect(formatIdMap([])).toBe('');
  });

  test('an id is mapped when a range holds it, end excluded', () => {
    const maps = [m(0, 1000, 1), m(5, 2000, 10)];
    expect([0, 1, 4, 5, 14, 15].map((id) => isMapped(maps, id))).toEqual([true, false, false, true, true, false]);
    expect(isMapped([], 0)).toBe(false);
  });
});
