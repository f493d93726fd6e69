// The Arduino glue of ESP32Gateway (ESP32 only): Wi-Fi, the WebSocket
// client (links2004/WebSockets) or server (ESP32Async/ESPAsyncWebServer),
// Serial, mDNS, Preferences, NTP and the OTA flash writes. Everything the
// protocol decides is in gwproto/ and tested on the host.
#if defined(ARDUINO_ARCH_ESP32)

#include "ESP32Gateway.h"

#include <ESPAsyncWebServer.h>
#include <ESPmDNS.h>
#include <HTTPClient.h>
#include <Preferences.h>
#include <Update.h>
#include <WebSocketsClient.h>
#include <WiFi.h>
#include <esp_app_desc.h>
#include <esp_ota_ops.h>
#include <esp_system.h>
#include <time.h>

// The Arduino core marks a freshly booted OTA image valid in initArduino()
// unless this returns true; the library marks it valid itself once the
// gateway has been reached (and rolls back when it is not within
// kValidWithinMs).
extern "C" bool verifyRollbackLater() { return true; }

namespace {

// A new image must reach the gateway within this time or it rolls back.
const uint32_t kValidWithinMs = 5 * 60 * 1000;
// mDNS lookups of the gateway while it is not found.
const uint32_t kMdnsEveryMs = 10000;
// Image download: resumes after a cut, and how long it may stall.
const int kOtaAttempts = 5;
const uint32_t kOtaStallMs = 10000;

WebSocketsClient* g_client = nullptr;
AsyncWebServer* g_server = nullptr;
AsyncWebSocket* g_ws = nullptr;

// Server mode: the async_tcp task hands whole text messages (and "a client
// connected") to loop() through this queue; no work in its callbacks.
struct Inbound {
  uint16_t len;  // 0: a client connected
  char data[512];
};
QueueHandle_t g_inbound = nullptr;

uint64_t unix_ms_now() {
  time_t t = time(nullptr);
  if (t < 1700000000) return 0;  // no NTP time yet
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return static_cast<uint64_t>(tv.tv_sec) * 1000u + static_cast<uint64_t>(tv.tv_usec) / 1000u;
}

void copy(char* out, size_t cap, const char* s) { snprintf(out, cap, "%s", s ? s : ""); }

}  // namespace

ESP32Gateway::ESP32Gateway(Mode mode)
    : mode_(mode), port_(0), enrolling_(false), adopted_(false), begun_client_(false),
      link_up_(false), pending_valid_(false), rolled_back_(false), ota_pending_(false), publish_every_ms_(1000),
      next_mdns_ms_(0), nhandlers_(0) {
  id_[0] = token_[0] = board_token_[0] = host_[0] = fw_[0] = project_[0] = '\0';
  copy(path_, sizeof path_, "/device/");
  memset(labels_, 0, sizeof labels_);
}

