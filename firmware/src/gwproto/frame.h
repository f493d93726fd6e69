// Frame encoder: one board reading as {"label":L,"value":V}.
//
// This is the "seed form" of the board wire protocol (DESIGN.md): one JSON
// object per WebSocket text frame or per serial line. Every function writes
// into out[0..cap), NUL-terminates, and returns the frame length without the
// NUL, or 0 when the label is invalid or the frame did not fit. A frame is
// never truncated.
#ifndef GWPROTO_FRAME_H
#define GWPROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

// GWPROTO_LIT("count") expands to the literal and its length, for the
// (pointer, length) arguments used throughout gwproto.
#define GWPROTO_LIT(s) (s), (sizeof(s) - 1)

namespace gwproto {

// Longest label a frame may carry.
const size_t kMaxLabelLen = 32;

// valid_label reports whether p[0..n) matches [A-Za-z0-9_.-]{1,32}.
bool valid_label(const char* p, size_t n);

size_t frame_double(char* out, size_t cap, const char* label, size_t label_len, double v);
size_t frame_float(char* out, size_t cap, const char* label, size_t label_len, float v);
size_t frame_int(char* out, size_t cap, const char* label, size_t label_len, int64_t v);
size_t frame_bool(char* out, size_t cap, const char* label, size_t label_len, bool v);
size_t frame_null(char* out, size_t cap, const char* label, size_t label_len);
size_t frame_string(char* out, size_t cap, const char* label, size_t label_len, const char* s,
                    size_t n);
// frame_raw embeds json[0..n) as the value; the caller vouches it is one
// valid JSON value (an object built with JsonWriter, for example).
size_t frame_raw(char* out, size_t cap, const char* label, size_t label_len, const char* json,
                 size_t n);

}  // namespace gwproto

#endif  // GWPROTO_FRAME_H
