// Arduino IDE entry point for the esp32gw "wsserver" sketch.
//
// The code is in main.cpp beside this file (setup() and loop() are there);
// the Arduino IDE compiles every .cpp in the sketch folder. This file stays
// empty so the IDE's .ino preprocessing has nothing to rewrite. PlatformIO
// ignores it and builds main.cpp directly (env:wsserver in platformio.ini).
//
// Needs the gwproto library (firmware/lib/gwproto) installed: see
// firmware/README.md, "Arduino IDE".
