// Fleet pieces of the core: SHA-256, the adopted/ota decoders, the
// attributes frame and reset reason names, the backfill ring (and its
// newest-first order on reconnect), the command rate limiter, the OTA state
// machine and its report throttling, the app description parser.
#include <string.h>
#include <unity.h>

#include "gwproto.h"

using namespace gwproto;

void setUp(void) {}
void tearDown(void) {}

static char buf[512];

static void hash_hex(const void* p, size_t n, char* out) {
  Sha256 h;
  h.update(p, n);
  uint8_t d[Sha256::kDigestLen];
  h.finish(d);
  digest_to_hex(d, out);
}

static void test_sha256_fips_vectors(void) {
  char hex[65];
  hash_hex("", 0, hex);
  TEST_ASSERT_EQUAL_STRING("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", hex);
  hash_hex("abc", 3, hex);
  TEST_ASSERT_EQUAL_STRING("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex);
  const char* two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  hash_hex(two, strlen(two), hex);
  TEST_ASSERT_EQUAL_STRING("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", hex);
  // One million 'a', fed in uneven pieces.
  static char a[1000];
  memset(a, 'a', sizeof a);
  Sha256 h;
  size_t left = 1000000, step = 1;
  while (left > 0) {
    size_t k = step < left ? step : left;
    if (k > sizeof a) k = sizeof a;
    h.update(a, k);
    left -= k;
    step = step * 3 + 1;
  }
  uint8_t d[Sha256::kDigestLen];
  h.finish(d);
  digest_to_hex(d, hex);
  TEST_ASSERT_EQUAL_STRING("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", hex);
}

static void test_sha256_padding_edges(void) {
  // Lengths around the 55/56/64-byte padding boundaries: split and one-shot agree.
  static uint8_t data[200];
  for (size_t i = 0; i < sizeof data; i++) data[i] = static_cast<uint8_t>(i * 31 + 7);
  for (size_t n = 50; n < 140; n++) {
    char one[65], split[65];
    hash_hex(data, n, one);
    Sha256 h;
    h.update(data, n / 3);
    h.update(data + n / 3, n - n / 3);
    uint8_t d[Sha256::kDigestLen];
    h.finish(d);
    digest_to_hex(d, split);
    TEST_ASSERT_EQUAL_STRING(one, split);
  }
  hash_hex("The quick brown fox jumps over the lazy dog", 43, buf);
  TEST_ASSERT_EQUAL_STRING("d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592", buf);
}

static void test_hex_to_digest(void) {
  uint8_t d[Sha256::kDigestLen];
  const char* h = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
  TEST_ASSERT_TRUE(hex_to_digest(h, 64, d));
  TEST_ASSERT_EQUAL_UINT8(0xBA, d[0]);
  TEST_ASSERT_EQUAL_UINT8(0xAD, d[31]);
  TEST_ASSERT_FALSE(hex_to_digest(h, 63, d));
  TEST_ASSERT_FALSE(hex_to_digest("zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 64, d));
}

static MessageType type_of(const char* s) { return message_type(s, strlen(s)); }

static void test_message_types(void) {
  TEST_ASSERT_EQUAL_INT(kMessageCommand, type_of("toggle"));
  TEST_ASSERT_EQUAL_INT(kMessageCommand, type_of("{\"label\":\"led\",\"value\":\"toggle\"}"));
  TEST_ASSERT_EQUAL_INT(kMessageAdopted, type_of(" {\"type\":\"adopted\",\"id\":\"a\",\"token\":\"t\"}"));
  TEST_ASSERT_EQUAL_INT(kMessageOta, type_of("{\"job\":{\"nested\":[1,2]},\"type\":\"ota\"}"));
  TEST_ASSERT_EQUAL_INT(kMessageUnknown, type_of("{\"type\":\"reboot\"}"));
  TEST_ASSERT_EQUAL_INT(kMessageUnknown, type_of("{\"type\":\"a-very-long-type-name-indeed\"}"));
  TEST_ASSERT_EQUAL_INT(kMessageUnknown, type_of("{\"type\":3}"));
  TEST_ASSERT_EQUAL_INT(kMessageCommand, type_of("{\"type\":\"ota\""));  // malformed: the command decoder refuses it
}

static void test_decode_adopted(void) {
  Adopted a;
  const char* ok = "{\"type\":\"adopted\",\"id\":\"garage\",\"token\":\"k3y-\\u0041\",\"extra\":[1,{\"x\":2}]}";
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode_adopted(ok, strlen(ok), &a));
  TEST_ASSERT_EQUAL_STRING("garage", a.id);
  TEST_ASSERT_EQUAL_STRING("k3y-A", a.token);
  const char* missing = "{\"type\":\"adopted\",\"id\":\"garage\"}";
  TEST_ASSERT_EQUAL_INT(kDecodeMissingField, decode_adopted(missing, strlen(missing), &a));
  TEST_ASSERT_EQUAL_STRING("", a.id);
  const char* bad_id = "{\"type\":\"adopted\",\"id\":\"ga rage\",\"token\":\"t\"}";
  TEST_ASSERT_EQUAL_INT(kDecodeBadField, decode_adopted(bad_id, strlen(bad_id), &a));
  const char* bad_tok = "{\"type\":\"adopted\",\"id\":\"g\",\"token\":\"a\\r\\nX-Evil: 1\"}";
  TEST_ASSERT_EQUAL_INT(kDecodeBadField, decode_adopted(bad_tok, strlen(bad_tok), &a));
  const char* num_id = "{\"type\":\"adopted\",\"id\":7,\"token\":\"t\"}";
  TEST_ASSERT_EQUAL_INT(kDecodeBadField, decode_adopted(num_id, strlen(num_id), &a));
  char long_id[128];
  snprintf(long_id, sizeof long_id, "{\"type\":\"adopted\",\"id\":\"%033d\",\"token\":\"t\"}", 0);
  TEST_ASSERT_EQUAL_INT(kDecodeValueTooLong, decode_adopted(long_id, strlen(long_id), &a));
}

static void test_decode_ota(void) {
  OtaRequest r;
  const char* ok =
      "{\"type\":\"ota\",\"job\":\"j-17\",\"url\":\"http://192.168.1.2:8080/api/ota/j-17/fw?k=abc\","
      "\"size\":1048576,\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\","
      "\"version\":\"1.2.0\"}";
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode_ota(ok, strlen(ok), &r));
  TEST_ASSERT_EQUAL_STRING("j-17", r.job);
  TEST_ASSERT_EQUAL_STRING("http://192.168.1.2:8080/api/ota/j-17/fw?k=abc", r.url);
  TEST_ASSERT_EQUAL_UINT32(1048576, r.size);
  TEST_ASSERT_EQUAL_UINT8(0xba, r.sha256[0]);
  TEST_ASSERT_EQUAL_STRING("1.2.0", r.version);
  const char* numjob =
      "{\"type\":\"ota\",\"job\":42,\"url\":\"https://gw/fw\",\"size\":4294967295,"
      "\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}";
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode_ota(numjob, strlen(numjob), &r));
  TEST_ASSERT_EQUAL_STRING("42", r.job);
  TEST_ASSERT_EQUAL_UINT32(4294967295u, r.size);
  TEST_ASSERT_EQUAL_STRING("", r.version);
  const char* bad[] = {
      // size too big, zero, fractional, negative, a string
      "{\"type\":\"ota\",\"url\":\"http://g/f\",\"size\":4294967296,\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}",
      "{\"type\":\"ota\",\"url\":\"http://g/f\",\"size\":0,\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}",
      "{\"type\":\"ota\",\"url\":\"http://g/f\",\"size\":1.5,\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}",
      "{\"type\":\"ota\",\"url\":\"http://g/f\",\"size\":-1,\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}",
      "{\"type\":\"ota\",\"url\":\"http://g/f\",\"size\":\"12\",\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}",
      // url scheme, hash length
      "{\"type\":\"ota\",\"url\":\"ftp://g/f\",\"size\":1,\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}",
      "{\"type\":\"ota\",\"url\":\"http://g/f\",\"size\":1,\"sha256\":\"ba7816\"}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    TEST_ASSERT_EQUAL_INT(kDecodeBadField, decode_ota(bad[i], strlen(bad[i]), &r));
    TEST_ASSERT_EQUAL_UINT32(0, r.size);
  }
  const char* missing = "{\"type\":\"ota\",\"url\":\"http://g/f\",\"size\":1}";
  TEST_ASSERT_EQUAL_INT(kDecodeMissingField, decode_ota(missing, strlen(missing), &r));
}

