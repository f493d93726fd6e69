// Command decoder: what the gateway (or a browser talking to the board
// directly) sends to a board.
//
// Two forms arrive (DESIGN.md, "Gateway -> board"):
//   - bare text, the command value itself: `toggle`
//   - JSON: {"label":"led","value":"toggle"} or {"value":"toggle"}
// Input is always (pointer, length); a NUL is never looked for. Surrounding
// whitespace and CR/LF are trimmed. The JSON form is one flat object: string
// keys (escapes and \uXXXX surrogate pairs decoded to UTF-8), scalar values
// only (nested objects/arrays are refused), unknown keys ignored, a repeated
// key's last value wins. Sizes are capped, so decoding is bounded in time and
// memory and never allocates.
#ifndef GWPROTO_COMMAND_H
#define GWPROTO_COMMAND_H

#include <stddef.h>
#include <stdint.h>

namespace gwproto {

enum ValueType {
  kValueNone = 0,
  kValueString,  // value[] holds the decoded UTF-8 text
  kValueNumber,  // value[] holds the JSON number text as received
  kValueBool,    // value[] holds "true" or "false"
  kValueNull,    // value[] holds "null"
};

struct Command {
  // Longest bare-text token, JSON label and decoded value accepted.
  static const size_t kMaxToken = 32;
  static const size_t kMaxLabel = 32;
  static const size_t kMaxValue = 64;
  // Longest input looked at; longer input is refused unread.
  static const size_t kMaxInput = 512;

  bool has_label;
  char label[kMaxLabel + 1];  // NUL-terminated when has_label
  size_t label_len;
  ValueType type;
  char value[kMaxValue + 1];  // NUL-terminated, may contain NULs from \u0000
  size_t value_len;
  bool bare;  // true when the input was bare text, not JSON
};

enum DecodeStatus {
  kDecodeOk = 0,
  kDecodeEmpty,         // nothing but whitespace
  kDecodeTooLong,       // input over kMaxInput, or a bare token over kMaxToken
  kDecodeNotPrintable,  // bare text with a byte outside 0x21..0x7E
  kDecodeBadJson,       // malformed JSON
  kDecodeNested,        // a value is an object or array
  kDecodeNoValue,       // an object without "value"
  kDecodeBadLabel,      // "label" is not a string matching [A-Za-z0-9_.-]{1,32}
  kDecodeValueTooLong,  // the value does not fit kMaxValue
  kDecodeMissingField,  // a message (adopted, ota) lacks a field it needs
  kDecodeBadField,      // a message field has the wrong type or form
};

// decode_command parses p[0..n) into *out. On any status but kDecodeOk,
// *out is reset to an empty command.
DecodeStatus decode_command(const char* p, size_t n, Command* out);

// decode_status_name is a short, stable name for logs ("bad-json", ...).
const char* decode_status_name(DecodeStatus s);

}  // namespace gwproto

#endif  // GWPROTO_COMMAND_H
