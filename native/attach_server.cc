#include "attach_server.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace tsrun {
namespace {

// Output a client has not read yet, beyond which it is dropped rather than
// holding the monitor (and through it the container) back.
constexpr size_t kClientBacklogMax = 256 * 1024;
constexpr uint32_t kFrameMax = 64 * 1024;
constexpr size_t kHeaderSize = 5;

uint32_t ReadU32(const char* p) {
  const unsigned char* b = reinterpret_cast<const unsigned char*>(p);
  return b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
}

uint16_t ReadU16(const char* p) {
  const unsigned char* b = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(b[0] | (b[1] << 8));
}

void ApplySize(int master, uint32_t packed) {
  struct winsize size = {static_cast<unsigned short>(packed >> 16), static_cast<unsigned short>(packed & 0xffff), 0, 0};
  ioctl(master, TIOCSWINSZ, &size);
}

// A unix socket closed with unread data in it resets the peer (ECONNRESET),
// which may then lose what it had not read yet: the exit code and the last
// output. So: no more writes, then read what the client still sends (its
// stdin's end, say) until it closes its side too, within a second.
void DrainUntilClosed(int fd) {
  shutdown(fd, SHUT_WR);
  struct timeval timeout = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
  }
}

}  // namespace

bool AttachServer::Listen(const std::string& dir, bool tty, bool open_stdin, int stdin_pipe) {
  tty_ = tty;
  open_stdin_ = open_stdin;
  stdin_pipe_.Reset(stdin_pipe);
  if (stdin_pipe >= 0) fcntl(stdin_pipe, F_SETFL, fcntl(stdin_pipe, F_GETFL) | O_NONBLOCK);
  dir_.Reset(open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (dir_.get() < 0) return false;
  // A socket's path is limited to 108 bytes; the directory's fd keeps it short whatever the state directory.
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/attach.sock", dir_.get());
  listen_.Reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (listen_.get() < 0) return false;
  // One left by an earlier run of the container whose monitor died.
  unlinkat(dir_.get(), "attach.sock", 0);
  mode_t old_mask = umask(0177);
  int bound = bind(listen_.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr);
  umask(old_mask);
  return bound == 0 && listen(listen_.get(), 8) == 0;
}

void AttachServer::SetMaster(int master) {
  master_ = master;
  if (master < 0) {
    master_closed_ = true;
    pending_input_.clear();
    return;
  }
  if (pending_size_ != 0) ApplySize(master, pending_size_);
  WriteInput();
}

int AttachServer::InputFd() const {
  if (!open_stdin_) return -1;
  return tty_ ? master_ : stdin_pipe_.get();
}

bool AttachServer::TakesInput() const {
  if (!open_stdin_) return false;
  return tty_ ? !master_closed_ : stdin_pipe_.get() >= 0 && !stdin_eof_;
}

void AttachServer::Poll(struct pollfd* fds) const {
  fds[0] = {listen_.get(), POLLIN, 0};
  fds[1] = {pending_input_.empty() ? -1 : InputFd(), POLLOUT, 0};
  for (size_t i = 0; i < kMaxClients; i++) {
    const Client& client = clients_[i];
    // While input waits for the container to take it, clients are not read: they wait too.
    short events = static_cast<short>((pending_input_.empty() ? POLLIN : 0) | (client.out.empty() ? 0 : POLLOUT));
    fds[2 + i] = {client.fd.get(), events, 0};
  }
}

void AttachServer::Handle(const struct pollfd* fds) {
  if (fds[0].revents & POLLIN) Accept();
  if (fds[1].revents != 0) WriteInput();
  for (size_t i = 0; i < kMaxClients; i++) {
    Client* client = &clients_[i];
    short revents = fds[2 + i].revents;
    if (client->fd.get() < 0 || revents == 0) continue;
    if (revents & POLLOUT) Flush(client);
    if (client->fd.get() >= 0 && (revents & (POLLIN | POLLHUP | POLLERR))) Read(client);
  }
}

void AttachServer::Accept() {
  for (;;) {
    int fd = accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    Client* client = nullptr;
    for (Client& slot : clients_) {
      if (slot.fd.get() < 0) {
        client = &slot;
        break;
      }
    }
    if (client == nullptr) {
      close(fd);
      continue;
    }
    client->fd.Reset(fd);
    char flags = static_cast<char>((tty_ ? kHelloTty : 0) | (TakesInput() ? kHelloStdin : 0));
    Queue(client, kFrameHello, &flags, 1);
    Flush(client);
  }
}

void AttachServer::Queue(Client* client, AttachFrame type, const char* data, size_t len) {
  if (client->out.size() + kHeaderSize + len > kClientBacklogMax) {
    Drop(client);
    return;
  }
  char header[kHeaderSize] = {static_cast<char>(type), static_cast<char>(len & 0xff), static_cast<char>((len >> 8) & 0xff),
                              static_cast<char>((len >> 16) & 0xff), static_cast<char>((len >> 24) & 0xff)};
  client->out.append(header, kHeaderSize);
  client->out.append(data, len);
}

void AttachServer::Flush(Client* client) {
  size_t sent = 0;
  while (sent < client->out.size()) {
    ssize_t n = send(client->fd.get(), client->out.data() + sent, client->out.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      Drop(client);
      return;
    }
    sent += static_cast<size_t>(n);
  }
  client->out.erase(0, sent);
}

void AttachServer::Read(Client* client) {
  char buf[4096];
  ssize_t n = recv(client->fd.get(), buf, sizeof buf, 0);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    Drop(client);
    return;
  }
  client->in.append(buf, static_cast<size_t>(n));
  size_t used = 0;
  while (client->in.size() - used >= kHeaderSize) {
    const char* frame = client->in.data() + used;
    uint32_t len = ReadU32(frame + 1);
    if (len > kFrameMax) {
      Drop(client);
      return;
    }
    if (client->in.size() - used < kHeaderSize + len) break;
    Dispatch(static_cast<uint8_t>(frame[0]), frame + kHeaderSize, len);
    used += kHeaderSize + len;
  }
  client->in.erase(0, used);
  WriteInput();
}

