#include "json_writer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

namespace gwproto {

namespace {

const char kHex[] = "0123456789abcdef";

// utf8_seq returns the length (1..4) of the valid UTF-8 sequence at s, or 0
// when the bytes there are not valid UTF-8 (overlong forms, surrogates,
// code points above U+10FFFF, or a sequence cut short by n).
size_t utf8_seq(const unsigned char* s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (n < need) return 0;
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < need; i++) {
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  }
  return need;
}

}  // namespace

JsonWriter::JsonWriter(char* out, size_t cap)
    : out_(out),
      cap_(out ? cap : 0),
      len_(0),
      ok_(out != 0 && cap > 0),
      depth_(0),
      after_key_(false),
      top_done_(false) {
  for (int i = 0; i < kMaxDepth; i++) {
    is_object_[i] = false;
    has_member_[i] = false;
  }
}

void JsonWriter::put(char c) {
  if (!ok_) return;
  if (len_ + 1 > cap_) {
    ok_ = false;
    return;
  }
  out_[len_++] = c;
}

void JsonWriter::put(const char* p, size_t n) {
  if (!ok_) return;
  if (n > cap_ - len_) {
    ok_ = false;
    return;
  }
  for (size_t i = 0; i < n; i++) out_[len_ + i] = p[i];
  len_ += n;
}

// before_value checks that a value may be written here and writes the comma
// that separates it from a previous array element.
bool JsonWriter::before_value() {
  if (!ok_) return false;
  if (depth_ == 0) {
    if (top_done_) {
      ok_ = false;
      return false;
    }
    return true;
  }
  int d = depth_ - 1;
  if (is_object_[d]) {
    if (!after_key_) {
      ok_ = false;
      return false;
    }
    after_key_ = false;
    return true;
  }
  if (has_member_[d]) put(',');
  has_member_[d] = true;
  return ok_;
}

void JsonWriter::after_value() {
  if (depth_ == 0) top_done_ = true;
}

void JsonWriter::open(char c, bool is_object) {
  if (!before_value()) return;
  if (depth_ >= kMaxDepth) {
    ok_ = false;
    return;
  }
  put(c);
  is_object_[depth_] = is_object;
  has_member_[depth_] = false;
  depth_++;
}

void JsonWriter::close(char c, bool is_object) {
  if (!ok_) return;
  if (depth_ == 0 || is_object_[depth_ - 1] != is_object || after_key_) {
    ok_ = false;
    return;
  }
  put(c);
  depth_--;
  after_value();
}

void JsonWriter::begin_object() { open('{', true); }
void JsonWriter::end_object() { close('}', true); }
void JsonWriter::begin_array() { open('[', false); }
void JsonWriter::end_array() { close(']', false); }

void JsonWriter::key(const char* k, size_t n) {
  if (!ok_) return;
  if (depth_ == 0 || !is_object_[depth_ - 1] || after_key_) {
    ok_ = false;
    return;
  }
  int d = depth_ - 1;
  if (has_member_[d]) put(',');
  has_member_[d] = true;
  put('"');
  put_utf8_escaped(k, n);
  put('"');
  put(':');
  after_key_ = true;
}

void JsonWriter::put_utf8_escaped(const char* s, size_t n) {
  const unsigned char* u = reinterpret_cast<const unsigned char*>(s);
  size_t i = 0;
  while (i < n && ok_) {
    unsigned char c = u[i];
    if (c >= 0x80) {
      size_t k = utf8_seq(u + i, n - i);
      if (k == 0) {
        put("\\ufffd", 6);
        i++;
      } else {
        put(s + i, k);
        i += k;
      }
      continue;
    }
    switch (c) {
      case '"':
        put("\\\"", 2);
        break;
      case '\\':
        put("\\\\", 2);
        break;
      case '\n':
        put("\\n", 2);
        break;
      case '\r':
        put("\\r", 2);
        break;
      case '\t':
        put("\\t", 2);
        break;
      case '\b':
        put("\\b", 2);
        break;
      case '\f':
        put("\\f", 2);
        break;
      default:
        if (c < 0x20) {
          char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
          put(esc, 6);
        } else {
          put(static_cast<char>(c));
        }
    }
    i++;
  }
}

