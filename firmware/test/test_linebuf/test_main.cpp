// LineBuffer (serial lines) and FragBuffer (WebSocket fragments).
#include <string.h>
#include <unity.h>

#include "gwproto.h"

using namespace gwproto;

void setUp(void) {}
void tearDown(void) {}

// Collector feeds chunks through a LineBuffer the way a sketch's loop does
// and records the lines that come out.
struct Collector {
  char lines[16][64];
  size_t lens[16];
  int count;
  Collector() : count(0) {}
  void feed(LineBuffer* lb, const char* p, size_t n) {
    while (n > 0) {
      bool ready;
      size_t used = lb->feed(p, n, &ready);
      p += used;
      n -= used;
      if (ready && count < 16) {
        memcpy(lines[count], lb->data(), lb->size());
        lines[count][lb->size()] = '\0';
        lens[count] = lb->size();
        count++;
      }
    }
  }
  void feed(LineBuffer* lb, const char* s) { feed(lb, s, strlen(s)); }
};

static void test_lf_and_crlf(void) {
  StaticLineBuffer<64> lb;
  Collector c;
  c.feed(&lb, "toggle\n{\"value\":1}\r\nlast\r\n");
  TEST_ASSERT_EQUAL_INT(3, c.count);
  TEST_ASSERT_EQUAL_STRING("toggle", c.lines[0]);
  TEST_ASSERT_EQUAL_STRING("{\"value\":1}", c.lines[1]);
  TEST_ASSERT_EQUAL_STRING("last", c.lines[2]);
  TEST_ASSERT_EQUAL_UINT32(0, lb.overflows());
}

static void test_split_across_reads(void) {
  StaticLineBuffer<64> lb;
  Collector c;
  c.feed(&lb, "{\"lab");
  TEST_ASSERT_EQUAL_INT(0, c.count);
  c.feed(&lb, "el\":\"led\",\"value\":\"tog");
  c.feed(&lb, "gle\"}\r");
  TEST_ASSERT_EQUAL_INT(0, c.count);
  c.feed(&lb, "\n");
  TEST_ASSERT_EQUAL_INT(1, c.count);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"led\",\"value\":\"toggle\"}", c.lines[0]);
}

static void test_byte_at_a_time(void) {
  StaticLineBuffer<16> lb;
  const char* in = "ab\r\ncd\n";
  int lines = 0;
  for (const char* p = in; *p; p++) {
    if (lb.push(*p)) {
      lines++;
      TEST_ASSERT_EQUAL_size_t(2, lb.size());
      TEST_ASSERT_EQUAL_STRING(lines == 1 ? "ab" : "cd", lb.data());
    }
  }
  TEST_ASSERT_EQUAL_INT(2, lines);
}

static void test_empty_lines_skipped(void) {
  StaticLineBuffer<16> lb;
  Collector c;
  c.feed(&lb, "\n\r\n\n\r\nx\n\n");
  TEST_ASSERT_EQUAL_INT(1, c.count);
  TEST_ASSERT_EQUAL_STRING("x", c.lines[0]);
}

static void test_overlong_line_dropped_whole(void) {
  StaticLineBuffer<8> lb;
  Collector c;
  c.feed(&lb, "123456789\nabc\n");
  TEST_ASSERT_EQUAL_INT(1, c.count);
  TEST_ASSERT_EQUAL_STRING("abc", c.lines[0]);
  TEST_ASSERT_EQUAL_UINT32(1, lb.overflows());
}

static void test_overlong_line_across_many_reads(void) {
  StaticLineBuffer<8> lb;
  Collector c;
  for (int i = 0; i < 100; i++) c.feed(&lb, "0123456789");
  TEST_ASSERT_TRUE(lb.discarding());
  TEST_ASSERT_EQUAL_INT(0, c.count);
  c.feed(&lb, "tail\nok\n");
  TEST_ASSERT_FALSE(lb.discarding());
  TEST_ASSERT_EQUAL_INT(1, c.count);
  TEST_ASSERT_EQUAL_STRING("ok", c.lines[0]);
  TEST_ASSERT_EQUAL_UINT32(1, lb.overflows());
}

