// What a CLONE_VM child needs from the thread that clones it: a stack of
// its own, and no signal handler running in it before it has reset them
// (spawn.cc, netns.cc).
#pragma once

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>

namespace tsrun {

class ChildStack {
 public:
  static constexpr size_t kSize = 256 * 1024;

  ChildStack() {
    long page = sysconf(_SC_PAGESIZE);
    size_ = kSize + static_cast<size_t>(page);
    base_ = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (base_ == MAP_FAILED) {
      base_ = nullptr;
      return;
    }
    // A guard page below the stack turns an overflow into a fault.
    mprotect(base_, static_cast<size_t>(page), PROT_NONE);
  }
  ~ChildStack() {
    if (base_ != nullptr) munmap(base_, size_);
  }
  bool ok() const { return base_ != nullptr; }
  void* top() const { return static_cast<char*>(base_) + size_; }

 private:
  void* base_;
  size_t size_;
};

class BlockedSignals {
 public:
  BlockedSignals() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved_);
  }
  ~BlockedSignals() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }

 private:
  sigset_t saved_;
};

}  // namespace tsrun