void JsonWriter::string(const char* s, size_t n) {
  if (!before_value()) return;
  if (s == 0 && n != 0) {
    ok_ = false;
    return;
  }
  put('"');
  put_utf8_escaped(s, n);
  put('"');
  after_value();
}

size_t format_double(double v, char* out, size_t cap) {
  if (!isfinite(v) || cap == 0) return 0;
  char tmp[40];
  int n = 0;
  for (int prec = 15; prec <= 17; prec++) {
    n = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    if (n <= 0 || static_cast<size_t>(n) >= sizeof tmp) return 0;
    if (strtod(tmp, 0) == v) break;
  }
  if (static_cast<size_t>(n) + 1 > cap) return 0;
  for (int i = 0; i <= n; i++) out[i] = tmp[i];
  return static_cast<size_t>(n);
}

size_t format_float(float v, char* out, size_t cap) {
  if (!isfinite(v) || cap == 0) return 0;
  char tmp[32];
  int n = 0;
  for (int prec = 6; prec <= 9; prec++) {
    n = snprintf(tmp, sizeof tmp, "%.*g", prec, static_cast<double>(v));
    if (n <= 0 || static_cast<size_t>(n) >= sizeof tmp) return 0;
    if (strtof(tmp, 0) == v) break;
  }
  if (static_cast<size_t>(n) + 1 > cap) return 0;
  for (int i = 0; i <= n; i++) out[i] = tmp[i];
  return static_cast<size_t>(n);
}

void JsonWriter::number(double v) {
  if (!isfinite(v)) {
    null();
    return;
  }
  if (!before_value()) return;
  char tmp[40];
  size_t n = format_double(v, tmp, sizeof tmp);
  if (n == 0) {
    ok_ = false;
    return;
  }
  put(tmp, n);
  after_value();
}

void JsonWriter::number_float(float v) {
  if (!isfinite(v)) {
    null();
    return;
  }
  if (!before_value()) return;
  char tmp[32];
  size_t n = format_float(v, tmp, sizeof tmp);
  if (n == 0) {
    ok_ = false;
    return;
  }
  put(tmp, n);
  after_value();
}

void JsonWriter::uinteger(uint64_t v) {
  if (!before_value()) return;
  char tmp[24];
  size_t i = sizeof tmp;
  do {
    tmp[--i] = static_cast<char>('0' + (v % 10));
    v /= 10;
  } while (v != 0);
  put(tmp + i, sizeof tmp - i);
  after_value();
}

void JsonWriter::integer(int64_t v) {
  if (v >= 0) {
    uinteger(static_cast<uint64_t>(v));
    return;
  }
  if (!before_value()) return;
  // Negate in unsigned arithmetic so INT64_MIN does not overflow.
  uint64_t m = ~static_cast<uint64_t>(v) + 1;
  char tmp[24];
  size_t i = sizeof tmp;
  do {
    tmp[--i] = static_cast<char>('0' + (m % 10));
    m /= 10;
  } while (m != 0);
  tmp[--i] = '-';
  put(tmp + i, sizeof tmp - i);
  after_value();
}

void JsonWriter::boolean(bool v) {
  if (!before_value()) return;
  if (v) {
    put("true", 4);
  } else {
    put("false", 5);
  }
  after_value();
}

void JsonWriter::null() {
  if (!before_value()) return;
  put("null", 4);
  after_value();
}

void JsonWriter::raw(const char* json, size_t n) {
  if (!before_value()) return;
  if (n == 0 || json == 0) {
    ok_ = false;
    return;
  }
  put(json, n);
  after_value();
}

size_t JsonWriter::finish() {
  if (!ok_ || depth_ != 0 || after_key_ || len_ == 0) {
    if (out_ != 0 && cap_ > 0) out_[0] = '\0';
    ok_ = false;
    return 0;
  }
  if (len_ + 1 > cap_) {
    out_[0] = '\0';
    ok_ = false;
    return 0;
  }
  out_[len_] = '\0';
  return len_;
}

}  // namespace gwproto
