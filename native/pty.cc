// The runtime's side of a container's terminal: receiving the master the
// child allocated (plan_exec.cc, Op::OpenPty), resizing it, and connecting
// to an OCI --console-socket, over which the child sends it to the engine.
// See: man 4 pts, man 2 ioctl_tty, man 7 unix (SCM_RIGHTS).
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "errors.h"
#include "fd.h"
#include "poll_in.h"
#include "recv_fd.h"

namespace tsrun {

// receiveFd(socket, timeoutMs): the fd the child sent, or null when the
// child closed its end without sending one (it failed before that step).
Napi::Value ReceiveFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "receiveFd(socket: number, timeoutMs: number)";
  if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsNumber()) ThrowUsage(env, usage);
  int sock = info[0].As<Napi::Number>().Int32Value();
  int timeout = info[1].As<Napi::Number>().Int32Value();
  int ready = PollIn(sock, timeout);
  if (ready < 0) ThrowErrno(env, "poll", errno);
  if (ready == 0) ThrowErrno(env, "receive terminal", ETIMEDOUT);

  int fd = RecvFd(sock);
  if (fd < 0 && errno == 0) return env.Null();
  if (fd < 0 && errno == EPROTO) throw Napi::Error::New(env, "receiveFd: the message carried no file descriptor");
  if (fd < 0) ThrowErrno(env, "recvmsg", errno);
  return Napi::Number::New(env, fd);
}

// connectUnix(path): a connected unix stream socket, close-on-exec; an OCI
// --console-socket, over which the container's init sends its pty master.
Napi::Value ConnectUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsString()) ThrowUsage(env, "connectUnix(path: string)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) ThrowErrno(env, "connect", ENAMETOOLONG, path);
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  Fd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) ThrowErrno(env, "socket", errno);
  int ret;
  do {
    ret = connect(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr);
  } while (ret != 0 && errno == EINTR);
  if (ret != 0) ThrowErrno(env, "connect", errno, path);
  return Napi::Number::New(env, sock.Release());
}

// setWindowSize(fd, rows, cols): TIOCSWINSZ; the kernel sends SIGWINCH to
// the terminal's foreground process group.
Napi::Value SetWindowSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "setWindowSize(fd: number, rows: number, cols: number)";
  if (info.Length() != 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) ThrowUsage(env, usage);
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct winsize size = {};
  size.ws_row = static_cast<unsigned short>(info[1].As<Napi::Number>().Uint32Value());
  size.ws_col = static_cast<unsigned short>(info[2].As<Napi::Number>().Uint32Value());
  if (ioctl(fd, TIOCSWINSZ, &size) != 0) ThrowErrno(env, "ioctl(TIOCSWINSZ)", errno);
  return env.Undefined();
}

}  // namespace tsrun
