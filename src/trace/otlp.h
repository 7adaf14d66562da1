// Spans in OTLP's protobuf encoding (opentelemetry/proto/trace/v1/trace.proto,
// collector/trace/v1/trace_service.proto), written directly in the protocol buffers wire format:
// a span is a few hundred bytes of tags, lengths and values, so no protobuf library is needed on
// the request path. Fields may come in any order (the wire format allows it), so a span's
// attributes and events are written as the request reaches them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "trace/context.h"

namespace gatehouse::trace {

// The protocol buffers wire format, appended to a string. A nested message is open()ed (its tag
// written) and close()d (its length put in front of its bytes, once they are known).
class ProtoWriter {
 public:
  explicit ProtoWriter(std::string* out) : out_(out) {}
  void varint(uint32_t field, uint64_t v);
  void fixed64(uint32_t field, uint64_t v);
  void fixed32(uint32_t field, uint32_t v);
  void dbl(uint32_t field, double v);
  void bytes(uint32_t field, std::string_view b);
  void bytes(uint32_t field, const uint8_t* b, size_t n) {
    bytes(field, std::string_view(reinterpret_cast<const char*>(b), n));
  }
  // A message already encoded, as field `field`.
  void message(uint32_t field, std::string_view encoded) { bytes(field, encoded); }
  size_t open(uint32_t field);
  void close(size_t mark);
  // A KeyValue (common.proto) as field `field`: `key`, and an AnyValue whose field
  // `value_field` is `value` (1, string_value: the text; 3, int_value: a varint's bytes).
  void key_value(uint32_t field, std::string_view key, uint32_t value_field,
                 std::string_view value);

 private:
  void tag(uint32_t field, uint32_t wire_type) { raw_varint(uint64_t{field} << 3 | wire_type); }
  void raw_varint(uint64_t v);
  std::string* out_;
};

enum class SpanKind : uint8_t { kServer = 2, kClient = 3 };
enum class StatusCode : uint8_t { kUnset = 0, kOk = 1, kError = 2 };

// One Span, appended as a ScopeSpans.spans field (2), so that spans written one after the other
// are the spans of one ScopeSpans message as they stand.
class SpanWriter {
 public:
  SpanWriter(std::string* out, const TraceId& trace, const SpanId& span, const SpanId* parent,
             std::string_view tracestate, bool sampled, std::string_view name, SpanKind kind,
             uint64_t start_ns, uint64_t end_ns);
  void attr(std::string_view key, std::string_view value);
  void attr(std::string_view key, int64_t value);
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
