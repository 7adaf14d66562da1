// A stored response's fields, in order, in one string of bytes: each field is its name's and its
// value's lengths (4 bytes each) followed by the name and the value. A list of string pairs costs
// an allocation per long value and more while it grows, a block with an index beside it two; a
// store that makes an entry on every miss and frees one on every eviction pays each allocation
// twice. Entries are made once and read in order (a lookup reads every field), so fields are
// reached by walking; edits (a 304 freshening an entry) rebuild the block.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "filters/cache/pool.h"
#include "filters/cache/scratch.h"

namespace gatehouse::filters::cache {

class Fields {
 public:
  struct Field {  // `first` and `second`, as a pair's, so that `auto [name, value]` reads well
    std::string_view first, second;
  };

  // Reads each record once: a lookup and a hit walk every field.
  class Iterator {
   public:
    Iterator(const Fields* f, size_t at) : f_(f), at_(at) { read(); }
    Field operator*() const { return field_; }
    Iterator& operator++() {
      at_ += kHeader + field_.first.size() + field_.second.size();
      read();
      return *this;
    }
    bool operator==(const Iterator& o) const { return at_ == o.at_; }

   private:
    void read() {
      if (at_ < f_->bytes_.size()) field_ = f_->at(at_);
    }
    const Fields* f_;
    size_t at_;
    Field field_;
  };

  // Room for `fields` fields of `bytes` bytes of names and values in all, allocated once.
  void reserve(size_t fields, size_t bytes) { bytes_.reserve(fields * kHeader + bytes); }
  void emplace_back(std::string_view name, std::string_view value) {
    const size_t at = bytes_.size();
    bytes_.resize(at + kHeader + name.size() + value.size());
    write(bytes_.data() + at, name, value);
    ++count_;
  }
  // What a field's record takes, for a Writer's room.
  static constexpr size_t record_size(std::string_view name, std::string_view value) {
    return kHeader + name.size() + value.size();
  }
  // Fields written in one pass into room for at least their record_size()s (on the stack when it
  // is a usual head's), then copied once into exact room: a miss copies a response's fields as it
  // reads them, and a request's, this way.
  class Writer {
   public:
    explicit Writer(size_t most) : room_(most) {}
    void put(std::string_view name, std::string_view value) {
      write(room_.take(record_size(name, value)), name, value);
      ++count_;
    }
    Fields done() const {
      Fields f;
      f.bytes_.assign(room_.view().data(), room_.view().size());
      f.count_ = count_;
      return f;
    }

   private:
    Scratch<4096> room_;
    size_t count_ = 0;
  };
  // All the fields of `headers` (each with a `name` and a `value`), in order.
  template <class Headers>
  static Fields copy_of(const Headers& headers) {
    size_t bytes = 0;
    for (const auto& h : headers) bytes += record_size(h.name, h.value);
    Writer w(bytes);
    for (const auto& h : headers) w.put(h.name, h.value);
    return w.done();
  }

  // Drops the fields for which pred(field) is true (the rest keep their order).
  template <class Pred>
  void erase_if(Pred pred) {
    Fields kept;
    kept.bytes_.reserve(bytes_.size());
    for (Field f : *this) {
      if (!pred(f)) kept.emplace_back(f.first, f.second);
    }
    *this = std::move(kept);
  }

  // The i-th field, walking to it (for tests and the rare reader that wants one by place).
  Field operator[](size_t i) const {
    Iterator it = begin();
    while (i--) ++it;
    return *it;
  }
  Iterator begin() const { return {this, 0}; }
  Iterator end() const { return {this, bytes_.size()}; }
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  // What the fields take in memory, for the store's budget.
  size_t cost() const { return pool::cost_of(bytes_); }

  bool operator==(const Fields& o) const { return bytes_ == o.bytes_; }

 private:
  static constexpr size_t kHeader = 8;  // the name's and the value's lengths

  // One field's record at `at`; returns where the next one goes.
  static char* write(char* at, std::string_view name, std::string_view value) {
    const auto n = static_cast<uint32_t>(name.size()), v = static_cast<uint32_t>(value.size());
    std::memcpy(at, &n, 4);
    std::memcpy(at + 4, &v, 4);
    copy(at + kHeader, name.data(), n);
    copy(at + kHeader + n, value.data(), v);
    return at + kHeader + n + v;
  }
  // Names and most values are short: up to 32 bytes are copied inline, in words that may overlap,
  // where a call to memcpy would cost more than the copy.
  static void copy(char* to, const char* from, size_t n) {
    auto move8 = [&](size_t at) {
      uint64_t w;
      std::memcpy(&w, from + at, 8);
      std::memcpy(to + at, &w, 8);
    };
    if (n > 32) {
      std::memcpy(to, from, n);
    } else if (n >= 16) {
      move8(0);
      move8(8);
      move8(n - 16);
      move8(n - 8);
    } else if (n >= 8) {
      move8(0);
      move8(n - 8);
    } else if (n >= 4) {
      uint32_t a, b;
      std::memcpy(&a, from, 4);
      std::memcpy(&b, from + n - 4, 4);
      std::memcpy(to, &a, 4);
      std::memcpy(to + n - 4, &b, 4);
    } else if (n > 0) {
      to[0] = from[0];
      to[n / 2] = from[n / 2];
      to[n - 1] = from[n - 1];
    }
  }

  // The record at `offset` (one this class wrote: its lengths are within the bytes).
  Field at(size_t offset) const {
    uint32_t n, v;
    const char* record = bytes_.data() + offset;
    std::memcpy(&n, record, 4);
    std::memcpy(&v, record + 4, 4);
    return {std::string_view(record + kHeader, n), std::string_view(record + kHeader + n, v)};
  }

  pool::String bytes_;
  size_t count_ = 0;
};

}  // namespace gatehouse::filters::cache
