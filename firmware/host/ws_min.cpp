#include "ws_min.h"

#include <string.h>

namespace wsmin {

namespace {

uint32_t rol(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

void sha1_block(uint32_t h[5], const uint8_t* b) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++) {
    w[i] = (static_cast<uint32_t>(b[4 * i]) << 24) | (static_cast<uint32_t>(b[4 * i + 1]) << 16) |
           (static_cast<uint32_t>(b[4 * i + 2]) << 8) | static_cast<uint32_t>(b[4 * i + 3]);
  }
  for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) {
      f = (bb & c) | (~bb & d);
      k = 0x5A827999u;
    } else if (i < 40) {
      f = bb ^ c ^ d;
      k = 0x6ED9EBA1u;
    } else if (i < 60) {
      f = (bb & c) | (bb & d) | (c & d);
      k = 0x8F1BBCDCu;
    } else {
      f = bb ^ c ^ d;
      k = 0xCA62C1D6u;
    }
    uint32_t t = rol(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rol(bb, 30);
    bb = a;
    a = t;
  }
  h[0] += a;
  h[1] += bb;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_ws(char c) { return c == ' ' || c == '\t'; }

}  // namespace

void sha1(const uint8_t* p, size_t n, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
  size_t i = 0;
  for (; i + 64 <= n; i += 64) sha1_block(h, p + i);
  uint8_t tail[128];
  size_t rem = n - i;
  memset(tail, 0, sizeof tail);
  if (rem > 0) memcpy(tail, p + i, rem);
  tail[rem] = 0x80;
  size_t tail_len = (rem + 1 + 8 <= 64) ? 64 : 128;
  uint64_t bits = static_cast<uint64_t>(n) * 8;
  for (size_t k = 0; k < 8; k++) tail[tail_len - 1 - k] = static_cast<uint8_t>(bits >> (8 * k));
  sha1_block(h, tail);
  if (tail_len == 128) sha1_block(h, tail + 64);
  for (int k = 0; k < 5; k++) {
    out[4 * k] = static_cast<uint8_t>(h[k] >> 24);
    out[4 * k + 1] = static_cast<uint8_t>(h[k] >> 16);
    out[4 * k + 2] = static_cast<uint8_t>(h[k] >> 8);
    out[4 * k + 3] = static_cast<uint8_t>(h[k]);
  }
}

size_t base64_encode(const uint8_t* p, size_t n, char* out, size_t cap) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t need = (n + 2) / 3 * 4;
  if (cap == 0 || need + 1 > cap) return 0;
  size_t o = 0;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (static_cast<uint32_t>(p[i]) << 16) | (static_cast<uint32_t>(p[i + 1]) << 8) |
                 p[i + 2];
    out[o++] = kAlphabet[(v >> 18) & 63];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = kAlphabet[(v >> 6) & 63];
    out[o++] = kAlphabet[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = static_cast<uint32_t>(p[i]) << 16;
    out[o++] = kAlphabet[(v >> 18) & 63];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (n - i == 2) {
    uint32_t v = (static_cast<uint32_t>(p[i]) << 16) | (static_cast<uint32_t>(p[i + 1]) << 8);
    out[o++] = kAlphabet[(v >> 18) & 63];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = kAlphabet[(v >> 6) & 63];
    out[o++] = '=';
  }
  out[o] = '\0';
  return o;
}

size_t accept_key(const char* key, size_t n, char* out, size_t cap) {
  static const char kGuid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  const size_t guid_len = sizeof kGuid - 1;
  if (n > 64 || cap < 29) return 0;
  uint8_t buf[64 + sizeof kGuid];
  memcpy(buf, key, n);
  memcpy(buf + n, kGuid, guid_len);
  uint8_t digest[20];
  sha1(buf, n + guid_len, digest);
  return base64_encode(digest, sizeof digest, out, cap);
}

