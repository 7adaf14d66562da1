// Shared by the fuzz targets (fuzz/*.cc). Each target is one LLVMFuzzerTestOneInput, built twice:
// with clang and libFuzzer (make fuzz), and with the normal compiler and replay_main.cc, which
// replays the seed corpus and the saved crashes under CTest. So nothing here may need libFuzzer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

// An invariant the code under test must keep. abort() rather than assert(): it holds in Release
// builds too, and libFuzzer reports SIGABRT as a crash with the input that caused it.
#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

namespace gatehouse::fuzz {

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Pseudo-random piece sizes for feeding an input in pieces, seeded from the input itself so that
// a run depends on the input alone (SplitMix64).
class Splitter {
 public:
  explicit Splitter(std::string_view seed_from) {
    for (unsigned char c : seed_from) state_ = (state_ ^ c) * 0x100000001b3ULL;
  }
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // A piece of 1..max bytes, mostly small: byte-by-byte feeding finds the most state bugs.
  size_t piece(size_t max) {
    uint64_t r = next();
    size_t n = (r & 3) == 0 ? 1 + (r >> 8) % 64 : 1 + (r >> 8) % 4;
    return n < max ? n : max;
  }

 private:
  uint64_t state_ = 0xcbf29ce484222325ULL;
};

}  // namespace gatehouse::fuzz