static void test_exact_fit(void) {
  StaticLineBuffer<8> lb;
  TEST_ASSERT_EQUAL_size_t(8, lb.max_line());
  Collector c;
  c.feed(&lb, "12345678\n");
  c.feed(&lb, "abcdefgh\r\n");  // the CR is not content
  c.feed(&lb, "ABCDEFGH\rX\n");  // here it is, and the line is too long
  c.feed(&lb, "ABCDEFGH\r\r\n");
  c.feed(&lb, "end\n");
  TEST_ASSERT_EQUAL_INT(3, c.count);
  TEST_ASSERT_EQUAL_STRING("12345678", c.lines[0]);
  TEST_ASSERT_EQUAL_STRING("abcdefgh", c.lines[1]);
  TEST_ASSERT_EQUAL_STRING("end", c.lines[2]);
  TEST_ASSERT_EQUAL_UINT32(2, lb.overflows());
}

static void test_nul_bytes_kept(void) {
  StaticLineBuffer<16> lb;
  Collector c;
  const char in[] = {'a', '\0', 'b', '\n'};
  c.feed(&lb, in, sizeof in);
  TEST_ASSERT_EQUAL_INT(1, c.count);
  TEST_ASSERT_EQUAL_size_t(3, c.lens[0]);
  TEST_ASSERT_EQUAL_MEMORY("a\0b", c.lines[0], 3);
}

static void test_reset_forgets_partial(void) {
  StaticLineBuffer<8> lb;
  Collector c;
  c.feed(&lb, "garb");
  lb.reset();
  c.feed(&lb, "ok\n");
  TEST_ASSERT_EQUAL_INT(1, c.count);
  TEST_ASSERT_EQUAL_STRING("ok", c.lines[0]);
  c.feed(&lb, "0123456789");
  TEST_ASSERT_TRUE(lb.discarding());
  lb.reset();
  c.feed(&lb, "x\n");
  TEST_ASSERT_EQUAL_INT(2, c.count);
  TEST_ASSERT_EQUAL_STRING("x", c.lines[1]);
}

static void test_external_storage_and_zero_capacity(void) {
  char storage[4];
  LineBuffer lb(storage, sizeof storage);
  Collector c;
  c.feed(&lb, "abc\nabcd\nab\n");
  TEST_ASSERT_EQUAL_INT(2, c.count);
  TEST_ASSERT_EQUAL_UINT32(1, lb.overflows());
  LineBuffer none(storage, 0);
  Collector c2;
  c2.feed(&none, "a\n\n");
  TEST_ASSERT_EQUAL_INT(0, c2.count);
  TEST_ASSERT_EQUAL_UINT32(1, none.overflows());
}

// Random chunking must not change which lines come out.
static void test_random_chunking(void) {
  const char stream[] =
      "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
      "{\"label\":\"count\",\"value\":1}\r\n"
      "this line is definitely longer than thirty-two bytes and must go\r\n"
      "toggle\n"
      "\r\n"
      "{\"value\":\"on\"}\n";
  XorShift32 rng(99);
  for (int iter = 0; iter < 500; iter++) {
    char storage[33];
    LineBuffer lb(storage, sizeof storage);
    Collector c;
    size_t pos = 0, n = sizeof stream - 1;
    while (pos < n) {
      size_t k = 1 + rng.next() % 7;
      if (k > n - pos) k = n - pos;
      c.feed(&lb, stream + pos, k);
      pos += k;
    }
    TEST_ASSERT_EQUAL_INT(3, c.count);
    TEST_ASSERT_EQUAL_STRING("{\"label\":\"count\",\"value\":1}", c.lines[0]);
    TEST_ASSERT_EQUAL_STRING("toggle", c.lines[1]);
    TEST_ASSERT_EQUAL_STRING("{\"value\":\"on\"}", c.lines[2]);
    TEST_ASSERT_EQUAL_UINT32(2, lb.overflows());
  }
}

