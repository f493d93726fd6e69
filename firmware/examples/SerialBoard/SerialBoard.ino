// SerialBoard: no Wi-Fi; the board talks to the gateway over its USB cable
// (transport: serial), one JSON object per line at 115200 baud. Anything you
// print that is not JSON shows up in the dashboard's console as a log line:
// start your own debug lines with '#'.
//
// Gateway config:
//   - id: bench
//     transport: serial
//     port: "/dev/ttyUSB0"          # or match: {vid: "10c4", pid: "ea60"}
//     baud: 115200
//     reset_on_open: false
//     commands: [toggle]
#include <ESP32Gateway.h>

#ifndef LED_PIN
#define LED_PIN 2
#endif

ESP32Gateway gw(ESP32Gateway::kSerial);
bool led = false;
uint32_t count = 0;
uint32_t lastTick = 0;

void onLed(const char* value) {
  if (strcasecmp(value, "toggle") == 0) led = !led;
  digitalWrite(LED_PIN, led ? HIGH : LOW);
  gw.publish("ledStatus", led ? "LED ON" : "LED OFF");
}

void setup() {
  pinMode(LED_PIN, OUTPUT);
  gw.begin();  // Serial.begin(115200) happens here
  gw.onCommand("led", onLed);
  Serial.println("# SerialBoard up");
}

void loop() {
  gw.loop();
  if (millis() - lastTick >= 1000) {
    lastTick = millis();
    gw.publish("count", ++count);
  }
}
