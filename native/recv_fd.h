// Receiving the one fd a message carries (SCM_RIGHTS): the pty master the
// plan's OpenPty step sends back, to the addon (run -t) or to tsrun-monitor.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace tsrun {

// The fd (close-on-exec), or -1 with errno: 0 when the sender closed its
// end without sending one, EPROTO for a message that carried no fd.
inline int RecvFd(int sock) {
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
  if (n <= 0) {
    if (n == 0) errno = 0;
    return -1;
  }
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (cmsg == nullptr || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
    errno = EPROTO;
    return -1;
  }
  int fd;
  memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
  return fd;
}

}  // namespace tsrun
