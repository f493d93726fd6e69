// Frame encoder and JsonWriter: escaping, numbers, labels, bounded output.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unity.h>

#include "gwproto.h"

using namespace gwproto;

void setUp(void) {}
void tearDown(void) {}

static char buf[512];

static void test_int_frame(void) {
  size_t n = frame_int(buf, sizeof buf, GWPROTO_LIT("count"), 42);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"count\",\"value\":42}", buf);
  TEST_ASSERT_EQUAL_size_t(strlen(buf), n);
}

static void test_int_extremes(void) {
  frame_int(buf, sizeof buf, GWPROTO_LIT("v"), INT64_MIN);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"v\",\"value\":-9223372036854775808}", buf);
  frame_int(buf, sizeof buf, GWPROTO_LIT("v"), INT64_MAX);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"v\",\"value\":9223372036854775807}", buf);
  frame_int(buf, sizeof buf, GWPROTO_LIT("v"), 0);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"v\",\"value\":0}", buf);
  frame_int(buf, sizeof buf, GWPROTO_LIT("v"), -7);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"v\",\"value\":-7}", buf);
}

static void test_string_frame(void) {
  size_t n = frame_string(buf, sizeof buf, GWPROTO_LIT("ledStatus"), GWPROTO_LIT("LED ON"));
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"ledStatus\",\"value\":\"LED ON\"}", buf);
  TEST_ASSERT_EQUAL_size_t(strlen(buf), n);
}

static void test_escapes_quote_backslash_controls(void) {
  const char in[] = "a\"b\\c\nd\re\tf\bg\fh\x01i\x1fj\x7f";
  frame_string(buf, sizeof buf, GWPROTO_LIT("s"), in, sizeof in - 1);
  TEST_ASSERT_EQUAL_STRING(
      "{\"label\":\"s\",\"value\":\"a\\\"b\\\\c\\nd\\re\\tf\\bg\\fh\\u0001i\\u001fj\x7f\"}", buf);
}

static void test_escapes_embedded_nul(void) {
  const char in[] = {'a', '\0', 'b'};
  size_t n = frame_string(buf, sizeof buf, GWPROTO_LIT("s"), in, sizeof in);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"s\",\"value\":\"a\\u0000b\"}", buf);
  TEST_ASSERT_EQUAL_size_t(strlen(buf), n);
}

static void test_escapes_only_the_given_length(void) {
  // The input is not NUL-terminated: bytes past the length must not appear.
  const char in[] = {'o', 'k', '"', '"'};
  frame_string(buf, sizeof buf, GWPROTO_LIT("s"), in, 2);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"s\",\"value\":\"ok\"}", buf);
}

static void test_utf8_passes_through(void) {
  const char in[] = "21.5 \xc2\xb0" "C \xe2\x82\xac \xf0\x9f\x98\x80";
  frame_string(buf, sizeof buf, GWPROTO_LIT("s"), in, sizeof in - 1);
  TEST_ASSERT_EQUAL_STRING(
      "{\"label\":\"s\",\"value\":\"21.5 \xc2\xb0" "C \xe2\x82\xac \xf0\x9f\x98\x80\"}", buf);
}

static void test_invalid_utf8_becomes_replacement(void) {
  // lone continuation, 0xFF, overlong "/", a UTF-16 surrogate, above U+10FFFF,
  // and a sequence cut short at the end.
  const char in[] = "\x80|\xff|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xe2\x82";
  frame_string(buf, sizeof buf, GWPROTO_LIT("s"), in, sizeof in - 1);
  TEST_ASSERT_EQUAL_STRING(
      "{\"label\":\"s\",\"value\":\"\\ufffd|\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|"
      "\\ufffd\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\"}",
      buf);
}