static void test_attributes_frame(void) {
  Attributes a = {"1.2.0", "garage", "esp32", "24:6F:28:01:02:03", "192.168.1.50", true, -61,
                  201344, 3600, "POWERON"};
  size_t n = attributes_frame(buf, sizeof buf, a);
  TEST_ASSERT_EQUAL_STRING(
      "{\"$fw\":\"1.2.0\",\"$project\":\"garage\",\"$chip\":\"esp32\",\"$mac\":\"24:6F:28:01:02:03\","
      "\"$ip\":\"192.168.1.50\",\"$rssi\":-61,\"$heap\":201344,\"$uptime\":3600,\"$reset\":\"POWERON\"}",
      buf);
  TEST_ASSERT_EQUAL_size_t(strlen(buf), n);
  Attributes serial = {"0.1.0", "", "esp32", NULL, NULL, false, 0, 100, 0, "SW"};
  attributes_frame(buf, sizeof buf, serial);
  TEST_ASSERT_EQUAL_STRING("{\"$fw\":\"0.1.0\",\"$chip\":\"esp32\",\"$heap\":100,\"$uptime\":0,\"$reset\":\"SW\"}", buf);
  TEST_ASSERT_EQUAL_size_t(0, attributes_frame(buf, 20, a));  // never truncated
  Attributes quote = {"1\"2", NULL, NULL, NULL, NULL, false, 0, 0, 0, NULL};
  attributes_frame(buf, sizeof buf, quote);
  TEST_ASSERT_EQUAL_STRING("{\"$fw\":\"1\\\"2\",\"$heap\":0,\"$uptime\":0}", buf);
}

