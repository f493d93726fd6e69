// The demo app: what the native board runs on top of the protocol core, the
// host twin of the LedServer and SerialBoard examples (whose own code is in
// their .ino). An LED switched by commands ("toggle", "on", "off", ...), a
// counter that ticks once per period, the frames that report them
// (ledStatus, count), and the hello frame the native board sends on every
// (re)connect. Accepted commands go through the core's RateLimiter. It is
// not part of the ESP32Gateway library: a sketch publishes its own labels.
// Time is injected (now_ms), so it is host-testable; no heap.
#ifndef DEMO_APP_H
#define DEMO_APP_H

#include <stddef.h>
#include <stdint.h>

#include "command.h"
#include "ratelimit.h"

namespace demo {

using gwproto::Command;
using gwproto::DecodeStatus;

// Action is what an accepted command asks the board to do.
enum Action {
  kActionNone = 0,  // not for this board (unknown value or label)
  kActionToggle,    // "toggle"
  kActionOn,        // "on", "LED ON", true, 1
  kActionOff,       // "off", "LED OFF", false, 0
};

// command_action maps a decoded command to an Action. The label must be
// absent, "led" or "ledStatus" (any case); the value is matched without
// regard to ASCII case.
Action command_action(const Command& c);
const char* action_name(Action a);

// Identity names the board in its hello frame. These are trusted,
// NUL-terminated build-time strings (device id, firmware version, flavour).
struct Identity {
  const char* id;
  const char* fw;
  const char* flavour;
};

// hello_frame writes
//   {"label":"hello","value":{"id":..,"fw":..,"flavour":..,"reset":"POWERON",
//    "reset_code":1,"uptime_ms":..}}
// (reset: gwproto::reset_reason_name(reset_code)), sent once after boot (serial) or on every (re)connect (WebSocket), so the
// gateway can tell a reboot from a reconnect. Returns 0 if it did not fit.
size_t hello_frame(char* out, size_t cap, const Identity& id, int reset_code, uint32_t uptime_ms);

struct CommandResult {
  DecodeStatus status;  // kDecodeOk unless the input was malformed
  Action action;        // kActionNone when refused
  bool accepted;        // the command was applied: report the LED state
  bool changed;         // the LED changed
  bool rate_limited;    // refused because commands came too fast
};

class App {
 public:
  // Commands: bursts of kCommandBurst, then one per kCommandRefillMs.
  static const uint32_t kCommandBurst = 10;
  static const uint32_t kCommandRefillMs = 100;

  explicit App(uint32_t now_ms, uint32_t period_ms = 1000);

  bool led() const { return led_; }
  void set_led(bool on) { led_ = on; }

  // tick advances the counter once per period and returns true when it did.
  // After a stall of several periods it advances once and re-anchors rather
  // than bursting to catch up.
  bool tick(uint32_t now_ms);
  uint32_t count() const { return count_; }

  // handle decodes p[0..n) and applies it. Malformed, unknown and
  // rate-limited commands change nothing and are counted.
  CommandResult handle(const char* p, size_t n, uint32_t now_ms);

  // {"label":"count","value":N}
  size_t count_frame(char* out, size_t cap) const;
  // {"label":"ledStatus","value":"LED ON"} or "LED OFF"
  size_t led_frame(char* out, size_t cap) const;

  uint32_t rejected() const { return rejected_; }
  uint32_t rate_limited() const { return rate_limited_; }

 private:
  bool led_;
  uint32_t count_;
  uint32_t period_;
  uint32_t next_;
  uint32_t rejected_;
  uint32_t rate_limited_;
  gwproto::RateLimiter limiter_;
};

}  // namespace demo

#endif  // DEMO_APP_H
