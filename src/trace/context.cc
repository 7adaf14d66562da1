#include "trace/context.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace gatehouse::trace {

namespace {

// Each byte's two lower-case hex digits.
constexpr std::array<char, 512> kHexPairs = [] {
  std::array<char, 512> t{};
  constexpr char digits[] = "0123456789abcdef";
  for (int b = 0; b < 256; ++b) t[2 * b] = digits[b >> 4], t[2 * b + 1] = digits[b & 15];
  return t;
}();

int lower_hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // uppercase hex is not valid in either spec
}

// `text` (2n lower-case hex digits) into n bytes; false on anything else.
bool read_hex(std::string_view text, uint8_t* out, size_t n) {
  if (text.size() != 2 * n) return false;
  for (size_t i = 0; i < n; ++i) {
    const int hi = lower_hex_value(text[2 * i]), lo = lower_hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

template <size_t N>
bool all_zero(const std::array<uint8_t, N>& id) {
  return std::all_of(id.begin(), id.end(), [](uint8_t b) { return b == 0; });
}

// B3 trace ids are 64 or 128 bits; a 64-bit one is the low half of a 128-bit id.
bool read_b3_trace_id(std::string_view text, TraceId* out) {
  out->fill(0);
  if (text.size() == 16) return read_hex(text, out->data() + 8, 8) && !all_zero(*out);
  return read_hex(text, out->data(), 16) && !all_zero(*out);
}

bool read_span_id(std::string_view text, SpanId* out) {
  return read_hex(text, out->data(), 8) && !all_zero(*out);
}

// tracestate keys (3.3.1.3.1): a simple key, lcalpha then up to 255 of [a-z0-9_-*/]; or a
// multi-tenant key tenant@system, tenant lcalpha or digit then up to 240, system lcalpha then up
// to 13.
bool key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' ||
         c == '/';
}
bool valid_key_part(std::string_view s, size_t max, bool digit_first) {
  if (s.empty() || s.size() > max) return false;
  const char c = s[0];
  if (!((c >= 'a' && c <= 'z') || (digit_first && c >= '0' && c <= '9'))) return false;
  return std::all_of(s.begin(), s.end(), key_char);
}
bool valid_key(std::string_view key) {
  const auto at = key.find('@');
  if (at == std::string_view::npos) return valid_key_part(key, 256, false);
  return valid_key_part(key.substr(0, at), 241, true) &&
         valid_key_part(key.substr(at + 1), 14, false);
}
// Values (3.3.1.3.2): up to 256 printable ASCII characters but ',' and '=', not ending in a space.
bool valid_value(std::string_view v) {
  if (v.empty() || v.size() > 256 || v.back() == ' ') return false;
  return std::all_of(v.begin(), v.end(),
                     [](char c) { return c >= 0x20 && c <= 0x7e && c != ',' && c != '='; });
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<Parent> parse_traceparent(std::string_view v) {
  // version "-" trace-id "-" parent-id "-" trace-flags: 2 + 1 + 32 + 1 + 16 + 1 + 2.
  constexpr size_t kLength = 55;
  if (v.size() < kLength) return std::nullopt;
  uint8_t version = 0, flags = 0;
  if (!read_hex(v.substr(0, 2), &version, 1) || version == 0xff) return std::nullopt;
  // Version 00 is exactly 55 characters; a later version may append fields after a '-' (3.2.4).
  if (version == 0 ? v.size() != kLength : (v.size() > kLength && v[kLength] != '-'))
    return std::nullopt;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  Parent p;
  if (!read_hex(v.substr(3, 32), p.trace_id.data(), 16) || all_zero(p.trace_id) ||
      !read_span_id(v.substr(36, 16), &p.span_id) || !read_hex(v.substr(53, 2), &flags, 1))
    return std::nullopt;
  p.sampled = (flags & 1) != 0;
  return p;
}

bool normalize_tracestate(std::string_view joined, std::string* out) {
  out->clear();
  std::vector<std::string_view> members;
  while (true) {
    const auto comma = joined.find(',');
    const std::string_view m = trim_ows(joined.substr(0, comma));
    if (!m.empty()) {
      const auto eq = m.find('=');
      if (eq == std::string_view::npos || !valid_key(m.substr(0, eq)) ||
          !valid_value(m.substr(eq + 1)))
        return false;
      for (std::string_view seen : members)
        if (seen.substr(0, seen.find('=')) == m.substr(0, eq)) return false;  // a repeated key
      members.push_back(m);
      if (members.size() > 32) return false;
    }
    if (comma == std::string_view::npos) break;
    joined.remove_prefix(comma + 1);
  }
  constexpr size_t kMax = 512, kLong = 128;
  auto length = [&] {
    size_t n = members.empty() ? 0 : members.size() - 1;  // the commas
    for (auto m : members) n += m.size();
    return n;
  };
  if (length() > kMax) {
    members.erase(std::remove_if(members.begin(), members.end(),
                                 [](std::string_view m) { return m.size() > kLong; }),
                  members.end());
    while (length() > kMax) members.pop_back();
  }
  for (auto m : members) out->append(out->empty() ? "" : ",").append(m);
  return true;
}

std::optional<Parent> parse_b3(std::string_view v) {
  auto decision = [](std::string_view s) -> std::optional<bool> {
    if (s == "1" || s == "d") return true;
    if (s == "0") return false;
    return std::nullopt;
  };
  Parent p;
  if (v.size() == 1) {  // a decision alone: the ids are the receiver's to make
    p.sampled = decision(v);
    if (!p.sampled) return std::nullopt;
    p.has_ids = false;
    return p;
  }
  const auto dash = v.find('-');
  if (dash == std::string_view::npos || !read_b3_trace_id(v.substr(0, dash), &p.trace_id))
    return std::nullopt;
  v.remove_prefix(dash + 1);
  const auto dash2 = v.find('-');
  if (!read_span_id(v.substr(0, dash2), &p.span_id)) return std::nullopt;
  if (dash2 == std::string_view::npos) return p;
  v.remove_prefix(dash2 + 1);
  const auto dash3 = v.find('-');
  p.sampled = decision(v.substr(0, dash3));
  if (!p.sampled) return std::nullopt;
  SpanId parent;
  if (dash3 != std::string_view::npos && !read_span_id(v.substr(dash3 + 1), &parent))
    return std::nullopt;
  return p;
}

std::optional<Parent> parse_b3_multi(std::string_view trace_id, std::string_view span_id,
                                     std::string_view sampled, std::string_view flags) {
  Parent p;
  if (flags == "1")
    p.sampled = true;  // debug
  else if (sampled == "1" || sampled == "true")
    p.sampled = true;
  else if (sampled == "0" || sampled == "false")
    p.sampled = false;
  else if (!sampled.empty())
    return std::nullopt;
  if (trace_id.empty() && span_id.empty()) {
    if (!p.sampled) return std::nullopt;
    p.has_ids = false;
    return p;
  }
  if (!read_b3_trace_id(trace_id, &p.trace_id) || !read_span_id(span_id, &p.span_id))
    return std::nullopt;
  return p;
}

void write_hex(const uint8_t* bytes, size_t n, char* at) {
  for (size_t i = 0; i < n; ++i) std::memcpy(at + 2 * i, &kHexPairs[2 * bytes[i]], 2);
}

void append_hex(const uint8_t* bytes, size_t n, std::string* out) {
  const size_t at = out->size();
  out->resize(at + 2 * n);
  write_hex(bytes, n, out->data() + at);
}

void append_traceparent(const TraceId& trace, const SpanId& span, bool sampled, std::string* out) {
  char v[55] = {'0', '0', '-'};
  write_hex(trace.data(), trace.size(), v + 3);
  v[35] = '-';
  write_hex(span.data(), span.size(), v + kTraceparentSpanAt);
  v[52] = '-';
  v[53] = '0';
  v[54] = sampled ? '1' : '0';
  out->append(v, sizeof v);
}

void append_b3(const TraceId& trace, const SpanId& span, bool sampled, std::string* out) {
  char v[51];
  write_hex(trace.data(), trace.size(), v);
  v[32] = '-';
  write_hex(span.data(), span.size(), v + kB3SpanAt);
  v[49] = '-';
  v[50] = sampled ? '1' : '0';
  out->append(v, sizeof v);
}

bool sampled_by_ratio(const TraceId& id, double ratio) {
  if (ratio >= 1) return true;
  if (ratio <= 0) return false;
  uint64_t low = 0;
  for (size_t i = 8; i < 16; ++i) low = low << 8 | id[i];
  // Compared in 63 bits, as OpenTelemetry's SDKs do, so that 2^63 x ratio is exact enough.
  return (low >> 1) < static_cast<uint64_t>(ratio * 9223372036854775808.0);
}

}  // namespace gatehouse::trace
