// OTA: what a board does with an `ota` frame (DESIGN.md, "Updates"), apart
// from the flash writes themselves.
//
//   idle -> downloading -> verifying -> rebooting
//   downloading or verifying -> failed      (a new job may start again)
//
// The transport streams the image through write(); Ota counts the bytes,
// hashes them (SHA-256) and keeps the first kOtaHeadKeep bytes (image header
// and app description). finish() checks size and hash. report() builds the
// board's `$ota` attribute:
//   {"$ota":{"state":"downloading","progress":42}}
//   {"$ota":{"state":"failed","error":"sha256 mismatch"}}
// A change of state is reported at once; progress at most once per
// kOtaReportEveryMs and only when the percentage moved. Time is injected;
// no heap.
#ifndef GWPROTO_OTA_H
#define GWPROTO_OTA_H

#include <stddef.h>
#include <stdint.h>

#include "message.h"
#include "sha256.h"

namespace gwproto {

enum OtaState {
  kOtaIdle = 0,
  kOtaDownloading,
  kOtaVerifying,
  kOtaRebooting,
  kOtaFailed,
};

const char* ota_state_name(OtaState s);

// Progress reports are at least this far apart (ms).
const uint32_t kOtaReportEveryMs = 1000;
// Bytes of the image kept for parse_app_image().
const size_t kOtaHeadKeep = 256;

class Ota {
 public:
  static const size_t kMaxError = 95;

  Ota() { reset(); }

  // start takes a request while nothing is in flight (idle or failed). With
  // max_size > 0 a bigger image fails at once ("image too big"). It returns
  // false when the request was not started: busy() (ignored, no report) or
  // failed (a report is due).
  bool start(const OtaRequest& r, uint32_t max_size, uint32_t now_ms);
  // busy: downloading, verifying or rebooting.
  bool busy() const { return state_ == kOtaDownloading || state_ == kOtaVerifying || state_ == kOtaRebooting; }

  // write takes the next n bytes of the image while downloading. More bytes
  // than the announced size fail it ("size mismatch"); returns false once
  // failed.
  bool write(const void* p, size_t n, uint32_t now_ms);
  // rewind starts the image over (the server ignored a Range request and
  // sent it from the start).
  void rewind();
  uint32_t received() const { return received_; }

  // finish: the download ended; checks the size and SHA-256. true: the image
  // is good (state verifying, next rebooting()); false: failed.
  bool finish(uint32_t now_ms);
  void rebooting(uint32_t now_ms);
  // fail records why (copied, at most kMaxError bytes) and stops the job.
  void fail(const char* error, uint32_t now_ms);
  // reset forgets everything: idle, nothing to report.
  void reset();

  OtaState state() const { return state_; }
  const char* error() const { return error_; }
  int progress() const;  // 0..100
  const OtaRequest& request() const { return req_; }
  const uint8_t* head() const { return head_; }
  size_t head_len() const { return head_len_; }

  // report writes the `$ota` frame when one is due at now_ms (and marks it
  // sent); 0 when nothing is due or it did not fit.
  size_t report(char* out, size_t cap, uint32_t now_ms);
  // frame writes the current `$ota` frame regardless of throttling.
  size_t frame(char* out, size_t cap) const;

 private:
  void set_state(OtaState s);

  OtaState state_;
  OtaRequest req_;
  Sha256 sha_;
  uint32_t received_;
  uint8_t head_[kOtaHeadKeep];
  size_t head_len_;
  char error_[kMaxError + 1];
  bool state_dirty_;  // state changed since the last report
  bool reported_;     // any progress report sent for this job
  uint32_t last_report_ms_;
  int last_progress_;
};

// AppDesc is what an ESP32 app image says about itself: the image header
// (24 bytes, magic 0xE9, chip id at offset 12) and esp_app_desc_t at offset
// 32 (magic 0xABCD5432). Strings are NUL-terminated, non-printable bytes
// replaced by '?'.
struct AppDesc {
  uint16_t chip_id;
  uint32_t secure_version;
  char version[33];
  char project[33];
  char time[17];
  char date[17];
  char idf[33];
};

// Bytes parse_app_image needs from the start of the image.
const size_t kAppDescNeed = 176;

// parse_app_image reads p[0..n); false when n < kAppDescNeed or a magic is wrong.
bool parse_app_image(const uint8_t* p, size_t n, AppDesc* out);
// chip_name maps the image header's chip id ("esp32", "esp32s3", ...);
// "unknown" for ids it does not know.
const char* chip_name(uint16_t chip_id);

}  // namespace gwproto

#endif  // GWPROTO_OTA_H
