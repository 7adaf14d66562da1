#include "trace/otlp.h"

#include <algorithm>
#include <cstring>

namespace gatehouse::trace {

namespace {

using namespace wire;

size_t put_tag(char* at, uint32_t field, uint32_t wire_type) {
  return put_varint(at, uint64_t{field} << 3 | wire_type);
}

}  // namespace

void ByteBuffer::grow(size_t n) {
  const size_t capacity = std::max({capacity_ * 2, size_ + n, size_t{4096}});
  auto data = std::make_unique_for_overwrite<char[]>(capacity);  // not zeroed: written before read
  if (size_) std::memcpy(data.get(), data_.get(), size_);
  data_ = std::move(data);
  capacity_ = capacity;
}

size_t ProtoWriter::open(uint32_t field) {
  char* p = out_->room(kMaxVarint);
  out_->commit(put_tag(p, field, kLengthDelimited));
  return out_->size();
}

void ProtoWriter::close(size_t mark) {
  // The length goes in front of the message's bytes: a varint of one or two bytes for most, so
  // the move is short.
  const size_t length = out_->size() - mark;
  const size_t n = varint_size(length);
  out_->room(n);
  std::memmove(out_->at(mark + n), out_->at(mark), length);
  put_varint(out_->at(mark), length);
  out_->commit(n);
}

// Span (trace.proto): trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5, kind 6,
// start_time_unix_nano 7, end_time_unix_nano 8, attributes 9, events 11, status 15, flags 16.
SpanWriter::SpanWriter(ByteBuffer* out, const TraceId& trace, const SpanId& span,
                       const SpanId* parent, std::string_view tracestate, bool sampled,
                       std::string_view name, SpanKind kind, uint64_t start_ns, uint64_t end_ns)
    : w_(out) {
  span_ = w_.open(2);
  w_.bytes(1, trace.data(), trace.size());
  w_.bytes(2, span.data(), span.size());
  if (!tracestate.empty()) w_.bytes(3, tracestate);
  if (parent) w_.bytes(4, parent->data(), parent->size());
  w_.bytes(5, name);
  w_.varint(6, static_cast<uint64_t>(kind));
  w_.fixed64(7, start_ns);
  w_.fixed64(8, end_ns);
  // SpanFlags: the W3C trace flags in the low byte, and "the parent's context is known" (bit 8)
  // and whether it came from another process (bit 9).
  w_.fixed32(16, (sampled ? 1u : 0u) | 0x100 | (parent && kind == SpanKind::kServer ? 0x200 : 0));
}

// Span.Event: time_unix_nano 1, name 2, attributes 3.
void SpanWriter::event(std::string_view name, uint64_t time_ns) {
  event_ = w_.open(11);
  w_.fixed64(1, time_ns);
  w_.bytes(2, name);
  attr_field_ = 3;
}

void SpanWriter::end_event() {
  w_.close(event_);
  attr_field_ = 9;
}

// Status: message 2, code 3.
void SpanWriter::status(StatusCode code, std::string_view message) {
  if (code == StatusCode::kUnset) return;
  const size_t s = w_.open(15);
  if (!message.empty()) w_.bytes(2, message);
  w_.varint(3, static_cast<uint64_t>(code));
  w_.close(s);
}

// ExportTraceServiceRequest: resource_spans 1. ResourceSpans: resource 1, scope_spans 2.
// Resource: attributes 1. ScopeSpans: scope 1, spans 2. InstrumentationScope: name 1, version 2.
void write_export_request(const std::vector<std::pair<std::string, std::string>>& resource,
                          std::string_view scope, std::string_view version, std::string_view spans,
                          std::string* out) {
  // The small parts first, each whole; then the heads around the spans, whose lengths follow.
  ByteBuffer res, sc;
  ProtoWriter r(&res);
  for (const auto& [k, v] : resource) r.key_value(1, k, 1, v);
  ProtoWriter s(&sc);
  s.bytes(1, scope);
  s.bytes(2, version);
  auto field_size = [](size_t length) { return 1 + varint_size(length) + length; };
  const size_t scope_spans = field_size(sc.size()) + spans.size();
  const size_t resource_spans = field_size(res.size()) + field_size(scope_spans);
  ByteBuffer head;
  char* p = head.room(4 * (1 + kMaxVarint));
  size_t n = put_tag(p, 1, kLengthDelimited);
  n += put_varint(p + n, resource_spans);
  n += put_tag(p + n, 1, kLengthDelimited);
  n += put_varint(p + n, res.size());
  head.commit(n);
  out->reserve(out->size() + field_size(resource_spans));
  out->append(head.view()).append(res.view());
  head.clear();
  p = head.room(2 * (1 + kMaxVarint));
  n = put_tag(p, 2, kLengthDelimited);
  n += put_varint(p + n, scope_spans);
  n += put_tag(p + n, 1, kLengthDelimited);
  n += put_varint(p + n, sc.size());
  head.commit(n);
  out->append(head.view()).append(sc.view()).append(spans);
}

}  // namespace gatehouse::trace
