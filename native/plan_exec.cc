// Child side of the plan: the only code between clone and execve.
//
// It runs in a CLONE_VM|CLONE_VFORK child (sharing the parent's memory) or
// in a fork-style child of a multi-threaded process. Either way it may not
// allocate, lock, touch errno or throw: every call below is a raw syscall
// over memory the parent prepared. See: man 2 clone, man 2 vfork.
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/limits.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <linux/stat.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <termios.h>

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

// Field 22 of /proc/self/stat (starttime), or 0 when it cannot be read.
uint64_t OwnStartTime() {
  char buf[1024];
  long fd = sys::call(SYS_openat, AT_FDCWD, "/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  long n = sys::call(SYS_read, fd, buf, sizeof buf);
  CloseFd(static_cast<int>(fd));
  // The command name may hold spaces and parentheses: the fields are
  // counted from its last ')', which ends field 2.
  long end = n - 1;
  while (end >= 0 && buf[end] != ')') end--;
  if (end < 0) return 0;
  int field = 2;
  uint64_t value = 0;
  for (long i = end + 1; i < n && field <= 22; i++) {
    if (buf[i] == ' ') {
      field++;
    } else if (field == 22) {
      if (buf[i] < '0' || buf[i] > '9') return 0;
      value = value * 10 + static_cast<uint64_t>(buf[i] - '0');
    }
  }
  return field > 22 ? value : 0;
}

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
  if (step.strs[0] == nullptr) return sys::call(SYS_setns, step.args[1], step.args[0]);
  long fd = sys::call(SYS_openat, AT_FDCWD, step.strs[0], O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fd;
  long ret = sys::call(SYS_setns, fd, step.args[0]);
  CloseFd(static_cast<int>(fd));
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

// The terminal is allocated in the container's own devpts (its /dev/ptmx),
// so that the process sees a /dev/pts/N that exists there; the master goes
// to the runtime over the console socket (SCM_RIGHTS), as runc's
// --console-socket does. TIOCGPTPEER opens the slave without a path lookup
// (a container could have replaced /dev/pts/N). See: man 4 pts, man 2 ioctl_tty.
long OpenPty(const PreparedStep& step) {
  long master = sys::call(SYS_openat, AT_FDCWD, step.strs[0], O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return master;
  int unlock = 0;
  long ret = sys::call(SYS_ioctl, master, TIOCSPTLCK, &unlock);
  struct winsize size = {static_cast<unsigned short>(step.args[1] >> 16), static_cast<unsigned short>(step.args[1] & 0xffff), 0, 0};
  if (ret == 0 && size.ws_row > 0 && size.ws_col > 0) ret = sys::call(SYS_ioctl, master, TIOCSWINSZ, &size);
  long slave = ret < 0 ? ret : sys::call(SYS_ioctl, master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
  if (slave < 0) {
    CloseFd(static_cast<int>(master));
    return slave;
  }
  // The process's user owns its terminal, as with a login; the group stays devpts's tty.
  if (step.args[2] >= 0) {
    ret = sys::call(SYS_fchown, slave, step.args[2], -1);
    if (ret < 0) {
      CloseFd(static_cast<int>(master));
      CloseFd(static_cast<int>(slave));
      return ret;
    }
  }
  char byte = 'T';
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  for (size_t i = 0; i < sizeof control; i++) control[i] = 0;
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  int master_fd = static_cast<int>(master);
  char* data = reinterpret_cast<char*>(CMSG_DATA(cmsg));
  const char* from = reinterpret_cast<const char*>(&master_fd);
  for (size_t i = 0; i < sizeof master_fd; i++) data[i] = from[i];
  do {
    ret = sys::call(SYS_sendmsg, step.args[0], &msg, MSG_NOSIGNAL);
  } while (ret == -EINTR);
  CloseFd(master_fd);
  for (int fd = 0; ret >= 0 && fd < 3; fd++) ret = slave == fd ? 0 : sys::call(SYS_dup3, slave, fd, 0);
  if (slave > 2) CloseFd(static_cast<int>(slave));
  return ret < 0 ? ret : 0;
}

// pivot_root when the container's mounts share peer groups with the host:
// the old root still has the host's peers, and detaching it would unmount
// their copies too. Only an fd reaches the old root once the new one sits
// under it (a path "." or "/" names the new root), so it is opened first,
// as runc does.
long PivotRootSlave(const PreparedStep& step) {
  long old_root = sys::call(SYS_openat, AT_FDCWD, "/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (old_root < 0) return old_root;
  long ret = sys::call(SYS_chdir, step.strs[0]);
  if (ret == 0) ret = sys::call(SYS_pivot_root, ".", ".");
  if (ret == 0) ret = sys::call(SYS_fchdir, old_root);
  if (ret == 0) ret = sys::call(SYS_mount, nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr);
  if (ret == 0) ret = sys::call(SYS_umount2, ".", MNT_DETACH);
  if (ret == 0) ret = sys::call(SYS_chdir, "/");
  CloseFd(static_cast<int>(old_root));
  return ret;
}

// A directory fd the runtime still holds (/proc/self/fd/N) leads outside
// the root (runc CVE-2024-21626); so does a cwd kept from before the
// pivot. The kernel's getcwd then answers "(unreachable)/...".
long Chdir(const char* path) {
  long ret = sys::call(SYS_chdir, path);
  if (ret < 0) return ret;
  char cwd[PATH_MAX];
  ret = sys::call(SYS_getcwd, cwd, sizeof cwd);
  if (ret < 0) return ret;
  return cwd[0] == '/' ? 0 : -ENOENT;
}

// Really closed, not only close-on-exec: until execve a leaked directory fd
// is a way out of the root for every path step that follows. The error
// and sync channels stay (both are close-on-exec).
long CloseFrom(const ChildContext* ctx, long first) {
  long keep[2] = {ctx->error_fd, ctx->sync_fd};
  if (keep[0] > keep[1]) {
    long t = keep[0];
    keep[0] = keep[1];
    keep[1] = t;
  }
  long next = first;
  for (long fd : keep) {
    if (fd < next) continue;
    if (fd > next) {
      long ret = sys::call(SYS_close_range, next, fd - 1, 0);
      if (ret < 0) return ret;
    }
    next = fd + 1;
  }
  return sys::call(SYS_close_range, next, ~0U, 0);
}

long Capset(const int64_t* masks) {
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  for (int i = 0; i < 2; i++) {
    int shift = 32 * i;
    data[i].effective = static_cast<uint32_t>(static_cast<uint64_t>(masks[0]) >> shift);
    data[i].permitted = static_cast<uint32_t>(static_cast<uint64_t>(masks[1]) >> shift);
    data[i].inheritable = static_cast<uint32_t>(static_cast<uint64_t>(masks[2]) >> shift);
  }
  return sys::call(SYS_capset, &header, data);
}

long Seccomp(const PreparedStep& step) {
  struct sock_fprog prog = {static_cast<unsigned short>(step.filter_len), const_cast<struct sock_filter*>(step.filter)};
  return sys::call(SYS_seccomp, SECCOMP_SET_MODE_FILTER, step.args[0], &prog);
}

// As runc does: /dev/null over a file, an empty read-only tmpfs over a
// directory; a path this kernel does not have needs no mask. The type is
// looked up first: a bind that fails with ENOTDIR has already copied the
// mount, and dropping the copy can wait for an RCU grace period (0.11 ms
// per directory on average here, at times 3 ms).
long MaskPath(const char* path) {
  struct statx type {};
  long ret = sys::call(SYS_statx, AT_FDCWD, path, 0, STATX_TYPE, &type);
  if (ret == -ENOENT) return 0;
  bool directory = ret == 0 && S_ISDIR(type.stx_mode);
  if (!directory) ret = sys::call(SYS_mount, "/dev/null", path, nullptr, MS_BIND, nullptr);
  if (directory || ret == -ENOTDIR) ret = sys::call(SYS_mount, "tmpfs", path, "tmpfs", MS_RDONLY, nullptr);
  return ret == -ENOENT ? 0 : ret;
}

// Splits `path` (root prefix of `root_len` bytes, then the part inside)
// and opens the inside part with openat2(RESOLVE_IN_ROOT): ".." and
// symlinks, absolute or not, stay inside the root. -ENOSYS: no openat2.
long OpenInRoot(const char* path, long root_len, long flags, long mode) {
  char root[PATH_MAX];
  if (root_len <= 0 || root_len >= PATH_MAX) return -EINVAL;
  for (long i = 0; i < root_len; i++) {
    if (path[i] == 0) return -EINVAL;
    root[i] = path[i];
  }
  root[root_len] = 0;
  const char* rel = path + root_len;
  while (*rel == '/') rel++;
  if (*rel == 0) rel = ".";
  long root_fd = sys::call(SYS_openat, AT_FDCWD, root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return root_fd;
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = static_cast<uint64_t>(mode);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  long fd = sys::call(SYS_openat2, root_fd, rel, &how, sizeof how);
  CloseFd(static_cast<int>(root_fd));
  return fd;
}

// "/proc/self/fd/N" into buf, with no allocation.
void ProcFdPath(long fd, char* buf) {
  const char prefix[] = "/proc/self/fd/";
  size_t n = 0;
  for (; prefix[n] != 0; n++) buf[n] = prefix[n];
  char digits[24];
  size_t d = 0;
  do {
    digits[d++] = static_cast<char>('0' + fd % 10);
    fd /= 10;
  } while (fd > 0);
  while (d > 0) buf[n++] = digits[--d];
  buf[n] = 0;
}

// The mount point is opened inside the root and named through its fd, as
// runc does since CVE-2021-30465.
long MountInRoot(const PreparedStep& s) {
  long fd = OpenInRoot(s.strs[1], s.args[2], O_PATH, 0);
  if (fd == -ENOSYS) return sys::call(SYS_mount, s.strs[0], s.strs[1], s.strs[2], s.args[0], s.strs[3]);
  if (fd < 0) return fd;
  char target[64];
  ProcFdPath(fd, target);
  long ret = sys::call(SYS_mount, s.strs[0], target, s.strs[2], s.args[0], s.strs[3]);
  CloseFd(static_cast<int>(fd));
  return ret;
}

// mkdir of the last component in its parent, the parent opened inside the root.
long MkdirInRoot(const PreparedStep& s) {
  const char* path = s.strs[0];
  long len = static_cast<long>(Length(path));
  long slash = len - 1;
  while (slash > 0 && path[slash] == '/') slash--;
  long end = slash + 1;
  while (slash > 0 && path[slash] != '/') slash--;
  if (slash < s.args[2]) return -EINVAL;  // the root itself, or outside it
  char parent[PATH_MAX];
  char name[NAME_MAX + 1];
  if (slash >= PATH_MAX || end - slash - 1 > NAME_MAX) return -ENAMETOOLONG;
  for (long i = 0; i < slash; i++) parent[i] = path[i];
  parent[slash] = 0;
  long n = 0;
  for (long i = slash + 1; i < end; i++) name[n++] = path[i];
  name[n] = 0;
  long dir = OpenInRoot(parent, s.args[2], O_PATH | O_DIRECTORY, 0);
  if (dir == -ENOSYS) return sys::call(SYS_mkdirat, AT_FDCWD, path, s.args[0]);
  if (dir < 0) return dir;
  long ret = sys::call(SYS_mkdirat, dir, name, s.args[0]);
  CloseFd(static_cast<int>(dir));
  return ret;
}

long TouchInRoot(const PreparedStep& s) {
  long fd = OpenInRoot(s.strs[0], s.args[2], O_CREAT | O_WRONLY | O_NOCTTY, s.args[0]);
  if (fd == -ENOSYS) return Touch(s);
  if (fd < 0) return fd;
  CloseFd(static_cast<int>(fd));
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
  if (s.flags & kFlagInRoot) {
    if (s.op == Op::Mount) return MountInRoot(s);
    if (s.op == Op::Mkdir) return MkdirInRoot(s);
    if (s.op == Op::Touch) return TouchInRoot(s);
    return -EINVAL;
  }
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
      return Chdir(s.strs[0]);
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
      return LinkUp(s.strs[0]);
    case Op::SyncSignal:
      return SyncSignal(ctx, s);
    case Op::SyncWait:
      return SyncWait(ctx);
    case Op::CloseFrom:
      return CloseFrom(ctx, a[0]);
    case Op::Exec:
      return Exec(s);
    case Op::Touch:
      return Touch(s);
    case Op::Stdio:
      return Stdio(s);
    case Op::Capset:
      return Capset(a);
    case Op::Seccomp:
      return Seccomp(s);
    case Op::MaskPath:
      return MaskPath(s.strs[0]);
    case Op::OpenPty:
      return OpenPty(s);
    case Op::PivotRootSlave:
      return PivotRootSlave(s);
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

long LinkUp(const char* name) {
  long sock = sys::call(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return sock;
  struct ifreq req;
  char* raw = reinterpret_cast<char*>(&req);
  for (size_t i = 0; i < sizeof req; i++) raw[i] = 0;
  for (size_t i = 0; i < IFNAMSIZ - 1 && name[i] != 0; i++) req.ifr_name[i] = name[i];
  long ret = sys::call(SYS_ioctl, sock, SIOCGIFFLAGS, &req);
  if (ret == 0) {
    req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP);
    ret = sys::call(SYS_ioctl, sock, SIOCSIFFLAGS, &req);
  }
  CloseFd(static_cast<int>(sock));
  return ret;
}

long OpenInRootFd(const char* path, long root_len, long flags) { return OpenInRoot(path, root_len, flags, 0); }

[[noreturn]] void RunPlanInChild(const ChildContext* ctx) {
  // Node ignores SIGPIPE, and an ignored disposition survives execve.
  ResetSignalHandlers();
  if (ctx->affinity != nullptr) sys::call(SYS_sched_setaffinity, 0, ctx->affinity_size, ctx->affinity);
  if (ctx->start_time != nullptr) *ctx->start_time = OwnStartTime();
  if (ctx->parent_sync_fd >= 0) CloseFd(ctx->parent_sync_fd);
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
