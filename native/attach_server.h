// The attach socket of tsrun-monitor: `tsrun attach` connects to
// DIR/attach.sock, gets the container's output live, and may send typed
// input and window sizes, which the monitor passes to the container's pty
// master (run -t) or to the pipe that is its stdin (run -i).
//
// Frames, both ways: u8 type, u32 payload length (little endian), payload.
#pragma once

#include <poll.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fd.h"

namespace tsrun {

enum AttachFrame : uint8_t {
  kFrameHello = 1,      // monitor -> client, first: u8 kHello* flags
  kFrameStdout = 2,     // output (a pty's output is all stdout)
  kFrameStderr = 3,
  kFrameExit = 4,       // i32 exit code; the monitor closes the connection after it
  kFrameStdin = 16,     // client -> monitor: input for the container
  kFrameStdinEof = 17,  // the client's input ended: the container's stdin pipe is closed
  kFrameResize = 18,    // u16 rows, u16 cols
};

enum HelloFlags : uint8_t { kHelloTty = 1, kHelloStdin = 2 };

class AttachServer {
 public:
  // The entries Poll() fills: the listening socket, the input's target, each client slot.
  static constexpr size_t kMaxClients = 8;
  static constexpr size_t kPollCount = 2 + kMaxClients;

  // Listens on DIR/attach.sock, mode 0600; false with errno set on failure.
  // With `open_stdin` (run -i) clients' input goes to the container: to the
  // pty master once SetMaster() gives it (`tty`), else to `stdin_pipe` (owned
  // from now on), the write end of the pipe that is the container's stdin.
  bool Listen(const std::string& dir, bool tty, bool open_stdin, int stdin_pipe);

  // The pty master (not owned), or -1 once it is closed.
  void SetMaster(int master);

  void Poll(struct pollfd* fds) const;
  void Handle(const struct pollfd* fds);

  // Output of the container, to every client.
  void Broadcast(AttachFrame type, const char* data, size_t len);

  // The container has exited: each client gets its exit code, then the socket goes.
  void Exit(int code);

 private:
  struct Client {
    Fd fd;
    std::string out;  // framed output the client has not taken yet
    std::string in;   // received bytes of a frame not yet complete
  };

  void Accept();
  void Queue(Client* client, AttachFrame type, const char* data, size_t len);
  void Flush(Client* client);
  void Read(Client* client);
  void Drop(Client* client);
  void Dispatch(uint8_t type, const char* data, size_t len);
  void WriteInput();
  void CloseStdin();
  int InputFd() const;
  bool TakesInput() const;

  Fd dir_;
  Fd listen_;
  bool tty_ = false;
  bool open_stdin_ = false;
  int master_ = -1;
  bool master_closed_ = false;
  Fd stdin_pipe_;
  bool stdin_eof_ = false;
  std::string pending_input_;
  // A window size that came before the master did.
  uint32_t pending_size_ = 0;
  Client clients_[kMaxClients];
};

}  // namespace tsrun
