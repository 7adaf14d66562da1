// A growable byte buffer with a read and a write position, reused for the life of a connection.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace gatehouse::net {

// The data plane's read sizes: one read takes up to kReadChunk, and a body streaming through holds
// at most kStreamBuffer per direction.
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kStreamBuffer = 64 * 1024;

class Buffer {
 public:
  std::string_view data() const { return {buf_.get() + begin_, end_ - begin_}; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  // Makes room for at least `want` more bytes (compacting first, then growing up to `cap` total).
  // Returns the writable span; empty when the buffer is full at `cap`.
  std::pair<char*, size_t> prepare(size_t want, size_t cap) {
    if (cap_ - end_ < want && begin_ > 0) {
      std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (cap_ - end_ < want && cap_ < cap) {
      size_t n = std::min(cap, std::max(cap_ * 2, end_ + want));
      // Not zeroed: a pooled buffer's pages stay untouched (out of RSS) until bytes land there.
      auto bigger = std::make_unique_for_overwrite<char[]>(n);
      if (end_) std::memcpy(bigger.get(), buf_.get(), end_);
      buf_ = std::move(bigger);
      cap_ = n;
    }
    return {buf_.get() + end_, cap_ - end_};
  }
  void commit(size_t n) { end_ += n; }
  size_t capacity() const { return cap_; }

 private:
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0, begin_ = 0, end_ = 0;
};

}  // namespace gatehouse::net