void ESP32Gateway::begin(const ESP32GatewaySettings& s) {
  const esp_app_desc_t* desc = esp_app_get_description();
  copy(fw_, sizeof fw_, s.fw_version && s.fw_version[0] ? s.fw_version : desc->version);
  copy(project_, sizeof project_, s.project && s.project[0] ? s.project : desc->project_name);
  copy(host_, sizeof host_, s.gateway_host);
  port_ = s.gateway_port;
  copy(board_token_, sizeof board_token_, s.board_token);

  Preferences prefs;
  prefs.begin("esp32gw", true);
  String id = prefs.getString("id", "");
  String token = prefs.getString("token", "");
  String ssid = prefs.getString("ssid", "");
  String pass = prefs.getString("pass", "");
  prefs.end();
  if (id.length() > 0 && token.length() > 0) {
    copy(id_, sizeof id_, id.c_str());  // adopted earlier: these win
    copy(token_, sizeof token_, token.c_str());
  } else {
    if (s.device_id && s.device_id[0]) {
      copy(id_, sizeof id_, s.device_id);
    } else {
      uint8_t mac[6];
      WiFi.macAddress(mac);
      snprintf(id_, sizeof id_, "esp32-%02x%02x%02x", mac[3], mac[4], mac[5]);
    }
    if (s.token && s.token[0]) {
      copy(token_, sizeof token_, s.token);
    } else if (s.enroll_token && s.enroll_token[0]) {
      copy(token_, sizeof token_, s.enroll_token);
      enrolling_ = true;
    }
  }

  const esp_partition_t* running = esp_ota_get_running_partition();
  esp_ota_img_states_t st;
  pending_valid_ = esp_ota_get_state_partition(running, &st) == ESP_OK && st == ESP_OTA_IMG_PENDING_VERIFY;
  // A rollback (ours after kValidWithinMs, or the bootloader's after the
  // new image crashed) leaves the other slot marked invalid. Report it
  // once per failed image: Preferences keeps the slot address reported.
  const esp_partition_t* bad = esp_ota_get_last_invalid_partition();
  if (bad != nullptr && !pending_valid_) {
    Preferences prefs;
    prefs.begin("esp32gw", false);
    if (prefs.getUInt("rb_addr", 0) != bad->address) {
      rolled_back_ = true;
      prefs.putUInt("rb_addr", bad->address);
    }
    prefs.end();
  }

  if (mode_ == kSerial) {
    Serial.setRxBufferSize(512);
    Serial.begin(115200);
    link_up_ = true;  // a UART cannot tell; the gateway treats silence as offline
    on_link_up();
    return;
  }
  WiFi.mode(WIFI_STA);
  WiFi.setAutoReconnect(true);
  const char* wifi_ssid = s.wifi_ssid && s.wifi_ssid[0] ? s.wifi_ssid : ssid.c_str();
  const char* wifi_pass = s.wifi_password && s.wifi_ssid && s.wifi_ssid[0] ? s.wifi_password : pass.c_str();
  WiFi.begin(wifi_ssid, wifi_pass);
  configTime(0, 0, "pool.ntp.org", "time.nist.gov");
  MDNS.begin(id_);

  if (mode_ == kServer) {
    g_inbound = xQueueCreate(8, sizeof(Inbound));
    g_server = new AsyncWebServer(80);
    g_ws = new AsyncWebSocket("/ws");
    const char* want = board_token_;
    g_ws->handleHandshake([want](AsyncWebServerRequest* req) {
      if (want[0] == '\0') return true;
      const AsyncWebParameter* p = req->getParam("token");
      return p != nullptr && p->value() == want;
    });
    g_ws->onEvent([](AsyncWebSocket*, AsyncWebSocketClient*, AwsEventType type, void* arg, uint8_t* data,
                     size_t len) {
      static Inbound in;
      if (type == WS_EVT_CONNECT) {
        in.len = 0;
        xQueueSend(g_inbound, &in, 0);
      } else if (type == WS_EVT_DATA) {
        AwsFrameInfo* info = static_cast<AwsFrameInfo*>(arg);
        // Whole, unfragmented text messages only; the gateway's are small.
        if (info->final && info->index == 0 && info->len == len && info->opcode == WS_TEXT &&
            len < sizeof in.data) {
          memcpy(in.data, data, len);
          in.len = static_cast<uint16_t>(len);
          xQueueSend(g_inbound, &in, 0);
        }
      }
    });
    g_server->addHandler(g_ws);
    g_server->begin();
    MDNS.addService("esp32gw-board", "tcp", 80);
    MDNS.addServiceTxt("esp32gw-board", "tcp", "id", id_);
    MDNS.addServiceTxt("esp32gw-board", "tcp", "path", "/ws");
  } else {
    g_client = new WebSocketsClient();
  }
}

bool ESP32Gateway::onCommand(const char* label, CommandHandler h) {
  if (nhandlers_ >= kMaxHandlers || label == nullptr) return false;
  copy(handlers_[nhandlers_].label, sizeof handlers_[nhandlers_].label, label);
  handlers_[nhandlers_].fn = h;
  nhandlers_++;
  return true;
}

bool ESP32Gateway::connected() const {
  if (mode_ == kServer) return g_ws != nullptr && g_ws->count() > 0;
  if (mode_ == kClient) return link_up_ && !enrolling_;
  return true;
}

bool ESP32Gateway::send_text(const char* p, size_t n) {
  switch (mode_) {
    case kClient:
      return g_client != nullptr && link_up_ && g_client->sendTXT(p, n);
    case kServer:
      if (g_ws == nullptr || g_ws->count() == 0 || !g_ws->availableForWriteAll()) return false;
      g_ws->textAll(p, n);
      return true;
    case kSerial:
      Serial.write(reinterpret_cast<const uint8_t*>(p), n);
      Serial.write("\r\n");
      return true;
  }
  return false;
}

