// What both HTTP/2 sides (the server codec, http2/, and the upstream client, upstream/h2/) share:
// which HTTP/1.1 fields HTTP/2 forbids, the header block handed to nghttp2, the trailers a body
// ends with, and the data source that reads a body.
#pragma once

#include <nghttp2/nghttp2.h>

#include <charconv>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/message.h"

namespace gatehouse::http {

// Fields HTTP/2 forbids (RFC 9113 8.2.2): the connection's own, which HTTP/1.1 carried. (TE is
// allowed with the value "trailers" alone; callers that pass it on check that themselves.)
inline bool h2_connection_specific(std::string_view name) {
  switch (name.size()) {
    case 2:
      return field_is(name, "te");
    case 7:
      return field_is(name, "upgrade");
    case 10:
      return field_is(name, "connection") || field_is(name, "keep-alive");
    case 16:
      return field_is(name, "proxy-connection");
    case 17:
      return field_is(name, "transfer-encoding");
    default:
      return false;
  }
}

// A header block for nghttp2, which copies it at once: names in lower case (HTTP/2 has no
// other). Built in one scratch per thread (a block is made and submitted before the next), so
// that a message's fields cost no allocation of their own; the values are views, valid until
// the block is submitted.
class FieldBlock {
 public:
  // `status`: a response's :status first; 0 for a request or trailers.
  explicit FieldBlock(int status) {
    auto& s = scratch();
    s.fields.clear();
    if (status) {
      std::to_chars(s.status, s.status + 3, status);
      s.fields.push_back({":status", std::string_view(s.status, 3), false});
    }
  }
  // `unique`: a value that differs in every message (the request id), sent as a literal never
  // indexed (RFC 7541 6.2.3). Entered in HPACK's dynamic table, as nghttp2 would by default, each
  // one would be sent once and evict fields that do repeat (Host, User-Agent, Via), which then
  // go out as literals again: measured, 10% more instructions per proxied HTTP/2 request.
  void add(std::string_view name, std::string_view value, bool unique = false) {
    scratch().fields.push_back({name, value, unique});
  }
  const std::vector<nghttp2_nv>& nv() {
    auto& s = scratch();
    size_t bytes = 0;
    for (const auto& f : s.fields) bytes += f.name.size();
    s.names.resize(bytes);  // not to move again: the names below point into it
    s.nv.clear();
    char* at = s.names.data();
    for (const auto& [name, value, unique] : s.fields) {
      std::memcpy(at, name.data(), name.size());
      lower_ascii(at, name.size());
      s.nv.push_back(
          {reinterpret_cast<uint8_t*>(at),
           reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
           static_cast<uint8_t>(unique ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE)});
      at += name.size();
    }
    return s.nv;
  }

 private:
  struct Field {
    std::string_view name, value;
    bool unique;
  };
  struct Scratch {
    std::vector<Field> fields;
    std::string names;
    std::vector<nghttp2_nv> nv;
    char status[3];
  };
  static Scratch& scratch() {
    thread_local Scratch s;
    return s;
  }
};

// Submits `trailers` (those HTTP/2 allows) to end stream `id` after its last DATA.
void submit_trailers(nghttp2_session* session, int32_t id, const HeaderList& trailers);

// nghttp2's data source for a body a `Body` holds (source->ptr): its read_body(to, space, &eof,
// &trailers) gives up to `length` bytes (-1: none yet, the stream waits), and at the end the
// trailers go out after the last DATA (send_trailers()) instead of END_STREAM on it.
template <class Body>
ssize_t read_data(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                  nghttp2_data_source* source, void*) {
  auto* body = static_cast<Body*>(source->ptr);
  bool eof = false, trailers = false;
  long n = body->read_body(buf, length, &eof, &trailers);
  if (n < 0) return NGHTTP2_ERR_DEFERRED;
  if (eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (trailers) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      body->send_trailers();
    }
  }
  return n;
}

// A buffer read from the front (`at` bytes of it taken): what was taken goes once it is all of
// it, or half of it and more than a little, so that a buffer always refilled before it empties
// does not keep every byte that went through it.
inline void compact(std::string& buf, size_t& at) {
  if (at == buf.size()) {
    buf.clear();
    at = 0;
  } else if (at >= 16 * 1024 && at * 2 >= buf.size()) {
    buf.erase(0, at);
    at = 0;
  }
}

}  // namespace gatehouse::http
