// Parent side of the plan: validates the wire format (see plan.h) and
// resolves offsets into pointers, so the child only reads ready memory.
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "plan_exec.h"

namespace tsrun {
namespace {

uint32_t ReadU32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

int64_t ReadI64(const uint8_t* p) {
  int64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

bool ValidOp(uint32_t op) {
  return op >= static_cast<uint32_t>(Op::Mount) && op <= static_cast<uint32_t>(Op::ForkIntoParent);
}

class PoolReader {
 public:
  PoolReader(const std::vector<char>& pool, std::string* why) : pool_(pool), why_(why) {}

  bool String(uint32_t offset, const char** out) {
    if (offset == kNoString) {
      *out = nullptr;
      return true;
    }
    if (offset >= pool_.size() || memchr(pool_.data() + offset, 0, pool_.size() - offset) == nullptr) {
      *why_ = "string offset " + std::to_string(offset) + " is outside the pool";
      return false;
    }
    *out = pool_.data() + offset;
    return true;
  }

  bool List(uint32_t offset, std::vector<const char*>* out) {
    if (offset == kNoString) return true;
    if (offset > pool_.size() || pool_.size() - offset < 4) {
      *why_ = "list offset " + std::to_string(offset) + " is outside the pool";
      return false;
    }
    const uint8_t* base = reinterpret_cast<const uint8_t*>(pool_.data());
    uint32_t count = ReadU32(base + offset);
    if ((pool_.size() - offset - 4) / 4 < count) {
      *why_ = "list at " + std::to_string(offset) + " overruns the pool";
      return false;
    }
    for (uint32_t i = 0; i < count; i++) {
      const char* s;
      if (!String(ReadU32(base + offset + 4 + 4 * i), &s) || s == nullptr) return false;
      out->push_back(s);
    }
    return true;
  }

  bool Blob(uint32_t offset, const uint8_t** data, uint32_t* length) {
    if (offset > pool_.size() || pool_.size() - offset < 4) {
      *why_ = "blob offset " + std::to_string(offset) + " is outside the pool";
      return false;
    }
    const uint8_t* base = reinterpret_cast<const uint8_t*>(pool_.data()) + offset;
    *length = ReadU32(base);
    if (pool_.size() - offset - 4 < *length) {
      *why_ = "blob at " + std::to_string(offset) + " overruns the pool";
      return false;
    }
    *data = base + 4;
    return true;
  }

 private:
  const std::vector<char>& pool_;
  std::string* why_;
};

}  // namespace

bool PreparePlan(const uint8_t* data, size_t size, PreparedPlan* out, std::string* why) {
  if (size < kHeaderSize || ReadU32(data) != kPlanMagic) {
    *why = "not a plan buffer (bad magic)";
    return false;
  }
  if (ReadU32(data + 4) != kPlanVersion) {
    *why = "plan version " + std::to_string(ReadU32(data + 4)) + " is not " + std::to_string(kPlanVersion);
    return false;
  }
  uint32_t count = ReadU32(data + 8);
  uint32_t pool_offset = ReadU32(data + 12);
  if (count == 0 || count > kMaxSteps) {
    *why = "step count " + std::to_string(count) + " out of range";
    return false;
  }
  if (pool_offset != kHeaderSize + count * kStepSize || pool_offset > size) {
    *why = "pool offset does not follow the steps";
    return false;
  }
  out->pool.assign(reinterpret_cast<const char*>(data) + pool_offset, reinterpret_cast<const char*>(data) + size);
  out->steps.resize(count);
  // Pointers into these vectors must stay valid: reserve the worst case.
  out->lists.reserve(count * 3);
  out->gid_lists.reserve(count);
  out->filters.reserve(count);

  PoolReader pool(out->pool, why);
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t* rec = data + kHeaderSize + i * kStepSize;
    PreparedStep& step = out->steps[i];
    memset(&step, 0, sizeof step);
    uint32_t op = ReadU32(rec);
    if (!ValidOp(op)) {
      *why = "step " + std::to_string(i) + ": unknown op " + std::to_string(op);
      return false;
    }
    step.op = static_cast<Op>(op);
    step.flags = ReadU32(rec + 4);
    for (int a = 0; a < 3; a++) step.args[a] = ReadI64(rec + 8 + 8 * a);
    const uint8_t* strs = rec + 32;

    if (step.op == Op::Exec) {
      for (int l = 0; l < 3; l++) {
        std::vector<const char*> items;
        if (!pool.List(ReadU32(strs + 4 * l), &items)) return false;
        auto& list = out->lists.emplace_back();
        for (const char* s : items) list.push_back(const_cast<char*>(s));
        list.push_back(nullptr);
        step.lists[l] = list.data();
      }
      if (step.lists[0][0] == nullptr || step.lists[1][0] == nullptr) {
        *why = "step " + std::to_string(i) + ": exec needs a path and argv";
        return false;
      }
    } else if (step.op == Op::Setgroups) {
      std::vector<const char*> items;
      if (!pool.List(ReadU32(strs), &items)) return false;
      auto& gids = out->gid_lists.emplace_back();
      for (const char* s : items) {
        char* end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno != 0 || *end != 0 || v > 0xfffffffful) {
          *why = "step " + std::to_string(i) + ": bad gid " + s;
          return false;
        }
        gids.push_back(static_cast<gid_t>(v));
      }
      step.gids = gids.data();
      step.gid_count = gids.size();
    } else if (step.op == Op::Seccomp) {
      const uint8_t* blob;
      uint32_t length;
      if (!pool.Blob(ReadU32(strs), &blob, &length)) return false;
      // The kernel takes at most BPF_MAXINSNS instructions.
      if (length == 0 || length % sizeof(struct sock_filter) != 0 || length / sizeof(struct sock_filter) > BPF_MAXINSNS) {
        *why = "step " + std::to_string(i) + ": a seccomp program of " + std::to_string(length) + " bytes";
        return false;
      }
      auto& filter = out->filters.emplace_back(length / sizeof(struct sock_filter));
      memcpy(filter.data(), blob, length);
      step.filter = filter.data();
      step.filter_len = filter.size();
    } else {
      for (int s = 0; s < 4; s++) {
        if (!pool.String(ReadU32(strs + 4 * s), &step.strs[s])) return false;
      }
    }
  }
  if (out->steps.back().op != Op::Exec) {
    *why = "the last step must be exec";
    return false;
  }
  return true;
}

}  // namespace tsrun