bool ESP32Gateway::publish(const char* label, double v) {
  char tmp[gwproto::kMaxBufferedValue + 1];
  gwproto::JsonWriter w(tmp, sizeof tmp);
  w.number(v);
  size_t n = w.finish();
  return n > 0 && publish_json(label, tmp, n);
}

bool ESP32Gateway::publish_int(const char* label, int64_t v) {
  char tmp[gwproto::kMaxBufferedValue + 1];
  gwproto::JsonWriter w(tmp, sizeof tmp);
  w.integer(v);
  size_t n = w.finish();
  return n > 0 && publish_json(label, tmp, n);
}

bool ESP32Gateway::publish(const char* label, bool v) {
  return v ? publish_json(label, "true", 4) : publish_json(label, "false", 5);
}

bool ESP32Gateway::publish(const char* label, const char* v) {
  char tmp[gwproto::kMaxBufferedValue + 1];
  gwproto::JsonWriter w(tmp, sizeof tmp);
  w.string(v ? v : "", v ? strlen(v) : 0);
  size_t n = w.finish();
  return n > 0 && publish_json(label, tmp, n);
}

bool ESP32Gateway::publish_json(const char* label, const char* json, size_t n) {
  size_t ln = strlen(label);
  if (!gwproto::valid_label(label, ln)) return false;
  // Throttle per label: a changed value goes at once, the same value at
  // most once per interval.
  LabelState* slot = nullptr;
  for (int i = 0; i < kMaxLabels && slot == nullptr; i++) {
    if (strcmp(labels_[i].label, label) == 0 || labels_[i].label[0] == '\0') slot = &labels_[i];
  }
  uint32_t now = millis();
  if (slot != nullptr && slot->label[0] != '\0' && strcmp(slot->last, json) == 0 &&
      now - slot->last_ms < publish_every_ms_) {
    return false;
  }
  if (slot != nullptr) {
    copy(slot->label, sizeof slot->label, label);
    snprintf(slot->last, sizeof slot->last, "%.*s", static_cast<int>(n), json);
    slot->last_ms = now;
  }
  if (connected() && backfill_.empty()) {
    char f[160];
    size_t fn = gwproto::frame_raw(f, sizeof f, label, ln, json, n);
    return fn > 0 && send_text(f, fn);
  }
  return backfill_.push_raw(label, ln, json, n, now, unix_ms_now());
}

void ESP32Gateway::send_attributes() {
  String mac = WiFi.macAddress();
  String ip = WiFi.localIP().toString();
  gwproto::Attributes a;
  a.fw = fw_;
  a.project = project_;
  a.chip = CONFIG_IDF_TARGET;  // "esp32", "esp32s3", ...
  a.mac = mac.c_str();
  a.ip = mode_ == kSerial ? "" : ip.c_str();
  a.has_rssi = mode_ != kSerial && WiFi.status() == WL_CONNECTED;
  a.rssi = WiFi.RSSI();
  a.heap = ESP.getFreeHeap();
  a.uptime_s = millis() / 1000u;
  a.reset = gwproto::reset_reason_name(static_cast<int>(esp_reset_reason()));
  char f[384];
  size_t n = gwproto::attributes_frame(f, sizeof f, a);
  if (n > 0) send_text(f, n);
}

void ESP32Gateway::on_link_up() {
  if (pending_valid_ && !enrolling_) {
    esp_ota_mark_app_valid_cancel_rollback();
    pending_valid_ = false;
    Preferences prefs;  // a later rollback from this slot is news again
    prefs.begin("esp32gw", false);
    prefs.remove("rb_addr");
    prefs.end();
  }
  if (rolled_back_ && !enrolling_) {
    // The gateway fails the board's update at once instead of after its
    // 3-minute wait, with the reason.
    static const char kRolledBack[] =
        "{\"$ota\":{\"state\":\"failed\",\"error\":\"rolled back: the new image did not reach the gateway\"}}";
    if (send_text(kRolledBack, sizeof kRolledBack - 1)) rolled_back_ = false;
  }
  attr_timer_.connected();
  if (attr_timer_.due(millis())) send_attributes();
  ota_report();
  // Readings kept while the link was down: each label's newest goes first
  // (the gateway shows it live), the older ones follow as backfill.
  backfill_.newest_first();
}

void ESP32Gateway::drain_backfill() {
  char f[160];
  while (!backfill_.empty() && connected()) {
    size_t n = backfill_.front_frame(f, sizeof f, millis(), unix_ms_now());
    if (n > 0 && !send_text(f, n)) return;  // try again on the next pass
    backfill_.pop();
  }
}

