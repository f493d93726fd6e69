// JSON scanning pieces shared by the decoders (command.cpp, message.cpp):
// a bounded string sink and a single-pass parser over p[0..n). Internal to
// gwproto; not part of its API. Portable C++11, no heap.
#ifndef GWPROTO_JSON_SCAN_H
#define GWPROTO_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>

namespace gwproto {
namespace detail {

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

inline bool bytes_equal(const char* a, size_t an, const char* b, size_t bn) {
  if (an != bn) return false;
  for (size_t i = 0; i < an; i++) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// Sink collects decoded string bytes up to cap; past that it only counts.
struct Sink {
  char* buf;
  size_t cap;
  size_t len;
  bool overflow;
  void add(char c) {
    if (len < cap) {
      buf[len++] = c;
    } else {
      overflow = true;
    }
  }
  void add_utf8(uint32_t cp) {
    if (cp < 0x80) {
      add(static_cast<char>(cp));
    } else if (cp < 0x800) {
      add(static_cast<char>(0xC0 | (cp >> 6)));
      add(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      add(static_cast<char>(0xE0 | (cp >> 12)));
      add(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      add(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      add(static_cast<char>(0xF0 | (cp >> 18)));
      add(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      add(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      add(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
};

// Parser walks p[0..n) once; every method leaves pos at the first byte it
// did not consume and returns false on malformed input.
class Parser {
 public:
  Parser(const char* p, size_t n) : p_(p), n_(n), pos_(0) {}

  void skip_ws() {
    while (pos_ < n_ && is_space(p_[pos_])) pos_++;
  }
  bool at_end() const { return pos_ >= n_; }
  bool peek(char* c) const {
    if (pos_ >= n_) return false;
    *c = p_[pos_];
    return true;
  }
  bool eat(char c) {
    if (pos_ < n_ && p_[pos_] == c) {
      pos_++;
      return true;
    }
    return false;
  }

  // string decodes a JSON string (pos at the opening quote) into sink.
  bool string(Sink* sink) {
    if (!eat('"')) return false;
    while (pos_ < n_) {
      unsigned char c = static_cast<unsigned char>(p_[pos_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') {
        sink->add(static_cast<char>(c));
        continue;
      }
      if (pos_ >= n_) return false;
      char e = p_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          sink->add(e);
          break;
        case 'b':
          sink->add('\b');
          break;
        case 'f':
          sink->add('\f');
          break;
        case 'n':
          sink->add('\n');
          break;
        case 'r':
          sink->add('\r');
          break;
        case 't':
          sink->add('\t');
          break;
        case 'u': {
          uint32_t cp;
          if (!hex4(&cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            // A high surrogate must be followed by \u and a low surrogate;
            // otherwise it stands alone and becomes U+FFFD, as in Go.
            uint32_t lo;
            if (pos_ + 1 < n_ && p_[pos_] == '\\' && p_[pos_ + 1] == 'u') {
              size_t save = pos_;
              pos_ += 2;
              if (!hex4(&lo)) return false;
              if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
              } else {
                pos_ = save;
                cp = 0xFFFD;
              }
            } else {
              cp = 0xFFFD;
            }
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;
          }
          sink->add_utf8(cp);
          break;
        }
        default:
          return false;
      }
    }
    return false;  // unterminated
  }

  // number checks JSON number grammar and reports its span.
  bool number(size_t* start, size_t* len) {
    size_t s = pos_;
    eat('-');
    if (eat('0')) {
      // a leading zero stands alone
    } else if (digits() == 0) {
      return false;
    }
    if (eat('.')) {
      if (digits() == 0) return false;
    }
    if (pos_ < n_ && (p_[pos_] == 'e' || p_[pos_] == 'E')) {
      pos_++;
      if (!eat('+')) eat('-');
      if (digits() == 0) return false;
    }
    *start = s;
    *len = pos_ - s;
    return true;
  }

  bool literal(const char* word, size_t n) {
    if (n_ - pos_ < n) return false;
    for (size_t i = 0; i < n; i++) {
      if (p_[pos_ + i] != word[i]) return false;
    }
    pos_ += n;
    return true;
  }

  const char* at(size_t i) const { return p_ + i; }

  // skip_value steps over any one JSON value (pos at its first byte),
  // nesting at most max_depth objects/arrays deep.
  bool skip_value(int max_depth) {
    char c;
    if (!peek(&c)) return false;
    if (c == '"') {
      char none[1];
      Sink s = {none, 0, 0, false};
      return string(&s);
    }
    if (c == 't') return literal("true", 4);
    if (c == 'f') return literal("false", 5);
    if (c == 'n') return literal("null", 4);
    if (c == '{' || c == '[') {
      if (max_depth <= 0) return false;
      bool obj = c == '{';
      char close_c = obj ? '}' : ']';
      pos_++;
      skip_ws();
      if (eat(close_c)) return true;
      for (;;) {
        skip_ws();
        if (obj) {
          if (!skip_value(0) || p_[pos_ - 1] != '"') return false;  // the key: a string
          skip_ws();
          if (!eat(':')) return false;
          skip_ws();
        }
        if (!skip_value(max_depth - 1)) return false;
        skip_ws();
        if (eat(',')) continue;
        return eat(close_c);
      }
    }
    size_t s, n;
    return number(&s, &n);
  }

 private:
  size_t digits() {
    size_t k = 0;
    while (pos_ < n_ && p_[pos_] >= '0' && p_[pos_] <= '9') {
      pos_++;
      k++;
    }
    return k;
  }
  bool hex4(uint32_t* out) {
    if (n_ - pos_ < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
      char c = p_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    *out = v;
    return true;
  }

  const char* p_;
  size_t n_;
  size_t pos_;
};

}  // namespace detail
}  // namespace gwproto

#endif  // GWPROTO_JSON_SCAN_H
