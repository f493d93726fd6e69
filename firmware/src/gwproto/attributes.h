// Board attributes (DESIGN.md, "Attributes"): labels starting with '$' that
// describe the board rather than a sensor. A board sends them as one flat
// object on every (re)connect and then every kAttributesEveryMs:
//   {"$fw":"1.2.0","$project":"garage","$chip":"esp32","$mac":"24:6F:28:01:02:03",
//    "$ip":"192.168.1.50","$rssi":-61,"$heap":201344,"$uptime":3600,"$reset":"POWERON"}
// Empty strings are left out, and $rssi when the board has no radio link.
#ifndef GWPROTO_ATTRIBUTES_H
#define GWPROTO_ATTRIBUTES_H

#include <stddef.h>
#include <stdint.h>

namespace gwproto {

// How often a connected board repeats its attributes.
const uint32_t kAttributesEveryMs = 60000;

// Attributes holds NUL-terminated strings owned by the caller (any may be
// NULL or empty: left out).
struct Attributes {
  const char* fw;       // firmware version, e.g. "1.2.0"
  const char* project;  // project name, as in the image's app description
  const char* chip;     // "esp32", "esp32s3", ...
  const char* mac;      // "24:6F:28:01:02:03"
  const char* ip;       // "192.168.1.50"
  bool has_rssi;
  int32_t rssi;        // dBm
  uint32_t heap;       // free heap, bytes
  uint32_t uptime_s;   // seconds since boot
  const char* reset;   // reset reason name (reset_reason_name())
};

// reset_reason_name maps an ESP-IDF esp_reset_reason_t value (0..15:
// UNKNOWN, POWERON, EXT, SW, PANIC, INT_WDT, TASK_WDT, WDT, DEEPSLEEP,
// BROWNOUT, SDIO, USB, JTAG, EFUSE, PWR_GLITCH, CPU_LOCKUP) to its name, for
// $reset; anything else is "UNKNOWN".
const char* reset_reason_name(int code);

// attributes_frame writes the flat object above; 0 when it did not fit.
size_t attributes_frame(char* out, size_t cap, const Attributes& a);

// AttributeTimer says when the attributes are due: at once after connected()
// and then every period.
class AttributeTimer {
 public:
  explicit AttributeTimer(uint32_t period_ms = kAttributesEveryMs)
      : period_(period_ms > 0 ? period_ms : 1), next_(0), armed_(false) {}
  // connected: the link just came up; the next due() is true.
  void connected() { armed_ = false; }
  // due returns true when the attributes should go out now, and schedules
  // the next time.
  bool due(uint32_t now_ms);

 private:
  uint32_t period_;
  uint32_t next_;
  bool armed_;
};

}  // namespace gwproto

#endif  // GWPROTO_ATTRIBUTES_H
