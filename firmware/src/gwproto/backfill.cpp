#include "backfill.h"

#include <string.h>

#include "json_writer.h"

namespace gwproto {

bool Backfill::push_raw(const char* label, size_t label_len, const char* json, size_t n,
                        uint32_t now_mono_ms, uint64_t now_unix_ms) {
  if (cap_ == 0 || !valid_label(label, label_len) || json == 0 || n == 0 ||
      n > kMaxBufferedValue) {
    return false;
  }
  if (len_ == cap_) {
    pop();
    dropped_++;
  }
  BufferedReading& r = buf_[(head_ + len_) % cap_];
  memcpy(r.label, label, label_len);
  r.label[label_len] = '\0';
  r.label_len = static_cast<uint8_t>(label_len);
  memcpy(r.value, json, n);
  r.value[n] = '\0';
  r.value_len = static_cast<uint8_t>(n);
  r.mono_ms = now_mono_ms;
  r.unix_ms = now_unix_ms;
  len_++;
  return true;
}

bool Backfill::push_double(const char* label, size_t label_len, double v, uint32_t now_mono_ms,
                           uint64_t now_unix_ms) {
  char tmp[kMaxBufferedValue + 1];
  JsonWriter w(tmp, sizeof tmp);
  w.number(v);
  size_t n = w.finish();
  return n > 0 && push_raw(label, label_len, tmp, n, now_mono_ms, now_unix_ms);
}

bool Backfill::push_int(const char* label, size_t label_len, int64_t v, uint32_t now_mono_ms,
                        uint64_t now_unix_ms) {
  char tmp[kMaxBufferedValue + 1];
  JsonWriter w(tmp, sizeof tmp);
  w.integer(v);
  size_t n = w.finish();
  return n > 0 && push_raw(label, label_len, tmp, n, now_mono_ms, now_unix_ms);
}

size_t Backfill::front_frame(char* out, size_t cap, uint32_t now_mono_ms,
                             uint64_t now_unix_ms) const {
  if (len_ == 0) return 0;
  const BufferedReading& r = buf_[head_];
  uint64_t ts = r.unix_ms;
  if (ts == 0 && now_unix_ms != 0) {
    uint32_t age = now_mono_ms - r.mono_ms;
    if (age < now_unix_ms) ts = now_unix_ms - age;
  }
  return frame_ts(out, cap, r.label, r.label_len, r.value, r.value_len, ts);
}

void Backfill::pop() {
  if (len_ == 0) return;
  head_ = (head_ + 1) % cap_;
  len_--;
}

bool Backfill::newest_of_label(size_t i) {
  const BufferedReading& r = at(i);
  for (size_t j = i + 1; j < len_; j++) {
    const BufferedReading& o = at(j);
    if (o.label_len == r.label_len && memcmp(o.label, r.label, r.label_len) == 0) return false;
  }
  return true;
}

void Backfill::newest_first() {
  size_t placed = 0;  // readings [0, placed) are the newest of their labels
  for (size_t i = 0; i < len_; i++) {
    if (!newest_of_label(i)) continue;
    // Rotate reading i down to position placed; the ones between move up
    // by one and keep their order. Readings after i are not touched, so
    // newest_of_label stays right for them.
    for (size_t j = i; j > placed; j--) {
      BufferedReading tmp = at(j);
      at(j) = at(j - 1);
      at(j - 1) = tmp;
    }
    placed++;
  }
}

size_t frame_ts(char* out, size_t cap, const char* label, size_t label_len, const char* json,
                size_t n, uint64_t unix_ms) {
  if (!valid_label(label, label_len)) return 0;
  JsonWriter w(out, cap);
  w.begin_object();
  w.key(GWPROTO_LIT("label"));
  w.string(label, label_len);
  w.key(GWPROTO_LIT("value"));
  w.raw(json, n);
  if (unix_ms != 0) {
    w.key(GWPROTO_LIT("ts"));
    w.uinteger(unix_ms);
  }
  w.end_object();
  return w.finish();
}

}  // namespace gwproto
