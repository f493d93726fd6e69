// LedServer: the classic "toggle an LED from a web page" tutorial, done
// with ESP32Gateway. The board serves a WebSocket at ws://BOARD/ws: the
// gateway dials it (transport: ws-dial), and a browser can open it directly
// as well. It advertises _esp32gw-board._tcp (TXT id, path), so the
// gateway lists it under "pending" for adoption.
//
// Gateway config (or adopt it from the dashboard):
//   - id: kitchen
//     transport: ws-dial
//     url: "ws://192.168.1.50/ws"
//     commands: [toggle, "on", "off"]
//
// Put WIFI_SSID / WIFI_PASSWORD (and optionally GW_DEVICE_ID, BOARD_TOKEN)
// in secrets.h beside this file (copy ../secrets.h.example).
#if __has_include("secrets.h")
#include "secrets.h"  // else Wi-Fi and tokens come from Preferences
#endif
#include <ESP32Gateway.h>

#ifndef LED_PIN
#ifdef LED_BUILTIN
#define LED_PIN LED_BUILTIN
#else
#define LED_PIN 2
#endif
#endif

ESP32Gateway gw(ESP32Gateway::kServer);
bool led = false;

void setLed(bool on) {
  led = on;
  digitalWrite(LED_PIN, on ? HIGH : LOW);
  gw.publish("ledStatus", on ? "LED ON" : "LED OFF");
}

// "toggle", "on", "off" (also "LED ON", true, 1, ...).
void onLed(const char* value) {
  if (strcasecmp(value, "toggle") == 0) {
    setLed(!led);
  } else if (strcasecmp(value, "on") == 0 || strcasecmp(value, "led on") == 0 ||
             strcmp(value, "true") == 0 || strcmp(value, "1") == 0) {
    setLed(true);
  } else if (strcasecmp(value, "off") == 0 || strcasecmp(value, "led off") == 0 ||
             strcmp(value, "false") == 0 || strcmp(value, "0") == 0) {
    setLed(false);
  }
}

void setup() {
  pinMode(LED_PIN, OUTPUT);
  gw.begin();
  gw.onCommand("led", onLed);  // a bare "toggle" comes here too: the first handler
}

void loop() {
  gw.loop();
  gw.publish("ledStatus", led ? "LED ON" : "LED OFF");  // repeated once a second at most
  gw.publish("uptime", millis() / 1000);
}
