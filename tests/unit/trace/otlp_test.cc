// The OTLP encoding, read back with libprotobuf's own wire-format parser (UnknownFieldSet), which
// knows nothing of our writer: field numbers and wire types as trace.proto and
// trace_service.proto define them.
#include "trace/otlp.h"

#include <google/protobuf/unknown_field_set.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

namespace gatehouse::trace {
namespace {

using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

using Msg = std::shared_ptr<UnknownFieldSet>;  // the set cannot be copied

// The fields numbered `n` of a parsed message.
std::vector<const UnknownField*> fields(const Msg& m, int n) {
  std::vector<const UnknownField*> out;
  for (int i = 0; i < m->field_count(); ++i)
    if (m->field(i).number() == n) out.push_back(&m->field(i));
  return out;
}

Msg parse(const std::string& bytes) {
  auto m = std::make_shared<UnknownFieldSet>();
  EXPECT_TRUE(m->ParseFromString(bytes));
  return m;
}

// KeyValue list -> key: the AnyValue's bytes.
std::map<std::string, Msg> attributes(const Msg& m, int n) {
  std::map<std::string, Msg> out;
  for (const auto* f : fields(m, n)) {
    Msg kv = parse(f->length_delimited());
    out[fields(kv, 1).at(0)->length_delimited()] = parse(fields(kv, 2).at(0)->length_delimited());
  }
  return out;
}

TEST(ProtoWriter, VarintsAndNestedLengths) {
  ByteBuffer buf;
  ProtoWriter w(&buf);
  w.varint(1, 300);  // 0xac 0x02
  const size_t m = w.open(2);
  w.bytes(1, std::string(200, 'x'));  // a nested message over 127 bytes: a 2-byte length
  w.close(m);
  w.fixed64(3, 0x0102030405060708ull);
  Msg msg = parse(std::string(buf.view()));
  EXPECT_EQ(fields(msg, 1).at(0)->varint(), 300u);
  Msg inner = parse(fields(msg, 2).at(0)->length_delimited());
  EXPECT_EQ(fields(inner, 1).at(0)->length_delimited(), std::string(200, 'x'));
  EXPECT_EQ(fields(msg, 3).at(0)->fixed64(), 0x0102030405060708ull);
}

TEST(ProtoWriter, AMessageLargerThanTheBufferGrowsItAndKeepsWhatCameBefore) {
  ByteBuffer buf;
  ProtoWriter w(&buf);
  w.varint(1, 7);
  const size_t m = w.open(2);
  for (int i = 0; i < 1000; ++i) w.key_value(1, "key" + std::to_string(i), 1, std::string(20, 'v'));
  w.close(m);  // about 30 KB: a three-byte length put in front
  Msg msg = parse(std::string(buf.view()));
  EXPECT_EQ(fields(msg, 1).at(0)->varint(), 7u);
  auto attrs = attributes(parse(fields(msg, 2).at(0)->length_delimited()), 1);
  ASSERT_EQ(attrs.size(), 1000u);
  EXPECT_EQ(fields(attrs["key999"], 1).at(0)->length_delimited(), std::string(20, 'v'));
}

TEST(SpanWriter, ASpanAsTraceProtoHasIt) {
  TraceId trace{};
  SpanId span{}, parent{};
  for (uint8_t i = 0; i < 16; ++i) trace[i] = i + 1;
  for (uint8_t i = 0; i < 8; ++i) span[i] = 0xa0 + i, parent[i] = 0xb0 + i;
  ByteBuffer spans;
  SpanWriter s(&spans, trace, span, &parent, "rojo=1", true, "GET /api/{id}", SpanKind::kServer,
               1000, 2000);
  s.attr("http.request.method", "GET");
  s.attr("http.response.status_code", int64_t{503});
  s.event("gatehouse.retry", 1500);
  s.attr("error.type", "upstream_reset");
  s.end_event();
  s.status(StatusCode::kError, "upstream_timeout");
  s.finish();

  // As the spans (field 2) of a ScopeSpans.
  Msg scope_spans = parse(std::string(spans.view()));
  ASSERT_EQ(fields(scope_spans, 2).size(), 1u);
  Msg sp = parse(fields(scope_spans, 2)[0]->length_delimited());
  EXPECT_EQ(fields(sp, 1).at(0)->length_delimited(), std::string(trace.begin(), trace.end()));
  EXPECT_EQ(fields(sp, 2).at(0)->length_delimited(), std::string(span.begin(), span.end()));
  EXPECT_EQ(fields(sp, 3).at(0)->length_delimited(), "rojo=1");
  EXPECT_EQ(fields(sp, 4).at(0)->length_delimited(), std::string(parent.begin(), parent.end()));
  EXPECT_EQ(fields(sp, 5).at(0)->length_delimited(), "GET /api/{id}");
  EXPECT_EQ(fields(sp, 6).at(0)->varint(), 2u);  // SPAN_KIND_SERVER
  EXPECT_EQ(fields(sp, 7).at(0)->fixed64(), 1000u);
  EXPECT_EQ(fields(sp, 8).at(0)->fixed64(), 2000u);
  // flags: sampled, and a remote parent known (SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE | IS_REMOTE).
  EXPECT_EQ(fields(sp, 16).at(0)->fixed32(), 0x301u);
  auto attrs = attributes(sp, 9);
  EXPECT_EQ(fields(attrs["http.request.method"], 1).at(0)->length_delimited(), "GET");
  EXPECT_EQ(fields(attrs["http.response.status_code"], 3).at(0)->varint(), 503u);
  ASSERT_EQ(fields(sp, 11).size(), 1u);
  Msg ev = parse(fields(sp, 11)[0]->length_delimited());
  EXPECT_EQ(fields(ev, 1).at(0)->fixed64(), 1500u);
  EXPECT_EQ(fields(ev, 2).at(0)->length_delimited(), "gatehouse.retry");
  EXPECT_EQ(attributes(ev, 3).count("error.type"), 1u);
  EXPECT_EQ(attrs.count("error.type"), 0u) << "the event's attribute stays in the event";
  Msg status = parse(fields(sp, 15).at(0)->length_delimited());
  EXPECT_EQ(fields(status, 2).at(0)->length_delimited(), "upstream_timeout");
  EXPECT_EQ(fields(status, 3).at(0)->varint(), 2u);  // STATUS_CODE_ERROR
}

TEST(SpanWriter, ARootSpanHasNoParentAndAnUnsetStatusIsLeftOut) {
  ByteBuffer spans;
  SpanWriter s(&spans, TraceId{1}, SpanId{2}, nullptr, "", false, "GET", SpanKind::kClient, 1, 2);
  s.status(StatusCode::kUnset);
  s.finish();
  Msg sp = parse(fields(parse(std::string(spans.view())), 2).at(0)->length_delimited());
  EXPECT_TRUE(fields(sp, 4).empty());
  EXPECT_TRUE(fields(sp, 3).empty());
  EXPECT_TRUE(fields(sp, 15).empty());
  EXPECT_EQ(fields(sp, 16).at(0)->fixed32(), 0x100u);  // not sampled, parent known: none
}

TEST(ExportRequest, OneResourceAndOneScopeAroundTheSpans) {
  ByteBuffer spans;
  for (int i = 0; i < 3; ++i) {
    SpanWriter s(&spans, TraceId{1}, SpanId{static_cast<uint8_t>(i + 1)}, nullptr, "", true, "GET",
                 SpanKind::kServer, 1, 2);
    s.finish();
  }
  std::string req;
  write_export_request({{"service.name", "gatehouse"}, {"deployment.environment", "test"}},
                       "gatehouse", "0.1.0", spans.view(), &req);
  Msg export_request = parse(req);
  ASSERT_EQ(fields(export_request, 1).size(), 1u);
  Msg rs = parse(fields(export_request, 1)[0]->length_delimited());
  Msg resource = parse(fields(rs, 1).at(0)->length_delimited());
  auto attrs = attributes(resource, 1);
  EXPECT_EQ(fields(attrs["service.name"], 1).at(0)->length_delimited(), "gatehouse");
  EXPECT_EQ(fields(attrs["deployment.environment"], 1).at(0)->length_delimited(), "test");
  Msg ss = parse(fields(rs, 2).at(0)->length_delimited());
  Msg scope = parse(fields(ss, 1).at(0)->length_delimited());
  EXPECT_EQ(fields(scope, 1).at(0)->length_delimited(), "gatehouse");
  EXPECT_EQ(fields(scope, 2).at(0)->length_delimited(), "0.1.0");
  EXPECT_EQ(fields(ss, 2).size(), 3u);
}

}  // namespace
}  // namespace gatehouse::trace
