// SensorClient: a sensor board that dials the gateway (transport
// ws-listen). It finds the gateway by mDNS (_esp32gw._tcp: host, port and
// the path from its TXT record) unless GW_HOST is set, and enrolls itself:
// with GW_ENROLL_TOKEN (the gateway's `esp32gw` enroll token) it dials
// /device/<id> and waits in the dashboard's "pending" list; once you adopt
// it, the gateway sends it its own id and token, which it keeps in
// Preferences (NVS) and uses from then on. Readings taken while the link is
// down are kept and sent later with their time (NTP).
//
// secrets.h: WIFI_SSID, WIFI_PASSWORD, GW_ENROLL_TOKEN (or GW_TOKEN for a
// device already in config.yaml), optionally GW_HOST/GW_PORT, GW_DEVICE_ID.
#if __has_include("secrets.h")
#include "secrets.h"  // else Wi-Fi and tokens come from Preferences
#endif
#include <ESP32Gateway.h>

ESP32Gateway gw;  // kClient

// A maker's sensor: here the chip's own temperature sensor where it has
// one, else a made-up value. Replace with your DHT22, BME280, ...
float readTemp() {
#if SOC_TEMP_SENSOR_SUPPORTED
  return temperatureRead();
#else
  return 20.0f + (millis() / 1000 % 50) / 10.0f;
#endif
}

void onInterval(const char* value) {
  gw.setPublishInterval(static_cast<uint32_t>(atol(value)) * 1000u);
}

void setup() {
  gw.begin();
  gw.onCommand("interval", onInterval);  // seconds between readings
}

void loop() {
  gw.loop();
  gw.publish("temperature", readTemp());
  gw.publish("hall", analogRead(36));
}
