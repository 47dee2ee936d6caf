#include "errors.h"

#include <cstring>

namespace tsrun {

Napi::Error ErrnoError(Napi::Env env, const char* syscall, int err, const std::string& path) {
  const char* name = strerrorname_np(err);
  if (name == nullptr) name = "EUNKNOWN";
  std::string message = std::string(name) + ": " + strerror(err) + ", " + syscall;
  if (!path.empty()) message += " '" + path + "'";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", name);
  error.Set("errno", static_cast<double>(-err));
  error.Set("syscall", syscall);
  if (!path.empty()) error.Set("path", path.c_str());
  return error;
}

void ThrowErrno(Napi::Env env, const char* syscall, int err, const std::string& path) { throw ErrnoError(env, syscall, err, path); }

void ThrowUsage(Napi::Env env, const char* usage) {
  throw Napi::TypeError::New(env, std::string("Usage: ") + usage);
}

}  // namespace tsrun
