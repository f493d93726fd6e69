#include "frame.h"

#include "json_writer.h"

namespace gwproto {

bool valid_label(const char* p, size_t n) {
  if (p == 0 || n == 0 || n > kMaxLabelLen) return false;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

namespace {

// Frame writes the {"label":L,"value": prefix on construction; the caller
// writes the value and calls done().
class Frame {
 public:
  Frame(char* out, size_t cap, const char* label, size_t label_len)
      : w_(out, cap), valid_(valid_label(label, label_len)) {
    w_.begin_object();
    w_.key(GWPROTO_LIT("label"));
    w_.string(label, label_len);
    w_.key(GWPROTO_LIT("value"));
  }
  JsonWriter& w() { return w_; }
  size_t done() {
    w_.end_object();
    size_t n = w_.finish();
    return valid_ ? n : 0;
  }

 private:
  JsonWriter w_;
  bool valid_;
};

// reject leaves out empty, so a caller that ignores the 0 never sends garbage.
size_t reject(char* out, size_t cap) {
  if (out != 0 && cap > 0) out[0] = '\0';
  return 0;
}

}  // namespace

size_t frame_double(char* out, size_t cap, const char* label, size_t label_len, double v) {
  if (!valid_label(label, label_len)) return reject(out, cap);
  Frame f(out, cap, label, label_len);
  f.w().number(v);
  return f.done();
}

size_t frame_float(char* out, size_t cap, const char* label, size_t label_len, float v) {
  if (!valid_label(label, label_len)) return reject(out, cap);
  Frame f(out, cap, label, label_len);
  f.w().number_float(v);
  return f.done();
}

size_t frame_int(char* out, size_t cap, const char* label, size_t label_len, int64_t v) {
  if (!valid_label(label, label_len)) return reject(out, cap);
  Frame f(out, cap, label, label_len);
  f.w().integer(v);
  return f.done();
}

size_t frame_bool(char* out, size_t cap, const char* label, size_t label_len, bool v) {
  if (!valid_label(label, label_len)) return reject(out, cap);
  Frame f(out, cap, label, label_len);
  f.w().boolean(v);
  return f.done();
}

size_t frame_null(char* out, size_t cap, const char* label, size_t label_len) {
  if (!valid_label(label, label_len)) return reject(out, cap);
  Frame f(out, cap, label, label_len);
  f.w().null();
  return f.done();
}

size_t frame_string(char* out, size_t cap, const char* label, size_t label_len, const char* s,
                    size_t n) {
  if (!valid_label(label, label_len)) return reject(out, cap);
  Frame f(out, cap, label, label_len);
  f.w().string(s, n);
  return f.done();
}

size_t frame_raw(char* out, size_t cap, const char* label, size_t label_len, const char* json,
                 size_t n) {
  if (!valid_label(label, label_len)) return reject(out, cap);
  Frame f(out, cap, label, label_len);
  f.w().raw(json, n);
  return f.done();
}

}  // namespace gwproto
