// Messages from the gateway to a board, besides commands (DESIGN.md,
// "Fleet"): a JSON object with a "type" member.
//   {"type":"adopted","id":NEWID,"token":TOKEN}
//       sent once on a pending (enrolling) link; the board stores NEWID and
//       TOKEN and dials /device/NEWID with TOKEN from then on.
//   {"type":"ota","job":J,"url":U,"size":n,"sha256":H,"version":V}
//       download U (size n bytes, SHA-256 H), install, reboot.
// Anything else is a command (command.h). Input is (pointer, length), sizes
// are capped, nothing is allocated; unknown members are skipped.
#ifndef GWPROTO_MESSAGE_H
#define GWPROTO_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "command.h"
#include "sha256.h"

namespace gwproto {

enum MessageType {
  kMessageCommand = 0,  // not a typed message: hand it to the command decoder
  kMessageAdopted,
  kMessageOta,
  kMessageUnknown,  // an object with a "type" this board does not know: ignore
};

// Longest message looked at; longer input is a command (and refused there).
const size_t kMaxMessageInput = 1024;

// message_type looks only for a top-level string member "type".
MessageType message_type(const char* p, size_t n);
const char* message_type_name(MessageType t);

struct Adopted {
  static const size_t kMaxId = 32;      // [A-Za-z0-9_.-]{1,32}
  static const size_t kMaxToken = 128;  // printable ASCII, no spaces
  char id[kMaxId + 1];
  char token[kMaxToken + 1];
};

DecodeStatus decode_adopted(const char* p, size_t n, Adopted* out);

struct OtaRequest {
  static const size_t kMaxJob = 64;
  static const size_t kMaxUrl = 384;
  static const size_t kMaxVersion = 31;  // esp_app_desc_t.version is char[32]
  char job[kMaxJob + 1];  // a string job as is, a number job as its JSON text
  char url[kMaxUrl + 1];  // http:// or https://
  uint32_t size;          // bytes, > 0
  uint8_t sha256[Sha256::kDigestLen];
  char version[kMaxVersion + 1];  // may be empty
};

DecodeStatus decode_ota(const char* p, size_t n, OtaRequest* out);

}  // namespace gwproto

#endif  // GWPROTO_MESSAGE_H
