// spawn(plan, options): clones a child into new namespaces and runs the
// plan in it (plan_exec.cc). Two ways to clone:
//  - "vfork": clone(CLONE_VM|CLONE_VFORK) on a private stack. The parent
//    thread sleeps until the child execs or exits, and no page table is
//    copied, so the cost does not grow with Node's heap. The parent cannot
//    act while the child waits, so the plan must need no parent half.
//  - "fork": clone3(CLONE_PIDFD) without CLONE_VM, for plans that wait on
//    the parent (a user namespace's uid/gid maps). Falls back to clone(2)
//    where clone3 is missing.
// Returns {pid, pidfd, errorFd, startTime}; readChildError(errorFd) tells
// whether the exec happened. startTime (/proc/PID/stat's, read by the
// child itself) is there for a vfork child only. See: man 2 clone, man 2 clone3, man 2 pidfd_open.
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "child_stack.h"
#include "errors.h"
#include "fd.h"
#include "plan_exec.h"

namespace tsrun {
namespace {

// Namespace flags spawn accepts; anything else in options.cloneFlags is a
// caller bug, not something to pass to the kernel.
constexpr uint64_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
                                     CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;

int ChildEntry(void* arg) { RunPlanInChild(static_cast<const ChildContext*>(arg)); }

// Pins the calling thread to the CPU it runs on, until destroyed. A new
// task is placed on an idle CPU when there is one: waking it there costs an
// interrupt, and in a VM the halted vCPU's own wakeup. The vfork parent only
// sleeps while its child runs, so the child is better off on the parent's
// CPU; it inherits the pin and gives itself `saved` back first thing.
class PinnedToThisCpu {
 public:
  PinnedToThisCpu() {
    if (sched_getaffinity(0, sizeof saved_, &saved_) != 0) return;
    int cpu = sched_getcpu();
    if (cpu < 0) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pinned_ = sched_setaffinity(0, sizeof one, &one) == 0;
  }
  ~PinnedToThisCpu() {
    if (pinned_) sched_setaffinity(0, sizeof saved_, &saved_);
  }
  const cpu_set_t* saved() const { return pinned_ ? &saved_ : nullptr; }

 private:
  cpu_set_t saved_;
  bool pinned_ = false;
};

pid_t CloneVfork(const ChildContext* parent_ctx, uint64_t ns_flags, int* pidfd, int* err) {
  ChildStack stack;
  if (!stack.ok()) {
    *err = errno;
    return -1;
  }
  PinnedToThisCpu pin;
  ChildContext ctx_with_pin = *parent_ctx;
  ctx_with_pin.affinity = pin.saved();
  ctx_with_pin.affinity_size = sizeof(cpu_set_t);
  const ChildContext* ctx = &ctx_with_pin;
  int flags = static_cast<int>(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | ns_flags) | SIGCHLD;
  // "Dumpable" belongs to the memory map, which a CLONE_VM child shares:
  // the child's PR_SET_DUMPABLE 0 (which keeps the container's processes
  // away from /proc/PID/exe while it still is Node, CVE-2019-5736) must
  // not outlive it in this process.
  int dumpable = prctl(PR_GET_DUMPABLE);
  pid_t pid = clone(ChildEntry, stack.top(), flags, const_cast<ChildContext*>(ctx), pidfd);
  *err = errno;
  if (dumpable >= 0) prctl(PR_SET_DUMPABLE, dumpable);
  return pid;
}

pid_t CloneFork(const ChildContext* ctx, uint64_t ns_flags, int* pidfd, int* err) {
  struct clone_args args = {};
  args.flags = CLONE_PIDFD | ns_flags;
  args.pidfd = reinterpret_cast<uint64_t>(pidfd);
  args.exit_signal = SIGCHLD;
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) RunPlanInChild(ctx);
  if (pid < 0 && errno == ENOSYS) {
    ChildStack stack;
    if (!stack.ok()) {
      *err = errno;
      return -1;
    }
    int flags = static_cast<int>(CLONE_PIDFD | ns_flags) | SIGCHLD;
    pid = clone(ChildEntry, stack.top(), flags, const_cast<ChildContext*>(ctx), pidfd);
  }
  *err = errno;
  return static_cast<pid_t>(pid);
}

}  // namespace

Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "spawn(plan: Buffer, {cloneFlags: number, mode: 'vfork'|'fork', syncFd?: number, parentSyncFd?: number})";
  if (info.Length() != 2 || !info[0].IsBuffer() || !info[1].IsObject()) ThrowUsage(env, usage);
  auto buffer = info[0].As<Napi::Buffer<uint8_t>>();
  Napi::Object options = info[1].As<Napi::Object>();
  Napi::Value flags_value = options.Get("cloneFlags");
  Napi::Value mode_value = options.Get("mode");
  if (!flags_value.IsNumber() || !mode_value.IsString()) ThrowUsage(env, usage);
  uint64_t ns_flags = static_cast<uint64_t>(flags_value.As<Napi::Number>().Int64Value());
  if ((ns_flags & ~kNamespaceFlags) != 0) ThrowUsage(env, "spawn: cloneFlags may only hold CLONE_NEW* flags");
  std::string mode = mode_value.As<Napi::String>().Utf8Value();
  if (mode != "vfork" && mode != "fork") ThrowUsage(env, usage);
  int sync_fd = -1;
  Napi::Value sync_value = options.Get("syncFd");
  if (sync_value.IsNumber()) sync_fd = sync_value.As<Napi::Number>().Int32Value();
  int parent_sync_fd = -1;
  Napi::Value parent_sync_value = options.Get("parentSyncFd");
  if (parent_sync_value.IsNumber()) parent_sync_fd = parent_sync_value.As<Napi::Number>().Int32Value();
  if (mode == "vfork" && sync_fd >= 0) ThrowUsage(env, "spawn: a plan that syncs with the parent needs mode 'fork'");

  PreparedPlan plan;
  std::string why;
  if (!PreparePlan(buffer.Data(), buffer.Length(), &plan, &why)) {
    throw Napi::TypeError::New(env, "spawn: invalid plan: " + why);
  }

  int error_pipe[2];
  if (pipe2(error_pipe, O_CLOEXEC) != 0) ThrowErrno(env, "pipe2", errno);
  Fd error_read(error_pipe[0]);
  Fd error_write(error_pipe[1]);

  uint64_t start_time = 0;
  ChildContext ctx = {plan.steps.data(), plan.steps.size(), error_write.get(), sync_fd, parent_sync_fd, nullptr, 0, mode == "vfork" ? &start_time : nullptr};
  int pidfd = -1;
  int err = 0;
  pid_t pid;
  {
    // Blocked across the clone so no handler runs in the child before it
    // resets them all; the child unblocks right before execve.
    BlockedSignals blocked;
    pid = mode == "vfork" ? CloneVfork(&ctx, ns_flags, &pidfd, &err) : CloneFork(&ctx, ns_flags, &pidfd, &err);
  }
  if (pid < 0) ThrowErrno(env, mode == "vfork" ? "clone" : "clone3", err);
  error_write.Reset();

  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", static_cast<double>(pid));
  result.Set("pidfd", static_cast<double>(pidfd));
  result.Set("errorFd", static_cast<double>(error_read.Release()));
  if (start_time != 0) result.Set("startTime", static_cast<double>(start_time));
  return result;
}

}  // namespace tsrun