static void test_double_shortest_round_trip(void) {
  struct Case {
    double v;
    const char* want;
  } cases[] = {
      {21.5, "21.5"},     {0.1, "0.1"},         {-0.0, "-0"},          {1e300, "1e+300"},
      {100, "100"},       {1.0 / 3, "0.3333333333333333"},        {123456789.125, "123456789.125"},
      {5e-324, "4.94065645841247e-324"}, {-2.5e-7, "-2.5e-07"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char out[64];
    size_t n = format_double(cases[i].v, out, sizeof out);
    TEST_ASSERT_EQUAL_STRING(cases[i].want, out);
    TEST_ASSERT_EQUAL_size_t(strlen(cases[i].want), n);
    TEST_ASSERT_TRUE(strtod(out, NULL) == cases[i].v);
  }
}

static void test_float_shortest_round_trip(void) {
  struct Case {
    float v;
    const char* want;
  } cases[] = {
      {21.5f, "21.5"}, {0.1f, "0.1"}, {3.14159f, "3.14159"}, {1.0f / 3, "0.33333334"},
      {16777216.0f, "16777216"}, {-40.25f, "-40.25"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char out[64];
    format_float(cases[i].v, out, sizeof out);
    TEST_ASSERT_EQUAL_STRING(cases[i].want, out);
    TEST_ASSERT_TRUE(strtof(out, NULL) == cases[i].v);
  }
}

static void test_double_round_trips_randomly(void) {
  XorShift32 rng(12345);
  for (int i = 0; i < 5000; i++) {
    uint64_t bits = (static_cast<uint64_t>(rng.next()) << 32) | rng.next();
    double v;
    memcpy(&v, &bits, sizeof v);
    char out[64];
    size_t n = format_double(v, out, sizeof out);
    if (!isfinite(v)) {
      TEST_ASSERT_EQUAL_size_t(0, n);
      continue;
    }
    TEST_ASSERT_TRUE(n > 0);
    TEST_ASSERT_TRUE(strtod(out, NULL) == v);
  }
}

static void test_nan_and_inf_are_null(void) {
  frame_double(buf, sizeof buf, GWPROTO_LIT("t"), NAN);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"t\",\"value\":null}", buf);
  frame_double(buf, sizeof buf, GWPROTO_LIT("t"), INFINITY);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"t\",\"value\":null}", buf);
  frame_double(buf, sizeof buf, GWPROTO_LIT("t"), -INFINITY);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"t\",\"value\":null}", buf);
  frame_float(buf, sizeof buf, GWPROTO_LIT("t"), NAN);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"t\",\"value\":null}", buf);
}

static void test_number_frames(void) {
  frame_double(buf, sizeof buf, GWPROTO_LIT("temp"), 21.5);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"temp\",\"value\":21.5}", buf);
  frame_float(buf, sizeof buf, GWPROTO_LIT("hum"), 40.1f);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"hum\",\"value\":40.1}", buf);
  frame_bool(buf, sizeof buf, GWPROTO_LIT("door"), true);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"door\",\"value\":true}", buf);
  frame_bool(buf, sizeof buf, GWPROTO_LIT("door"), false);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"door\",\"value\":false}", buf);
  frame_null(buf, sizeof buf, GWPROTO_LIT("x"));
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"x\",\"value\":null}", buf);
}

static void test_labels(void) {
  TEST_ASSERT_TRUE(valid_label(GWPROTO_LIT("temp")));
  TEST_ASSERT_TRUE(valid_label(GWPROTO_LIT("a.b-c_D9")));
  TEST_ASSERT_TRUE(valid_label(GWPROTO_LIT("abcdefghijklmnopqrstuvwxyz012345")));  // 32
  TEST_ASSERT_FALSE(valid_label(GWPROTO_LIT("abcdefghijklmnopqrstuvwxyz0123456")));  // 33
  TEST_ASSERT_FALSE(valid_label(GWPROTO_LIT("")));
  TEST_ASSERT_FALSE(valid_label(GWPROTO_LIT("has space")));
  TEST_ASSERT_FALSE(valid_label(GWPROTO_LIT("quote\"")));
  TEST_ASSERT_FALSE(valid_label(GWPROTO_LIT("slash/")));
  TEST_ASSERT_FALSE(valid_label(GWPROTO_LIT("\xc2\xb0")));
  TEST_ASSERT_FALSE(valid_label(NULL, 3));
  memset(buf, 'x', sizeof buf);
  TEST_ASSERT_EQUAL_size_t(0, frame_int(buf, sizeof buf, GWPROTO_LIT("bad label"), 1));
  TEST_ASSERT_EQUAL_INT('\0', buf[0]);
}

// Every capacity from 0 to the frame's size: either the whole frame and its
// NUL, or 0 with an empty string; never a byte past the capacity.
static void test_bounded_output_every_capacity(void) {
  const char want[] = "{\"label\":\"ledStatus\",\"value\":\"LED \\\"ON\\\"\"}";
  const size_t full = sizeof want - 1;
  for (size_t cap = 0; cap <= full + 2; cap++) {
    char out[128];
    memset(out, '#', sizeof out);
    size_t n = frame_string(out, cap, GWPROTO_LIT("ledStatus"), GWPROTO_LIT("LED \"ON\""));
    for (size_t i = cap; i < sizeof out; i++) {
      TEST_ASSERT_EQUAL_INT('#', out[i]);
    }
    if (cap >= full + 1) {
      TEST_ASSERT_EQUAL_size_t(full, n);
      TEST_ASSERT_EQUAL_STRING(want, out);
    } else {
      TEST_ASSERT_EQUAL_size_t(0, n);
      if (cap > 0) TEST_ASSERT_EQUAL_INT('\0', out[0]);
    }
  }
}

static void test_null_output_buffer(void) {
  TEST_ASSERT_EQUAL_size_t(0, frame_int(NULL, 100, GWPROTO_LIT("count"), 1));
  JsonWriter w(NULL, 0);
  w.null();
  TEST_ASSERT_EQUAL_size_t(0, w.finish());
}

