// Files handed to V8 without the copies Node makes: what the CLI's launcher
// (scripts/cli-loader.js) reads at every start, a 450 KiB bundle and its
// ~270 KiB code cache. fs.readFileSync reads into a Buffer and then decodes
// into a string on the JS heap; for these two, that and the page faults of
// both copies were about 2 ms of every command.
// See: man 2 mmap, man 2 read.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "errors.h"
#include "fd.h"

namespace tsrun {
namespace {

std::string PathArg(const Napi::CallbackInfo& info, const char* usage) {
  if (info.Length() < 1 || !info[0].IsString()) ThrowUsage(info.Env(), usage);
  return info[0].As<Napi::String>().Utf8Value();
}

// Opens a regular file for reading into `fd` and returns its size; throws an fs-style error.
size_t OpenForReading(Napi::Env env, const std::string& path, Fd* fd) {
  fd->Reset(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd->get() < 0) ThrowErrno(env, "open", errno, path);
  struct stat st;
  if (fstat(fd->get(), &st) != 0) ThrowErrno(env, "fstat", errno, path);
  if (!S_ISREG(st.st_mode)) ThrowErrno(env, "open", S_ISDIR(st.st_mode) ? EISDIR : EINVAL, path);
  return static_cast<size_t>(st.st_size);
}

// node_api_create_external_string_latin1 (Node 20.4+, still marked
// experimental): looked up at run time, so that the addon loads on any
// Node 20 and copies the string where it is missing.
using CreateExternalLatin1 = napi_status (*)(napi_env, char*, size_t, void (*)(napi_env, void*, void*), void*, napi_value*, bool*);

CreateExternalLatin1 ExternalLatin1Factory() {
  static CreateExternalLatin1 factory = reinterpret_cast<CreateExternalLatin1>(dlsym(RTLD_DEFAULT, "node_api_create_external_string_latin1"));
  return factory;
}

void FreeBytes(napi_env, void* data, void*) { free(data); }

void Unmap(napi_env, void* data, size_t* size) {
  munmap(data, *size);
  delete size;
}

}  // namespace

// readOneByteString(path): the file's bytes as a one-byte (Latin-1) string
// that V8 uses in place of its own copy: read once into memory this process
// owns, freed when the string is collected. The bytes are taken as they are:
// for text, only ASCII reads the same as UTF-8 (the build checks the bundle).
Napi::Value ReadOneByteString(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = PathArg(info, "readOneByteString(path: string)");
  Fd fd;
  size_t size = OpenForReading(env, path, &fd);
  char* bytes = static_cast<char*>(malloc(size > 0 ? size : 1));
  if (bytes == nullptr) ThrowErrno(env, "malloc", ENOMEM, path);
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd.get(), bytes + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;  // shorter than fstat said: changed while read
      free(bytes);
      ThrowErrno(env, "read", err, path);
    }
    got += static_cast<size_t>(n);
  }
  napi_value result;
  bool copied = false;
  CreateExternalLatin1 create = ExternalLatin1Factory();
  // V8 copies short strings itself (and then calls FreeBytes at once).
  if (create != nullptr && create(env, bytes, size, FreeBytes, nullptr, &result, &copied) == napi_ok) return Napi::Value(env, result);
  napi_status status = napi_create_string_latin1(env, bytes, size, &result);
  free(bytes);
  if (status != napi_ok) throw Napi::Error::New(env, "readOneByteString: the string could not be made");
  return Napi::Value(env, result);
}

// mapReadOnly(path): a Uint8Array over the file mapped read-only and
// private, unmapped when collected. A change made to the file in place
// shows through, so this is for data read at once, such as a code cache,
// which V8 copies out of it while compiling and which tsrun replaces by
// renaming a new file over it, never in place.
Napi::Value MapReadOnly(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = PathArg(info, "mapReadOnly(path: string)");
  Fd fd;
  size_t size = OpenForReading(env, path, &fd);
  if (size == 0) return Napi::Uint8Array::New(env, 0);
  void* data = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (data == MAP_FAILED) ThrowErrno(env, "mmap", errno, path);
  auto buffer = Napi::ArrayBuffer::New(env, data, size, Unmap, new size_t(size));
  return Napi::Uint8Array::New(env, size, buffer, 0);
}

}  // namespace tsrun
