// LineBuffer: fixed-size assembler for newline-delimited input (serial).
//
// Bytes go in one at a time (or as a chunk) from a non-blocking read. A line
// ends at '\n'; a '\r' right before it is dropped, so "\r\n" (what
// Serial.println sends) and "\n" both work. A line longer than the buffer is
// never cut into pieces: everything up to the next '\n' is discarded and the
// line is counted in overflows(). Empty lines are skipped. No heap.
#ifndef GWPROTO_LINEBUF_H
#define GWPROTO_LINEBUF_H

#include <stddef.h>
#include <stdint.h>

namespace gwproto {

class LineBuffer {
 public:
  // storage must outlive the buffer; a line holds at most cap-1 bytes (one
  // byte is kept for the NUL that data() ends with).
  LineBuffer(char* storage, size_t cap)
      : buf_(storage), max_(cap > 0 ? cap - 1 : 0), len_(0), overflows_(0), discarding_(false),
        pending_cr_(false), ready_(false) {}

  // push appends one byte. It returns true when c completed a non-empty line
  // that fit; data()/size() then hold it (without "\r\n") until the next push.
  bool push(char c) {
    if (ready_) {
      ready_ = false;
      len_ = 0;
    }
    if (c == '\n') {
      bool was_discarding = discarding_;
      discarding_ = false;
      pending_cr_ = false;
      if (was_discarding) {
        len_ = 0;
        return false;
      }
      if (len_ > 0 && buf_[len_ - 1] == '\r') len_--;
      if (len_ == 0) return false;
      buf_[len_] = '\0';
      ready_ = true;
      return true;
    }
    if (discarding_) return false;
    if (pending_cr_) {
      // The '\r' that did not fit was not the end of the line after all.
      overflow();
      return false;
    }
    if (len_ < max_) {
      buf_[len_++] = c;
      return false;
    }
    if (c == '\r') {
      // A full line may still end in "\r\n": wait for the '\n'.
      pending_cr_ = true;
      return false;
    }
    overflow();
    return false;
  }

  // feed consumes p[0..n) up to and including the byte that completes a
  // line; *ready tells whether one did. It returns the bytes consumed, so a
  // caller loops until all input is used.
  size_t feed(const char* p, size_t n, bool* ready) {
    *ready = false;
    for (size_t i = 0; i < n; i++) {
      if (push(p[i])) {
        *ready = true;
        return i + 1;
      }
    }
    return n;
  }

  const char* data() const { return buf_; }
  size_t size() const { return ready_ ? len_ : 0; }
  // overflows counts lines dropped for being longer than the buffer.
  uint32_t overflows() const { return overflows_; }
  // discarding is true while the rest of an over-long line is skipped.
  bool discarding() const { return discarding_; }
  size_t max_line() const { return max_; }

  // reset forgets any partial line (after a reconnect, for example).
  void reset() {
    len_ = 0;
    discarding_ = false;
    pending_cr_ = false;
    ready_ = false;
  }

 private:
  void overflow() {
    discarding_ = true;
    pending_cr_ = false;
    len_ = 0;
    overflows_++;
  }

  char* buf_;
  size_t max_;
  size_t len_;
  uint32_t overflows_;
  bool discarding_;
  bool pending_cr_;
  bool ready_;
};

// StaticLineBuffer<N> carries its own storage for lines of up to N bytes.
template <size_t N>
class StaticLineBuffer : public LineBuffer {
 public:
  StaticLineBuffer() : LineBuffer(storage_, N + 1) {}

 private:
  char storage_[N + 1];
};

}  // namespace gwproto

#endif  // GWPROTO_LINEBUF_H
