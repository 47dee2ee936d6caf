// tsrun-monitor: the process that stays with a detached container after
// the tsrun that created it has exited (what conmon is to podman). Run as
// tsrun-init (`run --init` binds it into the container as /dev/tsrun-init),
// it is instead a container's PID 1: see RunInit.
//
//   tsrun-monitor [--tty] [--stdin] DIR CLONE_FLAGS [EXIT-COMMAND [ARG...]]
//
// Inherited fds:
//   3  the serialized plan (src/runtime/plan.ts), read to its end
//   4  the child's end of the sync channel, or closed
//   5  the report pipe to the creator (MonitorReport records), or closed
//   6  the exec fifo (O_PATH), which the plan reopens; closed after the clone
// With --tty the plan's OpenPty step sends the pty master on fd 7, which
// the monitor sets up for the init: the monitor keeps the master for the
// container's life. With --stdin (and no --tty) the init's stdin is a pipe
// the monitor holds. Either way `tsrun attach` reaches the container
// through DIR/attach.sock (attach_server.h).
//
// It clones the container's init with the plan (plan_exec.cc, the same
// executor as the addon's), so the container is its child: it reaps it,
// writes its stdout and stderr to DIR/container.log (the CRI log format:
// "<RFC3339Nano> stdout F line"), then DIR/exit.json, and finally starts
// EXIT-COMMAND (tsrun's cleanup) without waiting for it. It is statically
// linked and its buffers are bounded (attach clients' included), so it
// stays at about 1 MiB of RSS.
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "attach_server.h"
#include "fd.h"
#include "plan_exec.h"
#include "recv_fd.h"

namespace tsrun {
namespace {

constexpr int kPlanFd = 3;
constexpr int kSyncFd = 4;
constexpr int kReportFd = 5;
constexpr int kFifoFd = 6;
constexpr int kConsoleFd = 7;
constexpr size_t kLineMax = 16 * 1024;
// After the init exited, how long its stdout and stderr may stay open (by
// processes it left behind in a shared pid namespace) before the monitor stops reading.
constexpr int kDrainMs = 500;

// What the creator reads on the report pipe, in this order: kPid, then kExecOk
// or kExecFailed once the init has exec'd or failed (a plan with an exec fifo
// gets there only after `start`).
enum ReportKind : uint32_t { kPid = 1, kExecOk = 2, kExecFailed = 3, kMonitorFailed = 4 };
struct MonitorReport {
  uint32_t kind;
  int32_t a;  // kPid: pid; kExecFailed: step; kMonitorFailed: errno
  int32_t b;  // kExecFailed: errno
};

bool WriteAll(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

void Report(int* fd, ReportKind kind, int32_t a, int32_t b) {
  if (*fd < 0) return;
  MonitorReport report = {kind, a, b};
  // The creator may be gone (a `create` whose container is started later).
  if (!WriteAll(*fd, reinterpret_cast<const char*>(&report), sizeof report)) {
    close(*fd);
    *fd = -1;
  }
}

std::string Timestamp() {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  struct tm tm;
  gmtime_r(&now.tv_sec, &tm);
  char buf[64];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%09ldZ", now.tv_nsec);
  return buf;
}

// Written to a temporary name and renamed, so a reader sees all or nothing.
bool WriteFileAtomic(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = WriteAll(fd, content.data(), content.size());
  ok = close(fd) == 0 && ok;
  return ok && rename(tmp.c_str(), path.c_str()) == 0;
}

// One of the init's output streams (a pipe, or the pty master), cut into
// CRI log lines and passed on to attached clients.
class LogStream {
 public:
  LogStream(const char* name, AttachFrame frame, int fd, AttachServer* relay) : name_(name), frame_(frame), fd_(fd), relay_(relay) {}

  int fd() const { return fd_.get(); }
  bool open() const { return fd_.get() >= 0; }
  void Adopt(int fd) { fd_.Reset(fd); }

  // Reads what is there; false at end of file (for a pty master: EIO once no process has the slave open).
  bool Read(int log_fd) {
    char buf[8192];
    ssize_t n = read(fd_.get(), buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (n <= 0) {
      Flush(log_fd, 'P');
      fd_.Reset();
      return false;
    }
    relay_->Broadcast(frame_, buf, static_cast<size_t>(n));
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] == '\n') {
        Flush(log_fd, 'F');
        continue;
      }
      line_.push_back(buf[i]);
      if (line_.size() >= kLineMax) Flush(log_fd, 'P');
    }
    return true;
  }

