// What the fuzz targets share: how a broken property stops the run, and small helpers.
// Built by clang with libFuzzer (make fuzz) and by the normal compiler for the replay (make
// check), so nothing here may need libFuzzer's headers.
#ifndef CONNPOOL_FUZZ_CHECK_HH
#define CONNPOOL_FUZZ_CHECK_HH

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

// A broken property: say which, then trap, so libFuzzer saves the input as a crash and the
// replay exits abnormally. Printed before trapping: the input alone does not say what broke.
#define FUZZ_REQUIRE(cond, ...)                                                \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "fuzz property broken at %s:%d: %s\n  ", __FILE__,  \
                   __LINE__, #cond);                                           \
      std::fprintf(stderr, __VA_ARGS__);                                       \
      std::fprintf(stderr, "\n");                                              \
      __builtin_trap();                                                        \
    }                                                                          \
  } while (0)

namespace fuzz {

// The C API sees a NUL-terminated string: the input up to its first NUL.
inline std::string c_string(const uint8_t *data, size_t size) {
  if (size == 0) return "";  // the replay passes an empty file as NULL, 0
  const char *p = reinterpret_cast<const char *>(data);
  return std::string(p, strnlen(p, size));
}

// Consumes the input front to back; once it runs out, every read gives 0 (a fixed choice),
// so every input is a valid program for the structured targets.
class reader {
 public:
  reader(const uint8_t *data, size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ == end_; }
  uint8_t byte() { return p_ < end_ ? *p_++ : 0; }
  // One of n choices.
  size_t pick(size_t n) { return byte() % n; }
  // A string of up to max_len bytes, each mapped into `alphabet`.
  std::string from_alphabet(const char *alphabet, size_t max_len) {
    size_t n = std::strlen(alphabet), len = byte() % (max_len + 1);
    std::string s;
    for (size_t i = 0; i < len && !empty(); i++) s += alphabet[byte() % n];
    return s;
  }
  // Whatever bytes are left, up to the first NUL.
  std::string rest() {
    std::string s = c_string(p_, size_t(end_ - p_));
    p_ = end_;
    return s;
  }

 private:
  const uint8_t *p_;
  const uint8_t *end_;
};

}  // namespace fuzz

#endif
