// A minimal, self-written stand-in for the ThrowTheSwitch Unity test macros,
// so firmware/test builds with plain g++ (`make -C firmware test`) and the
// same test files still build under `pio test -e native`, where PlatformIO
// supplies the real Unity.
//
// Differences from Unity: a failed assertion returns from the function it is
// written in (Unity longjmps out of the whole test), so assertions belong in
// the test function itself, not in helpers. Output follows Unity's:
//   file:line:test:PASS | file:line:test:FAIL: message
//   N Tests M Failures 0 Ignored
#ifndef GWTEST_UNITY_SHIM_H
#define GWTEST_UNITY_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void setUp(void);
void tearDown(void);

namespace gwtest {

struct State {
  unsigned tests;
  unsigned failures;
  bool current_failed;
  const char* current;
  const char* file;
};

inline State& state() {
  static State s = {0, 0, false, "", ""};
  return s;
}

inline void fail(const char* file, int line, const char* msg) {
  State& s = state();
  if (!s.current_failed) s.failures++;
  s.current_failed = true;
  printf("%s:%d:%s:FAIL: %s\n", file, line, s.current, msg);
}

// print_bytes shows p[0..n) with non-printable bytes escaped.
inline void print_bytes(const char* p, size_t n) {
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = static_cast<unsigned char>(p[i]);
    if (c == '"' || c == '\\') {
      printf("\\%c", c);
    } else if (c >= 0x20 && c < 0x7F) {
      putchar(c);
    } else {
      printf("\\x%02x", c);
    }
  }
  putchar('"');
}

inline bool expect_uint(unsigned long long exp, unsigned long long act, const char* file,
                        int line, const char* what) {
  if (exp == act) return true;
  char msg[160];
  snprintf(msg, sizeof msg, "Expected %llu Was %llu (%s)", exp, act, what);
  fail(file, line, msg);
  return false;
}

inline bool expect_int(long long exp, long long act, const char* file, int line,
                       const char* what) {
  if (exp == act) return true;
  char msg[160];
  snprintf(msg, sizeof msg, "Expected %lld Was %lld (%s)", exp, act, what);
  fail(file, line, msg);
  return false;
}

inline bool expect_mem(const char* exp, size_t exp_n, const char* act, size_t act_n,
                       const char* file, int line) {
  if (exp == 0 || act == 0) {
    if (exp == act) return true;
    fail(file, line, "Expected and actual differ in NULL-ness");
    return false;
  }
  if (exp_n == act_n && memcmp(exp, act, exp_n) == 0) return true;
  fail(file, line, "bytes differ");
  printf("  expected (%zu): ", exp_n);
  print_bytes(exp, exp_n);
  printf("\n  actual   (%zu): ", act_n);
  print_bytes(act, act_n);
  printf("\n");
  return false;
}

// bytes views any object pointer as bytes, for TEST_ASSERT_EQUAL_MEMORY.
inline const char* bytes(const void* p) { return static_cast<const char*>(p); }

inline void run(void (*fn)(), const char* name, int line, const char* file) {
  State& s = state();
  s.current = name;
  s.current_failed = false;
  s.tests++;
  setUp();
  fn();
  tearDown();
  if (!s.current_failed) printf("%s:%d:%s:PASS\n", file, line, name);
}

inline int end() {
  State& s = state();
  printf("\n-----------------------\n%u Tests %u Failures 0 Ignored\n%s\n", s.tests, s.failures,
         s.failures == 0 ? "OK" : "FAIL");
  fflush(stdout);
  return static_cast<int>(s.failures);
}

}  // namespace gwtest

#define UNITY_BEGIN() (gwtest::state().file = __FILE__, 0)
#define UNITY_END() gwtest::end()
#define RUN_TEST(fn) gwtest::run(fn, #fn, __LINE__, __FILE__)

#define TEST_FAIL_MESSAGE(msg)                 \
  do {                                         \
    gwtest::fail(__FILE__, __LINE__, (msg));   \
    return;                                    \
  } while (0)

