// JsonWriter: bounded JSON output into a caller-owned buffer.
//
// Part of gwproto (portable C++11: no Arduino types, no exceptions, no RTTI,
// no heap). The writer never writes past `cap` bytes. The first write that
// does not fit, or a call out of order (a value where a key is expected,
// nesting deeper than kMaxDepth), marks it failed; finish() then returns 0 and
// the buffer holds no usable frame. A frame is never silently truncated.
#ifndef GWPROTO_JSON_WRITER_H
#define GWPROTO_JSON_WRITER_H

#include <stddef.h>
#include <stdint.h>

namespace gwproto {

class JsonWriter {
 public:
  // Deepest nesting of objects/arrays the writer tracks.
  static const int kMaxDepth = 4;

  JsonWriter(char* out, size_t cap);

  void begin_object();
  void end_object();
  void begin_array();
  void end_array();

  // key writes an object member name; the next call writes its value.
  void key(const char* k, size_t n);

  // string writes s[0..n) as a JSON string: '"', '\\' and bytes below 0x20
  // are escaped (\n \r \t \b \f, otherwise \u00XX); invalid UTF-8 becomes
  // U+FFFD so the output is always valid JSON. s need not be NUL-terminated.
  void string(const char* s, size_t n);

  // number writes a double with the fewest digits (up to %.17g) that read
  // back to the same value; NaN and +-Inf become null.
  void number(double v);
  // number_float is the same for a float (up to %.9g).
  void number_float(float v);
  void integer(int64_t v);
  void uinteger(uint64_t v);
  void boolean(bool v);
  void null();
  // raw copies json[0..n) as one value; the caller vouches it is valid JSON.
  void raw(const char* json, size_t n);

  bool ok() const { return ok_; }
  size_t length() const { return len_; }

  // finish NUL-terminates the output and returns its length (without the
  // NUL), or 0 when anything failed, did not fit (the NUL needs room too),
  // or an object/array is still open.
  size_t finish();

 private:
  void put(char c);
  void put(const char* p, size_t n);
  bool before_value();
  void after_value();
  void open(char c, bool is_object);
  void close(char c, bool is_object);
  void put_utf8_escaped(const char* s, size_t n);

  char* out_;
  size_t cap_;
  size_t len_;
  bool ok_;
  int depth_;
  bool is_object_[kMaxDepth];
  bool has_member_[kMaxDepth];
  bool after_key_;
  bool top_done_;
};

// format_double writes v into out with the fewest significant digits
// (15..17) that read back exactly; returns the length or 0 if it does not
// fit or v is not finite. out is NUL-terminated.
size_t format_double(double v, char* out, size_t cap);
// format_float is the same for floats (6..9 digits).
size_t format_float(float v, char* out, size_t cap);

}  // namespace gwproto

#endif  // GWPROTO_JSON_WRITER_H
