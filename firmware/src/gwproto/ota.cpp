#include "ota.h"

#include <stdio.h>
#include <string.h>

#include "frame.h"
#include "json_writer.h"

namespace gwproto {

const char* ota_state_name(OtaState s) {
  switch (s) {
    case kOtaIdle:
      return "idle";
    case kOtaDownloading:
      return "downloading";
    case kOtaVerifying:
      return "verifying";
    case kOtaRebooting:
      return "rebooting";
    case kOtaFailed:
      return "failed";
  }
  return "idle";
}

void Ota::reset() {
  state_ = kOtaIdle;
  memset(&req_, 0, sizeof req_);
  sha_.reset();
  received_ = 0;
  head_len_ = 0;
  error_[0] = '\0';
  state_dirty_ = false;
  reported_ = false;
  last_report_ms_ = 0;
  last_progress_ = -1;
}

void Ota::set_state(OtaState s) {
  state_ = s;
  state_dirty_ = true;
}

bool Ota::start(const OtaRequest& r, uint32_t max_size, uint32_t now_ms) {
  if (busy()) return false;
  reset();
  req_ = r;
  if (max_size > 0 && r.size > max_size) {
    char why[kMaxError + 1];
    snprintf(why, sizeof why, "image too big: %lu bytes, room for %lu",
             static_cast<unsigned long>(r.size), static_cast<unsigned long>(max_size));
    fail(why, now_ms);
    return false;
  }
  set_state(kOtaDownloading);
  return true;
}

bool Ota::write(const void* p, size_t n, uint32_t now_ms) {
  if (state_ != kOtaDownloading) return false;
  if (n > req_.size - received_) {
    fail("size mismatch: more bytes than announced", now_ms);
    return false;
  }
  const uint8_t* b = static_cast<const uint8_t*>(p);
  if (head_len_ < kOtaHeadKeep) {
    size_t take = kOtaHeadKeep - head_len_;
    if (take > n) take = n;
    memcpy(head_ + head_len_, b, take);
    head_len_ += take;
  }
  sha_.update(b, n);
  received_ += static_cast<uint32_t>(n);
  return true;
}

void Ota::rewind() {
  sha_.reset();
  received_ = 0;
  head_len_ = 0;
}

bool Ota::finish(uint32_t now_ms) {
  if (state_ != kOtaDownloading) return false;
  set_state(kOtaVerifying);
  if (received_ != req_.size) {
    char why[kMaxError + 1];
    snprintf(why, sizeof why, "size mismatch: got %lu bytes, want %lu",
             static_cast<unsigned long>(received_), static_cast<unsigned long>(req_.size));
    fail(why, now_ms);
    return false;
  }
  uint8_t got[Sha256::kDigestLen];
  sha_.finish(got);
  if (memcmp(got, req_.sha256, sizeof got) != 0) {
    fail("sha256 mismatch", now_ms);
    return false;
  }
  return true;
}

void Ota::rebooting(uint32_t) {
  if (state_ == kOtaVerifying) set_state(kOtaRebooting);
}

void Ota::fail(const char* error, uint32_t) {
  snprintf(error_, sizeof error_, "%s", error ? error : "failed");
  set_state(kOtaFailed);
}

int Ota::progress() const {
  if (req_.size == 0) return 0;
  uint64_t pct = static_cast<uint64_t>(received_) * 100u / req_.size;
  return static_cast<int>(pct > 100 ? 100 : pct);
}

size_t Ota::frame(char* out, size_t cap) const {
  const char* name = ota_state_name(state_);
  JsonWriter w(out, cap);
  w.begin_object();
  w.key(GWPROTO_LIT("$ota"));
  w.begin_object();
  w.key(GWPROTO_LIT("state"));
  w.string(name, strlen(name));
  if (state_ == kOtaDownloading) {
    w.key(GWPROTO_LIT("progress"));
    w.integer(progress());
  } else if (state_ == kOtaFailed) {
    w.key(GWPROTO_LIT("error"));
    w.string(error_, strlen(error_));
  }
  if (req_.job[0] != '\0') {
    // The job lets the gateway tell this report from an identical one
    // of an earlier job (it sees a repeated attribute value only once).
    w.key(GWPROTO_LIT("job"));
    w.string(req_.job, strlen(req_.job));
  }
  w.end_object();
  w.end_object();
  return w.finish();
}

size_t Ota::report(char* out, size_t cap, uint32_t now_ms) {
  bool due = state_dirty_;
  if (!due && state_ == kOtaDownloading && progress() != last_progress_) {
    due = !reported_ || static_cast<uint32_t>(now_ms - last_report_ms_) >= kOtaReportEveryMs;
  }
  if (!due) return 0;
  size_t n = frame(out, cap);
  if (n == 0) return 0;
  state_dirty_ = false;
  reported_ = true;
  last_report_ms_ = now_ms;
  last_progress_ = state_ == kOtaDownloading ? progress() : -1;
  return n;
}

namespace {

uint32_t le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

void copy_field(char* out, const uint8_t* p, size_t n) {
  size_t i = 0;
  for (; i < n && p[i] != 0; i++) {
    out[i] = (p[i] >= 0x20 && p[i] < 0x7F) ? static_cast<char>(p[i]) : '?';
  }
  out[i] = '\0';
}

}  // namespace

bool parse_app_image(const uint8_t* p, size_t n, AppDesc* out) {
  memset(out, 0, sizeof *out);
  if (p == 0 || n < kAppDescNeed || p[0] != 0xE9) return false;
  const uint8_t* d = p + 32;  // 24-byte image header + 8-byte segment header
  if (le32(d) != 0xABCD5432u) return false;
  out->chip_id = static_cast<uint16_t>(p[12] | (p[13] << 8));
  out->secure_version = le32(d + 4);
  copy_field(out->version, d + 16, 32);
  copy_field(out->project, d + 48, 32);
  copy_field(out->time, d + 80, 16);
  copy_field(out->date, d + 96, 16);
  copy_field(out->idf, d + 112, 32);
  return true;
}

const char* chip_name(uint16_t chip_id) {
  switch (chip_id) {
    case 0x0000:
      return "esp32";
    case 0x0002:
      return "esp32s2";
    case 0x0005:
      return "esp32c3";
    case 0x0009:
      return "esp32s3";
    case 0x000C:
      return "esp32c2";
    case 0x000D:
      return "esp32c6";
    case 0x0010:
      return "esp32h2";
  }
  return "unknown";
}

}  // namespace gwproto
