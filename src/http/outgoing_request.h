// A request head the gateway sends to an upstream, written once for both upstream protocols: the
// HTTP/1.1 text, which an HTTP/1.1 connection sends as it is, and where the method, the target
// and each field lie in that text, which an HTTP/2 stream (upstream/h2/) turns into its HEADERS
// without parsing the text back. Parsing it back cost about a tenth of an HTTP/2-to-HTTP/2
// request's instructions.
//
// Reused request after request: start() keeps the capacity, so a head costs no allocation once
// the buffers have grown.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace gatehouse::http {

class OutgoingRequest {
 public:
  struct Field {
    std::string_view name;
    std::string_view value;
    bool unique;  // the value differs on every request (add_unique)
  };

  // Starts a new head with its request line (what was there before is gone).
  void start(std::string_view method, std::string_view target) {
    using namespace std::string_view_literals;
    text_.clear();
    fields_.clear();
    framing_ = Framing::kNone;
    content_length_ = 0;
    text_.append(method).append(" "sv).append(target).append(" HTTP/1.1\r\n"sv);
    method_len_ = static_cast<uint32_t>(method.size());
    target_len_ = static_cast<uint32_t>(target.size());
  }
  void add(std::string_view name, std::string_view value) { append(name, value, false); }
  // A field whose value is new on every request (the request id): HTTP/2 sends it never indexed,
  // so that it does not churn HPACK's dynamic table (http/h2_fields.h).
  void add_unique(std::string_view name, std::string_view value) { append(name, value, true); }
  // How the body that follows is framed, as the fields say (Content-Length, or Transfer-Encoding:
  // chunked): an HTTP/2 stream frames it in DATA instead.
  void set_body(Framing framing, uint64_t content_length) {
    framing_ = framing;
    content_length_ = content_length;
  }
  // Ends the head (the empty line).
  void finish() { text_.append(std::string_view("\r\n")); }

  std::string_view text() const { return text_; }
  std::string_view method() const { return std::string_view(text_).substr(0, method_len_); }
  std::string_view target() const {
    return std::string_view(text_).substr(method_len_ + 1, target_len_);
  }
  Framing framing() const { return framing_; }
  uint64_t content_length() const { return content_length_; }
  size_t fields() const { return fields_.size(); }
  // Field i's value, to be rewritten in place, its length kept: a value each try makes anew (the
  // span id in a traceparent), without writing the head again.
  char* value_data(size_t i) { return text_.data() + fields_[i].at + fields_[i].name_len + 2; }
  Field field(size_t i) const {
    const Span& s = fields_[i];
    std::string_view t = text_;
    return {t.substr(s.at, s.name_len), t.substr(s.at + s.name_len + 2, s.value_len), s.unique};
  }

 private:
  struct Span {
    uint32_t at;  // the name's first byte in text_; its value follows ": "
    uint32_t name_len;
    uint32_t value_len;
    bool unique;
  };
  void append(std::string_view name, std::string_view value, bool unique) {
    using namespace std::string_view_literals;
    fields_.push_back({static_cast<uint32_t>(text_.size()), static_cast<uint32_t>(name.size()),
                       static_cast<uint32_t>(value.size()), unique});
    text_.append(name).append(": "sv).append(value).append("\r\n"sv);
  }

  std::string text_;
  std::vector<Span> fields_;
  uint32_t method_len_ = 0;
  uint32_t target_len_ = 0;
  Framing framing_ = Framing::kNone;
  uint64_t content_length_ = 0;
};

}  // namespace gatehouse::http
