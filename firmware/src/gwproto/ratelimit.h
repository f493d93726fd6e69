// RateLimiter: a token bucket for commands a board accepts (a burst at once,
// then a steady rate), so a runaway script cannot wear out a relay. Time is
// injected (millis()); no heap.
#ifndef GWPROTO_RATELIMIT_H
#define GWPROTO_RATELIMIT_H

#include <stdint.h>

namespace gwproto {

// RateLimiter allows up to burst events at once, refilled at one per
// refill_ms. The clock may wrap (32-bit millis()).
class RateLimiter {
 public:
  RateLimiter(uint32_t burst, uint32_t refill_ms, uint32_t now_ms)
      : burst_(burst), refill_ms_(refill_ms > 0 ? refill_ms : 1), tokens_(burst), last_(now_ms) {}

  // allow takes a token and returns true, or returns false when none is left.
  bool allow(uint32_t now_ms) {
    uint32_t elapsed = now_ms - last_;
    if (elapsed >= refill_ms_) {
      uint32_t add = elapsed / refill_ms_;
      tokens_ = (add >= burst_ - tokens_) ? burst_ : tokens_ + add;
      last_ += add * refill_ms_;
    }
    if (tokens_ == 0) return false;
    tokens_--;
    return true;
  }

 private:
  uint32_t burst_;
  uint32_t refill_ms_;
  uint32_t tokens_;
  uint32_t last_;
};

}  // namespace gwproto

#endif  // GWPROTO_RATELIMIT_H
