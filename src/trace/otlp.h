// Spans in OTLP's protobuf encoding (opentelemetry/proto/trace/v1/trace.proto,
// collector/trace/v1/trace_service.proto), written directly in the protocol buffers wire format:
// a span is a few hundred bytes of tags, lengths and values, so no protobuf library is needed on
// the request path. Fields may come in any order (the wire format allows it), so a span's
// attributes and events are written as the request reaches them.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "trace/context.h"

namespace gatehouse::trace {

namespace wire {
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;
constexpr size_t kMaxVarint = 10;

// v as a varint at `at`; returns the bytes written.
inline size_t put_varint(char* at, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    at[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  at[n++] = static_cast<char>(v);
  return n;
}

inline size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) v >>= 7, ++n;
  return n;
}
}  // namespace wire

// Bytes written at a cursor, into storage kept from one use to the next (a request's spans are
// written into the same buffer request after request). Unlike a std::string, growing it neither
// zero-fills nor re-counts its length per append: the writer below checks the room once per field.
class ByteBuffer {
 public:
  std::string_view view() const { return {data_.get(), size_}; }
  size_t size() const { return size_; }
  void clear() { size_ = 0; }
  // Room for n more bytes at the end; write them, then commit().
  char* room(size_t n) {
    if (capacity_ - size_ < n) grow(n);
    return data_.get() + size_;
  }
  void commit(size_t n) { size_ += n; }
  size_t capacity() const { return capacity_; }
  void reserve(size_t n) { room(n > size_ ? n - size_ : 0); }
  char* at(size_t offset) { return data_.get() + offset; }

 private:
  void grow(size_t n);
  std::unique_ptr<char[]> data_;
  size_t size_ = 0, capacity_ = 0;
};

// The protocol buffers wire format, appended to a ByteBuffer. A nested message is open()ed (its
// tag written) and close()d (its length put in front of its bytes, once they are known).
class ProtoWriter {
 public:
  explicit ProtoWriter(ByteBuffer* out) : out_(out) {}
  // The scalar fields are inline: a span is a few dozen of them.
  void varint(uint32_t field, uint64_t v) {
    char* p = out_->room(2 * wire::kMaxVarint);
    const size_t n = wire::put_varint(p, uint64_t{field} << 3 | wire::kVarint);
    out_->commit(n + wire::put_varint(p + n, v));
  }
  void fixed64(uint32_t field, uint64_t v) { fixed(field, wire::kFixed64, v, 8); }
  void fixed32(uint32_t field, uint32_t v) { fixed(field, wire::kFixed32, v, 4); }
  void bytes(uint32_t field, std::string_view b) {
    char* p = out_->room(2 * wire::kMaxVarint + b.size());
    size_t n = wire::put_varint(p, uint64_t{field} << 3 | wire::kLengthDelimited);
    n += wire::put_varint(p + n, b.size());
    std::memcpy(p + n, b.data(), b.size());
    out_->commit(n + b.size());
  }
  void bytes(uint32_t field, const uint8_t* b, size_t n) {
    bytes(field, std::string_view(reinterpret_cast<const char*>(b), n));
  }
  size_t open(uint32_t field);
  void close(size_t mark);
  // A KeyValue (common.proto) as field `field`: `key`, and an AnyValue whose field
  // `value_field` is `value` (1, string_value: the text; 3, int_value: a varint's bytes). Field
  // numbers here are below 16: their tags are one byte.
  // Inline: a span's attributes are most of its bytes, and their keys' lengths are constants
  // where they are written, so the copies become a few moves.
  void key_value(uint32_t field, std::string_view key, uint32_t value_field,
                 std::string_view value) {
    using namespace wire;
    // KeyValue { key = 1; AnyValue value = 2 { <value_field> } }: its lengths are known before
    // it is written, so it goes out in one pass, without open() and close().
    const bool text = value_field == 1;  // length-delimited; else a varint's bytes as they are
    const size_t any = 1 + (text ? varint_size(value.size()) : 0) + value.size();
    const size_t kv = 1 + varint_size(key.size()) + key.size() + 1 + varint_size(any) + any;
    char* p = out_->room(kMaxVarint + kv + 1);
    size_t n = 0;
    p[n++] = static_cast<char>(field << 3 | kLengthDelimited);
    n += put_varint(p + n, kv);
    p[n++] = static_cast<char>(1 << 3 | kLengthDelimited);
    n += put_varint(p + n, key.size());
    std::memcpy(p + n, key.data(), key.size());
    n += key.size();
    p[n++] = static_cast<char>(2 << 3 | kLengthDelimited);
    n += put_varint(p + n, any);
    p[n++] = static_cast<char>(value_field << 3 | (text ? kLengthDelimited : kVarint));
    if (text) n += put_varint(p + n, value.size());
    std::memcpy(p + n, value.data(), value.size());
    out_->commit(n + value.size());
  }

 private:
  void fixed(uint32_t field, uint32_t wire_type, uint64_t v, int bytes) {  // little-endian
    char* p = out_->room(wire::kMaxVarint + 8);
    const size_t n = wire::put_varint(p, uint64_t{field} << 3 | wire_type);
    for (int i = 0; i < bytes; ++i) p[n + i] = static_cast<char>(v >> (8 * i));
    out_->commit(n + bytes);
  }
  ByteBuffer* out_;
};

enum class SpanKind : uint8_t { kServer = 2, kClient = 3 };
enum class StatusCode : uint8_t { kUnset = 0, kOk = 1, kError = 2 };

// One Span, appended as a ScopeSpans.spans field (2), so that spans written one after the other
// are the spans of one ScopeSpans message as they stand.
class SpanWriter {
 public:
  SpanWriter(ByteBuffer* out, const TraceId& trace, const SpanId& span, const SpanId* parent,
             std::string_view tracestate, bool sampled, std::string_view name, SpanKind kind,
             uint64_t start_ns, uint64_t end_ns);
  void attr(std::string_view key, std::string_view value) {
    w_.key_value(attr_field_, key, 1, value);  // AnyValue.string_value
  }
  void attr(std::string_view key, int64_t value) {
    char v[wire::kMaxVarint];  // AnyValue.int_value
    w_.key_value(attr_field_, key, 3,
                 std::string_view(v, wire::put_varint(v, static_cast<uint64_t>(value))));
  }
  // An event; the attributes after it are the event's until end_event().
  void event(std::string_view name, uint64_t time_ns);
  void end_event();
  void status(StatusCode code, std::string_view message = {});
  void finish() { w_.close(span_); }

 private:
  ProtoWriter w_;
  size_t span_;
  size_t event_ = 0;
  uint32_t attr_field_ = 9;  // Span.attributes; Event.attributes is 3
};

// The whole ExportTraceServiceRequest for one batch: one ResourceSpans with the resource's
// attributes, one ScopeSpans of instrumentation scope `scope`/`version`, whose spans are
// `spans` (SpanWriter's output, concatenated).
void write_export_request(const std::vector<std::pair<std::string, std::string>>& resource,
                          std::string_view scope, std::string_view version, std::string_view spans,
                          std::string* out);

}  // namespace gatehouse::trace
