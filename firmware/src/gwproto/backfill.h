// Backfill: readings taken while the link is down, kept in a bounded ring
// and sent with their time ("ts", unix milliseconds) once it is back
// (DESIGN.md, "Time": the gateway stores an older reading as history
// without broadcasting it live).
//
// Each reading keeps the monotonic time it was taken at and, when the board
// knew the wall-clock time then (NTP), the unix time too. When it did not,
// the ts is worked out at send time from the wall clock then
// (now_unix - age); when the board still has no wall clock, the reading goes
// without ts and the gateway stamps it on arrival. When the ring is full the
// oldest reading is dropped and counted: the newest data is worth most.
// Readings leave in the order they were taken, except that a board calls
// newest_first() when its link comes back: each label's newest reading then
// leaves first, so the gateway shows it live at once, and the older ones
// follow as backfill (older than that label's newest: history only). No heap.
#ifndef GWPROTO_BACKFILL_H
#define GWPROTO_BACKFILL_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

namespace gwproto {

// Longest JSON value text a buffered reading keeps (a number, a short string).
const size_t kMaxBufferedValue = 48;

struct BufferedReading {
  char label[kMaxLabelLen + 1];
  char value[kMaxBufferedValue + 1];  // JSON text
  uint8_t label_len;
  uint8_t value_len;
  uint32_t mono_ms;  // millis() when taken
  uint64_t unix_ms;  // wall-clock time when taken, 0 when unknown
};

class Backfill {
 public:
  // storage must outlive the ring.
  Backfill(BufferedReading* storage, size_t cap)
      : buf_(storage), cap_(cap), head_(0), len_(0), dropped_(0) {}

  // push_raw keeps a reading whose value is the JSON text json[0..n). It
  // returns false (and keeps nothing) when the label is invalid or the
  // value longer than kMaxBufferedValue; a full ring drops its oldest.
  bool push_raw(const char* label, size_t label_len, const char* json, size_t n,
                uint32_t now_mono_ms, uint64_t now_unix_ms);
  bool push_double(const char* label, size_t label_len, double v, uint32_t now_mono_ms,
                   uint64_t now_unix_ms);
  bool push_int(const char* label, size_t label_len, int64_t v, uint32_t now_mono_ms,
                uint64_t now_unix_ms);

  bool empty() const { return len_ == 0; }
  size_t size() const { return len_; }
  size_t capacity() const { return cap_; }
  // dropped counts readings lost because the ring was full.
  uint32_t dropped() const { return dropped_; }

  // front_frame writes the oldest reading as
  //   {"label":L,"value":V,"ts":T}
  // (without "ts" when its time cannot be known, see above). 0 when empty
  // or it did not fit; the reading stays until pop().
  size_t front_frame(char* out, size_t cap, uint32_t now_mono_ms, uint64_t now_unix_ms) const;
  void pop();
  // newest_first moves each label's newest reading to the front, keeping
  // their order among themselves and the order of the rest. Call it when
  // the link comes back, before sending. O(size * labels) compares and moves.
  void newest_first();
  void clear() {
    head_ = 0;
    len_ = 0;
  }

 private:
  BufferedReading& at(size_t i) { return buf_[(head_ + i) % cap_]; }
  // newest_of_label: no later reading has the same label as reading i.
  bool newest_of_label(size_t i);

  BufferedReading* buf_;
  size_t cap_;
  size_t head_;  // index of the oldest
  size_t len_;
  uint32_t dropped_;
};

template <size_t N>
class StaticBackfill : public Backfill {
 public:
  StaticBackfill() : Backfill(storage_, N) {}

 private:
  BufferedReading storage_[N];
};

// frame_ts writes {"label":L,"value":V,"ts":T} with V the JSON text json[0..n).
size_t frame_ts(char* out, size_t cap, const char* label, size_t label_len, const char* json,
                size_t n, uint64_t unix_ms);

}  // namespace gwproto

#endif  // GWPROTO_BACKFILL_H
