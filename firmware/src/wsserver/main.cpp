// esp32gw "wsserver" sketch: the board is a WebSocket server at /ws, like
// the classic ESPAsyncWebServer tutorial. The gateway dials it
// (transport: ws-dial, url: ws://BOARD_IP/ws); a browser can open
// http://BOARD_IP/ directly too.
//
//  - every second: {"label":"count","value":N} to all clients, skipped when a
//    client's queue is full (availableForWriteAll) rather than queued
//  - {"label":"ledStatus","value":"LED ON"|"LED OFF"} on every change, and
//    the state to each new client on connect
//  - commands: bare text `toggle` (also on/off), or {"label","value"} JSON
//  - cleanupClients() once a second; mDNS _ws._tcp with TXT id and path
//
// Library callbacks run in the async_tcp task, so they only hand events to
// loop() through a FreeRTOS queue; all state lives in loop(). Protocol logic
// is gwproto (firmware/lib/gwproto), tested on the host.
#include <Arduino.h>
#include <AsyncTCP.h>
#include <ESPAsyncWebServer.h>
#include <ESPmDNS.h>
#include <WiFi.h>
#include <esp_system.h>
#include <gwproto.h>

#if __has_include("secrets.h")
#include "secrets.h"
#else
#error "secrets.h not found: copy include/secrets.h.example to include/secrets.h (PlatformIO) or next to this sketch (Arduino IDE) and fill it in"
#endif

#ifndef GW_DEVICE_ID
#define GW_DEVICE_ID "esp32-wsserver"
#endif
#ifndef MDNS_NAME
#define MDNS_NAME "esp32gw-" GW_DEVICE_ID
#endif
#ifndef LED_PIN
#ifdef LED_BUILTIN
#define LED_PIN LED_BUILTIN
#else
#define LED_PIN 2
#endif
#endif

static const char kFirmware[] = GWPROTO_VERSION;

// A tiny page for using the board without the gateway.
static const char kIndexHtml[] = R"html(<!doctype html>
<meta name="viewport" content="width=device-width">
<title>esp32gw board</title>
<p>count: <b id="c">-</b> &middot; LED: <b id="l">-</b>
<button onclick="ws.send('toggle')">toggle</button>
<script>
const ws = new WebSocket(`ws://${location.host}/ws`);
ws.onmessage = e => { const m = JSON.parse(e.data);
  if (m.label === "count") c.textContent = m.value;
  if (m.label === "ledStatus") l.textContent = m.value; };
</script>
)html";

AsyncWebServer server(80);
AsyncWebSocket ws("/ws");

// Event is what a callback hands to loop().
struct Event {
  enum Kind : uint8_t { kConnect, kCommand } kind;
  uint32_t client;
  uint16_t len;
  char text[128];  // a command; longer messages are dropped by the FragBuffer
};
static QueueHandle_t events;

// Only the async_tcp task touches these.
static char frag_storage[sizeof(Event::text)];
static gwproto::FragBuffer frag(frag_storage, sizeof frag_storage);
static uint32_t frag_client = 0;

// Only loop() touches these.
static gwproto::Board board(0);
static bool led_shown = false;
static uint32_t skipped_ticks = 0;
static uint32_t last_cleanup = 0;
static volatile bool wifi_up = false;
static bool mdns_on = false;

static void hand_off(const Event& ev) {
  // Never block in the async_tcp task: a full queue drops the event.
  xQueueSend(events, &ev, 0);
}

static void on_ws_event(AsyncWebSocket*, AsyncWebSocketClient* client, AwsEventType type,
                        void* arg, uint8_t* data, size_t len) {
  if (type == WS_EVT_CONNECT) {
    Event ev = {Event::kConnect, client->id(), 0, {0}};
    hand_off(ev);
    return;
  }
  if (type != WS_EVT_DATA) return;
  AwsFrameInfo* info = static_cast<AwsFrameInfo*>(arg);
  if (info->message_opcode != WS_TEXT) return;  // binary frames are ignored
  // A message may come in several frames (num > 0) and a frame in several
  // TCP reads (index > 0); data is not NUL-terminated by contract.
  bool first = info->num == 0 && info->index == 0;
  bool last = info->final && info->index + len == info->len;
  if (first) frag_client = client->id();
  if (client->id() != frag_client) return;
  if (frag.add(reinterpret_cast<const char*>(data), len, first, last) ==
      gwproto::FragBuffer::kDone) {
    Event ev = {Event::kCommand, client->id(), static_cast<uint16_t>(frag.size()), {0}};
    memcpy(ev.text, frag.data(), frag.size());
    hand_off(ev);
  }
}

