// The demo app (host/demo_app.*, what the native board runs on top of the
// core): LED commands, 1 Hz counter, frames, hello, its command rate limit.
#include <string.h>
#include <unity.h>

#include "demo_app.h"
#include "gwproto.h"

using namespace gwproto;
using namespace demo;

void setUp(void) {}
void tearDown(void) {}

static char buf[256];

static CommandResult send(App* b, const char* s, uint32_t now) {
  return b->handle(s, strlen(s), now);
}

static void test_initial_state_frames(void) {
  App b(0);
  TEST_ASSERT_FALSE(b.led());
  size_t n = b.led_frame(buf, sizeof buf);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"ledStatus\",\"value\":\"LED OFF\"}", buf);
  TEST_ASSERT_EQUAL_size_t(strlen(buf), n);
  b.count_frame(buf, sizeof buf);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"count\",\"value\":0}", buf);
}

static void test_toggle_forms(void) {
  App b(0);
  const char* forms[] = {
      "toggle",
      "TOGGLE\r\n",
      "{\"label\":\"led\",\"value\":\"toggle\"}",
      "{\"value\":\"toggle\"}",
      "{\"label\":\"ledStatus\",\"value\":\"toggle\"}",
      "\"toggle\"",
  };
  bool want = false;
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    CommandResult r = send(&b, forms[i], static_cast<uint32_t>(i) * 1000);
    want = !want;
    TEST_ASSERT_TRUE(r.accepted);
    TEST_ASSERT_TRUE(r.changed);
    TEST_ASSERT_EQUAL_INT(kActionToggle, r.action);
    TEST_ASSERT_EQUAL_INT(want, b.led());
  }
  b.led_frame(buf, sizeof buf);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"ledStatus\",\"value\":\"LED OFF\"}", buf);
}

static void test_on_off_forms(void) {
  App b(0);
  uint32_t t = 0;
  const char* on[] = {"on", "{\"value\":\"LED ON\"}", "{\"value\":true}", "{\"value\":1}", "1",
                      "{\"label\":\"LED\",\"value\":\"On\"}"};
  const char* off[] = {"off", "{\"value\":\"led off\"}", "{\"value\":false}", "{\"value\":0}",
                       "0", "false"};
  for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
    CommandResult r = send(&b, on[i], t += 1000);
    TEST_ASSERT_EQUAL_INT(kActionOn, r.action);
    TEST_ASSERT_TRUE(b.led());
    r = send(&b, off[i], t += 1000);
    TEST_ASSERT_EQUAL_INT(kActionOff, r.action);
    TEST_ASSERT_TRUE(r.changed);
    TEST_ASSERT_FALSE(b.led());
  }
  // "on" while on is accepted (so the state is reported) but changes nothing.
  send(&b, "on", t += 1000);
  CommandResult r = send(&b, "on", t += 1000);
  TEST_ASSERT_TRUE(r.accepted);
  TEST_ASSERT_FALSE(r.changed);
}

static void test_refused_commands(void) {
  App b(0);
  const char* refused[] = {
      "reboot", "{\"label\":\"relay\",\"value\":\"toggle\"}", "{\"value\":\"toggl\"}",
      "{\"value\":2}", "{\"value\":null}", "{\"value\":{\"x\":1}}", "{garbage", "", "to ggle",
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    CommandResult r = send(&b, refused[i], static_cast<uint32_t>(i) * 1000);
    TEST_ASSERT_FALSE(r.accepted);
    TEST_ASSERT_FALSE(r.changed);
    TEST_ASSERT_EQUAL_INT(kActionNone, r.action);
  }
  TEST_ASSERT_FALSE(b.led());
  TEST_ASSERT_EQUAL_UINT32(sizeof refused / sizeof refused[0], b.rejected());
  CommandResult r = send(&b, "{garbage", 100000);
  TEST_ASSERT_EQUAL_INT(kDecodeBadJson, r.status);
}

static void test_rate_limit(void) {
  App b(0);
  uint32_t t = 1000;
  for (uint32_t i = 0; i < App::kCommandBurst; i++) {
    TEST_ASSERT_TRUE(send(&b, "toggle", t).accepted);
  }
  CommandResult r = send(&b, "toggle", t);
  TEST_ASSERT_FALSE(r.accepted);
  TEST_ASSERT_TRUE(r.rate_limited);
  TEST_ASSERT_EQUAL_UINT32(1, b.rate_limited());
  TEST_ASSERT_FALSE(send(&b, "toggle", t + App::kCommandRefillMs - 1).accepted);
  TEST_ASSERT_TRUE(send(&b, "toggle", t + App::kCommandRefillMs).accepted);
  TEST_ASSERT_FALSE(send(&b, "toggle", t + App::kCommandRefillMs).accepted);
  // After a quiet second the full burst is back, and no more.
  t += 10000;
  for (uint32_t i = 0; i < App::kCommandBurst; i++) {
    TEST_ASSERT_TRUE(send(&b, "toggle", t).accepted);
  }
  TEST_ASSERT_FALSE(send(&b, "toggle", t).accepted);
}

