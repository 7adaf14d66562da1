// Text written once onto the stack (into a string of its own when it is longer than N bytes),
// then copied into its exact room: a miss writes its key's URL and its Cache-Status this way, with
// no allocation but the one for the result (and fields: fields.h).
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace gatehouse::filters::cache {

template <size_t N>
class Scratch {
 public:
  // Room for `most` bytes.
  explicit Scratch(size_t most) {
    if (most > N) heap_.resize(most);
    start_ = at_ = heap_.empty() ? stack_ : heap_.data();
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  // Appends `s`; returns where its copy begins (for a change in place).
  char* put(std::string_view s) {
    char* from = at_;
    if (!s.empty()) std::memcpy(at_, s.data(), s.size());  // an empty view's data may be null
    at_ += s.size();
    return from;
  }
  void put(char c) { *at_++ = c; }
  // The next `n` bytes, for the caller to write.
  char* take(size_t n) {
    char* from = at_;
    at_ += n;
    return from;
  }
  void put_number(int64_t n) { at_ = std::to_chars(at_, at_ + kNumber, n).ptr; }
  static constexpr size_t kNumber = 20;  // the room an int64_t's digits and sign take

  std::string_view view() const { return {start_, static_cast<size_t>(at_ - start_)}; }

 private:
  char stack_[N];
  std::string heap_;
  char* start_;
  char* at_;
};

}  // namespace gatehouse::filters::cache