void ESP32Gateway::ota_report() {
  char f[160];
  size_t n = ota_.report(f, sizeof f, millis());
  if (n > 0) send_text(f, n);
}

void ESP32Gateway::on_text(const char* p, size_t n) {
  switch (gwproto::message_type(p, n)) {
    case gwproto::kMessageAdopted: {
      gwproto::Adopted a;
      if (mode_ != kClient || gwproto::decode_adopted(p, n, &a) != gwproto::kDecodeOk) return;
      Preferences prefs;
      prefs.begin("esp32gw", false);
      prefs.putString("id", a.id);
      prefs.putString("token", a.token);
      prefs.end();
      copy(id_, sizeof id_, a.id);
      copy(token_, sizeof token_, a.token);
      enrolling_ = false;
      adopted_ = true;  // the gateway closes this link; dial /device/NEWID next
      return;
    }
    case gwproto::kMessageOta:
      if (!ota_.busy() && gwproto::decode_ota(p, n, &ota_req_) == gwproto::kDecodeOk) ota_pending_ = true;
      return;
    case gwproto::kMessageUnknown:
      return;
    case gwproto::kMessageCommand:
      break;
  }
  gwproto::Command c;
  if (gwproto::decode_command(p, n, &c) != gwproto::kDecodeOk || nhandlers_ == 0) return;
  for (int i = 0; i < nhandlers_; i++) {
    if (!c.has_label || strcasecmp(handlers_[i].label, c.label) == 0) {
      handlers_[i].fn(c.value);
      return;
    }
  }
}

void ESP32Gateway::client_connect() {
  if (host_[0] == '\0' || port_ == 0) {
    // Find the gateway: _esp32gw._tcp, TXT path (default /device/).
    if (static_cast<int32_t>(millis() - next_mdns_ms_) < 0) return;
    next_mdns_ms_ = millis() + kMdnsEveryMs;
    int found = MDNS.queryService("esp32gw", "tcp");
    if (found <= 0) return;
#if ESP_ARDUINO_VERSION_MAJOR >= 3
    String ip = MDNS.address(0).toString();
#else
    String ip = MDNS.IP(0).toString();
#endif
    copy(host_, sizeof host_, ip.c_str());
    port_ = MDNS.port(0);
    String path = MDNS.txt(0, "path");
    if (path.length() > 0 && path.length() < sizeof path_) copy(path_, sizeof path_, path.c_str());
  }
  char url[sizeof path_ + sizeof id_];
  snprintf(url, sizeof url, "%s%s", path_, id_);
  g_client->begin(host_, port_ ? port_ : 8080, url, "");
  g_client->setExtraHeaders("");  // no "Origin: file://"
  if (token_[0] != '\0') {
    static char auth[sizeof token_ + 8];
    snprintf(auth, sizeof auth, "Bearer %s", token_);
    g_client->setAuthorization(auth);
  }
  g_client->setReconnectInterval(5000);
  g_client->enableHeartbeat(15000, 3000, 2);
  g_client->onEvent([this](WStype_t type, uint8_t* payload, size_t len) {
    switch (type) {
      case WStype_CONNECTED:
        link_up_ = true;
        on_link_up();
        break;
      case WStype_DISCONNECTED:
        link_up_ = false;
        break;
      case WStype_TEXT:
        on_text(reinterpret_cast<const char*>(payload), len);
        break;
      default:
        break;
    }
  });
  begun_client_ = true;
}

void ESP32Gateway::client_loop() {
  if (WiFi.status() != WL_CONNECTED) {
    link_up_ = false;
    return;  // a connect attempt would block loop() for nothing
  }
  if (!begun_client_) {
    client_connect();
    return;
  }
  g_client->loop();
  if (adopted_ && !link_up_) {
    // The pending link closed after `adopted`: dial as the new device.
    adopted_ = false;
    g_client->disconnect();
    client_connect();
  }
}

void ESP32Gateway::server_loop() {
  static uint32_t last_cleanup = 0;
  if (millis() - last_cleanup >= 1000) {
    last_cleanup = millis();
    g_ws->cleanupClients(4);
  }
  Inbound in;
  while (xQueueReceive(g_inbound, &in, 0) == pdTRUE) {
    if (in.len == 0) {
      on_link_up();  // a new client: everyone gets the attributes again
    } else {
      on_text(in.data, in.len);
    }
  }
}

