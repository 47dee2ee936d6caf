/**
 * Mirror of native/plan.h. A unit test parses the header and checks that
 * every name and number here matches; change both together.
 */
export const PLAN_MAGIC = 0x4e4c5054;
export const PLAN_VERSION = 1;
export const HEADER_SIZE = 16;
export const STEP_SIZE = 48;
export const NO_STRING = 0xffffffff;
export const MAX_STEPS = 4096;

export const Op = {
  Mount: 1,
  Umount2: 2,
  PivotRoot: 3,
  Chroot: 4,
  Chdir: 5,
  Mkdir: 6,
  Mknod: 7,
  Symlink: 8,
  WriteFile: 9,
  Sethostname: 10,
  Setdomainname: 11,
  Unshare: 12,
  Setns: 13,
  Setgroups: 14,
  Setresgid: 15,
  Setresuid: 16,
  Prctl: 17,
  Umask: 18,
  Setsid: 19,
  SetCtty: 20,
  Dup3: 21,
  LinkUp: 22,
  SyncSignal: 23,
  SyncWait: 24,
  CloseFrom: 25,
  Exec: 26,
  Touch: 27,
  Setrlimit: 28,
  Stdio: 29,
  Capset: 30,
  Seccomp: 31,
  MaskPath: 32,
  OpenPty: 33,
  PivotRootSlave: 34,
  ForkIntoParent: 35,
} as const;

/** ChildErrorReport.step of ForkIntoParent's notice; its errno field holds the new pid. */
export const FORK_NOTICE = 0xfffffffe;

export type OpName = keyof typeof Op;
export type OpCode = (typeof Op)[OpName];

export const StepFlag = {
  IgnoreExist: 1 << 0,
  Optional: 1 << 1,
  IgnoreMissing: 1 << 2,
  InRoot: 1 << 3,
} as const;
