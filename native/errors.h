// Errors thrown to JavaScript, shaped like Node's own fs errors so that
// `err.code === 'ENOENT'` works the same for tsrun's syscalls.
#pragma once

#include <napi.h>

#include <string>

namespace tsrun {

// Error{code, errno (negative, Node's sign), syscall, path}.
Napi::Error ErrnoError(Napi::Env env, const char* syscall, int err, const std::string& path = "");

// Throws ErrnoError(...).
[[noreturn]] void ThrowErrno(Napi::Env env, const char* syscall, int err, const std::string& path = "");

// Throws a TypeError naming the expected call shape.
[[noreturn]] void ThrowUsage(Napi::Env env, const char* usage);

}  // namespace tsrun
