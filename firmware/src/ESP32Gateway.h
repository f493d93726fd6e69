// ESP32Gateway: connect an ESP32 to the esp32gw gateway in a few lines.
//
//   #include <ESP32Gateway.h>
//   ESP32Gateway gw;                       // settings from secrets.h, then Preferences
//   void setup() { gw.begin(); gw.onCommand("led", onLed); }
//   void loop()  { gw.loop(); gw.publish("temperature", readTemp()); }
//
// Three ways to reach the gateway (the constructor's mode):
//   ESP32Gateway::kClient  the board dials ws://GATEWAY/device/ID (gateway
//                          transport ws-listen). The gateway is found by mDNS
//                          (_esp32gw._tcp, TXT path) unless GW_HOST is set.
//                          Without a device token it enrolls with the
//                          gateway's enroll token and keeps the id and token
//                          it is given in Preferences ("esp32gw" namespace).
//   ESP32Gateway::kServer  the board serves ws://BOARD/ws (ws-dial; a browser
//                          can open it directly too) and advertises
//                          _esp32gw-board._tcp with TXT id and path.
//   ESP32Gateway::kSerial  newline JSON on Serial at 115200 (serial).
//
// What the library does for every sketch: $ attributes ($fw, $project,
// $chip, $mac, $ip, $rssi, $heap, $uptime, $reset) on connect and every
// 60 s; readings published while the link is down are kept (a bounded ring,
// with NTP time when known) and sent with "ts" when it is back, each label's
// newest first (shown live) and then the older ones (history); commands go
// to the handler registered for their label; `ota` frames download, check
// (size, SHA-256), install and reboot, reporting $ota, and the new image is
// marked valid only once it reached the gateway again (see README: the
// partition table and rollback settings this needs).
//
// The protocol itself (frames, decoders, OTA states, backfill) is the
// portable core in gwproto/, host-tested; this front is the Arduino glue.
#ifndef ESP32GATEWAY_H
#define ESP32GATEWAY_H

#include <Arduino.h>

#include <functional>

#include "gwproto/gwproto.h"

// Settings may come from a secrets.h the sketch includes before this header
// (see examples/secrets.h.example); anything left empty is read from
// Preferences, where enrollment also stores the adopted id and token.
struct ESP32GatewaySettings {
  const char* wifi_ssid;
  const char* wifi_password;
  const char* device_id;     // empty: esp32-XXXXXX from the MAC
  const char* gateway_host;  // kClient; empty: find it by mDNS
  uint16_t gateway_port;     // kClient; 0: from mDNS, else 8080
  const char* token;         // kClient: the device's token (ws-listen `token:`)
  const char* enroll_token;  // kClient: the gateway's enroll token, for enrollment
  const char* board_token;   // kServer: when set, /ws needs ?token=
  const char* fw_version;    // $fw; default the build's app description version
  const char* project;       // $project; default the app description's project name
};

class ESP32Gateway {
 public:
  enum Mode { kClient, kServer, kSerial };
  typedef std::function<void(const char* value)> CommandHandler;

  // How many command labels and published labels the board tracks.
  static const int kMaxHandlers = 8;
  static const int kMaxLabels = 16;
  // Readings kept while the link is down.
  static const size_t kBackfill = 64;

  explicit ESP32Gateway(Mode mode = kClient);

  // begin with the settings from secrets.h macros (WIFI_SSID,
  // WIFI_PASSWORD, GW_DEVICE_ID, GW_HOST, GW_PORT, GW_TOKEN,
  // GW_ENROLL_TOKEN, BOARD_TOKEN, FW_VERSION, FW_PROJECT), when defined.
  void begin() { begin(settings_from_macros()); }
  void begin(const ESP32GatewaySettings& s);
  // loop must run on every pass of loop(); it never blocks for long (except
  // while an OTA image downloads, when it keeps the link alive itself).
  void loop();