static void test_attribute_timer(void) {
  AttributeTimer t(60000);
  TEST_ASSERT_TRUE(t.due(5));
  TEST_ASSERT_FALSE(t.due(6));
  TEST_ASSERT_FALSE(t.due(60004));
  TEST_ASSERT_TRUE(t.due(60005));
  t.connected();
  TEST_ASSERT_TRUE(t.due(61000));  // at once on a new link
  TEST_ASSERT_FALSE(t.due(62000));
  // Across the millis() wrap.
  AttributeTimer w(1000);
  TEST_ASSERT_TRUE(w.due(0xFFFFFF00u));
  TEST_ASSERT_FALSE(w.due(0xFFFFFFFFu));
  TEST_ASSERT_TRUE(w.due(0x000002F0u));
}

static void test_backfill_order_and_ts(void) {
  StaticBackfill<4> ring;
  TEST_ASSERT_TRUE(ring.empty());
  TEST_ASSERT_EQUAL_size_t(0, ring.front_frame(buf, sizeof buf, 0, 0));
  TEST_ASSERT_TRUE(ring.push_int(GWPROTO_LIT("count"), 1, 1000, 1764669600000ull));
  TEST_ASSERT_TRUE(ring.push_double(GWPROTO_LIT("temp"), 21.5, 2000, 1764669601000ull));
  TEST_ASSERT_EQUAL_size_t(2, ring.size());
  ring.front_frame(buf, sizeof buf, 5000, 1764669604000ull);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"count\",\"value\":1,\"ts\":1764669600000}", buf);
  ring.pop();
  ring.front_frame(buf, sizeof buf, 5000, 1764669604000ull);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"temp\",\"value\":21.5,\"ts\":1764669601000}", buf);
  ring.pop();
  TEST_ASSERT_TRUE(ring.empty());
  ring.pop();  // popping an empty ring is harmless
  TEST_ASSERT_TRUE(ring.empty());
}

