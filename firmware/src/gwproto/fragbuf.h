// FragBuffer: bounded reassembly of one WebSocket message from pieces.
//
// A message can arrive split across frames (continuation frames) and, with
// ESPAsyncWebServer, a frame split across TCP reads. Pieces are appended in
// order; a message that outgrows the buffer is dropped whole (never cut
// short) and counted. No heap.
#ifndef GWPROTO_FRAGBUF_H
#define GWPROTO_FRAGBUF_H

#include <stddef.h>
#include <stdint.h>

namespace gwproto {

class FragBuffer {
 public:
  enum Result {
    kMore = 0,  // piece stored; the message is not complete yet
    kDone,      // the message is complete in data()/size()
    kDropped,   // the message was dropped (too big, or no start seen)
  };

  // storage must outlive the buffer; a message holds at most cap-1 bytes
  // (data() is NUL-terminated for convenience).
  FragBuffer(char* storage, size_t cap)
      : buf_(storage), max_(cap > 0 ? cap - 1 : 0), len_(0), dropped_(0), active_(false),
        dropping_(false) {}

  // add appends one piece. first starts a new message (an unfinished
  // previous one is dropped and counted); last ends it. A piece that is both
  // first and last is a whole message. While a too-big message is being
  // skipped, its pieces return kMore and its last piece returns kDropped.
  Result add(const char* p, size_t n, bool first, bool last) {
    if (first) {
      if (active_ && !dropping_) dropped_++;
      active_ = true;
      dropping_ = false;
      len_ = 0;
    } else if (!active_) {
      dropped_++;
      active_ = !last;
      dropping_ = !last;
      return last ? kDropped : kMore;
    }
    if (!dropping_) {
      if (n > max_ - len_) {
        dropping_ = true;
        dropped_++;
        len_ = 0;
      } else {
        for (size_t i = 0; i < n; i++) buf_[len_ + i] = p[i];
        len_ += n;
      }
    }
    if (!last) return kMore;
    active_ = false;
    if (dropping_) {
      dropping_ = false;
      return kDropped;
    }
    buf_[len_] = '\0';
    return kDone;
  }

  const char* data() const { return buf_; }
  size_t size() const { return len_; }
  // dropped counts messages lost to size or to a missing start.
  uint32_t dropped() const { return dropped_; }
  size_t max_message() const { return max_; }

  void reset() {
    len_ = 0;
    active_ = false;
    dropping_ = false;
  }

 private:
  char* buf_;
  size_t max_;
  size_t len_;
  uint32_t dropped_;
  bool active_;
  bool dropping_;
};

}  // namespace gwproto

#endif  // GWPROTO_FRAGBUF_H
