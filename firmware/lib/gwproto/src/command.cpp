#include "command.h"

#include "frame.h"

namespace gwproto {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

void clear(Command* c) {
  c->has_label = false;
  c->label[0] = '\0';
  c->label_len = 0;
  c->type = kValueNone;
  c->value[0] = '\0';
  c->value_len = 0;
  c->bare = false;
}

bool bytes_equal(const char* a, size_t an, const char* b, size_t bn) {
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

DecodeStatus fail(Command* out, DecodeStatus s) {
  clear(out);
  return s;
}

void copy_value(Command* out, const char* p, size_t n, ValueType t) {
  for (size_t i = 0; i < n; i++) out->value[i] = p[i];
  out->value[n] = '\0';
  out->value_len = n;
  out->type = t;
}

DecodeStatus decode_object(const char* p, size_t n, Command* out) {
  Parser ps(p, n);
  ps.eat('{');
  ps.skip_ws();
  bool have_value = false;
  bool label_ok = true;
  if (!ps.eat('}')) {
    for (;;) {
      ps.skip_ws();
      char key[Command::kMaxLabel + 1];
      Sink ks = {key, sizeof key - 1, 0, false};
      if (!ps.string(&ks)) return fail(out, kDecodeBadJson);
      ps.skip_ws();
      if (!ps.eat(':')) return fail(out, kDecodeBadJson);
      ps.skip_ws();
      bool is_label = !ks.overflow && bytes_equal(key, ks.len, "label", 5);
      bool is_value = !ks.overflow && bytes_equal(key, ks.len, "value", 5);

      char c;
      if (!ps.peek(&c)) return fail(out, kDecodeBadJson);
      if (c == '{' || c == '[') return fail(out, kDecodeNested);
      if (c == '"') {
        char tmp[Command::kMaxValue + 1];
        Sink vs = {tmp, Command::kMaxValue, 0, false};
        if (!ps.string(&vs)) return fail(out, kDecodeBadJson);
        if (is_value) {
          if (vs.overflow) return fail(out, kDecodeValueTooLong);
          copy_value(out, tmp, vs.len, kValueString);
          have_value = true;
        } else if (is_label) {
          if (vs.overflow || !valid_label(tmp, vs.len)) {
            label_ok = false;
          } else {
            label_ok = true;
            for (size_t i = 0; i < vs.len; i++) out->label[i] = tmp[i];
            out->label[vs.len] = '\0';
            out->label_len = vs.len;
            out->has_label = true;
          }
        }
      } else if (c == 't' || c == 'f' || c == 'n') {
        ValueType t;
        const char* word;
        size_t wn;
        if (ps.literal("true", 4)) {
          t = kValueBool, word = "true", wn = 4;
        } else if (ps.literal("false", 5)) {
          t = kValueBool, word = "false", wn = 5;
        } else if (ps.literal("null", 4)) {
          t = kValueNull, word = "null", wn = 4;
        } else {
          return fail(out, kDecodeBadJson);
        }
        if (is_value) {
          copy_value(out, word, wn, t);
          have_value = true;
        } else if (is_label) {
          label_ok = false;
        }
      } else {
        size_t start, len;
        if (!ps.number(&start, &len)) return fail(out, kDecodeBadJson);
        if (is_value) {
          if (len > Command::kMaxValue) return fail(out, kDecodeValueTooLong);
          copy_value(out, ps.at(start), len, kValueNumber);
          have_value = true;
        } else if (is_label) {
          label_ok = false;
        }
      }
      ps.skip_ws();
      if (ps.eat(',')) continue;
      if (ps.eat('}')) break;
      return fail(out, kDecodeBadJson);
    }
  }
  ps.skip_ws();
  if (!ps.at_end()) return fail(out, kDecodeBadJson);
  if (!label_ok) return fail(out, kDecodeBadLabel);
  if (!have_value) return fail(out, kDecodeNoValue);
  return kDecodeOk;
}

}  // namespace

DecodeStatus decode_command(const char* p, size_t n, Command* out) {
  clear(out);
  if (p == 0) n = 0;
  if (n > Command::kMaxInput) return kDecodeTooLong;
  size_t a = 0, b = n;
  while (a < b && is_space(p[a])) a++;
  while (b > a && is_space(p[b - 1])) b--;
  if (a == b) return kDecodeEmpty;
  const char* s = p + a;
  size_t len = b - a;

  if (s[0] == '{') return decode_object(s, len, out);

  if (s[0] == '"') {
    // A lone JSON string: the command value, quoted.
    Parser ps(s, len);
    char tmp[Command::kMaxValue + 1];
    Sink vs = {tmp, Command::kMaxValue, 0, false};
    if (!ps.string(&vs)) return fail(out, kDecodeBadJson);
    ps.skip_ws();
    if (!ps.at_end()) return fail(out, kDecodeBadJson);
    if (vs.overflow) return fail(out, kDecodeValueTooLong);
    copy_value(out, tmp, vs.len, kValueString);
    return kDecodeOk;
  }

  if (len > Command::kMaxToken) return kDecodeTooLong;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x21 || c > 0x7E) return kDecodeNotPrintable;
  }
  copy_value(out, s, len, kValueString);
  out->bare = true;
  return kDecodeOk;
}

const char* decode_status_name(DecodeStatus s) {
  switch (s) {
    case kDecodeOk:
      return "ok";
    case kDecodeEmpty:
      return "empty";
    case kDecodeTooLong:
      return "too-long";
    case kDecodeNotPrintable:
      return "not-printable";
    case kDecodeBadJson:
      return "bad-json";
    case kDecodeNested:
      return "nested";
    case kDecodeNoValue:
      return "no-value";
    case kDecodeBadLabel:
      return "bad-label";
    case kDecodeValueTooLong:
      return "value-too-long";
  }
  return "unknown";
}

}  // namespace gwproto