static void test_backfill_without_clock(void) {
  StaticBackfill<4> ring;
  // Taken before NTP: no unix time then.
  ring.push_int(GWPROTO_LIT("count"), 7, 1000, 0);
  // Still no clock when sending: no ts, the gateway stamps it.
  ring.front_frame(buf, sizeof buf, 4000, 0);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"count\",\"value\":7}", buf);
  // The clock arrived meanwhile: ts = now - age (3 s).
  ring.front_frame(buf, sizeof buf, 4000, 1764669604000ull);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"count\",\"value\":7,\"ts\":1764669601000}", buf);
  // Age measured across the millis() wrap.
  StaticBackfill<2> w;
  w.push_int(GWPROTO_LIT("count"), 1, 0xFFFFFC18u, 0);  // 1000 ms before the wrap
  w.front_frame(buf, sizeof buf, 1000, 1764669604000ull);
  TEST_ASSERT_EQUAL_STRING("{\"label\":\"count\",\"value\":1,\"ts\":1764669602000}", buf);
}

static void test_backfill_bounded(void) {
  StaticBackfill<3> ring;
  for (int i = 1; i <= 10; i++) {
    TEST_ASSERT_TRUE(ring.push_int(GWPROTO_LIT("count"), i, static_cast<uint32_t>(i), static_cast<uint64_t>(i)));
  }
  TEST_ASSERT_EQUAL_size_t(3, ring.size());
  TEST_ASSERT_EQUAL_UINT32(7, ring.dropped());
  // The newest three remain, oldest first.
  for (int want = 8; want <= 10; want++) {
    ring.front_frame(buf, sizeof buf, 20, 20);
    char exp[80];
    snprintf(exp, sizeof exp, "{\"label\":\"count\",\"value\":%d,\"ts\":%d}", want, want);
    TEST_ASSERT_EQUAL_STRING(exp, buf);
    ring.pop();
  }
  TEST_ASSERT_TRUE(ring.empty());
  // Refused: a bad label, a value over kMaxBufferedValue, an empty value.
  TEST_ASSERT_FALSE(ring.push_raw(GWPROTO_LIT("bad label"), GWPROTO_LIT("1"), 0, 0));
  char big[kMaxBufferedValue + 2];
  memset(big, '1', sizeof big);
  TEST_ASSERT_FALSE(ring.push_raw(GWPROTO_LIT("x"), big, sizeof big, 0, 0));
  TEST_ASSERT_FALSE(ring.push_raw(GWPROTO_LIT("x"), "", 0, 0, 0));
  TEST_ASSERT_TRUE(ring.push_raw(GWPROTO_LIT("x"), big, kMaxBufferedValue, 0, 0));
  // A zero-capacity ring keeps nothing.
  Backfill none(NULL, 0);
  TEST_ASSERT_FALSE(none.push_int(GWPROTO_LIT("count"), 1, 0, 0));
  TEST_ASSERT_TRUE(none.empty());
}

static void test_reset_reason_names(void) {
  TEST_ASSERT_EQUAL_STRING("UNKNOWN", reset_reason_name(0));
  TEST_ASSERT_EQUAL_STRING("POWERON", reset_reason_name(1));
  TEST_ASSERT_EQUAL_STRING("SW", reset_reason_name(3));
  TEST_ASSERT_EQUAL_STRING("PANIC", reset_reason_name(4));
  TEST_ASSERT_EQUAL_STRING("TASK_WDT", reset_reason_name(6));
  TEST_ASSERT_EQUAL_STRING("BROWNOUT", reset_reason_name(9));
  TEST_ASSERT_EQUAL_STRING("CPU_LOCKUP", reset_reason_name(15));
  TEST_ASSERT_EQUAL_STRING("UNKNOWN", reset_reason_name(16));
  TEST_ASSERT_EQUAL_STRING("UNKNOWN", reset_reason_name(-1));
}