size_t encode_frame(uint8_t opcode, bool fin, const uint8_t* payload, size_t n, const uint8_t* mask,
                    uint8_t* out, size_t cap) {
  size_t hdr = 2;
  if (n >= 126 && n <= 0xFFFF) {
    hdr += 2;
  } else if (n > 0xFFFF) {
    hdr += 8;
  }
  if (mask) hdr += 4;
  if (hdr > cap || n > cap - hdr) return 0;
  out[0] = static_cast<uint8_t>((fin ? 0x80 : 0) | (opcode & 0x0F));
  uint8_t m = mask ? 0x80 : 0;
  size_t o = 2;
  if (n < 126) {
    out[1] = static_cast<uint8_t>(m | n);
  } else if (n <= 0xFFFF) {
    out[1] = static_cast<uint8_t>(m | 126);
    out[o++] = static_cast<uint8_t>(n >> 8);
    out[o++] = static_cast<uint8_t>(n);
  } else {
    out[1] = static_cast<uint8_t>(m | 127);
    uint64_t len = n;
    for (int k = 7; k >= 0; k--) out[o++] = static_cast<uint8_t>(len >> (8 * k));
  }
  if (mask) {
    memcpy(out + o, mask, 4);
    o += 4;
  }
  for (size_t i = 0; i < n; i++) {
    out[o + i] = mask ? static_cast<uint8_t>(payload[i] ^ mask[i & 3]) : payload[i];
  }
  return o + n;
}

ParseStatus parse_header(const uint8_t* buf, size_t n, FrameHeader* h) {
  if (n < 2) return kParseNeedMore;
  uint8_t b0 = buf[0], b1 = buf[1];
  if (b0 & 0x70) return kParseError;  // RSV1-3: no extension was negotiated
  h->fin = (b0 & 0x80) != 0;
  h->opcode = b0 & 0x0F;
  h->masked = (b1 & 0x80) != 0;
  bool control = (h->opcode & 0x08) != 0;
  switch (h->opcode) {
    case kOpContinuation:
    case kOpText:
    case kOpBinary:
    case kOpClose:
    case kOpPing:
    case kOpPong:
      break;
    default:
      return kParseError;
  }
  uint64_t len = b1 & 0x7F;
  size_t o = 2;
  if (len == 126) {
    if (n < 4) return kParseNeedMore;
    len = (static_cast<uint64_t>(buf[2]) << 8) | buf[3];
    o = 4;
  } else if (len == 127) {
    if (n < 10) return kParseNeedMore;
    len = 0;
    for (int k = 0; k < 8; k++) len = (len << 8) | buf[2 + k];
    if (len >> 63) return kParseError;
    o = 10;
  }
  if (control && (len > 125 || !h->fin)) return kParseError;
  if (h->masked) {
    if (n < o + 4) return kParseNeedMore;
    memcpy(h->mask, buf + o, 4);
    o += 4;
  } else {
    memset(h->mask, 0, 4);
  }
  h->length = len;
  h->header_len = o;
  return kParseOk;
}

void apply_mask(uint8_t* p, size_t n, const uint8_t mask[4], uint64_t offset) {
  for (size_t i = 0; i < n; i++) p[i] = static_cast<uint8_t>(p[i] ^ mask[(offset + i) & 3]);
}

bool iequals(const char* a, size_t n, const char* b) {
  size_t bn = strlen(b);
  if (n != bn) return false;
  for (size_t i = 0; i < n; i++) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool find_header(const char* head, size_t n, const char* name, const char** val, size_t* vlen) {
  size_t i = 0;
  // Skip the request or status line.
  while (i + 1 < n && !(head[i] == '\r' && head[i + 1] == '\n')) i++;
  i += 2;
  while (i < n) {
    size_t end = i;
    while (end + 1 < n && !(head[end] == '\r' && head[end + 1] == '\n')) end++;
    if (end + 1 >= n) end = n;
    if (end == i) break;  // blank line: end of head
    size_t colon = i;
    while (colon < end && head[colon] != ':') colon++;
    if (colon < end && iequals(head + i, colon - i, name)) {
      size_t a = colon + 1, b = end;
      while (a < b && is_ws(head[a])) a++;
      while (b > a && is_ws(head[b - 1])) b--;
      *val = head + a;
      *vlen = b - a;
      return true;
    }
    i = end + 2;
  }
  return false;
}

bool has_token(const char* v, size_t n, const char* token) {
  size_t i = 0;
  while (i < n) {
    size_t end = i;
    while (end < n && v[end] != ',') end++;
    size_t a = i, b = end;
    while (a < b && is_ws(v[a])) a++;
    while (b > a && is_ws(v[b - 1])) b--;
    if (iequals(v + a, b - a, token)) return true;
    i = end + 1;
  }
  return false;
}

}  // namespace wsmin
