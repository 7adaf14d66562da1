// A request's place in a distributed trace, as it crosses the gateway: the trace context headers
// it arrived with, parsed by their specs' rules, and the ones written for the calls it makes.
//
// W3C Trace Context level 1 (https://www.w3.org/TR/trace-context/): `traceparent` and
// `tracestate`. B3 (https://github.com/openzipkin/b3-propagation), single (`b3`) and multi
// (`X-B3-*`), for meshes that predate it. Pure functions of their text: no I/O, no clock.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gatehouse::trace {

using TraceId = std::array<uint8_t, 16>;
using SpanId = std::array<uint8_t, 8>;

// The context the caller sent: the trace, the span that called (the gateway's span's parent),
// and its sampling decision.
struct Parent {
  TraceId trace_id{};
  SpanId span_id{};  // all zero: none (B3 with a trace id and no span id is not valid; `b3: 1`
                     // alone carries a decision and no ids)
  bool has_ids = true;
  // Whether the caller decided; B3 may leave the decision to the receiver (no sampling state).
  std::optional<bool> sampled;
};

// Section 3.2. A version other than 00 (but not ff) is read as 00 is, its extra fields ignored,
// as 3.2.4 asks; an invalid value (uppercase hex, all-zero ids, a wrong length) is nullopt.
std::optional<Parent> parse_traceparent(std::string_view value);

// Section 3.3: the tracestate to pass on, from all its fields joined with ','. Empty list members
// are dropped. The whole header is dropped (false) when a member is malformed, a key repeats or
// there are more than 32 members (3.3.1.1); over 512 characters, members longer than 128 go first,
// then members from the end, until it fits (3.3.1.5).
bool normalize_tracestate(std::string_view joined, std::string* out);

// B3 single: {trace}-{span}[-{sampled}[-{parent}]], or a sampling decision alone (0, 1, d).
std::optional<Parent> parse_b3(std::string_view value);
// B3 multi: X-B3-TraceId, X-B3-SpanId, X-B3-Sampled (1, 0, true, false) and X-B3-Flags (1: debug,
// which means sampled). Empty views stand for absent fields.
std::optional<Parent> parse_b3_multi(std::string_view trace_id, std::string_view span_id,
                                     std::string_view sampled, std::string_view flags);

// Lower-case hex of the bytes, appended.
void append_hex(const uint8_t* bytes, size_t n, std::string* out);
template <size_t N>
void append_hex(const std::array<uint8_t, N>& id, std::string* out) {
  append_hex(id.data(), N, out);
}
// Writes the 2n hex digits of the bytes over `at` (which has room for them).
void write_hex(const uint8_t* bytes, size_t n, char* at);

// "00-{trace}-{span}-{01|00}": 55 characters; the span id sits at kTraceparentSpanAt.
void append_traceparent(const TraceId& trace, const SpanId& span, bool sampled, std::string* out);
inline constexpr size_t kTraceparentSpanAt = 36;
// "{trace}-{span}-{1|0}"; the span id sits at kB3SpanAt.
void append_b3(const TraceId& trace, const SpanId& span, bool sampled, std::string* out);
inline constexpr size_t kB3SpanAt = 33;

// OpenTelemetry's TraceIdRatioBased sampler: the trace is sampled when its last 8 bytes, read as
// a big-endian number, fall under ratio x 2^64 (so every service with the same ratio decides
// alike for the same trace).
bool sampled_by_ratio(const TraceId& id, double ratio);

}  // namespace gatehouse::trace