static void test_writer_nested_value(void) {
  JsonWriter w(buf, sizeof buf);
  w.begin_object();
  w.key(GWPROTO_LIT("a"));
  w.begin_array();
  w.integer(1);
  w.string(GWPROTO_LIT("x"));
  w.begin_object();
  w.end_object();
  w.end_array();
  w.key(GWPROTO_LIT("b"));
  w.null();
  w.end_object();
  size_t n = w.finish();
  TEST_ASSERT_EQUAL_STRING("{\"a\":[1,\"x\",{}],\"b\":null}", buf);
  TEST_ASSERT_EQUAL_size_t(strlen(buf), n);
}

static void test_writer_misuse_fails(void) {
  {
    JsonWriter w(buf, sizeof buf);  // value without key in an object
    w.begin_object();
    w.integer(1);
    w.end_object();
    TEST_ASSERT_EQUAL_size_t(0, w.finish());
  }
  {
    JsonWriter w(buf, sizeof buf);  // unclosed object
    w.begin_object();
    TEST_ASSERT_EQUAL_size_t(0, w.finish());
  }
  {
    JsonWriter w(buf, sizeof buf);  // key with no value
    w.begin_object();
    w.key(GWPROTO_LIT("k"));
    w.end_object();
    TEST_ASSERT_EQUAL_size_t(0, w.finish());
  }
  {
    JsonWriter w(buf, sizeof buf);  // two top-level values
    w.integer(1);
    w.integer(2);
    TEST_ASSERT_EQUAL_size_t(0, w.finish());
  }
  {
    JsonWriter w(buf, sizeof buf);  // deeper than kMaxDepth
    for (int i = 0; i <= JsonWriter::kMaxDepth; i++) w.begin_array();
    for (int i = 0; i <= JsonWriter::kMaxDepth; i++) w.end_array();
    TEST_ASSERT_EQUAL_size_t(0, w.finish());
  }
  {
    JsonWriter w(buf, sizeof buf);  // mismatched close
    w.begin_array();
    w.end_object();
    TEST_ASSERT_EQUAL_size_t(0, w.finish());
  }
  {
    JsonWriter w(buf, sizeof buf);  // nothing written
    TEST_ASSERT_EQUAL_size_t(0, w.finish());
  }
}

static void test_raw_value(void) {
  frame_raw(buf, sizeof buf, GWPROTO_LIT("pos"), GWPROTO_LIT("{\"x\":1,\"y\":2}"));
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"pos\",\"value\":{\"x\":1,\"y\":2}}", buf);
  TEST_ASSERT_EQUAL_size_t(0, frame_raw(buf, sizeof buf, GWPROTO_LIT("pos"), "", 0));
}

// Whatever bytes go in, the command decoder reads the same bytes back out of
// the encoded frame (ASCII, including every control character).
static void test_string_round_trips_through_decoder(void) {
  XorShift32 rng(777);
  for (int iter = 0; iter < 3000; iter++) {
    char in[Command::kMaxValue];
    size_t n = rng.next() % (sizeof in + 1);
    for (size_t i = 0; i < n; i++) in[i] = static_cast<char>(rng.next() & 0x7F);
    char out[512];
    size_t fn = frame_string(out, sizeof out, GWPROTO_LIT("led"), in, n);
    TEST_ASSERT_TRUE(fn > 0);
    Command c;
    TEST_ASSERT_EQUAL_INT(kDecodeOk, decode_command(out, fn, &c));
    TEST_ASSERT_EQUAL_INT(kValueString, c.type);
    TEST_ASSERT_EQUAL_STRING("led", c.label);
    TEST_ASSERT_EQUAL_size_t(n, c.value_len);
    TEST_ASSERT_EQUAL_MEMORY(in, c.value, n);
  }
}

int main(void) {
  UNITY_BEGIN();
  RUN_TEST(test_int_frame);
  RUN_TEST(test_int_extremes);
  RUN_TEST(test_string_frame);
  RUN_TEST(test_escapes_quote_backslash_controls);
  RUN_TEST(test_escapes_embedded_nul);
  RUN_TEST(test_escapes_only_the_given_length);
  RUN_TEST(test_utf8_passes_through);
  RUN_TEST(test_invalid_utf8_becomes_replacement);
  RUN_TEST(test_double_shortest_round_trip);
  RUN_TEST(test_float_shortest_round_trip);
  RUN_TEST(test_double_round_trips_randomly);
  RUN_TEST(test_nan_and_inf_are_null);
  RUN_TEST(test_number_frames);
  RUN_TEST(test_labels);
  RUN_TEST(test_bounded_output_every_capacity);
  RUN_TEST(test_null_output_buffer);
  RUN_TEST(test_writer_nested_value);
  RUN_TEST(test_writer_misuse_fails);
  RUN_TEST(test_raw_value);
  RUN_TEST(test_string_round_trips_through_decoder);
  return UNITY_END();
}