 private:
  void Flush(int log_fd, char tag) {
    if (line_.empty() && tag == 'P') return;
    std::string entry = Timestamp() + " " + name_ + " " + tag + " " + line_ + "\n";
    WriteAll(log_fd, entry.data(), entry.size());
    line_.clear();
  }

  std::string name_;
  AttachFrame frame_;
  Fd fd_;
  AttachServer* relay_;
  std::string line_;
};

// The pty master the init's OpenPty step sent on the console socket, or -1.
int ReceiveMaster(int sock) {
  int fd = RecvFd(sock);
  if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

// A socket pair whose child end is kConsoleFd, where the plan's OpenPty step
// expects it; returns the monitor's end. The fds below kConsoleFd may be
// closed slots of the fd layout, which must stay free.
int ConsoleSocket() {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return -1;
  int ours = fcntl(pair[0], F_DUPFD_CLOEXEC, kConsoleFd + 1);
  close(pair[0]);
  if (pair[1] != kConsoleFd) {
    int child = dup3(pair[1], kConsoleFd, O_CLOEXEC);
    close(pair[1]);
    if (child < 0) ours = -1;
  }
  return ours;
}

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

[[noreturn]] void Fail(int* report_fd, const char* what) {
  int err = errno;
  fprintf(stderr, "tsrun-monitor: %s: %s\n", what, strerror(err));
  Report(report_fd, kMonitorFailed, err, 0);
  exit(125);
}

bool ReadPlan(std::vector<uint8_t>* out) {
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = read(kPlanFd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    out->insert(out->end(), buf, buf + n);
  }
  close(kPlanFd);
  return true;
}

pid_t CloneInit(const ChildContext* ctx, uint64_t ns_flags) {
  struct clone_args args = {};
  args.flags = ns_flags;
  args.exit_signal = SIGCHLD;
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0 && errno == ENOSYS) {
    pid = syscall(SYS_clone, ns_flags | SIGCHLD, 0, 0, 0, 0);
  }
  if (pid == 0) RunPlanInChild(ctx);
  return static_cast<pid_t>(pid);
}

void StartExitCommand(char** argv) {
  pid_t pid = fork();
  if (pid != 0) return;
  setsid();
  int devnull = open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execv(argv[0], argv);
  _exit(127);
}

// A reaping init (`tsrun run --init`): PID 1 of a pid namespace gets no
// default signal actions, so a shell there ignores SIGTERM, and orphans
// are left to it to reap. This one runs COMMAND as its child, forwards
// every signal it can catch to it, reaps whatever exits, and exits as
// COMMAND did.
int RunInit(int argc, char** argv) {
  int first = argc > 1 && strcmp(argv[1], "--") == 0 ? 2 : 1;
  if (first >= argc) {
    fprintf(stderr, "usage: tsrun-init [--] COMMAND [ARG...]\n");
    return 125;
  }
  sigset_t all, saved;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &saved);
  pid_t child = fork();
  if (child < 0) {
    fprintf(stderr, "tsrun-init: fork: %s\n", strerror(errno));
    return 125;
  }
  if (child == 0) {
    sigprocmask(SIG_SETMASK, &saved, nullptr);
    execvp(argv[first], argv + first);
    int err = errno;
    fprintf(stderr, "tsrun-init: exec %s: %s\n", argv[first], strerror(err));
    _exit(err == ENOENT || err == ENOTDIR ? 127 : 126);
  }
  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&all, &info);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      kill(child, sig);
      continue;
    }
    int status;
    pid_t reaped;
    while ((reaped = waitpid(-1, &status, WNOHANG)) > 0) {
      if (reaped == child) return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    }
  }
}

bool CalledAsInit(const char* argv0) {
  const char* slash = strrchr(argv0, '/');
  return strcmp(slash ? slash + 1 : argv0, "tsrun-init") == 0;
}

