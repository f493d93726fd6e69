// esp32gw "wsclient" sketch: the board dials the gateway at
// ws://GW_HOST:GW_PORT/device/GW_DEVICE_ID with "Authorization: Bearer
// GW_TOKEN" (gateway config: transport: ws-listen, token: the same).
// Works across NAT and needs no fixed board address.
//
//  - on every (re)connect: hello (id, firmware, reset reason), count, LED
//  - every second: {"label":"count","value":N}; LED state on every change
//  - commands: bare text `toggle` (also on/off), or {"label","value"} JSON
//  - heartbeat: ping every 15 s, drop the link after 2 missed pongs (the
//    gateway also pings every 5 s; the library answers those)
//  - reconnect with jittered exponential backoff (gwproto::Backoff): a
//    wait drawn from [d/2, d], d = 2 s doubling to 30 s, so boards that
//    lost the gateway together do not return in lock-step
//
// arduinoWebSockets runs its callbacks inside webSocket.loop(), in loop()'s
// task, so they may use the board state directly. Its TCP connect blocks
// loop() for up to WEBSOCKETS_TCP_TIMEOUT ms while the gateway is down.
#include <Arduino.h>
#include <ESPmDNS.h>
#include <WebSocketsClient.h>
#include <WiFi.h>
#if __has_include(<esp_random.h>)
#include <esp_random.h>  // esp_random(); in esp_system.h before ESP-IDF 5
#endif
#include <esp_system.h>
#include <gwproto.h>

#if __has_include("secrets.h")
#include "secrets.h"
#else
#error "secrets.h not found: copy include/secrets.h.example to include/secrets.h (PlatformIO) or next to this sketch (Arduino IDE) and fill it in"
#endif

#ifndef GW_PORT
#define GW_PORT 8080
#endif
#ifndef LED_PIN
#ifdef LED_BUILTIN
#define LED_PIN LED_BUILTIN
#else
#define LED_PIN 2
#endif
#endif

static const char kFirmware[] = GWPROTO_VERSION;
static const char kPath[] = "/device/" GW_DEVICE_ID;
static const char kAuthorization[] = "Bearer " GW_TOKEN;

// GatewayLink adds two things arduinoWebSockets 2.7.3 lacks, through its
// protected members: our own backoff between attempts (the library retries
// at a fixed interval), and resetting the missed-pong count on connect
// (Links2004/arduinoWebSockets PR #980, merged after 2.7.3: without it every
// link after a heartbeat timeout drops at once).
class GatewayLink : public WebSocketsClient {
 public:
  // pace sets the wait before the next attempt after each failure; call it
  // before loop(). The library stamps _lastConnectionFail on every failed
  // connect and every disconnect.
  void pace(gwproto::Backoff* backoff) {
    if (isConnected() || _lastConnectionFail == seen_fail_) return;
    seen_fail_ = _lastConnectionFail;
    setReconnectInterval(backoff->next());
  }
  void forget_missed_pongs() { _client.pongTimeoutCount = 0; }

 private:
  unsigned long seen_fail_ = 0;
};

static GatewayLink gateway;
static uint32_t rand32(void*) { return esp_random(); }
static gwproto::Backoff backoff(2000, 30000, rand32, nullptr);
static gwproto::Board board(0);
static char frag_storage[256];
static gwproto::FragBuffer frag(frag_storage, sizeof frag_storage);
static bool frag_binary = false;
static int reset_reason = 0;
static bool led_shown = false;
static bool mdns_on = false;

static void send_frame(size_t (gwproto::Board::*make)(char*, size_t) const) {
  char f[64];
  size_t n = (board.*make)(f, sizeof f);
  if (n > 0) gateway.sendTXT(f, n);
}

static void on_command(const char* p, size_t n) {
  gwproto::CommandResult r = board.handle(p, n, millis());
  if (r.accepted) send_frame(&gwproto::Board::led_frame);
}

static void on_event(WStype_t type, uint8_t* payload, size_t len) {
  const char* p = reinterpret_cast<const char*>(payload);
  switch (type) {
    case WStype_CONNECTED: {
      gateway.forget_missed_pongs();
      backoff.reset();
      char f[256];
      gwproto::Identity id = {GW_DEVICE_ID, kFirmware, "wsclient"};
      size_t n = gwproto::hello_frame(f, sizeof f, id, reset_reason, millis());
      if (n > 0) gateway.sendTXT(f, n);
      send_frame(&gwproto::Board::count_frame);
      send_frame(&gwproto::Board::led_frame);
      break;
    }
    case WStype_TEXT:
      on_command(p, len);
      break;
    // A fragmented message: reassemble text, ignore binary.
    case WStype_FRAGMENT_TEXT_START:
      frag_binary = false;
      frag.add(p, len, true, false);
      break;
    case WStype_FRAGMENT_BIN_START:
      frag_binary = true;
      break;
    case WStype_FRAGMENT:
      if (!frag_binary) frag.add(p, len, false, false);
      break;
    case WStype_FRAGMENT_FIN:
      if (!frag_binary && frag.add(p, len, false, true) == gwproto::FragBuffer::kDone) {
        on_command(frag.data(), frag.size());
      }
      break;
    default:  // DISCONNECTED, BIN, PING, PONG, ERROR: nothing to do
      break;
  }
}

void setup() {
  Serial.begin(115200);
  pinMode(LED_PIN, OUTPUT);
  digitalWrite(LED_PIN, LOW);
  reset_reason = static_cast<int>(esp_reset_reason());
  Serial.printf("# esp32gw wsclient %s, id %s, reset %s\n", kFirmware, GW_DEVICE_ID,
                gwproto::reset_reason_name(reset_reason));

  WiFi.mode(WIFI_STA);
  WiFi.setAutoReconnect(true);
  WiFi.begin(WIFI_SSID, WIFI_PASSWORD);

  gateway.begin(GW_HOST, GW_PORT, kPath, "");  // "": no Sec-WebSocket-Protocol
  // After begin(), which clears them: the token, and no "Origin: file://".
  gateway.setAuthorization(kAuthorization);
  gateway.setExtraHeaders("");
  gateway.onEvent(on_event);
  gateway.enableHeartbeat(15000, 3000, 2);
  gateway.setReconnectInterval(backoff.next());  // the first attempt waits 1-2 s too
#if WEBSOCKETS_TCP_TIMEOUT <= 3000
  // Only when a connect attempt cannot starve the 5 s loop watchdog.
  enableLoopWDT();
#endif
}

void loop() {
  bool wifi = WiFi.status() == WL_CONNECTED;
  if (wifi) {
    gateway.pace(&backoff);
    gateway.loop();  // only with Wi-Fi: a connect attempt without it just blocks
  }
  if (board.tick(millis()) && gateway.isConnected()) send_frame(&gwproto::Board::count_frame);
  if (board.led() != led_shown) {
    led_shown = board.led();
    digitalWrite(LED_PIN, led_shown ? HIGH : LOW);
  }
#ifdef MDNS_NAME
  // Optional: be findable as MDNS_NAME.local (begin on link up, end on loss).
  if (wifi && !mdns_on) {
    mdns_on = MDNS.begin(MDNS_NAME);
  } else if (!wifi && mdns_on) {
    MDNS.end();
    mdns_on = false;
  }
#else
  (void)mdns_on;
#endif
}
