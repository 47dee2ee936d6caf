// The addon's only export list. Every function here is a thin syscall
// wrapper; the policy (which namespaces, which mounts) lives in TypeScript.
#include <napi.h>

namespace tsrun {

Napi::Value Spawn(const Napi::CallbackInfo& info);
Napi::Value Pipe(const Napi::CallbackInfo& info);
Napi::Value SocketPair(const Napi::CallbackInfo& info);
Napi::Value SyncWait(const Napi::CallbackInfo& info);
Napi::Value SyncRelease(const Napi::CallbackInfo& info);
Napi::Value ReadChildError(const Napi::CallbackInfo& info);
Napi::Value PidfdOpen(const Napi::CallbackInfo& info);
Napi::Value PidfdSendSignal(const Napi::CallbackInfo& info);
Napi::Value WaitExit(const Napi::CallbackInfo& info);
Napi::Function DefineExitWatcher(Napi::Env env);
Napi::Value Mount(const Napi::CallbackInfo& info);
Napi::Value MountAt(const Napi::CallbackInfo& info);
Napi::Value Umount2(const Napi::CallbackInfo& info);
Napi::Value PivotRoot(const Napi::CallbackInfo& info);
Napi::Value Mknod(const Napi::CallbackInfo& info);
Napi::Value OpenInRoot(const Napi::CallbackInfo& info);
Napi::Value Sethostname(const Napi::CallbackInfo& info);
Napi::Value Lsetxattr(const Napi::CallbackInfo& info);
Napi::Value Lgetxattr(const Napi::CallbackInfo& info);
Napi::Value Llistxattr(const Napi::CallbackInfo& info);
Napi::Value Flock(const Napi::CallbackInfo& info);
Napi::Value IdmapBind(const Napi::CallbackInfo& info);
Napi::Value ReceiveFd(const Napi::CallbackInfo& info);
Napi::Value ConnectUnix(const Napi::CallbackInfo& info);
Napi::Value SetWindowSize(const Napi::CallbackInfo& info);
Napi::Value ReadOneByteString(const Napi::CallbackInfo& info);
Napi::Value MapReadOnly(const Napi::CallbackInfo& info);
Napi::Value NewNetworkNamespaceAsync(const Napi::CallbackInfo& info);

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("spawn", Napi::Function::New(env, Spawn));
  exports.Set("pipe", Napi::Function::New(env, Pipe));
  exports.Set("socketPair", Napi::Function::New(env, SocketPair));
  exports.Set("syncWait", Napi::Function::New(env, SyncWait));
  exports.Set("syncRelease", Napi::Function::New(env, SyncRelease));
  exports.Set("readChildError", Napi::Function::New(env, ReadChildError));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen));
  exports.Set("pidfdSendSignal", Napi::Function::New(env, PidfdSendSignal));
  exports.Set("waitExit", Napi::Function::New(env, WaitExit));
  exports.Set("ExitWatcher", DefineExitWatcher(env));
  exports.Set("mount", Napi::Function::New(env, Mount));
  exports.Set("mountAt", Napi::Function::New(env, MountAt));
  exports.Set("umount2", Napi::Function::New(env, Umount2));
  exports.Set("pivotRoot", Napi::Function::New(env, PivotRoot));
  exports.Set("mknod", Napi::Function::New(env, Mknod));
  exports.Set("openInRoot", Napi::Function::New(env, OpenInRoot));
  exports.Set("sethostname", Napi::Function::New(env, Sethostname));
  exports.Set("lsetxattr", Napi::Function::New(env, Lsetxattr));
  exports.Set("lgetxattr", Napi::Function::New(env, Lgetxattr));
  exports.Set("llistxattr", Napi::Function::New(env, Llistxattr));
  exports.Set("flock", Napi::Function::New(env, Flock));
  exports.Set("idmapBind", Napi::Function::New(env, IdmapBind));
  exports.Set("receiveFd", Napi::Function::New(env, ReceiveFd));
  exports.Set("connectUnix", Napi::Function::New(env, ConnectUnix));
  exports.Set("setWindowSize", Napi::Function::New(env, SetWindowSize));
  exports.Set("readOneByteString", Napi::Function::New(env, ReadOneByteString));
  exports.Set("mapReadOnly", Napi::Function::New(env, MapReadOnly));
  exports.Set("newNetworkNamespace", Napi::Function::New(env, NewNetworkNamespaceAsync));
  return exports;
}

}  // namespace tsrun

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return tsrun::Init(env, exports); }

NODE_API_MODULE(tsrun_native, InitModule)
