// A stored response's fields, in order, in one block of bytes: every name and value in one
// string and where each begins in one array. A list of string pairs costs an allocation per long
// value and more while it grows; a store that makes an entry on every miss and frees one on every
// eviction pays that twice per field. Entries are made once and read many times, so edits (a 304
// freshening one) may rebuild the block.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::filters::cache {

class Fields {
 public:
  struct Field {  // `first` and `second`, as a pair's, so that `auto [name, value]` reads well
    std::string_view first, second;
  };

  class Iterator {
   public:
    Iterator(const Fields* f, size_t i) : f_(f), i_(i) {}
    Field operator*() const { return (*f_)[i_]; }
    Iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator==(const Iterator& o) const { return i_ == o.i_; }

   private:
    const Fields* f_;
    size_t i_;
  };

  // Room for `fields` fields of `bytes` bytes of names and values in all, allocated once.
  void reserve(size_t fields, size_t bytes) {
    spans_.reserve(fields);
    bytes_.reserve(bytes);
  }
  void emplace_back(std::string_view name, std::string_view value) {
    spans_.push_back({static_cast<uint32_t>(bytes_.size()), static_cast<uint32_t>(name.size()),
                      static_cast<uint32_t>(value.size())});
    bytes_.append(name).append(value);
  }
  // Drops the fields for which pred(field) is true (the rest keep their order).
  template <class Pred>
  void erase_if(Pred pred) {
    Fields kept;
    kept.reserve(spans_.size(), bytes_.size());
    for (Field f : *this) {
      if (!pred(f)) kept.emplace_back(f.first, f.second);
    }
    *this = std::move(kept);
  }

  Field operator[](size_t i) const {
    const Span& s = spans_[i];
    std::string_view all(bytes_);
    return {all.substr(s.at, s.name), all.substr(s.at + s.name, s.value)};
  }
  Iterator begin() const { return {this, 0}; }
  Iterator end() const { return {this, spans_.size()}; }
  size_t size() const { return spans_.size(); }
  bool empty() const { return spans_.empty(); }
  // What the fields take in memory, for the store's budget.
  size_t cost() const { return bytes_.capacity() + spans_.capacity() * sizeof(Span); }

  bool operator==(const Fields& o) const {
    if (size() != o.size()) return false;
    for (size_t i = 0; i < size(); ++i) {
      if ((*this)[i].first != o[i].first || (*this)[i].second != o[i].second) return false;
    }
    return true;
  }

 private:
  struct Span {
    uint32_t at, name, value;  // a field's offset in bytes_, its name's and its value's lengths
  };
  std::string bytes_;
  std::vector<Span> spans_;
};

}  // namespace gatehouse::filters::cache
