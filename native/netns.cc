// newNetworkNamespace(callback): makes an empty network namespace with its
// loopback up, on a libuv worker thread, and calls callback(error, fd)
// with an fd (O_CLOEXEC) that holds it.
//
// A network namespace is the costliest thing a container's clone makes:
// ~0.6 ms of kernel work here, and more while the namespace of a container
// that just exited is torn down (most likely the rtnl lock both take). The
// library makes the next container's ahead of time, while a container
// starts (src/linux/spare-netns.ts), and that next one joins it with setns.
//
// The worker thread does not change namespaces itself (no namespace call on
// a Node thread, see DESIGN.md): it clones a short-lived child into a new
// network namespace, sharing its memory and fd table, that opens its own
// /proc/self/ns/net into the shared table, brings lo up and exits.
#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>

#include <cerrno>

#include "child_stack.h"
#include "errors.h"
#include "plan_exec.h"
#include "syscalls.h"

namespace tsrun {
namespace {

struct NamespaceChild {
  int fd = -1;
  int err = 0;
  const char* syscall = nullptr;
};

// Runs in the CLONE_VM child: raw syscalls only.
int MakeNamespace(void* arg) {
  auto* out = static_cast<NamespaceChild*>(arg);
  long fd = sys::call(SYS_openat, AT_FDCWD, "/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    out->err = static_cast<int>(-fd);
    out->syscall = "open /proc/self/ns/net";
    sys::exit_group(1);
  }
  long ret = LinkUp("lo");
  if (ret < 0) {
    sys::call(SYS_close, fd);
    out->err = static_cast<int>(-ret);
    out->syscall = "ioctl SIOCSIFFLAGS lo";
    sys::exit_group(1);
  }
  out->fd = static_cast<int>(fd);
  sys::exit_group(0);
}

class NewNetworkNamespace : public Napi::AsyncWorker {
 public:
  explicit NewNetworkNamespace(Napi::Function callback) : Napi::AsyncWorker(callback, "tsrun:newNetworkNamespace") {}

  void Execute() override {
    ChildStack stack;
    if (!stack.ok()) {
      result_ = {-1, errno, "mmap"};
      return;
    }
    pid_t pid;
    {
      BlockedSignals blocked;
      // No exit signal: nothing in Node is told of this child, and it is
      // reaped right here.
      pid = clone(MakeNamespace, stack.top(), CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_NEWNET, &result_);
    }
    if (pid < 0) {
      result_ = {-1, errno, "clone CLONE_NEWNET"};
      return;
    }
    while (waitpid(pid, nullptr, __WALL) < 0 && errno == EINTR) {
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (result_.fd >= 0) {
      Callback().Call({env.Null(), Napi::Number::New(env, result_.fd)});
    } else {
      Callback().Call({ErrnoError(env, result_.syscall ? result_.syscall : "clone", result_.err ? result_.err : EIO).Value()});
    }
  }

 private:
  NamespaceChild result_;
};

}  // namespace

Napi::Value NewNetworkNamespaceAsync(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsFunction()) ThrowUsage(info.Env(), "newNetworkNamespace(callback: (error, fd) => void)");
  auto* worker = new NewNetworkNamespace(info[0].As<Napi::Function>());
  worker->Queue();
  return info.Env().Undefined();
}

}  // namespace tsrun