  // onCommand calls h with the value of each command for label ("led" gets
  // {"label":"led","value":"toggle"}). A command without a label (the
  // gateway's command_format: text sends just "toggle") goes to the first
  // handler registered. Returns false when kMaxHandlers are taken.
  bool onCommand(const char* label, CommandHandler h);

  // publish sends {"label":L,"value":V}. A label goes out at most once per
  // publish interval (default 1 s) unless its value changed, so calling it
  // on every loop() pass is fine. While the link is down the reading is kept
  // for backfill. Returns true when it was sent or kept.
  bool publish(const char* label, double v);
  bool publish(const char* label, float v) { return publish(label, static_cast<double>(v)); }
  bool publish(const char* label, int v) { return publish_int(label, v); }
  bool publish(const char* label, long v) { return publish_int(label, v); }
  bool publish(const char* label, unsigned long v) { return publish_int(label, static_cast<int64_t>(v)); }
  bool publish(const char* label, bool v);
  bool publish(const char* label, const char* v);
  bool publish(const char* label, const String& v) { return publish(label, v.c_str()); }
  void setPublishInterval(uint32_t ms) { publish_every_ms_ = ms; }

  bool connected() const;
  const char* deviceId() const { return id_; }

 private:
  static ESP32GatewaySettings settings_from_macros() {
    ESP32GatewaySettings s = {};
#ifdef WIFI_SSID
    s.wifi_ssid = WIFI_SSID;
#endif
#ifdef WIFI_PASSWORD
    s.wifi_password = WIFI_PASSWORD;
#endif
#ifdef GW_DEVICE_ID
    s.device_id = GW_DEVICE_ID;
#endif
#ifdef GW_HOST
    s.gateway_host = GW_HOST;
#endif
#ifdef GW_PORT
    s.gateway_port = GW_PORT;
#endif
#ifdef GW_TOKEN
    s.token = GW_TOKEN;
#endif
#ifdef GW_ENROLL_TOKEN
    s.enroll_token = GW_ENROLL_TOKEN;
#endif
#ifdef BOARD_TOKEN
    s.board_token = BOARD_TOKEN;
#endif
#ifdef FW_VERSION
    s.fw_version = FW_VERSION;
#endif
#ifdef FW_PROJECT
    s.project = FW_PROJECT;
#endif
    return s;
  }

  struct Handler {
    char label[gwproto::kMaxLabelLen + 1];
    CommandHandler fn;
  };
  struct LabelState {
    char label[gwproto::kMaxLabelLen + 1];
    uint32_t last_ms;
    char last[gwproto::kMaxBufferedValue + 1];
  };

  bool publish_int(const char* label, int64_t v);
  bool publish_json(const char* label, const char* json, size_t n);
  bool send_text(const char* p, size_t n);
  void on_link_up();
  void on_text(const char* p, size_t n);
  void send_attributes();
  void drain_backfill();
  void client_loop();
  void client_connect();
  void server_loop();
  void serial_loop();
  void run_ota();
  void ota_report();
  void pump();

  Mode mode_;
  char id_[gwproto::Adopted::kMaxId + 1];
  char token_[gwproto::Adopted::kMaxToken + 1];
  char board_token_[65];
  char host_[64];
  uint16_t port_;
  char path_[64];
  char fw_[33];
  char project_[33];
  bool enrolling_;
  bool adopted_;  // redial /device/NEWID once the pending link closes
  bool begun_client_;
  bool link_up_;
  bool pending_valid_;  // running a new image not yet confirmed by the gateway
  bool rolled_back_;    // booted after a rollback not yet reported to the gateway
  bool ota_pending_;
  uint32_t publish_every_ms_;
  uint32_t next_mdns_ms_;
  Handler handlers_[kMaxHandlers];
  int nhandlers_;
  LabelState labels_[kMaxLabels];
  gwproto::StaticBackfill<kBackfill> backfill_;
  gwproto::AttributeTimer attr_timer_;
  gwproto::Ota ota_;
  gwproto::OtaRequest ota_req_;
  gwproto::StaticLineBuffer<512> serial_line_;
};

#endif  // ESP32GATEWAY_H
