#include "demo_app.h"

#include <string.h>

#include "attributes.h"
#include "backoff.h"
#include "frame.h"
#include "json_writer.h"

namespace demo {

// The core's frame writers, decoders and clock helpers.
using namespace gwproto;

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// iequal compares p[0..n) with the lower-case word w, ignoring ASCII case.
bool iequal(const char* p, size_t n, const char* w) {
  size_t wn = strlen(w);
  if (n != wn) return false;
  for (size_t i = 0; i < n; i++) {
    if (lower(p[i]) != w[i]) return false;
  }
  return true;
}

}  // namespace

Action command_action(const Command& c) {
  if (c.has_label && !iequal(c.label, c.label_len, "led") &&
      !iequal(c.label, c.label_len, "ledstatus")) {
    return kActionNone;
  }
  const char* v = c.value;
  size_t n = c.value_len;
  switch (c.type) {
    case kValueString:
      if (iequal(v, n, "toggle")) return kActionToggle;
      if (iequal(v, n, "on") || iequal(v, n, "led on") || iequal(v, n, "true") ||
          iequal(v, n, "1")) {
        return kActionOn;
      }
      if (iequal(v, n, "off") || iequal(v, n, "led off") || iequal(v, n, "false") ||
          iequal(v, n, "0")) {
        return kActionOff;
      }
      return kActionNone;
    case kValueBool:
      return iequal(v, n, "true") ? kActionOn : kActionOff;
    case kValueNumber:
      if (iequal(v, n, "1")) return kActionOn;
      if (iequal(v, n, "0")) return kActionOff;
      return kActionNone;
    case kValueNull:
    case kValueNone:
      break;
  }
  return kActionNone;
}

const char* action_name(Action a) {
  switch (a) {
    case kActionToggle:
      return "toggle";
    case kActionOn:
      return "on";
    case kActionOff:
      return "off";
    case kActionNone:
      break;
  }
  return "none";
}

size_t hello_frame(char* out, size_t cap, const Identity& id, int reset_code, uint32_t uptime_ms) {
  const char* s_id = id.id ? id.id : "";
  const char* s_fw = id.fw ? id.fw : "";
  const char* s_fl = id.flavour ? id.flavour : "";
  const char* reason = gwproto::reset_reason_name(reset_code);
  JsonWriter w(out, cap);
  w.begin_object();
  w.key(GWPROTO_LIT("label"));
  w.string(GWPROTO_LIT("hello"));
  w.key(GWPROTO_LIT("value"));
  w.begin_object();
  w.key(GWPROTO_LIT("id"));
  w.string(s_id, strlen(s_id));
  w.key(GWPROTO_LIT("fw"));
  w.string(s_fw, strlen(s_fw));
  w.key(GWPROTO_LIT("flavour"));
  w.string(s_fl, strlen(s_fl));
  w.key(GWPROTO_LIT("reset"));
  w.string(reason, strlen(reason));
  w.key(GWPROTO_LIT("reset_code"));
  w.integer(reset_code);
  w.key(GWPROTO_LIT("uptime_ms"));
  w.uinteger(uptime_ms);
  w.end_object();
  w.end_object();
  return w.finish();
}

App::App(uint32_t now_ms, uint32_t period_ms)
    : led_(false),
      count_(0),
      period_(period_ms > 0 ? period_ms : 1),
      next_(now_ms + (period_ms > 0 ? period_ms : 1)),
      rejected_(0),
      rate_limited_(0),
      limiter_(kCommandBurst, kCommandRefillMs, now_ms) {}

bool App::tick(uint32_t now_ms) {
  if (!time_reached(now_ms, next_)) return false;
  count_++;
  next_ += period_;
  if (time_reached(now_ms, next_)) next_ = now_ms + period_;  // stalled: re-anchor
  return true;
}

CommandResult App::handle(const char* p, size_t n, uint32_t now_ms) {
  CommandResult r;
  r.action = kActionNone;
  r.accepted = false;
  r.changed = false;
  r.rate_limited = false;
  Command c;
  r.status = decode_command(p, n, &c);
  if (r.status != kDecodeOk) {
    rejected_++;
    return r;
  }
  Action a = command_action(c);
  if (a == kActionNone) {
    rejected_++;
    return r;
  }
  if (!limiter_.allow(now_ms)) {
    rate_limited_++;
    r.rate_limited = true;
    return r;
  }
  bool before = led_;
  switch (a) {
    case kActionToggle:
      led_ = !led_;
      break;
    case kActionOn:
      led_ = true;
      break;
    case kActionOff:
      led_ = false;
      break;
    case kActionNone:
      break;
  }
  r.action = a;
  r.accepted = true;
  r.changed = led_ != before;
  return r;
}

size_t App::count_frame(char* out, size_t cap) const {
  return frame_int(out, cap, GWPROTO_LIT("count"), count_);
}

size_t App::led_frame(char* out, size_t cap) const {
  if (led_) return frame_string(out, cap, GWPROTO_LIT("ledStatus"), GWPROTO_LIT("LED ON"));
  return frame_string(out, cap, GWPROTO_LIT("ledStatus"), GWPROTO_LIT("LED OFF"));
}

}  // namespace demo
