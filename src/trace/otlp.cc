#include "trace/otlp.h"

#include <cstring>

namespace gatehouse::trace {

namespace {
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;

void append_le(std::string* out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
}  // namespace

namespace {
// v as a varint at `at`; returns the bytes written (at most 10).
size_t put_varint(char* at, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    at[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  at[n++] = static_cast<char>(v);
  return n;
}
size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) v >>= 7, ++n;
  return n;
}
}  // namespace

void ProtoWriter::raw_varint(uint64_t v) {
  char buf[10];
  out_->append(buf, put_varint(buf, v));
}

void ProtoWriter::key_value(uint32_t field, std::string_view key, uint32_t value_field,
                            std::string_view value) {
  // KeyValue { key = 1; AnyValue value = 2 { <value_field> } }: its lengths are known before it
  // is written, so it goes out in one pass, without open() and close().
  const bool text = value_field == 1;  // length-delimited; else a varint's bytes as they are
  const size_t any = 1 + (text ? varint_size(value.size()) : 0) + value.size();
  const size_t kv = 1 + varint_size(key.size()) + key.size() + 1 + varint_size(any) + any;
  char head[24];
  size_t n = 0;
  head[n++] = static_cast<char>(field << 3 | kLengthDelimited);
  n += put_varint(head + n, kv);
  head[n++] = static_cast<char>(1 << 3 | kLengthDelimited);
  n += put_varint(head + n, key.size());
  out_->append(head, n).append(key);
  n = 0;
  head[n++] = static_cast<char>(2 << 3 | kLengthDelimited);
  n += put_varint(head + n, any);
  head[n++] = static_cast<char>(value_field << 3 | (text ? kLengthDelimited : kVarint));
  if (text) n += put_varint(head + n, value.size());
  out_->append(head, n).append(value);
}

void ProtoWriter::varint(uint32_t field, uint64_t v) {
  tag(field, kVarint);
  raw_varint(v);
}

void ProtoWriter::fixed64(uint32_t field, uint64_t v) {
  tag(field, kFixed64);
  append_le(out_, v, 8);
}

void ProtoWriter::fixed32(uint32_t field, uint32_t v) {
  tag(field, kFixed32);
  append_le(out_, v, 4);
}

void ProtoWriter::dbl(uint32_t field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  fixed64(field, bits);
}

void ProtoWriter::bytes(uint32_t field, std::string_view b) {
  tag(field, kLengthDelimited);
  raw_varint(b.size());
  out_->append(b);
}

size_t ProtoWriter::open(uint32_t field) {
  tag(field, kLengthDelimited);
  return out_->size();
}

void ProtoWriter::close(size_t mark) {
  // The length goes in front of the message's bytes: a varint of one byte for most (under 128
  // bytes), so the move is short.
  char len[10];
  out_->insert(mark, len, put_varint(len, out_->size() - mark));
}

// Span (trace.proto): trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5, kind 6,
// start_time_unix_nano 7, end_time_unix_nano 8, attributes 9, events 11, status 15, flags 16.
SpanWriter::SpanWriter(std::string* out, const TraceId& trace, const SpanId& span,
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

// AnyValue: string_value 1, int_value 3.
void SpanWriter::attr(std::string_view key, std::string_view value) {
  w_.key_value(attr_field_, key, 1, value);
}

void SpanWriter::attr(std::string_view key, int64_t value) {
  char v[10];
  w_.key_value(attr_field_, key, 3,
               std::string_view(v, put_varint(v, static_cast<uint64_t>(value))));
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
  ProtoWriter w(out);
  const size_t rs = w.open(1);
  const size_t res = w.open(1);
  for (const auto& [k, v] : resource) w.key_value(1, k, 1, v);
  w.close(res);
  const size_t ss = w.open(2);
  const size_t sc = w.open(1);
  w.bytes(1, scope);
  w.bytes(2, version);
  w.close(sc);
  out->append(spans);
  w.close(ss);
  w.close(rs);
}

}  // namespace gatehouse::trace