static void test_backfill_newest_first(void) {
  StaticBackfill<8> ring;
  // count 1..4 and temp 10, 11 interleaved, oldest first.
  ring.push_int(GWPROTO_LIT("count"), 1, 100, 1000);
  ring.push_int(GWPROTO_LIT("temp"), 10, 150, 1050);
  ring.push_int(GWPROTO_LIT("count"), 2, 200, 2000);
  ring.push_int(GWPROTO_LIT("count"), 3, 300, 3000);
  ring.push_int(GWPROTO_LIT("temp"), 11, 350, 3050);
  ring.push_int(GWPROTO_LIT("count"), 4, 400, 4000);
  ring.newest_first();
  // Each label's newest first (in their own order), then the rest, oldest
  // first; every reading keeps its own ts.
  const char* want[] = {
      "{\"label\":\"temp\",\"value\":11,\"ts\":3050}", "{\"label\":\"count\",\"value\":4,\"ts\":4000}",
      "{\"label\":\"count\",\"value\":1,\"ts\":1000}", "{\"label\":\"temp\",\"value\":10,\"ts\":1050}",
      "{\"label\":\"count\",\"value\":2,\"ts\":2000}", "{\"label\":\"count\",\"value\":3,\"ts\":3000}",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    ring.front_frame(buf, sizeof buf, 500, 5000);
    TEST_ASSERT_EQUAL_STRING(want[i], buf);
    ring.pop();
  }
  TEST_ASSERT_TRUE(ring.empty());
  ring.newest_first();  // empty: nothing to do
  // Across the ring's wrap (head not at 0), one label: the newest moves up.
  StaticBackfill<3> w;
  for (int i = 1; i <= 5; i++) w.push_int(GWPROTO_LIT("count"), i, static_cast<uint32_t>(i), static_cast<uint64_t>(i));
  w.newest_first();
  int order[] = {5, 3, 4};
  for (size_t i = 0; i < 3; i++) {
    w.front_frame(buf, sizeof buf, 10, 10);
    char exp[80];
    snprintf(exp, sizeof exp, "{\"label\":\"count\",\"value\":%d,\"ts\":%d}", order[i], order[i]);
    TEST_ASSERT_EQUAL_STRING(exp, buf);
    w.pop();
  }
}

static void test_rate_limiter(void) {
  RateLimiter r(3, 100, 1000);
  TEST_ASSERT_TRUE(r.allow(1000));
  TEST_ASSERT_TRUE(r.allow(1000));
  TEST_ASSERT_TRUE(r.allow(1000));
  TEST_ASSERT_FALSE(r.allow(1000));
  TEST_ASSERT_FALSE(r.allow(1099));
  TEST_ASSERT_TRUE(r.allow(1100));  // one token per 100 ms
  TEST_ASSERT_FALSE(r.allow(1100));
  // A long pause refills to the burst, no more.
  for (int i = 0; i < 3; i++) TEST_ASSERT_TRUE(r.allow(60000));
  TEST_ASSERT_FALSE(r.allow(60000));
  // Across the millis() wrap.
  RateLimiter w(1, 100, 0xFFFFFFC0u);
  TEST_ASSERT_TRUE(w.allow(0xFFFFFFC0u));
  TEST_ASSERT_FALSE(w.allow(0xFFFFFFFFu));
  TEST_ASSERT_TRUE(w.allow(0x24u));  // 100 ms later, after the wrap
  // A zero refill period is taken as 1 ms.
  RateLimiter z(1, 0, 0);
  TEST_ASSERT_TRUE(z.allow(0));
  TEST_ASSERT_TRUE(z.allow(1));
}

static OtaRequest request_for(const uint8_t* img, size_t n) {
  OtaRequest r;
  memset(&r, 0, sizeof r);
  snprintf(r.job, sizeof r.job, "j1");
  snprintf(r.url, sizeof r.url, "http://gw/fw");
  snprintf(r.version, sizeof r.version, "2.0.0");
  r.size = static_cast<uint32_t>(n);
  Sha256 h;
  h.update(img, n);
  h.finish(r.sha256);
  return r;
}

static uint8_t image[4000];

static void fill_image(void) {
  for (size_t i = 0; i < sizeof image; i++) image[i] = static_cast<uint8_t>(i * 13);
}

