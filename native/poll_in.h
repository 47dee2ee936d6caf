// Waiting for a parent-side fd to become readable, with a timeout.
#pragma once

#include <poll.h>

#include <cerrno>

namespace tsrun {

// poll(2) for POLLIN, retried on EINTR: >0 readable, 0 timed out, <0 failed (errno set).
inline int PollIn(int fd, int timeout_ms) {
  struct pollfd pfd = {fd, POLLIN, 0};
  int ready;
  do {
    ready = poll(&pfd, 1, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  return ready;
}

}  // namespace tsrun
