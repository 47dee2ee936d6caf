// The plan: the only input of the code that runs between clone and execve.
//
// TypeScript (src/runtime/plan.ts) serializes a flat list of steps into one
// buffer; the parent side of the addon turns it into PreparedStep records
// (string offsets resolved to pointers, string lists to NULL-terminated
// arrays) before the clone, so the child only walks an array and makes raw
// syscalls: no allocation, no locks, no errno, no exceptions.
//
// Wire format (little endian):
//   header:  u32 magic, u32 version, u32 step_count, u32 pool_offset
//   steps:   step_count records of kStepSize bytes:
//              u32 op, u32 flags, i64 args[3], u32 strs[4]
//   pool:    NUL-terminated strings; a string list is u32 count followed by
//            count u32 offsets; a blob (Seccomp) is u32 byte length followed
//            by the bytes (all offsets are relative to the pool start)
// kNoString marks an absent string.
//
// The opcode numbers are mirrored in src/runtime/plan-opcodes.ts; a unit
// test parses this header and checks that both agree.
#pragma once

#include <cstdint>

namespace tsrun {

constexpr uint32_t kPlanMagic = 0x4e4c5054;  // "TPLN"
constexpr uint32_t kPlanVersion = 1;
constexpr uint32_t kHeaderSize = 16;
constexpr uint32_t kStepSize = 48;
constexpr uint32_t kNoString = 0xffffffffu;
constexpr uint32_t kMaxSteps = 4096;

enum class Op : uint32_t {
  Mount = 1,          // strs: source, target, fstype, data; args[0]: flags
  Umount2 = 2,        // strs: target; args[0]: flags
  PivotRoot = 3,      // strs: new_root, put_old
  Chroot = 4,         // strs: path
  Chdir = 5,          // strs: path; ENOENT if the new cwd is outside the root
  Mkdir = 6,          // strs: path; args[0]: mode
  Mknod = 7,          // strs: path; args[0]: mode, args[1]: dev
  Symlink = 8,        // strs: target, linkpath
  WriteFile = 9,      // strs: path, content; args[0]: open flags
  Sethostname = 10,   // strs: name
  Setdomainname = 11, // strs: name
  Unshare = 12,       // args[0]: flags
  Setns = 13,         // strs: path, or none and args[1]: an fd; args[0]: nstype
  Setgroups = 14,     // strs: list of decimal gids
  Setresgid = 15,     // args: rgid, egid, sgid
  Setresuid = 16,     // args: ruid, euid, suid
  Prctl = 17,         // args: option, arg2, arg3
  Umask = 18,         // args[0]: mask
  Setsid = 19,
  SetCtty = 20,       // args[0]: fd
  Dup3 = 21,          // args: oldfd, newfd
  LinkUp = 22,        // strs: interface name (loopback in a new netns)
  SyncSignal = 23,    // args[0]: message byte; writes it to the sync fd
  SyncWait = 24,      // reads one byte from the sync fd (parent releases)
  CloseFrom = 25,     // args[0]: first fd; closes fds >= it but the error and sync channels
  Exec = 26,          // strs: candidates (list), argv (list), envp (list)
  Touch = 27,         // strs: path; args[0]: mode (creates a bind target)
  Setrlimit = 28,     // args: resource, soft, hard
  Stdio = 29,         // args: source fds for 0, 1, 2 (-1 keeps the fd)
  Capset = 30,        // args: effective, permitted, inheritable (64-bit masks)
  Seccomp = 31,       // strs: blob (struct sock_filter[]); args[0]: SECCOMP_FILTER_FLAG_*
  MaskPath = 32,      // strs: path; /dev/null bound over a file, a read-only tmpfs over a directory
  OpenPty = 33,       // strs: ptmx path; args: console socket fd, rows << 16 | cols,
                      // owner uid (-1: keep); sends the master over the
                      // socket, makes the slave 0, 1, 2
  PivotRootSlave = 34,  // strs: new root; pivot_root there, make the old root
                        // rslave through an fd to it, detach it, chdir /
  ForkIntoParent = 35,  // clone(CLONE_PARENT): the new process goes on with the
                        // plan; the caller reports its pid (kForkNotice) and exits 0
};

// ChildError.step of the report ForkIntoParent writes: err holds the pid of
// the process that goes on. A setns into a pid namespace applies to the
// caller's children only, so the process that execs must be a new one.
constexpr uint32_t kForkNotice = 0xfffffffeu;

// Step flags.
constexpr uint32_t kFlagIgnoreExist = 1u << 0;  // EEXIST is success
constexpr uint32_t kFlagOptional = 1u << 1;     // any error is ignored
constexpr uint32_t kFlagIgnoreMissing = 1u << 2;  // ENOENT is success
// Mount (target), Mkdir and Touch: the path is a host path below the
// container's root, whose first args[2] bytes name the root; the rest is
// resolved inside it with openat2(RESOLVE_IN_ROOT) when the step runs, so
// a symlink swapped in since TypeScript resolved it cannot lead out.
constexpr uint32_t kFlagInRoot = 1u << 3;

// What the child writes to the error channel before it exits; an empty
// read (the channel closed by execve's CLOEXEC) means the exec succeeded.
struct ChildError {
  uint32_t step;
  int32_t err;  // positive errno
};

}  // namespace tsrun
