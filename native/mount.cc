// Thin wrappers for the filesystem syscalls Node lacks: mount, umount2,
// pivot_root, mknod, sethostname, extended attributes, idmapped binds and
// openat2 inside a root. Each checks its arguments, makes one syscall and
// throws an fs-style error.
// See: man 2 mount, man 2 umount2, man 2 pivot_root, man 2 mknod,
// man 2 setxattr, man 2 getxattr, man 2 listxattr, man 2 openat2.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "errors.h"
#include "plan_exec.h"

namespace tsrun {
namespace {

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* usage) {
  if (info.Length() <= index || !info[index].IsString()) ThrowUsage(info.Env(), usage);
  return info[index].As<Napi::String>().Utf8Value();
}

// A string, or null/undefined for "no value" (mount's source, fstype, data).
bool OptionalStringArg(const Napi::CallbackInfo& info, size_t index, const char* usage, std::string* out) {
  if (info.Length() <= index || info[index].IsNull() || info[index].IsUndefined()) return false;
  if (!info[index].IsString()) ThrowUsage(info.Env(), usage);
  *out = info[index].As<Napi::String>().Utf8Value();
  return true;
}

double NumberArg(const Napi::CallbackInfo& info, size_t index, const char* usage) {
  if (info.Length() <= index || !info[index].IsNumber()) ThrowUsage(info.Env(), usage);
  return info[index].As<Napi::Number>().DoubleValue();
}

}  // namespace

Napi::Value Mount(const Napi::CallbackInfo& info) {
  const char* usage = "mount(source: string|null, target: string, fstype: string|null, flags: number, data?: string|null)";
  std::string source, fstype, data;
  bool has_source = OptionalStringArg(info, 0, usage, &source);
  std::string target = StringArg(info, 1, usage);
  bool has_fstype = OptionalStringArg(info, 2, usage, &fstype);
  auto flags = static_cast<unsigned long>(NumberArg(info, 3, usage));
  bool has_data = OptionalStringArg(info, 4, usage, &data);
  if (mount(has_source ? source.c_str() : nullptr, target.c_str(), has_fstype ? fstype.c_str() : nullptr, flags,
            has_data ? data.c_str() : nullptr) != 0) {
    ThrowErrno(info.Env(), "mount", errno, target);
  }
  return info.Env().Undefined();
}

// mountAt(cwd, source, target, fstype, flags, data): mount(2) with relative
// paths in `data` resolved from `cwd`. overlayfs takes its layers in one
// option string of at most a page; relative short links (l/ABC...) keep 128
// layers under it. chdir(2) would move every thread of Node, so the mount
// runs on a thread of its own whose cwd alone is unshared (CLONE_FS).
Napi::Value MountAt(const Napi::CallbackInfo& info) {
  const char* usage = "mountAt(cwd: string, source: string|null, target: string, fstype: string|null, flags: number, data?: string|null)";
  std::string cwd = StringArg(info, 0, usage);
  std::string source, fstype, data;
  bool has_source = OptionalStringArg(info, 1, usage, &source);
  std::string target = StringArg(info, 2, usage);
  bool has_fstype = OptionalStringArg(info, 3, usage, &fstype);
  auto flags = static_cast<unsigned long>(NumberArg(info, 4, usage));
  bool has_data = OptionalStringArg(info, 5, usage, &data);
  const char* failed_call = nullptr;
  int failed_errno = 0;
  std::thread worker([&] {
    if (unshare(CLONE_FS) != 0) {
      failed_call = "unshare";
    } else if (chdir(cwd.c_str()) != 0) {
      failed_call = "chdir";
    } else if (mount(has_source ? source.c_str() : nullptr, target.c_str(), has_fstype ? fstype.c_str() : nullptr, flags,
                     has_data ? data.c_str() : nullptr) != 0) {
      failed_call = "mount";
    }
    if (failed_call != nullptr) failed_errno = errno;
  });
  worker.join();
  if (failed_call != nullptr) ThrowErrno(info.Env(), failed_call, failed_errno, failed_call[0] == 'c' ? cwd : target);
  return info.Env().Undefined();
}

Napi::Value Umount2(const Napi::CallbackInfo& info) {
  const char* usage = "umount2(target: string, flags: number)";
  std::string target = StringArg(info, 0, usage);
  int flags = static_cast<int>(NumberArg(info, 1, usage));
  if (umount2(target.c_str(), flags) != 0) ThrowErrno(info.Env(), "umount2", errno, target);
  return info.Env().Undefined();
}

Napi::Value PivotRoot(const Napi::CallbackInfo& info) {
  const char* usage = "pivotRoot(newRoot: string, putOld: string)";
  std::string new_root = StringArg(info, 0, usage);
  std::string put_old = StringArg(info, 1, usage);
  if (syscall(SYS_pivot_root, new_root.c_str(), put_old.c_str()) != 0) {
    ThrowErrno(info.Env(), "pivot_root", errno, new_root);
  }
  return info.Env().Undefined();
}

