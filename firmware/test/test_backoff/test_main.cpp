// Backoff: capped exponential steps, jitter bounds, injected clock and rand.
#include <unity.h>

#include "gwproto.h"

using namespace gwproto;

void setUp(void) {}
void tearDown(void) {}

static uint32_t rand_zero(void*) { return 0; }
static uint32_t rand_max(void*) { return 0xFFFFFFFFu; }

// FixedRand returns its values in turn.
struct FixedRand {
  const uint32_t* v;
  size_t n;
  size_t i;
  static uint32_t fn(void* ctx) {
    FixedRand* r = static_cast<FixedRand*>(ctx);
    uint32_t x = r->v[r->i % r->n];
    r->i++;
    return x;
  }
};

static void test_steps_with_least_jitter(void) {
  Backoff b(1000, 30000, rand_zero, NULL);
  const uint32_t want[] = {500, 1000, 2000, 4000, 8000, 15000, 15000, 15000};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    TEST_ASSERT_EQUAL_UINT32(want[i], b.next());
  }
}

static void test_steps_with_most_jitter(void) {
  // A draw equal to the span lands on the full step: the top of [d/2, d].
  const uint32_t spans[] = {500, 1000, 2000, 4000, 8000, 15000, 15000};
  FixedRand r = {spans, 7, 0};
  Backoff b(1000, 30000, FixedRand::fn, &r);
  const uint32_t want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    TEST_ASSERT_EQUAL_UINT32(want[i], b.next());
  }
}

static void test_jitter_stays_in_bounds(void) {
  XorShift32 rng(4242);
  Backoff b(1000, 30000, XorShift32::fn, &rng);
  uint32_t lo_seen = 0xFFFFFFFFu, hi_seen = 0;
  for (int round = 0; round < 200; round++) {
    b.reset();
    uint32_t d = 1000;
    for (int i = 0; i < 10; i++) {
      uint32_t got = b.next();
      TEST_ASSERT_GREATER_OR_EQUAL_UINT32(d / 2, got);
      TEST_ASSERT_LESS_OR_EQUAL_UINT32(d, got);
      TEST_ASSERT_LESS_OR_EQUAL_UINT32(30000u, got);
      if (i == 0) {
        if (got < lo_seen) lo_seen = got;
        if (got > hi_seen) hi_seen = got;
      }
      d = d * 2 > 30000 ? 30000 : d * 2;
    }
  }
  // The first delay really is spread (DESIGN.md: first retry within 1 s).
  TEST_ASSERT_LESS_OR_EQUAL_UINT32(600u, lo_seen);
  TEST_ASSERT_GREATER_OR_EQUAL_UINT32(900u, hi_seen);
}

static void test_reset_starts_over(void) {
  Backoff b(100, 1000, rand_zero, NULL);
  b.next();
  b.next();
  b.next();
  TEST_ASSERT_EQUAL_UINT32(3, b.attempt());
  b.reset();
  TEST_ASSERT_EQUAL_UINT32(0, b.attempt());
  TEST_ASSERT_EQUAL_UINT32(50, b.next());
}

static void test_many_attempts_do_not_overflow(void) {
  Backoff b(1, 0xFFFFFFF0u, rand_max, NULL);
  for (int i = 0; i < 100; i++) {
    uint32_t d = b.next();
    TEST_ASSERT_LESS_OR_EQUAL_UINT32(0xFFFFFFF0u, d);
  }
  Backoff big(0x80000000u, 0xFFFFFFFFu, rand_max, NULL);
  for (int i = 0; i < 5; i++) TEST_ASSERT_TRUE(big.next() >= 0x40000000u);
}

static void test_bad_arguments_are_sane(void) {
  Backoff zero(0, 0, rand_zero, NULL);  // min 0 -> 1 ms, max < min -> min
  TEST_ASSERT_EQUAL_UINT32(0, zero.next());
  Backoff inverted(5000, 1000, rand_zero, NULL);
  TEST_ASSERT_EQUAL_UINT32(2500, inverted.next());
  TEST_ASSERT_EQUAL_UINT32(2500, inverted.next());
  Backoff norand(1000, 2000, NULL, NULL);
  TEST_ASSERT_EQUAL_UINT32(500, norand.next());
}

static void test_failed_and_ready_with_fake_clock(void) {
  const uint32_t seq[] = {0, 0, 0};
  FixedRand r = {seq, 3, 0};
  Backoff b(1000, 30000, FixedRand::fn, &r);
  uint32_t now = 5000;
  TEST_ASSERT_TRUE(b.ready(now));  // nothing failed yet: try at once
  b.failed(now);                   // next try after 500 ms
  TEST_ASSERT_FALSE(b.ready(now));
  TEST_ASSERT_FALSE(b.ready(now + 499));
  TEST_ASSERT_TRUE(b.ready(now + 500));
  b.failed(now + 500);  // then 1000 ms
  TEST_ASSERT_EQUAL_UINT32(now + 1500, b.due_ms());
  TEST_ASSERT_FALSE(b.ready(now + 1499));
  TEST_ASSERT_TRUE(b.ready(now + 1500));
  b.reset();
  TEST_ASSERT_TRUE(b.ready(now));
}

static void test_clock_wraparound(void) {
  Backoff b(1000, 30000, rand_zero, NULL);
  uint32_t now = 0xFFFFFF00u;  // 256 ms before millis() wraps
  b.failed(now);               // due 500 ms later, past the wrap
  TEST_ASSERT_EQUAL_UINT32(0x000000F4u, b.due_ms());
  TEST_ASSERT_FALSE(b.ready(now + 100));
  TEST_ASSERT_FALSE(b.ready(0x000000F3u));
  TEST_ASSERT_TRUE(b.ready(0x000000F4u));
  TEST_ASSERT_TRUE(b.ready(0x00001000u));
}

static void test_time_reached(void) {
  TEST_ASSERT_TRUE(time_reached(10, 10));
  TEST_ASSERT_TRUE(time_reached(11, 10));
  TEST_ASSERT_FALSE(time_reached(9, 10));
  TEST_ASSERT_TRUE(time_reached(5, 0xFFFFFFF0u));   // after the wrap
  TEST_ASSERT_FALSE(time_reached(0xFFFFFFF0u, 5));  // before it
  TEST_ASSERT_TRUE(time_reached(0x7FFFFFFFu, 0));
  TEST_ASSERT_FALSE(time_reached(0x80000000u, 0));  // over 2^31 apart: "before"
}

static void test_xorshift(void) {
  XorShift32 a(1), b(1), z(0);
  TEST_ASSERT_EQUAL_UINT32(a.next(), b.next());
  TEST_ASSERT_TRUE(z.next() != 0);  // a zero seed would be stuck at 0
  uint32_t prev = a.next();
  int changes = 0;
  for (int i = 0; i < 100; i++) {
    uint32_t x = a.next();
    if (x != prev) changes++;
    prev = x;
  }
  TEST_ASSERT_EQUAL_INT(100, changes);
}

int main(void) {
  UNITY_BEGIN();
  RUN_TEST(test_steps_with_least_jitter);
  RUN_TEST(test_steps_with_most_jitter);
  RUN_TEST(test_jitter_stays_in_bounds);
  RUN_TEST(test_reset_starts_over);
  RUN_TEST(test_many_attempts_do_not_overflow);
  RUN_TEST(test_bad_arguments_are_sane);
  RUN_TEST(test_failed_and_ready_with_fake_clock);
  RUN_TEST(test_clock_wraparound);
  RUN_TEST(test_time_reached);
  RUN_TEST(test_xorshift);
  return UNITY_END();
}
