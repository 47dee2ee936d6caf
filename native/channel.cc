// The parent's half of the channels to a cloned child: the error channel
// (did the exec happen, or which step failed with which errno) and the
// sync channel (the child waits while the parent writes its uid/gid maps).
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "errors.h"
#include "poll_in.h"
#include "fd.h"
#include "plan.h"

namespace tsrun {
namespace {

int FdArg(const Napi::CallbackInfo& info, size_t index, const char* usage) {
  if (info.Length() <= index || !info[index].IsNumber()) ThrowUsage(info.Env(), usage);
  return info[index].As<Napi::Number>().Int32Value();
}

Napi::Value FdPair(Napi::Env env, int fds[2]) {
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(0u, Napi::Number::New(env, fds[0]));
  pair.Set(1u, Napi::Number::New(env, fds[1]));
  return pair;
}

}  // namespace

Napi::Value Pipe(const Napi::CallbackInfo& info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) ThrowErrno(info.Env(), "pipe2", errno);
  return FdPair(info.Env(), fds);
}

Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) ThrowErrno(info.Env(), "socketpair", errno);
  return FdPair(info.Env(), fds);
}

// syncWait(fd, timeoutMs): the byte the child sent at its sync point.
Napi::Value SyncWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "syncWait(fd: number, timeoutMs: number)";
  int fd = FdArg(info, 0, usage);
  if (info.Length() < 2 || !info[1].IsNumber()) ThrowUsage(env, usage);
  int timeout = info[1].As<Napi::Number>().Int32Value();
  int ready = PollIn(fd, timeout);
  if (ready < 0) ThrowErrno(env, "poll", errno);
  if (ready == 0) ThrowErrno(env, "sync wait", ETIMEDOUT);
  unsigned char byte;
  ssize_t n;
  do {
    n = read(fd, &byte, 1);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, "read", errno);
  if (n == 0) return env.Null();  // the child exited before its sync point
  return Napi::Number::New(env, byte);
}

Napi::Value SyncRelease(const Napi::CallbackInfo& info) {
  const char* usage = "syncRelease(fd: number, byte: number)";
  int fd = FdArg(info, 0, usage);
  int value = FdArg(info, 1, usage);
  unsigned char byte = static_cast<unsigned char>(value);
  ssize_t n;
  do {
    n = write(fd, &byte, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) ThrowErrno(info.Env(), "write", n < 0 ? errno : EIO);
  return info.Env().Undefined();
}

// readChildError(fd, keepOpen?): null once the exec closed the channel, or
// {step, errno} as the child reported it. Closes fd unless keepOpen (a
// ForkIntoParent notice is followed by the report of the new process).
Napi::Value ReadChildError(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fd fd(FdArg(info, 0, "readChildError(fd: number, keepOpen?: boolean)"));
  struct Keep {
    Fd& fd;
    bool keep;
    ~Keep() {
      if (keep) fd.Release();
    }
  } keep{fd, info.Length() > 1 && info[1].ToBoolean().Value()};
  ChildError report;
  size_t got = 0;
  while (got < sizeof report) {
    ssize_t n = read(fd.get(), reinterpret_cast<char*>(&report) + got, sizeof report - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ThrowErrno(env, "read", errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got == 0) return env.Null();
  if (got != sizeof report) throw Napi::Error::New(env, "readChildError: short report from the child");
  Napi::Object result = Napi::Object::New(env);
  result.Set("step", static_cast<double>(report.step));
  result.Set("errno", static_cast<double>(report.err));
  return result;
}

}  // namespace tsrun