void ESP32Gateway::serial_loop() {
  while (Serial.available() > 0) {
    if (serial_line_.push(static_cast<char>(Serial.read()))) on_text(serial_line_.data(), serial_line_.size());
  }
}

// pump keeps the link alive and reports progress while an image downloads.
void ESP32Gateway::pump() {
  if (mode_ == kClient && g_client != nullptr) g_client->loop();
  ota_report();
}

void ESP32Gateway::run_ota() {
  ota_pending_ = false;
  const esp_partition_t* slot = esp_ota_get_next_update_partition(nullptr);
  if (!ota_.start(ota_req_, slot ? slot->size : 0, millis())) {
    ota_report();
    return;
  }
  if (slot == nullptr) {
    ota_.fail("no OTA partition (see the partition table in the README)", millis());
    ota_report();
    return;
  }
  ota_report();
  static uint8_t buf[2048];
  bool begun = false;
  char err[96] = "download failed";
  for (int attempt = 0; attempt < kOtaAttempts && ota_.state() == gwproto::kOtaDownloading; attempt++) {
    HTTPClient http;
    http.setTimeout(kOtaStallMs);
    if (!http.begin(ota_req_.url)) {
      snprintf(err, sizeof err, "download: bad url");
      break;
    }
    uint32_t from = ota_.received();
    if (from > 0) http.addHeader("Range", String("bytes=") + String(from) + "-");
    int code = http.GET();
    if (code == 200 && from > 0) {
      ota_.rewind();  // the server ignored the range: start over
      Update.abort();
      begun = false;
    } else if (code != 200 && code != 206) {
      snprintf(err, sizeof err, "download: HTTP %d", code);
      http.end();
      if (code > 0) break;  // an answer, not a cut: do not retry
      continue;
    }
    if (!begun) {
      if (!Update.begin(ota_req_.size, U_FLASH)) {
        snprintf(err, sizeof err, "flash: %s", Update.errorString());
        http.end();
        break;
      }
      begun = true;
    }
    WiFiClient* stream = http.getStreamPtr();
    uint32_t last_rx = millis();
    while (ota_.received() < ota_req_.size && millis() - last_rx < kOtaStallMs) {
      size_t avail = stream->available();
      if (avail == 0) {
        if (!http.connected()) break;
        pump();
        delay(1);
        continue;
      }
      int r = stream->read(buf, avail < sizeof buf ? avail : sizeof buf);
      if (r <= 0) continue;
      last_rx = millis();
      if (!ota_.write(buf, static_cast<size_t>(r), millis())) break;
      if (Update.write(buf, static_cast<size_t>(r)) != static_cast<size_t>(r)) {
        snprintf(err, sizeof err, "flash: %s", Update.errorString());
        ota_.fail(err, millis());
        break;
      }
      pump();
    }
    http.end();
    if (ota_.received() < ota_req_.size) {
      snprintf(err, sizeof err, "download: connection lost at %u of %u bytes",
               static_cast<unsigned>(ota_.received()), static_cast<unsigned>(ota_req_.size));
    }
    if (ota_.received() == ota_req_.size) break;
  }
  if (ota_.state() == gwproto::kOtaDownloading && ota_.received() < ota_req_.size) ota_.fail(err, millis());
  if (ota_.state() == gwproto::kOtaDownloading && ota_.finish(millis()) && Update.end(false)) {
    ota_.rebooting(millis());
    ota_report();
    uint32_t t = millis();
    while (millis() - t < 300) pump();  // let the report go out
    ESP.restart();
  }
  if (ota_.state() != gwproto::kOtaFailed) ota_.fail(Update.errorString(), millis());
  if (begun) Update.abort();
  ota_report();
}

void ESP32Gateway::loop() {
  switch (mode_) {
    case kClient:
      client_loop();
      break;
    case kServer:
      server_loop();
      break;
    case kSerial:
      serial_loop();
      break;
  }
  if (ota_pending_) run_ota();
  if (pending_valid_ && millis() > kValidWithinMs) {
    // The new image never reached the gateway: back to the previous one.
    esp_ota_mark_app_invalid_rollback_and_reboot();
  }
  // Attributes go out on a pending (enrolling) link too; readings wait.
  bool link = mode_ == kClient ? link_up_ : connected();
  if (link && attr_timer_.due(millis())) send_attributes();
  if (connected()) drain_backfill();
}

#endif  // ARDUINO_ARCH_ESP32