static void test_counter_ticks_once_per_period(void) {
  App b(0, 1000);
  TEST_ASSERT_FALSE(b.tick(0));
  TEST_ASSERT_FALSE(b.tick(999));
  TEST_ASSERT_TRUE(b.tick(1000));
  TEST_ASSERT_EQUAL_UINT32(1, b.count());
  TEST_ASSERT_FALSE(b.tick(1500));
  TEST_ASSERT_TRUE(b.tick(2003));  // late by 3 ms: the schedule keeps its phase
  TEST_ASSERT_FALSE(b.tick(2999));
  TEST_ASSERT_TRUE(b.tick(3000));
  TEST_ASSERT_EQUAL_UINT32(3, b.count());
  b.count_frame(buf, sizeof buf);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"count\",\"value\":3}", buf);
}

static void test_counter_after_stall_does_not_burst(void) {
  App b(0, 1000);
  TEST_ASSERT_TRUE(b.tick(10500));  // the loop stalled for ten periods
  TEST_ASSERT_FALSE(b.tick(10500));
  TEST_ASSERT_FALSE(b.tick(11499));
  TEST_ASSERT_TRUE(b.tick(11500));
  TEST_ASSERT_EQUAL_UINT32(2, b.count());
}

static void test_counter_across_millis_wrap(void) {
  uint32_t start = 0xFFFFFE00u;  // 512 ms before the wrap
  App b(start, 1000);
  TEST_ASSERT_FALSE(b.tick(0xFFFFFFFFu));
  TEST_ASSERT_TRUE(b.tick(start + 1000));  // due just after the wrap
  TEST_ASSERT_FALSE(b.tick(start + 1999));
  TEST_ASSERT_TRUE(b.tick(start + 2000));
  TEST_ASSERT_EQUAL_UINT32(2, b.count());
}

static void test_hello_frame(void) {
  Identity id = {"bench", "0.1.0", "serial"};
  size_t n = hello_frame(buf, sizeof buf, id, 1, 1234);
  TEST_ASSERT_EQUAL_STRING(
      "{\"label\":\"hello\",\"value\":{\"id\":\"bench\",\"fw\":\"0.1.0\",\"flavour\":\"serial\","
      "\"reset\":\"POWERON\",\"reset_code\":1,\"uptime_ms\":1234}}",
      buf);
  TEST_ASSERT_EQUAL_size_t(strlen(buf), n);
  // An id with a quote is escaped, never spliced in raw.
  Identity odd = {"a\"b", NULL, "x"};
  hello_frame(buf, sizeof buf, odd, 99, 0);
  TEST_ASSERT_EQUAL_STRING(
      "{\"label\":\"hello\",\"value\":{\"id\":\"a\\\"b\",\"fw\":\"\",\"flavour\":\"x\","
      "\"reset\":\"UNKNOWN\",\"reset_code\":99,\"uptime_ms\":0}}",
      buf);
  TEST_ASSERT_EQUAL_size_t(0, hello_frame(buf, 40, id, 1, 0));
}

static void test_action_names(void) {
  TEST_ASSERT_EQUAL_STRING("toggle", action_name(kActionToggle));
  TEST_ASSERT_EQUAL_STRING("on", action_name(kActionOn));
  TEST_ASSERT_EQUAL_STRING("off", action_name(kActionOff));
  TEST_ASSERT_EQUAL_STRING("none", action_name(kActionNone));
}

// On an ILP32 target (the ESP32; -m32 here) the frame sizes and counters
// must not depend on a 64-bit long.
static void test_word_size_independent(void) {
  App b(0, 1);
  for (uint32_t t = 1; t <= 100000; t++) b.tick(t);
  TEST_ASSERT_EQUAL_UINT32(100000, b.count());
  size_t n = b.count_frame(buf, sizeof buf);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"count\",\"value\":100000}", buf);
  TEST_ASSERT_EQUAL_size_t(32, n);
}

int main(void) {
  UNITY_BEGIN();
  RUN_TEST(test_initial_state_frames);
  RUN_TEST(test_toggle_forms);
  RUN_TEST(test_on_off_forms);
  RUN_TEST(test_refused_commands);
  RUN_TEST(test_rate_limit);
  RUN_TEST(test_counter_ticks_once_per_period);
  RUN_TEST(test_counter_after_stall_does_not_burst);
  RUN_TEST(test_counter_across_millis_wrap);
  RUN_TEST(test_hello_frame);
  RUN_TEST(test_action_names);
  RUN_TEST(test_word_size_independent);
  return UNITY_END();
}