static void test_ota_happy_path_and_throttle(void) {
  fill_image();
  OtaRequest r = request_for(image, sizeof image);
  Ota ota;
  TEST_ASSERT_EQUAL_INT(kOtaIdle, ota.state());
  TEST_ASSERT_EQUAL_size_t(0, ota.report(buf, sizeof buf, 0));  // nothing to say
  TEST_ASSERT_TRUE(ota.start(r, 0, 1000));
  TEST_ASSERT_TRUE(ota.busy());
  ota.report(buf, sizeof buf, 1000);
  TEST_ASSERT_EQUAL_STRING("{\"$ota\":{\"state\":\"downloading\",\"progress\":0,\"job\":\"j1\"}}", buf);
  // A second job while busy is not started and changes nothing.
  OtaRequest other = r;
  snprintf(other.job, sizeof other.job, "j2");
  TEST_ASSERT_FALSE(ota.start(other, 0, 1001));
  TEST_ASSERT_EQUAL_STRING("j1", ota.request().job);
  // 1000 bytes every 300 ms: progress reports at most once a second.
  uint32_t now = 1000;
  int reports = 0;
  uint32_t last = 1000;
  for (size_t off = 0; off < sizeof image; off += 1000) {
    now += 300;
    TEST_ASSERT_TRUE(ota.write(image + off, 1000, now));
    if (ota.report(buf, sizeof buf, now) > 0) {
      TEST_ASSERT_TRUE(now - last >= kOtaReportEveryMs);
      last = now;
      reports++;
    }
  }
  TEST_ASSERT_EQUAL_INT(1, reports);  // at 2200 ms (75 %); 1300..1900 were too soon
  TEST_ASSERT_EQUAL_INT(100, ota.progress());
  TEST_ASSERT_TRUE(ota.finish(now));
  TEST_ASSERT_EQUAL_INT(kOtaVerifying, ota.state());
  // A change of state is reported at once, throttle or not.
  TEST_ASSERT_TRUE(ota.report(buf, sizeof buf, now + 1) > 0);
  TEST_ASSERT_EQUAL_STRING("{\"$ota\":{\"state\":\"verifying\",\"job\":\"j1\"}}", buf);
  ota.rebooting(now + 2);
  TEST_ASSERT_TRUE(ota.report(buf, sizeof buf, now + 2) > 0);
  TEST_ASSERT_EQUAL_STRING("{\"$ota\":{\"state\":\"rebooting\",\"job\":\"j1\"}}", buf);
  TEST_ASSERT_EQUAL_size_t(0, ota.report(buf, sizeof buf, now + 5000));
  TEST_ASSERT_EQUAL_size_t(kOtaHeadKeep, ota.head_len());
  TEST_ASSERT_EQUAL_MEMORY(image, ota.head(), kOtaHeadKeep);
}

static void test_ota_progress_unchanged_is_not_repeated(void) {
  fill_image();
  Ota ota;
  ota.start(request_for(image, sizeof image), 0, 0);
  ota.report(buf, sizeof buf, 0);
  ota.write(image, 10, 5000);  // 0 % still
  TEST_ASSERT_EQUAL_size_t(0, ota.report(buf, sizeof buf, 5000));
  ota.write(image + 10, 2000, 5001);
  TEST_ASSERT_TRUE(ota.report(buf, sizeof buf, 5001) > 0);
  TEST_ASSERT_EQUAL_STRING("{\"$ota\":{\"state\":\"downloading\",\"progress\":50,\"job\":\"j1\"}}", buf);
}

static void test_ota_failures(void) {
  fill_image();
  OtaRequest r = request_for(image, sizeof image);
  Ota ota;
  // A flipped byte: sha256 mismatch.
  ota.start(r, 0, 0);
  static uint8_t bad[sizeof image];
  memcpy(bad, image, sizeof image);
  bad[1234] ^= 1;
  ota.write(bad, sizeof bad, 1);
  TEST_ASSERT_FALSE(ota.finish(2));
  TEST_ASSERT_EQUAL_INT(kOtaFailed, ota.state());
  ota.report(buf, sizeof buf, 3);
  TEST_ASSERT_EQUAL_STRING("{\"$ota\":{\"state\":\"failed\",\"error\":\"sha256 mismatch\",\"job\":\"j1\"}}", buf);
  TEST_ASSERT_FALSE(ota.busy());
  // Short: size mismatch. A failed job does not block the next one.
  TEST_ASSERT_TRUE(ota.start(r, 0, 10));
  ota.write(image, 100, 11);
  TEST_ASSERT_FALSE(ota.finish(12));
  TEST_ASSERT_EQUAL_STRING("size mismatch: got 100 bytes, want 4000", ota.error());
  // Too long.
  ota.start(r, 0, 20);
  TEST_ASSERT_TRUE(ota.write(image, sizeof image, 21));
  TEST_ASSERT_FALSE(ota.write(image, 1, 22));
  TEST_ASSERT_EQUAL_INT(kOtaFailed, ota.state());
  // Bigger than the partition.
  TEST_ASSERT_FALSE(ota.start(r, 1000, 30));
  TEST_ASSERT_EQUAL_INT(kOtaFailed, ota.state());
  TEST_ASSERT_EQUAL_STRING("image too big: 4000 bytes, room for 1000", ota.error());
  // The transport's own reason, e.g. a cut download.
  ota.start(r, 0, 40);
  ota.fail("download: HTTP 404", 41);
  ota.report(buf, sizeof buf, 41);
  TEST_ASSERT_EQUAL_STRING("{\"$ota\":{\"state\":\"failed\",\"error\":\"download: HTTP 404\",\"job\":\"j1\"}}", buf);
  // rewind: the server sent the image again from the start.
  ota.start(r, 0, 50);
  ota.write(image, 500, 51);
  ota.rewind();
  TEST_ASSERT_EQUAL_UINT32(0, ota.received());
  ota.write(image, sizeof image, 52);
  TEST_ASSERT_TRUE(ota.finish(53));
  ota.reset();
  TEST_ASSERT_EQUAL_INT(kOtaIdle, ota.state());
  TEST_ASSERT_EQUAL_size_t(0, ota.report(buf, sizeof buf, 60));
}

