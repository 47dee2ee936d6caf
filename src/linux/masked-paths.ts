import path = require('node:path');
import { ValidationError } from '../errors';
import type { Spec } from '../oci/runtime-spec';
import type { PlanStep } from '../runtime/plan';
import { StepFlag } from '../runtime/plan-opcodes';
import { MS } from './mounts';

function checkPath(field: string, p: string): string {
  if (!p.startsWith('/')) throw new ValidationError(field, `${JSON.stringify(p)} must be an absolute path`);
  return path.posix.normalize(p);
}

/**
 * linux.readonlyPaths and linux.maskedPaths, applied after pivot_root so
 * that the paths are the container's: each read-only path is bound onto
 * itself and remounted read-only (nosuid, nodev and noexec kept, since a
 * user namespace may not clear them on a /proc it did not mount), each
 * masked path gets /dev/null or an empty read-only tmpfs over it. Paths
 * this kernel does not have are skipped.
 */
export function maskedPathSteps(spec: Spec): PlanStep[] {
  const phase = 'masked paths';
  const steps: PlanStep[] = [];
  (spec.linux.readonlyPaths ?? []).forEach((raw, i) => {
    const target = checkPath(`linux.readonlyPaths[${i}]`, raw);
    steps.push(
      { op: 'Mount', flags: StepFlag.IgnoreMissing, args: [MS.BIND | MS.REC], strs: [target, target, null, null], phase, target, detail: 'bind onto itself' },
      {
        op: 'Mount',
        flags: StepFlag.IgnoreMissing,
        args: [MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC],
        strs: [null, target, null, null],
        phase,
        target,
        detail: 'read-only remount',
      },
    );
  });
  (spec.linux.maskedPaths ?? []).forEach((raw, i) => {
    const target = checkPath(`linux.maskedPaths[${i}]`, raw);
    steps.push({ op: 'MaskPath', strs: [target], phase, target, detail: 'mask' });
  });
  return steps;
}
