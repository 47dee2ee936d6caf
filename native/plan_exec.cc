// Child side of the plan: the only code between clone and execve.
//
// It runs in a CLONE_VM|CLONE_VFORK child (sharing the parent's memory) or
// in a fork-style child of a multi-threaded process. Either way it may not
// allocate, lock, touch errno or throw: every call below is a raw syscall
// over memory the parent prepared. See: man 2 clone, man 2 vfork.
#include <fcntl.h>
#include <linux/close_range.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sched.h>
#include <sys/socket.h>

#include <cerrno>

#include "plan_exec.h"
#include "syscalls.h"

namespace tsrun {
namespace {

// The kernel's struct sigaction (x86_64 and aarch64 share this layout).
struct KernelSigaction {
  void* handler;
  unsigned long flags;
  void* restorer;
  uint64_t mask;
};

constexpr long kSigsetSize = 8;

void ResetSignalHandlers() {
  KernelSigaction dfl{};  // SIG_DFL, no flags, empty mask
  for (int sig = 1; sig < 65; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sys::call(SYS_rt_sigaction, sig, &dfl, nullptr, kSigsetSize);
  }
}

long UnblockAllSignals() {
  uint64_t empty = 0;
  return sys::call(SYS_rt_sigprocmask, SIG_SETMASK, &empty, nullptr, kSigsetSize);
}

long CloseFd(int fd) { return sys::call(SYS_close, fd); }

long WriteAll(int fd, const char* data, size_t len) {
  while (len > 0) {
    long n = sys::call(SYS_write, fd, data, len);
    if (n == -EINTR) continue;
    if (n < 0) return n;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return 0;
}

size_t Length(const char* s) {
  size_t n = 0;
  while (s[n] != 0) n++;
  return n;
}

long WriteFile(const PreparedStep& step) {
  long fd = sys::call(SYS_openat, AT_FDCWD, step.strs[0], step.args[0] | O_CLOEXEC | O_NOCTTY, 0644);
  if (fd < 0) return fd;
  long ret = WriteAll(static_cast<int>(fd), step.strs[1], Length(step.strs[1]));
  CloseFd(static_cast<int>(fd));
  return ret;
}

long Touch(const PreparedStep& step) {
  long fd = sys::call(SYS_openat, AT_FDCWD, step.strs[0], O_CREAT | O_WRONLY | O_CLOEXEC | O_NOCTTY, step.args[0]);
  if (fd < 0) return fd;
  CloseFd(static_cast<int>(fd));
  return 0;
}

long Setns(const PreparedStep& step) {
  long fd = sys::call(SYS_openat, AT_FDCWD, step.strs[0], O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fd;
  long ret = sys::call(SYS_setns, fd, step.args[0]);
  CloseFd(static_cast<int>(fd));
  return ret;
}

long LinkUp(const PreparedStep& step) {
  long sock = sys::call(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return sock;
  struct ifreq req;
  char* raw = reinterpret_cast<char*>(&req);
  for (size_t i = 0; i < sizeof req; i++) raw[i] = 0;
  for (size_t i = 0; i < IFNAMSIZ - 1 && step.strs[0][i] != 0; i++) req.ifr_name[i] = step.strs[0][i];
  long ret = sys::call(SYS_ioctl, sock, SIOCGIFFLAGS, &req);
  if (ret == 0) {
    req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP);
    ret = sys::call(SYS_ioctl, sock, SIOCSIFFLAGS, &req);
  }
  CloseFd(static_cast<int>(sock));
  return ret;
}

long SyncSignal(const ChildContext* ctx, const PreparedStep& step) {
  if (ctx->sync_fd < 0) return -EBADF;
  char byte = static_cast<char>(step.args[0]);
  return WriteAll(ctx->sync_fd, &byte, 1);
}

long SyncWait(const ChildContext* ctx) {
  if (ctx->sync_fd < 0) return -EBADF;
  char byte;
  long n;
  do {
    n = sys::call(SYS_read, ctx->sync_fd, &byte, 1);
  } while (n == -EINTR);
  if (n == 0) return -EPIPE;  // the parent went away without releasing us
  return n < 0 ? n : 0;
}

// Like execvp over candidates the parent resolved: ENOENT-like failures go
// on to the next one; EACCES is remembered because it is the better report.
long Exec(const PreparedStep& step) {
  char* const* candidates = step.lists[0];
  long ret = UnblockAllSignals();
  if (ret < 0) return ret;
  bool saw_eacces = false;
  for (size_t i = 0; candidates[i] != nullptr; i++) {
    ret = sys::call(SYS_execve, candidates[i], step.lists[1], step.lists[2]);
    if (ret == -EACCES) {
      saw_eacces = true;
    } else if (ret != -ENOENT && ret != -ENOTDIR && ret != -ESTALE) {
      break;
    }
  }
  return saw_eacces && (ret == -ENOENT || ret == -ENOTDIR) ? -EACCES : ret;
}

// Two passes, so that a source that is itself 0, 1 or 2 is not overwritten
// before it is used: first every source moves to a fresh fd >= 3.
long Stdio(const PreparedStep& step) {
  long sources[3];
  for (int i = 0; i < 3; i++) {
    sources[i] = step.args[i];
    if (sources[i] >= 0 && sources[i] < 3 && sources[i] != i) {
      sources[i] = sys::call(SYS_fcntl, sources[i], F_DUPFD_CLOEXEC, 3);
      if (sources[i] < 0) return sources[i];
    }
  }
  for (int i = 0; i < 3; i++) {
    if (sources[i] < 0) continue;
    long ret = sources[i] == i ? sys::call(SYS_fcntl, i, F_SETFD, 0) : sys::call(SYS_dup3, sources[i], i, 0);
    if (ret < 0) return ret;
  }
  return 0;
}

// A sibling, not a child: the runtime that cloned us is its parent, holds
// it by pidfd and reaps it. Without CLONE_VM it runs on a copy of this
// stack, as after fork(), so it simply returns here and goes on.
long ForkIntoParent(const ChildContext* ctx) {
  long pid = sys::call(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
  if (pid <= 0) return pid;
  ChildError notice = {kForkNotice, static_cast<int32_t>(pid)};
  WriteAll(ctx->error_fd, reinterpret_cast<const char*>(&notice), sizeof notice);
  sys::exit_group(0);
}

long RunStep(const ChildContext* ctx, const PreparedStep& s) {
  const int64_t* a = s.args;
  switch (s.op) {
    case Op::Mount:
      return sys::call(SYS_mount, s.strs[0], s.strs[1], s.strs[2], a[0], s.strs[3]);
    case Op::Umount2:
      return sys::call(SYS_umount2, s.strs[0], a[0]);
    case Op::PivotRoot:
      return sys::call(SYS_pivot_root, s.strs[0], s.strs[1]);
    case Op::Chroot:
      return sys::call(SYS_chroot, s.strs[0]);
    case Op::Chdir:
      return sys::call(SYS_chdir, s.strs[0]);
    case Op::Mkdir:
      return sys::call(SYS_mkdirat, AT_FDCWD, s.strs[0], a[0]);
    case Op::Mknod:
      return sys::call(SYS_mknodat, AT_FDCWD, s.strs[0], a[0], a[1]);
    case Op::Symlink:
      return sys::call(SYS_symlinkat, s.strs[0], AT_FDCWD, s.strs[1]);
    case Op::WriteFile:
      return WriteFile(s);
    case Op::Sethostname:
      return sys::call(SYS_sethostname, s.strs[0], Length(s.strs[0]));
    case Op::Setdomainname:
      return sys::call(SYS_setdomainname, s.strs[0], Length(s.strs[0]));
    case Op::Unshare:
      return sys::call(SYS_unshare, a[0]);
    case Op::Setns:
      return Setns(s);
    case Op::Setgroups:
      return sys::call(SYS_setgroups, s.gid_count, s.gids);
    case Op::Setresgid:
      return sys::call(SYS_setresgid, a[0], a[1], a[2]);
    case Op::Setresuid:
      return sys::call(SYS_setresuid, a[0], a[1], a[2]);
    case Op::Prctl:
      return sys::call(SYS_prctl, a[0], a[1], a[2], 0, 0);
    case Op::Umask:
      sys::call(SYS_umask, a[0]);
      return 0;
    case Op::Setsid: {
      long sid = sys::call(SYS_setsid);
      return sid < 0 ? sid : 0;
    }
    case Op::SetCtty:
      return sys::call(SYS_ioctl, a[0], TIOCSCTTY, 0);
    case Op::Dup3:
      // dup3 refuses oldfd == newfd; then the fd only needs to survive exec.
      if (a[0] == a[1]) return sys::call(SYS_fcntl, a[0], F_SETFD, 0);
      return sys::call(SYS_dup3, a[0], a[1], 0);
    case Op::LinkUp:
      return LinkUp(s);
    case Op::SyncSignal:
      return SyncSignal(ctx, s);
    case Op::SyncWait:
      return SyncWait(ctx);
    case Op::CloseFrom:
      return sys::call(SYS_close_range, a[0], ~0U, CLOSE_RANGE_CLOEXEC);
    case Op::Exec:
      return Exec(s);
    case Op::Touch:
      return Touch(s);
    case Op::Stdio:
      return Stdio(s);
    case Op::ForkIntoParent:
      return ForkIntoParent(ctx);
    case Op::Setrlimit: {
      struct rlimit limit = {static_cast<rlim_t>(a[1]), static_cast<rlim_t>(a[2])};
      return sys::call(SYS_prlimit64, 0, a[0], &limit, nullptr);
    }
  }
  return -EINVAL;
}

bool Ignored(uint32_t flags, long ret) {
  if (flags & kFlagOptional) return true;
  if ((flags & kFlagIgnoreExist) && ret == -EEXIST) return true;
  if ((flags & kFlagIgnoreMissing) && ret == -ENOENT) return true;
  return false;
}

}  // namespace

[[noreturn]] void RunPlanInChild(const ChildContext* ctx) {
  // Node ignores SIGPIPE, and an ignored disposition survives execve.
  ResetSignalHandlers();
  for (size_t i = 0; i < ctx->step_count; i++) {
    const PreparedStep& step = ctx->steps[i];
    long ret = RunStep(ctx, step);
    if (ret < 0 && !Ignored(step.flags, ret)) {
      ChildError report = {static_cast<uint32_t>(i), static_cast<int32_t>(-ret)};
      WriteAll(ctx->error_fd, reinterpret_cast<const char*>(&report), sizeof report);
      sys::exit_group(127);
    }
  }
  // The plan always ends in Exec, which only returns on failure.
  ChildError report = {static_cast<uint32_t>(ctx->step_count - 1), ENOEXEC};
  WriteAll(ctx->error_fd, reinterpret_cast<const char*>(&report), sizeof report);
  sys::exit_group(127);
}

}  // namespace tsrun
