// Backoff: capped exponential backoff with jitter, for reconnect loops.
//
// Time and randomness are injected, so the same code runs on a board
// (millis(), esp_random()) and in host tests (a fake clock, a fixed
// sequence). The n-th delay (n from 0) is drawn from [d/2, d] with
// d = min(max_ms, min_ms * 2^n) ("equal jitter"): never less than half the
// step, so a flapping gateway is not hammered, and spread out, so boards that
// lost the gateway together do not come back in lock-step.
#ifndef GWPROTO_BACKOFF_H
#define GWPROTO_BACKOFF_H

#include <stddef.h>
#include <stdint.h>

namespace gwproto {

// RandFn returns 32 random bits; ctx is passed through untouched.
typedef uint32_t (*RandFn)(void* ctx);

// time_reached reports whether now_ms is at or past deadline_ms on a 32-bit
// millisecond clock that wraps (millis() wraps after ~49.7 days). Valid while
// the two are less than 2^31 ms apart.
inline bool time_reached(uint32_t now_ms, uint32_t deadline_ms) {
  return static_cast<uint32_t>(now_ms - deadline_ms) < 0x80000000u;
}

class Backoff {
 public:
  Backoff(uint32_t min_ms, uint32_t max_ms, RandFn rand, void* rand_ctx)
      : min_(min_ms > 0 ? min_ms : 1),
        max_(max_ms >= min_ ? max_ms : min_),
        rand_(rand),
        ctx_(rand_ctx),
        attempt_(0),
        due_(0),
        waiting_(false) {}

  // next returns the delay before the next attempt and advances the step.
  uint32_t next() {
    uint32_t d = step(attempt_);
    if (attempt_ < 32) attempt_++;
    uint32_t half = d / 2;
    uint32_t span = d - half;  // the delay lies in [half, half + span]
    uint32_t r = rand_ ? rand_(ctx_) : 0;
    return half + r % (span + 1);  // span <= 2^31, so span + 1 cannot wrap
  }

  // failed schedules the next attempt after a failure at now_ms.
  void failed(uint32_t now_ms) {
    due_ = now_ms + next();
    waiting_ = true;
  }

  // ready reports whether an attempt may start at now_ms.
  bool ready(uint32_t now_ms) const { return !waiting_ || time_reached(now_ms, due_); }

  // due_ms is when the next attempt may start (meaningful after failed()).
  uint32_t due_ms() const { return due_; }

  // reset starts over from min_ms; call it once a link is up again.
  void reset() {
    attempt_ = 0;
    waiting_ = false;
  }

  uint32_t attempt() const { return attempt_; }

 private:
  uint32_t step(uint32_t n) const {
    uint32_t d = min_;
    for (uint32_t i = 0; i < n; i++) {
      if (d >= max_ / 2) return max_;
      d *= 2;
    }
    return d < max_ ? d : max_;
  }

  uint32_t min_;
  uint32_t max_;
  RandFn rand_;
  void* ctx_;
  uint32_t attempt_;
  uint32_t due_;
  bool waiting_;
};

// XorShift32 is a tiny PRNG for jitter (not for secrets). Seed it with
// esp_random() on a board, or with the time and pid on a host.
struct XorShift32 {
  uint32_t state;
  explicit XorShift32(uint32_t seed) : state(seed != 0 ? seed : 0x9E3779B9u) {}
  uint32_t next() {
    uint32_t x = state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    state = x;
    return x;
  }
  // fn adapts a XorShift32 to RandFn: Backoff(min, max, XorShift32::fn, &rng).
  static uint32_t fn(void* ctx) { return static_cast<XorShift32*>(ctx)->next(); }
};

}  // namespace gwproto

#endif  // GWPROTO_BACKOFF_H
