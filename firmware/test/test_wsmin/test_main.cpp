// ws_min (host native board only): SHA-1, base64, the handshake key, frame
// headers and HTTP header lookup, checked against RFC examples.
// Not part of gwproto; `pio test -e native` skips it (see platformio.ini).
#include <string.h>
#include <unity.h>

#include "ws_min.h"

using namespace wsmin;

void setUp(void) {}
void tearDown(void) {}

static const uint8_t* u8(const char* s) { return reinterpret_cast<const uint8_t*>(s); }

static void hex(const uint8_t* p, size_t n, char* out) {
  static const char k[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = k[p[i] >> 4];
    out[2 * i + 1] = k[p[i] & 15];
  }
  out[2 * n] = '\0';
}

static void test_sha1_vectors(void) {
  struct Case {
    const char* in;
    const char* want;
  } cases[] = {
      {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
      {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
      {"The quick brown fox jumps over the lazy dog", "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t d[20];
    char h[41];
    sha1(u8(cases[i].in), strlen(cases[i].in), d);
    hex(d, 20, h);
    TEST_ASSERT_EQUAL_STRING(cases[i].want, h);
  }
  // Lengths around the 55/56/64-byte padding boundaries.
  static char many[200];
  memset(many, 'a', sizeof many);
  uint8_t d1[20], d2[20];
  for (size_t n = 50; n < 130; n++) {
    sha1(u8(many), n, d1);
    sha1(u8(many), n, d2);
    TEST_ASSERT_EQUAL_MEMORY(d1, d2, 20);
  }
  sha1(u8(many), 64, d1);
  char h[41];
  hex(d1, 20, h);
  TEST_ASSERT_EQUAL_STRING("0098ba824b5c16427bd7a1122a5a442a25ec644d", h);
}

static void test_base64_vectors(void) {
  const char* in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char* want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (size_t i = 0; i < 7; i++) {
    char out[16];
    size_t n = base64_encode(u8(in[i]), strlen(in[i]), out, sizeof out);
    TEST_ASSERT_EQUAL_STRING(want[i], out);
    TEST_ASSERT_EQUAL_size_t(strlen(want[i]), n);
  }
  char small[4];
  TEST_ASSERT_EQUAL_size_t(0, base64_encode(u8("foo"), 3, small, sizeof small));
}

static void test_accept_key_rfc6455_example(void) {
  static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
  char out[32];
  size_t n = accept_key(key, sizeof key - 1, out, sizeof out);
  TEST_ASSERT_EQUAL_STRING("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", out);
  TEST_ASSERT_EQUAL_size_t(28, n);
}

static void test_encode_rfc_examples(void) {
  uint8_t out[32];
  size_t n = encode_frame(kOpText, true, u8("Hello"), 5, NULL, out, sizeof out);
  const uint8_t unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  TEST_ASSERT_EQUAL_size_t(sizeof unmasked, n);
  TEST_ASSERT_EQUAL_MEMORY(unmasked, out, n);
  const uint8_t mask[] = {0x37, 0xfa, 0x21, 0x3d};
  n = encode_frame(kOpText, true, u8("Hello"), 5, mask, out, sizeof out);
  const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  TEST_ASSERT_EQUAL_size_t(sizeof masked, n);
  TEST_ASSERT_EQUAL_MEMORY(masked, out, n);
  TEST_ASSERT_EQUAL_size_t(0, encode_frame(kOpText, true, u8("Hello"), 5, mask, out, 10));
}

static void test_parse_rfc_examples(void) {
  const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  FrameHeader h;
  for (size_t k = 0; k < 6; k++) {
    TEST_ASSERT_EQUAL_INT(kParseNeedMore, parse_header(masked, k, &h));
  }
  TEST_ASSERT_EQUAL_INT(kParseOk, parse_header(masked, sizeof masked, &h));
  TEST_ASSERT_TRUE(h.fin);
  TEST_ASSERT_EQUAL_UINT(kOpText, h.opcode);
  TEST_ASSERT_TRUE(h.masked);
  TEST_ASSERT_EQUAL_UINT64(5, h.length);
  TEST_ASSERT_EQUAL_size_t(6, h.header_len);
  uint8_t payload[5];
  memcpy(payload, masked + 6, 5);
  apply_mask(payload, 3, h.mask, 0);  // unmask in two pieces
  apply_mask(payload + 3, 2, h.mask, 3);
  TEST_ASSERT_EQUAL_MEMORY("Hello", payload, 5);
  // Fragmented unmasked text "Hel" + "lo" (RFC 6455 5.7).
  const uint8_t first[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
  const uint8_t last[] = {0x80, 0x02, 0x6c, 0x6f};
  TEST_ASSERT_EQUAL_INT(kParseOk, parse_header(first, sizeof first, &h));
  TEST_ASSERT_FALSE(h.fin);
  TEST_ASSERT_EQUAL_UINT(kOpText, h.opcode);
  TEST_ASSERT_EQUAL_INT(kParseOk, parse_header(last, sizeof last, &h));
  TEST_ASSERT_TRUE(h.fin);
  TEST_ASSERT_EQUAL_UINT(kOpContinuation, h.opcode);
}

static void test_extended_lengths(void) {
  static uint8_t payload[70000];
  static uint8_t out[70100];
  memset(payload, 'x', sizeof payload);
  FrameHeader h;
  size_t n = encode_frame(kOpBinary, true, payload, 126, NULL, out, sizeof out);
  TEST_ASSERT_EQUAL_size_t(4 + 126, n);
  TEST_ASSERT_EQUAL_INT(kParseOk, parse_header(out, n, &h));
  TEST_ASSERT_EQUAL_UINT64(126, h.length);
  TEST_ASSERT_EQUAL_size_t(4, h.header_len);
  n = encode_frame(kOpBinary, true, payload, 65535, NULL, out, sizeof out);
  TEST_ASSERT_EQUAL_INT(kParseOk, parse_header(out, n, &h));
  TEST_ASSERT_EQUAL_UINT64(65535, h.length);
  const uint8_t mask[] = {1, 2, 3, 4};
  n = encode_frame(kOpBinary, true, payload, 65536, mask, out, sizeof out);
  TEST_ASSERT_EQUAL_size_t(14 + 65536, n);
  TEST_ASSERT_EQUAL_INT(kParseNeedMore, parse_header(out, 9, &h));
  TEST_ASSERT_EQUAL_INT(kParseNeedMore, parse_header(out, 13, &h));
  TEST_ASSERT_EQUAL_INT(kParseOk, parse_header(out, n, &h));
  TEST_ASSERT_EQUAL_UINT64(65536, h.length);
  TEST_ASSERT_EQUAL_size_t(14, h.header_len);
}

static void test_protocol_errors(void) {
  FrameHeader h;
  const uint8_t rsv[] = {0xC1, 0x00};           // RSV1 without an extension
  const uint8_t opcode3[] = {0x83, 0x00};       // reserved opcode
  const uint8_t big_ping[] = {0x89, 0x7E, 0x00, 0x7E};  // control frame over 125
  const uint8_t split_ping[] = {0x09, 0x00};    // fragmented control frame
  const uint8_t huge[] = {0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0};  // MSB of 64-bit length
  TEST_ASSERT_EQUAL_INT(kParseError, parse_header(rsv, 2, &h));
  TEST_ASSERT_EQUAL_INT(kParseError, parse_header(opcode3, 2, &h));
  TEST_ASSERT_EQUAL_INT(kParseError, parse_header(big_ping, 4, &h));
  TEST_ASSERT_EQUAL_INT(kParseError, parse_header(split_ping, 2, &h));
  TEST_ASSERT_EQUAL_INT(kParseError, parse_header(huge, 10, &h));
}

static void test_http_headers(void) {
  const char head[] =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "upgrade:  WebSocket \r\n"
      "Connection: keep-alive, Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
      "\r\n"
      "Ignored: after the head\r\n";
  const char* v;
  size_t n;
  TEST_ASSERT_TRUE(find_header(head, sizeof head - 1, "Upgrade", &v, &n));
  TEST_ASSERT_TRUE(iequals(v, n, "websocket"));
  TEST_ASSERT_TRUE(find_header(head, sizeof head - 1, "connection", &v, &n));
  TEST_ASSERT_TRUE(has_token(v, n, "upgrade"));
  TEST_ASSERT_FALSE(has_token(v, n, "close"));
  TEST_ASSERT_TRUE(find_header(head, sizeof head - 1, "SEC-WEBSOCKET-ACCEPT", &v, &n));
  TEST_ASSERT_EQUAL_STRING_LEN("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", v, n);
  TEST_ASSERT_FALSE(find_header(head, sizeof head - 1, "Ignored", &v, &n));
  TEST_ASSERT_FALSE(find_header(head, sizeof head - 1, "Sec-WebSocket-Key", &v, &n));
  // A head cut short is searched only as far as it goes.
  TEST_ASSERT_FALSE(find_header(head, 40, "Connection", &v, &n));
}

int main(void) {
  UNITY_BEGIN();
  RUN_TEST(test_sha1_vectors);
  RUN_TEST(test_base64_vectors);
  RUN_TEST(test_accept_key_rfc6455_example);
  RUN_TEST(test_encode_rfc_examples);
  RUN_TEST(test_parse_rfc_examples);
  RUN_TEST(test_extended_lengths);
  RUN_TEST(test_protocol_errors);
  RUN_TEST(test_http_headers);
  return UNITY_END();
}