Napi::Value Mknod(const Napi::CallbackInfo& info) {
  const char* usage = "mknod(path: string, mode: number, major: number, minor: number)";
  std::string path = StringArg(info, 0, usage);
  auto mode = static_cast<mode_t>(NumberArg(info, 1, usage));
  auto major_number = static_cast<unsigned>(NumberArg(info, 2, usage));
  auto minor_number = static_cast<unsigned>(NumberArg(info, 3, usage));
  if (mknod(path.c_str(), mode, makedev(major_number, minor_number)) != 0) {
    ThrowErrno(info.Env(), "mknod", errno, path);
  }
  return info.Env().Undefined();
}

// openInRoot(root, path, flags): an fd of `path` resolved with `root` as
// "/", as the plan's steps resolve theirs: ".." and symlinks, absolute or
// not, stay inside the root, and nothing can swap a component between the
// resolving and the open. ENOSYS: no openat2 (Linux < 5.6).
Napi::Value OpenInRoot(const Napi::CallbackInfo& info) {
  const char* usage = "openInRoot(root: string, path: string, flags: number)";
  std::string root = StringArg(info, 0, usage);
  std::string inside = StringArg(info, 1, usage);
  auto flags = static_cast<long>(NumberArg(info, 2, usage));
  std::string full = root + "/" + inside;
  long fd = OpenInRootFd(full.c_str(), static_cast<long>(root.size()), flags);
  if (fd < 0) ThrowErrno(info.Env(), "openat2", static_cast<int>(-fd), full);
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

Napi::Value Sethostname(const Napi::CallbackInfo& info) {
  std::string name = StringArg(info, 0, "sethostname(name: string)");
  if (sethostname(name.c_str(), name.size()) != 0) ThrowErrno(info.Env(), "sethostname", errno);
  return info.Env().Undefined();
}

// lsetxattr(path, name, value: Buffer, flags): on the link itself, as layer
// files are stored.
Napi::Value Lsetxattr(const Napi::CallbackInfo& info) {
  const char* usage = "lsetxattr(path: string, name: string, value: Buffer, flags: number)";
  std::string path = StringArg(info, 0, usage);
  std::string name = StringArg(info, 1, usage);
  if (info.Length() < 3 || !info[2].IsBuffer()) ThrowUsage(info.Env(), usage);
  auto value = info[2].As<Napi::Buffer<char>>();
  int flags = static_cast<int>(NumberArg(info, 3, usage));
  if (lsetxattr(path.c_str(), name.c_str(), value.Data(), value.Length(), flags) != 0) {
    ThrowErrno(info.Env(), "lsetxattr", errno, path);
  }
  return info.Env().Undefined();
}

// lgetxattr(path, name): the value, or null when the attribute is absent.
Napi::Value Lgetxattr(const Napi::CallbackInfo& info) {
  const char* usage = "lgetxattr(path: string, name: string)";
  std::string path = StringArg(info, 0, usage);
  std::string name = StringArg(info, 1, usage);
  for (;;) {
    ssize_t size = lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (size < 0 && errno == ENODATA) return info.Env().Null();
    if (size < 0) ThrowErrno(info.Env(), "lgetxattr", errno, path);
    std::vector<char> value(static_cast<size_t>(size));
    ssize_t got = lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (got < 0 && errno == ERANGE) continue;  // grew between the two calls
    if (got < 0) ThrowErrno(info.Env(), "lgetxattr", errno, path);
    return Napi::Buffer<char>::Copy(info.Env(), value.data(), static_cast<size_t>(got));
  }
}

Napi::Value Llistxattr(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, 0, "llistxattr(path: string)");
  for (;;) {
    ssize_t size = llistxattr(path.c_str(), nullptr, 0);
    if (size < 0) ThrowErrno(info.Env(), "llistxattr", errno, path);
    std::vector<char> names(static_cast<size_t>(size));
    ssize_t got = llistxattr(path.c_str(), names.data(), names.size());
    if (got < 0 && errno == ERANGE) continue;
    if (got < 0) ThrowErrno(info.Env(), "llistxattr", errno, path);
    Napi::Array result = Napi::Array::New(info.Env());
    uint32_t index = 0;
    for (ssize_t start = 0; start < got;) {
      std::string name(names.data() + start);
      result.Set(index++, name);
      start += static_cast<ssize_t>(name.size()) + 1;
    }
    return result;
  }
}

}  // namespace tsrun

namespace tsrun {

// idmapBind(source, target, usernsFd): binds `source` on `target` with the
// ids of the user namespace `usernsFd` mapped onto it (an idmapped mount),
// so that files owned by host root show as the namespace's root.
// See: man 2 open_tree, man 2 mount_setattr, man 2 move_mount.
Napi::Value IdmapBind(const Napi::CallbackInfo& info) {
  const char* usage = "idmapBind(source: string, target: string, usernsFd: number)";
  std::string source = StringArg(info, 0, usage);
  std::string target = StringArg(info, 1, usage);
  int userns_fd = static_cast<int>(NumberArg(info, 2, usage));
  int tree = open_tree(AT_FDCWD, source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree < 0) ThrowErrno(info.Env(), "open_tree", errno, source);
  struct mount_attr attr = {};
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<uint64_t>(userns_fd);
  if (mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) {
    int err = errno;
    close(tree);
    ThrowErrno(info.Env(), "mount_setattr", err, source);
  }
  if (move_mount(tree, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    int err = errno;
    close(tree);
    ThrowErrno(info.Env(), "move_mount", err, target);
  }
  close(tree);
  return info.Env().Undefined();
}

}  // namespace tsrun
