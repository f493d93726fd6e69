// SHA-256 (FIPS 180-4), streaming, for checking firmware images while they
// download. Portable C++11, no heap; written from the standard's text
// (sections 4.1.2, 4.2.2, 5.1.1, 5.3.3 and 6.2).
#ifndef GWPROTO_SHA256_H
#define GWPROTO_SHA256_H

#include <stddef.h>
#include <stdint.h>

namespace gwproto {

class Sha256 {
 public:
  static const size_t kDigestLen = 32;

  Sha256() { reset(); }
  void reset();
  void update(const void* data, size_t n);
  // finish writes the 32-byte digest; the object must be reset() before it
  // is used again.
  void finish(uint8_t out[kDigestLen]);

 private:
  void block(const uint8_t* p);

  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_;
  uint64_t total_;  // bytes hashed so far
};

// hex_to_digest parses 64 hex digits (either case) into out; false when s
// is not exactly that.
bool hex_to_digest(const char* s, size_t n, uint8_t out[Sha256::kDigestLen]);
// digest_to_hex writes 64 lower-case hex digits and a NUL (out has >= 65 bytes).
void digest_to_hex(const uint8_t d[Sha256::kDigestLen], char* out);

}  // namespace gwproto

#endif  // GWPROTO_SHA256_H