static int reset_reason = 0;

// send_state greets a new client: hello (so the gateway can tell a reboot
// from a reconnect), then the current count and LED state.
static void send_state(uint32_t client) {
  char f[256];
  gwproto::Identity id = {GW_DEVICE_ID, kFirmware, "wsserver"};
  size_t n = gwproto::hello_frame(f, sizeof f, id, reset_reason, millis());
  if (n > 0) ws.text(client, f, n);
  n = board.count_frame(f, sizeof f);
  if (n > 0) ws.text(client, f, n);
  n = board.led_frame(f, sizeof f);
  if (n > 0) ws.text(client, f, n);
}

static bool token_ok(AsyncWebServerRequest* request) {
#ifdef BOARD_TOKEN
  // Optional: with BOARD_TOKEN set, only ws://BOARD/ws?token=BOARD_TOKEN
  // may connect (put the same URL in the gateway's config).
  static const char want[] = BOARD_TOKEN;
  const AsyncWebParameter* p = request->getParam("token");
  if (p == nullptr || p->value().length() != sizeof want - 1) return false;
  uint8_t diff = 0;  // constant-time compare
  for (size_t i = 0; i < sizeof want - 1; i++) {
    diff |= static_cast<uint8_t>(p->value()[i] ^ want[i]);
  }
  return diff == 0;
#else
  (void)request;
  return true;
#endif
}

static void on_wifi(arduino_event_id_t event) {
  if (event == ARDUINO_EVENT_WIFI_STA_GOT_IP) wifi_up = true;
  if (event == ARDUINO_EVENT_WIFI_STA_DISCONNECTED) wifi_up = false;
}

void setup() {
  Serial.begin(115200);
  pinMode(LED_PIN, OUTPUT);
  digitalWrite(LED_PIN, LOW);
  events = xQueueCreate(8, sizeof(Event));

  WiFi.mode(WIFI_STA);
  WiFi.setAutoReconnect(true);
  WiFi.onEvent(on_wifi);
  WiFi.begin(WIFI_SSID, WIFI_PASSWORD);

  ws.onEvent(on_ws_event);
  ws.handleHandshake(token_ok);
  server.addHandler(&ws);
  server.on("/", HTTP_GET, [](AsyncWebServerRequest* r) { r->send(200, "text/html", kIndexHtml); });
  server.begin();

  reset_reason = static_cast<int>(esp_reset_reason());
  Serial.printf("# esp32gw wsserver %s, id %s, reset %s\n", kFirmware, GW_DEVICE_ID,
                gwproto::reset_reason_name(reset_reason));
  enableLoopWDT();  // loop() never blocks, so a stuck pass means a bug: reboot
}

void loop() {
  uint32_t now = millis();
  Event ev;
  while (xQueueReceive(events, &ev, 0) == pdTRUE) {
    if (ev.kind == Event::kConnect) {
      send_state(ev.client);
      continue;
    }
    gwproto::CommandResult r = board.handle(ev.text, ev.len, now);
    if (r.accepted) {
      char f[64];
      size_t n = board.led_frame(f, sizeof f);
      if (n > 0) ws.textAll(f, n);  // state changes go out even under load
    }
  }
  if (board.led() != led_shown) {
    led_shown = board.led();
    digitalWrite(LED_PIN, led_shown ? HIGH : LOW);
  }
  if (board.tick(now) && ws.count() > 0) {
    if (ws.availableForWriteAll()) {
      char f[64];
      size_t n = board.count_frame(f, sizeof f);
      if (n > 0) ws.textAll(f, n);
    } else {
      skipped_ticks++;  // a client is not reading: skip, never queue up
    }
  }
  if (now - last_cleanup >= 1000) {
    last_cleanup = now;
    ws.cleanupClients();  // at most DEFAULT_MAX_WS_CLIENTS; closes the oldest
  }
  // mDNS follows the Wi-Fi link: begin on GOT_IP, end on disconnect.
  if (wifi_up && !mdns_on && MDNS.begin(MDNS_NAME)) {
    MDNS.addService("ws", "tcp", 80);
    MDNS.addServiceTxt("ws", "tcp", "id", GW_DEVICE_ID);
    MDNS.addServiceTxt("ws", "tcp", "path", "/ws");
    MDNS.addServiceTxt("ws", "tcp", "fw", kFirmware);
    mdns_on = true;
  } else if (!wifi_up && mdns_on) {
    MDNS.end();
    mdns_on = false;
  }
}