#define TEST_ASSERT_MESSAGE(cond, msg)                                  \
  do {                                                                  \
    if (!(cond)) {                                                      \
      gwtest::fail(__FILE__, __LINE__, (msg));                          \
      return;                                                           \
    }                                                                   \
  } while (0)

#define TEST_ASSERT(cond) TEST_ASSERT_MESSAGE((cond), "Expression Was False: " #cond)
#define TEST_ASSERT_TRUE(cond) TEST_ASSERT_MESSAGE((cond), "Expected TRUE Was FALSE: " #cond)
#define TEST_ASSERT_FALSE(cond) TEST_ASSERT_MESSAGE(!(cond), "Expected FALSE Was TRUE: " #cond)
#define TEST_ASSERT_TRUE_MESSAGE(cond, msg) TEST_ASSERT_MESSAGE((cond), (msg))
#define TEST_ASSERT_NULL(p) TEST_ASSERT_MESSAGE((p) == NULL, "Expected NULL: " #p)
#define TEST_ASSERT_NOT_NULL(p) TEST_ASSERT_MESSAGE((p) != NULL, "Expected Non-NULL: " #p)

#define GWTEST_EXPECT(call)  \
  do {                       \
    if (!(call)) return;     \
  } while (0)

#define TEST_ASSERT_EQUAL_INT(exp, act) \
  GWTEST_EXPECT(gwtest::expect_int(static_cast<long long>(exp), static_cast<long long>(act), __FILE__, __LINE__, #act))
#define TEST_ASSERT_EQUAL(exp, act) TEST_ASSERT_EQUAL_INT(exp, act)
#define TEST_ASSERT_EQUAL_UINT(exp, act)                                                    \
  GWTEST_EXPECT(gwtest::expect_uint(static_cast<unsigned long long>(exp),               \
                                    static_cast<unsigned long long>(act), __FILE__, __LINE__, \
                                    #act))
#define TEST_ASSERT_EQUAL_UINT8(exp, act) TEST_ASSERT_EQUAL_UINT(exp, act)
#define TEST_ASSERT_EQUAL_UINT32(exp, act) TEST_ASSERT_EQUAL_UINT(exp, act)
#define TEST_ASSERT_EQUAL_UINT64(exp, act) TEST_ASSERT_EQUAL_UINT(exp, act)
#define TEST_ASSERT_EQUAL_size_t(exp, act) TEST_ASSERT_EQUAL_UINT(exp, act)

#define TEST_ASSERT_UINT32_WITHIN(delta, exp, act)                                        \
  TEST_ASSERT_MESSAGE(((act) >= (exp) ? (act) - (exp) : (exp) - (act)) <= (delta),      \
                      "Values Not Within Delta: " #act)
#define TEST_ASSERT_GREATER_OR_EQUAL_UINT32(threshold, act) \
  TEST_ASSERT_MESSAGE((act) >= (threshold), "Expected >= " #threshold ": " #act)
#define TEST_ASSERT_LESS_OR_EQUAL_UINT32(threshold, act) \
  TEST_ASSERT_MESSAGE((act) <= (threshold), "Expected <= " #threshold ": " #act)

#define TEST_ASSERT_EQUAL_STRING(exp, act)                                                 \
  do {                                                                                     \
    const char* gwt_e = (exp);                                                             \
    const char* gwt_a = (act);                                                             \
    GWTEST_EXPECT(gwtest::expect_mem(gwt_e, gwt_e ? strlen(gwt_e) : 0, gwt_a,              \
                                     gwt_a ? strlen(gwt_a) : 0, __FILE__, __LINE__));      \
  } while (0)
#define TEST_ASSERT_EQUAL_STRING_LEN(exp, act, len) \
  GWTEST_EXPECT(gwtest::expect_mem((exp), (len), (act), (len), __FILE__, __LINE__))
#define TEST_ASSERT_EQUAL_MEMORY(exp, act, len)                                          \
  GWTEST_EXPECT(gwtest::expect_mem(gwtest::bytes(exp), (len), gwtest::bytes(act), (len), \
                                   __FILE__, __LINE__))

#endif  // GWTEST_UNITY_SHIM_H
