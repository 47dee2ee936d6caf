import fs = require('node:fs');
import { ValidationError, syscallErrorFrom } from '../errors';
import type { IdMapping } from '../oci/runtime-spec';

const MAX_ID = 2 ** 32 - 1;

/** Checks that the ranges are sane and do not overlap on either side. */
export function validateIdMappings(field: string, mappings: readonly IdMapping[]): void {
  if (mappings.length === 0) throw new ValidationError(field, 'a user namespace needs at least one mapping');
  if (mappings.length > 340) throw new ValidationError(field, 'the kernel accepts at most 340 ranges');
  mappings.forEach((m, i) => {
    for (const key of ['containerID', 'hostID', 'size'] as const) {
      if (!Number.isInteger(m[key]) || m[key] < 0) throw new ValidationError(`${field}[${i}].${key}`, 'must be a non-negative integer');
    }
    if (m.size === 0) throw new ValidationError(`${field}[${i}].size`, 'must be at least 1');
    if (m.containerID + m.size > MAX_ID || m.hostID + m.size > MAX_ID) throw new ValidationError(`${field}[${i}]`, 'range exceeds 2^32-1');
  });
  for (const side of ['containerID', 'hostID'] as const) {
    const sorted = [...mappings].sort((a, b) => a[side] - b[side]);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i - 1][side] + sorted[i - 1].size > sorted[i][side]) throw new ValidationError(field, `ranges overlap on ${side}`);
    }
  }
}

/** The text uid_map/gid_map take: one "inside outside count" line per range. */
export function formatIdMap(mappings: readonly IdMapping[]): string {
  return mappings.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');
}

/** Whether `id` inside the namespace has a mapping. */
export function isMapped(mappings: readonly IdMapping[], id: number): boolean {
  return mappings.some((m) => id >= m.containerID && id < m.containerID + m.size);
}

/** The parent's half of a user namespace: writes the maps while the child waits. */
export function writeIdMaps(pid: number, uidMappings: readonly IdMapping[], gidMappings: readonly IdMapping[]): void {
  for (const [file, mappings] of [['uid_map', uidMappings], ['gid_map', gidMappings]] as const) {
    try {
      fs.writeFileSync(`/proc/${pid}/${file}`, formatIdMap(mappings));
    } catch (err) {
      throw syscallErrorFrom('user namespace', err, `writing ${file}`);
    }
  }
}