static void put_le32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

static void test_parse_app_image(void) {
  static uint8_t img[256];
  memset(img, 0, sizeof img);
  img[0] = 0xE9;
  img[12] = 0x09;  // esp32s3
  put_le32(img + 32, 0xABCD5432u);
  put_le32(img + 36, 2);
  memcpy(img + 48, "1.2.0", 5);
  memcpy(img + 80, "garage-door", 11);
  memcpy(img + 112, "12:34:56", 8);
  memcpy(img + 128, "Jan  1 2026", 11);
  memcpy(img + 144, "v5.4.1\x01", 7);
  AppDesc d;
  TEST_ASSERT_TRUE(parse_app_image(img, sizeof img, &d));
  TEST_ASSERT_EQUAL_STRING("1.2.0", d.version);
  TEST_ASSERT_EQUAL_STRING("garage-door", d.project);
  TEST_ASSERT_EQUAL_STRING("12:34:56", d.time);
  TEST_ASSERT_EQUAL_STRING("Jan  1 2026", d.date);
  TEST_ASSERT_EQUAL_STRING("v5.4.1?", d.idf);
  TEST_ASSERT_EQUAL_UINT32(2, d.secure_version);
  TEST_ASSERT_EQUAL_STRING("esp32s3", chip_name(d.chip_id));
  // A full 32-byte version (no NUL) stays within bounds.
  memset(img + 48, 'v', 32);
  TEST_ASSERT_TRUE(parse_app_image(img, sizeof img, &d));
  TEST_ASSERT_EQUAL_size_t(32, strlen(d.version));
  TEST_ASSERT_FALSE(parse_app_image(img, kAppDescNeed - 1, &d));
  img[0] = 0xE8;
  TEST_ASSERT_FALSE(parse_app_image(img, sizeof img, &d));
  img[0] = 0xE9;
  img[32] = 0;
  TEST_ASSERT_FALSE(parse_app_image(img, sizeof img, &d));
  TEST_ASSERT_EQUAL_STRING("unknown", chip_name(0x7777));
}

int main(void) {
  UNITY_BEGIN();
  RUN_TEST(test_sha256_fips_vectors);
  RUN_TEST(test_sha256_padding_edges);
  RUN_TEST(test_hex_to_digest);
  RUN_TEST(test_message_types);
  RUN_TEST(test_decode_adopted);
  RUN_TEST(test_decode_ota);
  RUN_TEST(test_attributes_frame);
  RUN_TEST(test_attribute_timer);
  RUN_TEST(test_backfill_order_and_ts);
  RUN_TEST(test_backfill_without_clock);
  RUN_TEST(test_backfill_bounded);
  RUN_TEST(test_backfill_newest_first);
  RUN_TEST(test_reset_reason_names);
  RUN_TEST(test_rate_limiter);
  RUN_TEST(test_ota_happy_path_and_throttle);
  RUN_TEST(test_ota_progress_unchanged_is_not_repeated);
  RUN_TEST(test_ota_failures);
  RUN_TEST(test_parse_app_image);
  return UNITY_END();
}
