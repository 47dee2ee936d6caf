import * as fs from 'node:fs';
import { isRunning, ownIdentity, processStartTime } from '../../src/linux/proc';
import { loadNative } from '../../src/native';
import { serializePlan } from '../../src/runtime/plan';

describe('processStartTime and isRunning', () => {
  test('this process: field 22 of /proc/self/stat', () => {
    const stat = fs.readFileSync(`/proc/${process.pid}/stat`, 'utf8');
    const start = processStartTime(process.pid);
    expect(start).toBe(Number(stat.split(' ')[21]));
    expect(start).toBeGreaterThan(0);
    expect(isRunning(process.pid, start as number)).toBe(true);
    expect(isRunning(process.pid, undefined)).toBe(true);
    // The same pid with another start time is another (reused) process.
    expect(isRunning(process.pid, (start as number) + 1)).toBe(false);
  });

  test('ownIdentity: this process, alive by isRunning', () => {
    const own = ownIdentity();
    expect(own).toEqual({ pid: process.pid, startTime: processStartTime(process.pid) });
    expect(isRunning(own.pid, own.startTime)).toBe(true);
  });

  test('no such process', () => {
    const max = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
    expect(processStartTime(max + 1)).toBeNull();
    expect(isRunning(max + 1, undefined)).toBe(false);
    expect(isRunning(0, undefined)).toBe(false);
    expect(isRunning(-1, undefined)).toBe(false);
  });

  test('a vfork child reports its own start time, the one /proc/PID/stat gives; a forked one does not', () => {
    const native = loadNative();
    const plan = serializePlan([{ op: 'Exec', lists: [['/bin/sleep'], ['sleep', '5'], []], phase: 'test' }]);
    for (const mode of ['vfork', 'fork'] as const) {
      const child = native.spawn(plan, { cloneFlags: 0, mode });
      try {
        expect(native.readChildError(child.errorFd)).toBeNull();
        expect(child.startTime).toBe(mode === 'vfork' ? processStartTime(child.pid) : undefined);
      } finally {
        native.pidfdSendSignal(child.pidfd, 9);
        native.waitExit(child.pidfd, true);
        fs.closeSync(child.pidfd);
      }
    }
  });

  test('a zombie is not running', async () => {
    // A child of the addon, not of libuv: nobody reaps it until we do.
    const native = loadNative();
    const plan = serializePlan([{ op: 'Exec', lists: [['/bin/true'], ['true'], []], phase: 'test' }]);
    const child = native.spawn(plan, { cloneFlags: 0, mode: 'vfork' });
    try {
      expect(native.readChildError(child.errorFd)).toBeNull();
      const state = (): string => {
        const stat = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      };
      for (let i = 0; i < 200 && state() !== 'Z'; i++) await new Promise((r) => setTimeout(r, 10));
      expect(state()).toBe('Z');
      expect(processStartTime(child.pid)).toBeNull();
      expect(isRunning(child.pid, undefined)).toBe(false);
    } finally {
      native.waitExit(child.pidfd, true);
      fs.closeSync(child.pidfd);
    }
  });

  test('a command name with spaces and parentheses does not shift the fields', () => {
    const before = processStartTime(process.pid);
    const original = fs.readFileSync('/proc/self/comm', 'utf8').replace(/\n$/, '');
    try {
      fs.writeFileSync('/proc/self/comm', 'a) b (c');
      expect(fs.readFileSync(`/proc/${process.pid}/stat`, 'utf8')).toContain('(a) b (c)');
      expect(processStartTime(process.pid)).toBe(before);
    } finally {
      fs.writeFileSync('/proc/self/comm', original);
    }
  });
});