static void test_frag_whole_message(void) {
  char storage[16];
  FragBuffer fb(storage, sizeof storage);
  TEST_ASSERT_EQUAL_INT(FragBuffer::kDone, fb.add("toggle", 6, true, true));
  TEST_ASSERT_EQUAL_size_t(6, fb.size());
  TEST_ASSERT_EQUAL_STRING("toggle", fb.data());
}

static void test_frag_pieces(void) {
  char storage[16];
  FragBuffer fb(storage, sizeof storage);
  TEST_ASSERT_EQUAL_INT(FragBuffer::kMore, fb.add("tog", 3, true, false));
  TEST_ASSERT_EQUAL_INT(FragBuffer::kMore, fb.add("", 0, false, false));
  TEST_ASSERT_EQUAL_INT(FragBuffer::kDone, fb.add("gle", 3, false, true));
  TEST_ASSERT_EQUAL_STRING("toggle", fb.data());
  TEST_ASSERT_EQUAL_UINT32(0, fb.dropped());
}

static void test_frag_too_big_dropped_whole(void) {
  char storage[8];  // messages up to 7 bytes
  FragBuffer fb(storage, sizeof storage);
  TEST_ASSERT_EQUAL_INT(FragBuffer::kDone, fb.add("1234567", 7, true, true));
  TEST_ASSERT_EQUAL_INT(FragBuffer::kMore, fb.add("1234", 4, true, false));
  TEST_ASSERT_EQUAL_INT(FragBuffer::kMore, fb.add("5678", 4, false, false));
  TEST_ASSERT_EQUAL_INT(FragBuffer::kMore, fb.add("9", 1, false, false));
  TEST_ASSERT_EQUAL_INT(FragBuffer::kDropped, fb.add("0", 1, false, true));
  TEST_ASSERT_EQUAL_UINT32(1, fb.dropped());
  TEST_ASSERT_EQUAL_INT(FragBuffer::kDone, fb.add("ok", 2, true, true));
  TEST_ASSERT_EQUAL_STRING("ok", fb.data());
}

static void test_frag_continuation_without_start(void) {
  char storage[16];
  FragBuffer fb(storage, sizeof storage);
  TEST_ASSERT_EQUAL_INT(FragBuffer::kDropped, fb.add("x", 1, false, true));
  TEST_ASSERT_EQUAL_INT(FragBuffer::kMore, fb.add("y", 1, false, false));
  TEST_ASSERT_EQUAL_INT(FragBuffer::kDropped, fb.add("z", 1, false, true));
  TEST_ASSERT_EQUAL_UINT32(2, fb.dropped());
}

static void test_frag_new_start_drops_unfinished(void) {
  char storage[16];
  FragBuffer fb(storage, sizeof storage);
  fb.add("abc", 3, true, false);
  TEST_ASSERT_EQUAL_INT(FragBuffer::kDone, fb.add("on", 2, true, true));
  TEST_ASSERT_EQUAL_STRING("on", fb.data());
  TEST_ASSERT_EQUAL_UINT32(1, fb.dropped());
}

int main(void) {
  UNITY_BEGIN();
  RUN_TEST(test_lf_and_crlf);
  RUN_TEST(test_split_across_reads);
  RUN_TEST(test_byte_at_a_time);
  RUN_TEST(test_empty_lines_skipped);
  RUN_TEST(test_overlong_line_dropped_whole);
  RUN_TEST(test_overlong_line_across_many_reads);
  RUN_TEST(test_exact_fit);
  RUN_TEST(test_nul_bytes_kept);
  RUN_TEST(test_reset_forgets_partial);
  RUN_TEST(test_external_storage_and_zero_capacity);
  RUN_TEST(test_random_chunking);
  RUN_TEST(test_frag_whole_message);
  RUN_TEST(test_frag_pieces);
  RUN_TEST(test_frag_too_big_dropped_whole);
  RUN_TEST(test_frag_continuation_without_start);
  RUN_TEST(test_frag_new_start_drops_unfinished);
  return UNITY_END();
}
