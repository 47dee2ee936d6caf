// Process handles by pidfd: signals without pid reuse races, and exit
// watching that leaves libuv's SIGCHLD handling alone (libuv only reaps the
// pids it spawned itself). See: man 2 pidfd_open, man 2 pidfd_send_signal,
// man 2 waitid (P_PIDFD).
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>

#include "errors.h"

namespace tsrun {
namespace {

// <linux/wait.h> clashes with glibc's idtype_t; glibc 2.36 lacks the name.
constexpr int kPidfdIdType = 3;  // P_PIDFD

int IntArg(const Napi::CallbackInfo& info, size_t index, const char* usage) {
  if (info.Length() <= index || !info[index].IsNumber()) ThrowUsage(info.Env(), usage);
  return info[index].As<Napi::Number>().Int32Value();
}

// Reaps the child behind pidfd; false when it has not exited yet (WNOHANG).
bool Reap(int pidfd, int options, siginfo_t* out, int* err) {
  int ret;
  do {
    out->si_pid = 0;
    ret = waitid(static_cast<idtype_t>(kPidfdIdType), static_cast<id_t>(pidfd), out, WEXITED | options);
  } while (ret < 0 && errno == EINTR);
  *err = ret < 0 ? errno : 0;
  return ret == 0 && out->si_pid != 0;
}

Napi::Object ExitStatus(Napi::Env env, const siginfo_t& info) {
  Napi::Object status = Napi::Object::New(env);
  bool exited = info.si_code == CLD_EXITED;
  status.Set("exitCode", exited ? Napi::Number::New(env, info.si_status) : env.Null());
  status.Set("signal", exited ? env.Null() : Napi::Number::New(env, info.si_status));
  return status;
}

}  // namespace

Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  int pid = IntArg(info, 0, "pidfdOpen(pid: number)");
  long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) ThrowErrno(info.Env(), "pidfd_open", errno, std::to_string(pid));
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

Napi::Value PidfdSendSignal(const Napi::CallbackInfo& info) {
  const char* usage = "pidfdSendSignal(pidfd: number, signal: number)";
  int pidfd = IntArg(info, 0, usage);
  int sig = IntArg(info, 1, usage);
  if (syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) != 0) ThrowErrno(info.Env(), "pidfd_send_signal", errno);
  return info.Env().Undefined();
}

// waitExit(pidfd, block): {exitCode, signal}, or null if !block and the
// process still runs. Used on paths where the child is known to be gone.
Napi::Value WaitExit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pidfd = IntArg(info, 0, "waitExit(pidfd: number, block: boolean)");
  bool block = info.Length() > 1 && info[1].ToBoolean().Value();
  siginfo_t status;
  int err;
  if (Reap(pidfd, block ? 0 : WNOHANG, &status, &err)) return ExitStatus(env, status);
  if (err != 0) ThrowErrno(env, "waitid", err);
  return env.Null();
}

// new ExitWatcher(pidfd, callback): polls the pidfd on the event loop and
// calls callback({exitCode, signal}) once, after reaping the child. The
// pidfd stays the caller's to close.
class ExitWatcher : public Napi::ObjectWrap<ExitWatcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ExitWatcher",
                       {InstanceMethod("ref", &ExitWatcher::RefLoop), InstanceMethod("unref", &ExitWatcher::UnrefLoop)});
  }

  explicit ExitWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ExitWatcher>(info) {
    Napi::Env env = info.Env();
    const char* usage = "new ExitWatcher(pidfd: number, callback: (status) => void)";
    if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsFunction()) ThrowUsage(env, usage);
    pidfd_ = info[0].As<Napi::Number>().Int32Value();
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "tsrun:ExitWatcher");
    uv_loop_t* loop;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "ExitWatcher: no event loop");
    poll_ = new uv_poll_t;
    int rc = uv_poll_init(loop, poll_, pidfd_);
    if (rc == 0) {
      poll_->data = this;
      rc = uv_poll_start(poll_, UV_READABLE, OnReadable);
      if (rc != 0) ClosePoll();
    } else {
      delete poll_;
      poll_ = nullptr;
    }
    if (rc != 0) ThrowErrno(env, "uv_poll_start", -rc);
    // The JS object must outlive the poll, whatever the caller keeps.
    Ref();
  }

 private:
  static void OnReadable(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<ExitWatcher*>(handle->data);
    siginfo_t info;
    int err = 0;
    bool reaped = Reap(self->pidfd_, WNOHANG, &info, &err);
    if (!reaped && err == 0 && status == 0) return;  // woken early; still running
    self->ClosePoll();
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    Napi::Value result;
    if (reaped) {
      result = ExitStatus(env, info);
    } else {
      int code = err != 0 ? err : -status;
      Napi::Object failure = Napi::Object::New(env);
      failure.Set("error", Napi::String::New(env, strerrorname_np(code) ? strerrorname_np(code) : "EUNKNOWN"));
      result = failure;
    }
    self->Unref();
    // Called once: the strong reference to the callback (and the container
    // its closure holds) goes with this call. Kept, it would be a GC root
    // that keeps this wrapper, and so itself, alive for good.
    Napi::FunctionReference callback = std::move(self->callback_);
    // A uv callback has no JS frame above it to take a C++ exception: an
    // error of the callback goes to Node's uncaught-exception handling, and
    // one with no value (Node tearing the environment down) is dropped.
    try {
      callback.MakeCallback(env.Global(), {result}, *self->context_);
    } catch (const Napi::Error& error) {
      if (!error.Value().IsEmpty()) napi_fatal_exception(env, error.Value());
    }
  }

  void ClosePoll() {
    if (poll_ == nullptr) return;
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }

  Napi::Value RefLoop(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  Napi::Value UnrefLoop(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  int pidfd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

Napi::Function DefineExitWatcher(Napi::Env env) { return ExitWatcher::Define(env); }

}  // namespace tsrun
