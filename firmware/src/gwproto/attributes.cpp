#include "attributes.h"

#include <string.h>

#include "backoff.h"
#include "frame.h"
#include "json_writer.h"

namespace gwproto {

namespace {

void put_string(JsonWriter* w, const char* key, size_t key_len, const char* s) {
  if (s == 0 || s[0] == '\0') return;
  w->key(key, key_len);
  w->string(s, strlen(s));
}

}  // namespace

const char* reset_reason_name(int code) {
  static const char* const kNames[] = {
      "UNKNOWN", "POWERON",  "EXT",  "SW",   "PANIC", "INT_WDT",    "TASK_WDT",   "WDT",
      "DEEPSLEEP", "BROWNOUT", "SDIO", "USB", "JTAG",  "EFUSE", "PWR_GLITCH", "CPU_LOCKUP",
  };
  if (code < 0 || code >= static_cast<int>(sizeof kNames / sizeof kNames[0])) return "UNKNOWN";
  return kNames[code];
}

size_t attributes_frame(char* out, size_t cap, const Attributes& a) {
  JsonWriter w(out, cap);
  w.begin_object();
  put_string(&w, GWPROTO_LIT("$fw"), a.fw);
  put_string(&w, GWPROTO_LIT("$project"), a.project);
  put_string(&w, GWPROTO_LIT("$chip"), a.chip);
  put_string(&w, GWPROTO_LIT("$mac"), a.mac);
  put_string(&w, GWPROTO_LIT("$ip"), a.ip);
  if (a.has_rssi) {
    w.key(GWPROTO_LIT("$rssi"));
    w.integer(a.rssi);
  }
  w.key(GWPROTO_LIT("$heap"));
  w.uinteger(a.heap);
  w.key(GWPROTO_LIT("$uptime"));
  w.uinteger(a.uptime_s);
  put_string(&w, GWPROTO_LIT("$reset"), a.reset);
  w.end_object();
  return w.finish();
}

bool AttributeTimer::due(uint32_t now_ms) {
  if (armed_ && !time_reached(now_ms, next_)) return false;
  armed_ = true;
  next_ = now_ms + period_;
  return true;
}

}  // namespace gwproto