void AttachServer::Drop(Client* client) {
  client->fd.Reset();
  client->out.clear();
  client->in.clear();
  // Give the memory back: a client that took much output leaves no large buffer behind.
  client->out.shrink_to_fit();
  client->in.shrink_to_fit();
}

void AttachServer::Dispatch(uint8_t type, const char* data, size_t len) {
  switch (type) {
    case kFrameStdin:
      if (TakesInput()) pending_input_.append(data, len);
      break;
    case kFrameStdinEof:
      if (!tty_ && stdin_pipe_.get() >= 0) stdin_eof_ = true;
      break;
    case kFrameResize:
      if (!tty_ || len != 4) break;
      pending_size_ = (static_cast<uint32_t>(ReadU16(data)) << 16) | ReadU16(data + 2);
      if (master_ >= 0) ApplySize(master_, pending_size_);
      break;
    default:
      break;
  }
}

void AttachServer::WriteInput() {
  int fd = InputFd();
  size_t written = 0;
  while (fd >= 0 && written < pending_input_.size()) {
    ssize_t n = write(fd, pending_input_.data() + written, pending_input_.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      // The container closed its stdin (EPIPE) or its terminal went (EIO): nobody takes input any more.
      written = pending_input_.size();
      if (!tty_) CloseStdin();
      break;
    }
    written += static_cast<size_t>(n);
  }
  pending_input_.erase(0, written);
  if (pending_input_.empty() && stdin_eof_) CloseStdin();
}

void AttachServer::CloseStdin() {
  stdin_pipe_.Reset();
  stdin_eof_ = false;
}

void AttachServer::Broadcast(AttachFrame type, const char* data, size_t len) {
  for (Client& client : clients_) {
    if (client.fd.get() < 0) continue;
    Queue(&client, type, data, len);
    if (client.fd.get() >= 0) Flush(&client);
  }
}

void AttachServer::Exit(int code) {
  char payload[4] = {static_cast<char>(code & 0xff), static_cast<char>((code >> 8) & 0xff), static_cast<char>((code >> 16) & 0xff),
                     static_cast<char>((code >> 24) & 0xff)};
  for (Client& client : clients_) {
    if (client.fd.get() < 0) continue;
    Queue(&client, kFrameExit, payload, sizeof payload);
    if (client.fd.get() < 0) continue;
    // What is left of the output and the exit code, with a bound: a client that reads nothing does not keep the monitor.
    int fd = client.fd.get();
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    struct timeval timeout = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    Flush(&client);
    if (client.fd.get() >= 0) DrainUntilClosed(client.fd.get());
    Drop(&client);
  }
  listen_.Reset();
  if (dir_.get() >= 0) unlinkat(dir_.get(), "attach.sock", 0);
}

}  // namespace tsrun
