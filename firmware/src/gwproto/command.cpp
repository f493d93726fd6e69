#include "command.h"

#include "frame.h"
#include "json_scan.h"

namespace gwproto {

namespace {

using detail::Parser;
using detail::Sink;
using detail::bytes_equal;
using detail::is_space;

void clear(Command* c) {
  c->has_label = false;
  c->label[0] = '\0';
  c->label_len = 0;
  c->type = kValueNone;
  c->value[0] = '\0';
  c->value_len = 0;
  c->bare = false;
}

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
    case kDecodeMissingField:
      return "missing-field";
    case kDecodeBadField:
      return "bad-field";
  }
  return "unknown";
}

}  // namespace gwproto
