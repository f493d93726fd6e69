// esp32gw "serial" sketch: newline-delimited JSON over USB serial at
// 115200 (gateway config: transport: serial). No Wi-Fi needed.
//
//  - after boot: a hello line (id, firmware, reset reason) and the LED state
//  - every second: {"label":"count","value":N}; LED state on every change
//  - commands, one per line: `toggle` (also on/off) or {"label","value"}
//    JSON, read without blocking into a fixed 256-byte line buffer; an
//    over-long line is dropped up to its '\n' and counted
//  - lines end in "\r\n" (as println does); anything that is not JSON, such
//    as the ROM boot lines or '#' debug lines, is a log line for the gateway
//
// Keep CORE_DEBUG_LEVEL=0 (platformio.ini does): core log lines are
// harmless but noisy.
#include <Arduino.h>
#include <esp_system.h>
#include <gwproto.h>

#ifndef GW_DEVICE_ID
#define GW_DEVICE_ID "esp32-serial"
#endif
#ifndef LED_PIN
#ifdef LED_BUILTIN
#define LED_PIN LED_BUILTIN
#else
#define LED_PIN 2
#endif
#endif

static const char kFirmware[] = GWPROTO_VERSION;
static gwproto::Board board(0);
static gwproto::StaticLineBuffer<256> lines;
static bool led_shown = false;

// emit writes one frame as a line: one writer, whole lines only.
static void emit(const char* p, size_t n) {
  Serial.write(reinterpret_cast<const uint8_t*>(p), n);
  Serial.write("\r\n");
}

static void emit_led() {
  char f[64];
  size_t n = board.led_frame(f, sizeof f);
  if (n > 0) emit(f, n);
}

void setup() {
  Serial.setRxBufferSize(512);  // before begin(); the default is 256
  Serial.begin(115200);
#if ARDUINO_USB_CDC_ON_BOOT && ARDUINO_USB_MODE
  // Native USB-Serial-JTAG (S3/C3): never block when no host is reading.
  Serial.setTxTimeoutMs(0);
#endif
  pinMode(LED_PIN, OUTPUT);
  digitalWrite(LED_PIN, LOW);

  char f[256];
  gwproto::Identity id = {GW_DEVICE_ID, kFirmware, "serial"};
  size_t n = gwproto::hello_frame(f, sizeof f, id, static_cast<int>(esp_reset_reason()), millis());
  if (n > 0) emit(f, n);
  emit_led();
  enableLoopWDT();  // loop() never blocks
}

void loop() {
  // Read what has arrived, at most a buffer's worth per pass; never wait.
  for (int budget = 512; budget > 0 && Serial.available() > 0; budget--) {
    int c = Serial.read();
    if (c < 0) break;
    if (!lines.push(static_cast<char>(c))) continue;
    gwproto::CommandResult r = board.handle(lines.data(), lines.size(), millis());
    if (r.accepted) emit_led();
  }
  if (board.tick(millis())) {
    char f[64];
    size_t n = board.count_frame(f, sizeof f);
    if (n > 0) emit(f, n);
  }
  if (board.led() != led_shown) {
    led_shown = board.led();
    digitalWrite(LED_PIN, led_shown ? HIGH : LOW);
  }
}
