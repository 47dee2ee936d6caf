// flock(2), which Node lacks: the store's cross-process locks. Only the
// non-blocking form is offered, so that waiting never blocks the event loop;
// the TypeScript side retries with a timer.
#include <sys/file.h>

#include <cerrno>

#include "errors.h"

namespace tsrun {

// flock(fd, operation) -> true when taken, false when another holder has it
// (EWOULDBLOCK); LOCK_NB is always added.
Napi::Value Flock(const Napi::CallbackInfo& info) {
  const char* usage = "flock(fd: number, operation: number)";
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) ThrowUsage(info.Env(), usage);
  int fd = info[0].As<Napi::Number>().Int32Value();
  int operation = info[1].As<Napi::Number>().Int32Value();
  int result;
  do {
    result = flock(fd, operation | LOCK_NB);
  } while (result != 0 && errno == EINTR);
  if (result == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == EWOULDBLOCK) return Napi::Boolean::New(info.Env(), false);
  ThrowErrno(info.Env(), "flock", errno);
}

}  // namespace tsrun
