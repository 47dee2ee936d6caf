// The runtime's side of a container's terminal: receiving the master the
// child allocated (plan_exec.cc, Op::OpenPty) and resizing it.
// See: man 4 pts, man 2 ioctl_tty, man 7 unix (SCM_RIGHTS).
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>

#include <cerrno>
#include <cstring>

#include "errors.h"
#include "poll_in.h"

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

  char byte;
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, "recvmsg", errno);
  if (n == 0) return env.Null();
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (cmsg == nullptr || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
    throw Napi::Error::New(env, "receiveFd: the message carried no file descriptor");
  }
  int fd;
  std::memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
  return Napi::Number::New(env, fd);
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
