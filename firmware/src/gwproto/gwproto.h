// gwproto: the esp32gw board protocol core.
//
// Portable C++11 with no Arduino types, no exceptions, no RTTI and no heap,
// so the same code is compiled into the ESP32 sketches and tested on a host
// with g++ and sanitizers (firmware/Makefile). Input is always taken as
// (pointer, length); output goes to a caller-owned (buffer, capacity) and
// the functions return the length written, 0 meaning "did not fit".
#ifndef GWPROTO_H
#define GWPROTO_H

#include "attributes.h"
#include "backfill.h"
#include "backoff.h"
#include "command.h"
#include "fragbuf.h"
#include "frame.h"
#include "json_writer.h"
#include "linebuf.h"
#include "message.h"
#include "ota.h"
#include "ratelimit.h"
#include "sha256.h"

#define GWPROTO_VERSION "0.1.0"

#endif  // GWPROTO_H
