// The parsed plan and the child-side interpreter.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "plan.h"

namespace tsrun {

struct PreparedStep {
  Op op;
  uint32_t flags;
  int64_t args[3];
  const char* strs[4];
  // String lists (Exec: candidates, argv, envp), NULL-terminated.
  char* const* lists[3];
  const gid_t* gids;
  size_t gid_count;
  // Seccomp: the BPF program, copied out of the pool so that it is aligned.
  const struct sock_filter* filter;
  size_t filter_len;
};

// Owns everything the child reads; built by the parent before the clone.
struct PreparedPlan {
  std::vector<char> pool;
  std::vector<PreparedStep> steps;
  std::vector<std::vector<char*>> lists;
  std::vector<std::vector<gid_t>> gid_lists;
  std::vector<std::vector<struct sock_filter>> filters;
};

// Parses the wire format; on malformed input returns false and sets `why`.
bool PreparePlan(const uint8_t* data, size_t size, PreparedPlan* out, std::string* why);

struct ChildContext {
  const PreparedStep* steps;
  size_t step_count;
  int error_fd;  // write end of the error channel (CLOEXEC)
  int sync_fd;   // child end of the sync channel, or -1
  // The parent's end, which a forked child holds a copy of: closed first
  // thing, or the child's sync reads would never see the parent go away.
  int parent_sync_fd;
  // The CPUs to give the child back first thing, when the parent pinned
  // itself for the clone (spawn.cc); null otherwise.
  const void* affinity;
  size_t affinity_size;
  // Where the child stores its start time (starttime of /proc/self/stat,
  // clock ticks since boot; 0 if unreadable) first thing, for the
  // container's record: memory the parent reads once the clone returns,
  // which only a vfork child shares. Null: not asked for. Read by the
  // parent after an exec, /proc/PID/stat took ~0.16 ms (the container
  // running on); the child's own read of it is cheap.
  uint64_t* start_time;
};

// Sets IFF_UP on the interface `name` of the caller's network namespace,
// with raw syscalls only (safe in a CLONE_VM child). Returns 0 or -errno.
long LinkUp(const char* name);

// The plan's own openat2(RESOLVE_IN_ROOT) open, for the addon's
// openInRoot: `path` is the root (its first `root_len` bytes) and the part
// inside it. Returns the fd (O_CLOEXEC) or -errno; -ENOSYS without openat2.
long OpenInRootFd(const char* path, long root_len, long flags);

// Runs the plan in the cloned child. Never returns: it either execs or
// reports {step, errno} on error_fd and exits.
[[noreturn]] void RunPlanInChild(const ChildContext* ctx);

}  // namespace tsrun
