// ws_min: the few RFC 6455 pieces the host native board needs, written for
// tests: SHA-1 and base64 for the handshake key, frame header encode/parse,
// masking, and case-insensitive HTTP header lookup. Test-only code: not
// hardened for the open internet, but bounded (every function takes
// (pointer, length) and a capacity) and unit-tested in test/test_wsmin.
#ifndef ESP32GW_HOST_WS_MIN_H
#define ESP32GW_HOST_WS_MIN_H

#include <stddef.h>
#include <stdint.h>

namespace wsmin {

// sha1 hashes p[0..n) into out (FIPS 180-4).
void sha1(const uint8_t* p, size_t n, uint8_t out[20]);

// base64_encode writes the RFC 4648 encoding of p[0..n) plus a NUL; returns
// its length, or 0 if it does not fit in cap.
size_t base64_encode(const uint8_t* p, size_t n, char* out, size_t cap);

// accept_key computes Sec-WebSocket-Accept for a Sec-WebSocket-Key:
// base64(sha1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")). Returns the
// length (28) or 0 if the key is over 64 bytes or cap is under 29.
size_t accept_key(const char* key, size_t n, char* out, size_t cap);

enum Opcode {
  kOpContinuation = 0x0,
  kOpText = 0x1,
  kOpBinary = 0x2,
  kOpClose = 0x8,
  kOpPing = 0x9,
  kOpPong = 0xA,
};

// Largest frame header: 2 + 8 (length) + 4 (mask).
const size_t kMaxHeader = 14;

// encode_frame writes one frame (header, then payload masked with mask when
// mask is non-NULL, as a client must) into out; returns its size or 0 if it
// does not fit.
size_t encode_frame(uint8_t opcode, bool fin, const uint8_t* payload, size_t n, const uint8_t* mask,
                    uint8_t* out, size_t cap);

struct FrameHeader {
  bool fin;
  uint8_t opcode;
  bool masked;
  uint8_t mask[4];
  uint64_t length;    // payload length
  size_t header_len;  // bytes before the payload
};

enum ParseStatus {
  kParseNeedMore = 0,  // the header is not complete yet
  kParseOk,
  kParseError,  // RSV bits set, unknown opcode, bad control frame, bad length
};

// parse_header reads a frame header from buf[0..n).
ParseStatus parse_header(const uint8_t* buf, size_t n, FrameHeader* h);

// apply_mask XORs p[0..n) with mask; offset is the position of p[0] in the
// payload (for a payload unmasked in pieces).
void apply_mask(uint8_t* p, size_t n, const uint8_t mask[4], uint64_t offset);

// find_header looks up an HTTP header by name (ASCII case-insensitive) in
// head[0..n) (the request/response head, lines ending in \r\n). On success
// *val/*vlen hold the value with surrounding whitespace trimmed.
bool find_header(const char* head, size_t n, const char* name, const char** val, size_t* vlen);

// has_token reports whether a comma-separated header value contains token
// (ASCII case-insensitive), as in "Connection: keep-alive, Upgrade".
bool has_token(const char* v, size_t n, const char* token);

// iequals compares a[0..n) with the NUL-terminated b, ignoring ASCII case.
bool iequals(const char* a, size_t n, const char* b);

}  // namespace wsmin

#endif  // ESP32GW_HOST_WS_MIN_H
