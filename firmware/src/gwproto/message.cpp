#include "message.h"

#include <string.h>

#include "json_scan.h"

namespace gwproto {

namespace {

using detail::Parser;
using detail::Sink;
using detail::bytes_equal;

// Field is one member a decoder wants. A string value is decoded into
// buf[0..cap); with number_ok a number's text is taken as well.
struct Field {
  const char* name;
  char* buf;
  size_t cap;
  bool number_ok;
  bool present;
  bool is_number;
  size_t len;
};

// Deepest nesting skipped in members nobody asked for.
const int kSkipDepth = 4;

DecodeStatus walk(const char* p, size_t n, Field* fields, size_t nfields) {
  if (p == 0 || n > kMaxMessageInput) return kDecodeTooLong;
  Parser ps(p, n);
  ps.skip_ws();
  if (!ps.eat('{')) return kDecodeBadJson;
  ps.skip_ws();
  if (!ps.eat('}')) {
    for (;;) {
      ps.skip_ws();
      char key[17];
      Sink ks = {key, sizeof key - 1, 0, false};
      if (!ps.string(&ks)) return kDecodeBadJson;
      ps.skip_ws();
      if (!ps.eat(':')) return kDecodeBadJson;
      ps.skip_ws();
      Field* f = 0;
      for (size_t i = 0; i < nfields && !ks.overflow; i++) {
        if (bytes_equal(key, ks.len, fields[i].name, strlen(fields[i].name))) f = &fields[i];
      }
      char c;
      if (!ps.peek(&c)) return kDecodeBadJson;
      if (f == 0) {
        if (!ps.skip_value(kSkipDepth)) return kDecodeBadJson;
      } else if (c == '"') {
        Sink vs = {f->buf, f->cap, 0, false};
        if (!ps.string(&vs)) return kDecodeBadJson;
        if (vs.overflow) return kDecodeValueTooLong;
        f->buf[vs.len] = '\0';
        f->len = vs.len;
        f->present = true;
        f->is_number = false;
      } else if (f->number_ok && (c == '-' || (c >= '0' && c <= '9'))) {
        size_t start, len;
        if (!ps.number(&start, &len)) return kDecodeBadJson;
        if (len > f->cap) return kDecodeValueTooLong;
        memcpy(f->buf, ps.at(start), len);
        f->buf[len] = '\0';
        f->len = len;
        f->present = true;
        f->is_number = true;
      } else {
        return kDecodeBadField;
      }
      ps.skip_ws();
      if (ps.eat(',')) continue;
      if (ps.eat('}')) break;
      return kDecodeBadJson;
    }
  }
  ps.skip_ws();
  return ps.at_end() ? kDecodeOk : kDecodeBadJson;
}

Field field(const char* name, char* buf, size_t cap, bool number_ok) {
  Field f = {name, buf, cap, number_ok, false, false, 0};
  return f;
}

bool id_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

bool printable_no_space(const char* s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x21 || c > 0x7E) return false;
  }
  return true;
}

}  // namespace

MessageType message_type(const char* p, size_t n) {
  if (p == 0 || n > kMaxMessageInput) return kMessageCommand;
  size_t a = 0;
  while (a < n && detail::is_space(p[a])) a++;
  if (a == n || p[a] != '{') return kMessageCommand;
  char type[16];
  Field f = field("type", type, sizeof type - 1, false);
  DecodeStatus st = walk(p, n, &f, 1);
  if (st == kDecodeValueTooLong || (st == kDecodeOk && f.present)) {
    if (st != kDecodeOk) return kMessageUnknown;
    if (bytes_equal(type, f.len, "adopted", 7)) return kMessageAdopted;
    if (bytes_equal(type, f.len, "ota", 3)) return kMessageOta;
    return kMessageUnknown;
  }
  if (st == kDecodeBadField) return kMessageUnknown;  // "type" that is not a string
  return kMessageCommand;
}

const char* message_type_name(MessageType t) {
  switch (t) {
    case kMessageCommand:
      return "command";
    case kMessageAdopted:
      return "adopted";
    case kMessageOta:
      return "ota";
    case kMessageUnknown:
      break;
  }
  return "unknown";
}

DecodeStatus decode_adopted(const char* p, size_t n, Adopted* out) {
  memset(out, 0, sizeof *out);
  char type[16];
  Field fs[3] = {
      field("type", type, sizeof type - 1, false),
      field("id", out->id, Adopted::kMaxId, false),
      field("token", out->token, Adopted::kMaxToken, false),
  };
  DecodeStatus st = walk(p, n, fs, 3);
  if (st == kDecodeOk && !(fs[0].present && bytes_equal(type, fs[0].len, "adopted", 7))) {
    st = kDecodeBadField;
  }
  if (st == kDecodeOk && (!fs[1].present || !fs[2].present)) st = kDecodeMissingField;
  if (st == kDecodeOk) {
    bool ok = fs[1].len > 0 && fs[2].len > 0 && printable_no_space(out->token, fs[2].len);
    for (size_t i = 0; i < fs[1].len && ok; i++) ok = id_char(out->id[i]);
    if (!ok) st = kDecodeBadField;
  }
  if (st != kDecodeOk) memset(out, 0, sizeof *out);
  return st;
}

DecodeStatus decode_ota(const char* p, size_t n, OtaRequest* out) {
  memset(out, 0, sizeof *out);
  char type[16];
  char size[24];
  char hash[2 * Sha256::kDigestLen + 1];
  Field fs[6] = {
      field("type", type, sizeof type - 1, false),
      field("job", out->job, OtaRequest::kMaxJob, true),
      field("url", out->url, OtaRequest::kMaxUrl, false),
      field("size", size, sizeof size - 1, true),
      field("sha256", hash, sizeof hash - 1, false),
      field("version", out->version, OtaRequest::kMaxVersion, false),
  };
  DecodeStatus st = walk(p, n, fs, 6);
  if (st == kDecodeOk && !(fs[0].present && bytes_equal(type, fs[0].len, "ota", 3))) {
    st = kDecodeBadField;
  }
  if (st == kDecodeOk && (!fs[2].present || !fs[3].present || !fs[4].present)) {
    st = kDecodeMissingField;
  }
  if (st == kDecodeOk) {
    bool ok = (strncmp(out->url, "http://", 7) == 0 && fs[2].len > 7) ||
              (strncmp(out->url, "https://", 8) == 0 && fs[2].len > 8);
    ok = ok && printable_no_space(out->url, fs[2].len);
    // size: a positive integer that fits 32 bits.
    ok = ok && fs[3].is_number && fs[3].len > 0 && fs[3].len <= 10;
    uint64_t v = 0;
    for (size_t i = 0; i < fs[3].len && ok; i++) {
      if (size[i] < '0' || size[i] > '9') ok = false;
      v = v * 10u + static_cast<uint64_t>(size[i] - '0');
    }
    ok = ok && v > 0 && v <= 0xFFFFFFFFu;
    if (ok) out->size = static_cast<uint32_t>(v);
    ok = ok && hex_to_digest(hash, fs[4].len, out->sha256);
    if (!ok) st = kDecodeBadField;
  }
  if (st != kDecodeOk) memset(out, 0, sizeof *out);
  return st;
}

}  // namespace gwproto