int Main(int argc, char** argv) {
  if (argc > 0 && CalledAsInit(argv[0])) return RunInit(argc, argv);
  // Whatever else the creator's process had open is not ours to keep (nor the container's).
  close_range(kFifoFd + 1, ~0U, 0);
  int report_fd = IsOpen(kReportFd) ? kReportFd : -1;
  bool tty = false;
  bool open_stdin = false;
  for (; argc > 1 && strncmp(argv[1], "--", 2) == 0; argc--, argv++) {
    if (strcmp(argv[1], "--tty") == 0) {
      tty = true;
    } else if (strcmp(argv[1], "--stdin") == 0) {
      open_stdin = true;
    } else {
      argc = 0;
      break;
    }
  }
  if (argc < 3) {
    fprintf(stderr, "usage: tsrun-monitor [--tty] [--stdin] DIR CLONE_FLAGS [EXIT-COMMAND [ARG...]]\n");
    return 125;
  }
  std::string dir = argv[1];
  uint64_t ns_flags = strtoull(argv[2], nullptr, 10);
  signal(SIGPIPE, SIG_IGN);
  // Processes the container leaves behind (in the host's pid namespace) come back to us.
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  std::vector<uint8_t> wire;
  if (!ReadPlan(&wire)) Fail(&report_fd, "read plan");
  PreparedPlan plan;
  std::string why;
  if (!PreparePlan(wire.data(), wire.size(), &plan, &why)) {
    errno = EINVAL;
    fprintf(stderr, "tsrun-monitor: invalid plan: %s\n", why.c_str());
    Fail(&report_fd, "plan");
  }

  Fd console;
  if (tty) {
    console.Reset(ConsoleSocket());
    if (console.get() < 0) Fail(&report_fd, "console socket");
  }
  Fd log_fd(open((dir + "/container.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
  if (log_fd.get() < 0) Fail(&report_fd, "open container.log");
  int out_pipe[2], err_pipe[2], error_pipe[2], stdin_pipe[2] = {-1, -1};
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 || pipe2(error_pipe, O_CLOEXEC) != 0) Fail(&report_fd, "pipe2");
  if (open_stdin && !tty && pipe2(stdin_pipe, O_CLOEXEC) != 0) Fail(&report_fd, "pipe2");
  // The init inherits 0, 1 and 2 (its plan keeps them, a terminal replaces
  // them): /dev/null or the stdin pipe, and the log pipes.
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0 || dup2(stdin_pipe[0] >= 0 ? stdin_pipe[0] : devnull, 0) < 0 || dup2(out_pipe[1], 1) < 0 || dup2(err_pipe[1], 2) < 0) Fail(&report_fd, "dup2");
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (stdin_pipe[0] >= 0) close(stdin_pipe[0]);
  AttachServer attach;
  if (!attach.Listen(dir, tty, open_stdin, stdin_pipe[1])) Fail(&report_fd, "listen on attach.sock");
  Fd error_read(error_pipe[0]);
  Fd error_write(error_pipe[1]);

  sigset_t all, saved;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &saved);
  ChildContext ctx = {plan.steps.data(), plan.steps.size(), error_write.get(), IsOpen(kSyncFd) ? kSyncFd : -1, -1, nullptr, 0, nullptr};
  pid_t init = CloneInit(&ctx, ns_flags);
  int clone_errno = errno;
  // SIGCHLD stays blocked: it is read from a signalfd.
  sigset_t chld = saved;
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_SETMASK, &chld, nullptr);
  error_write.Reset();
  dup2(devnull, 0);
  dup2(devnull, 1);
  dup2(devnull, 2);
  close(devnull);
  close(kSyncFd);
  close(kFifoFd);
  if (tty) close(kConsoleFd);
  if (init < 0) {
    errno = clone_errno;
    Fail(&report_fd, "clone3");
  }
  Report(&report_fd, kPid, init, 0);

  sigset_t only_chld;
  sigemptyset(&only_chld);
  sigaddset(&only_chld, SIGCHLD);
  Fd sigfd(signalfd(-1, &only_chld, SFD_CLOEXEC | SFD_NONBLOCK));
  LogStream out("stdout", kFrameStdout, out_pipe[0], &attach);
  LogStream err("stderr", kFrameStderr, err_pipe[0], &attach);
  LogStream terminal("stdout", kFrameStdout, -1, &attach);
  bool exited = false;
  int status = 0;
  struct timespec exit_time = {};
  constexpr size_t kOwnFds = 6;
  for (;;) {
    if (exited && !out.open() && !err.open() && !terminal.open()) break;
    struct pollfd fds[kOwnFds + AttachServer::kPollCount] = {{sigfd.get(), POLLIN, 0}, {error_read.get(), POLLIN, 0}, {out.fd(), POLLIN, 0},
                                                              {err.fd(), POLLIN, 0},   {console.get(), POLLIN, 0},  {terminal.fd(), POLLIN, 0}};
    attach.Poll(fds + kOwnFds);
    int timeout = -1;
    if (exited) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      long elapsed = (now.tv_sec - exit_time.tv_sec) * 1000 + (now.tv_nsec - exit_time.tv_nsec) / 1000000;
      if (elapsed >= kDrainMs) break;
      timeout = static_cast<int>(kDrainMs - elapsed);
    }
    int ready = poll(fds, sizeof fds / sizeof fds[0], timeout);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) Fail(&report_fd, "poll");
    if (ready == 0) continue;
    if (fds[1].revents != 0) {
      ChildError child_error;
      ssize_t n = read(error_read.get(), &child_error, sizeof child_error);
      if (n == static_cast<ssize_t>(sizeof child_error)) {
        WriteFileAtomic(dir + "/exec-status", "failed " + std::to_string(child_error.step) + " " + std::to_string(child_error.err) + "\n");
        Report(&report_fd, kExecFailed, static_cast<int32_t>(child_error.step), child_error.err);
      } else {
        WriteFileAtomic(dir + "/exec-status", "ok\n");
        Report(&report_fd, kExecOk, 0, 0);
      }
      error_read.Reset();
      if (report_fd >= 0) close(report_fd);
      report_fd = -1;
    }
    if (fds[2].revents != 0) out.Read(log_fd.get());
    if (fds[3].revents != 0) err.Read(log_fd.get());
    if (fds[4].revents != 0) {
      // The init sends its terminal just before it execs, or closes the socket failing.
      int master = ReceiveMaster(console.get());
      console.Reset();
      if (master >= 0) {
        terminal.Adopt(master);
        attach.SetMaster(master);
      }
    }
    if (fds[5].revents != 0 && !terminal.Read(log_fd.get())) attach.SetMaster(-1);
    attach.Handle(fds + kOwnFds);
    if (fds[0].revents != 0) {
      struct signalfd_siginfo info;
      while (read(sigfd.get(), &info, sizeof info) > 0) {
      }
      int reaped_status;
      pid_t reaped;
      while ((reaped = waitpid(-1, &reaped_status, WNOHANG)) > 0) {
        if (reaped != init) continue;
        status = reaped_status;
        exited = true;
        clock_gettime(CLOCK_MONOTONIC, &exit_time);
      }
    }
  }
  // An init that failed before exec never closed the error channel with a report read above.
  if (error_read.get() >= 0) {
    ChildError child_error;
    if (read(error_read.get(), &child_error, sizeof child_error) == static_cast<ssize_t>(sizeof child_error)) {
      WriteFileAtomic(dir + "/exec-status", "failed " + std::to_string(child_error.step) + " " + std::to_string(child_error.err) + "\n");
      Report(&report_fd, kExecFailed, static_cast<int32_t>(child_error.step), child_error.err);
    }
  }
  int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  std::string signal_json = WIFSIGNALED(status) ? std::to_string(WTERMSIG(status)) : "null";
  WriteFileAtomic(dir + "/exit.json", "{\"exitCode\":" + std::to_string(code) + ",\"signal\":" + signal_json +
                                          ",\"finishedAt\":\"" + Timestamp() + "\"}\n");
  attach.Exit(code);
  if (argc > 3) StartExitCommand(argv + 3);
  return 0;
}

}  // namespace
}  // namespace tsrun

int main(int argc, char** argv) { return tsrun::Main(argc, argv); }
