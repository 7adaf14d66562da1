#include "grpc/status.h"

#include <algorithm>
#include <array>
#include <chrono>

namespace gatehouse::grpc {
namespace {

constexpr std::array<std::string_view, kCodes> kNames = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

}  // namespace

std::string_view code_name(Code c) { return kNames[static_cast<size_t>(c)]; }

std::optional<Code> code_from_config_name(std::string_view lower) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (http::iequals(kNames[i], lower)) return static_cast<Code>(i);
  }
  return std::nullopt;
}

bool is_grpc_content_type(std::string_view ct) {
  constexpr std::string_view kGrpc = "application/grpc";
  if (ct.size() < kGrpc.size() || !http::iequals(ct.substr(0, kGrpc.size()), kGrpc)) return false;
  if (ct.size() == kGrpc.size()) return true;
  const char next = ct[kGrpc.size()];
  return next == '+' || next == ';' || next == ' ';
}

std::string_view answer_content_type(std::string_view ct) {
  if (is_grpc_content_type(ct)) return "application/grpc";
  for (std::string_view web : {"application/grpc-web-text", "application/grpc-web"}) {
    if (ct.size() >= web.size() && http::iequals(ct.substr(0, web.size()), web) &&
        (ct.size() == web.size() || ct[web.size()] == '+' || ct[web.size()] == ';'))
      return web;
  }
  return {};
}

Code code_for_gateway_status(int s) {
  switch (s) {
    case 400:
      return Code::kInternal;  // gRPC's mapping: a malformed call is the client's bug
    case 401:
      return Code::kUnauthenticated;
    case 403:
      return Code::kPermissionDenied;
    case 404:
    case 405:
    case 501:
      return Code::kUnimplemented;
    case 408:
    case 504:
      return Code::kDeadlineExceeded;
    case 413:
    case 429:
    case 431:
      return Code::kResourceExhausted;
    case 499:
      return Code::kCancelled;
    case 500:
      return Code::kInternal;
    case 502:
    case 503:
      return Code::kUnavailable;
    default:
      return Code::kUnknown;
  }
}

int http_status_for(Code c) {
  static constexpr std::array<int, kCodes> kHttp = {200, 499, 500, 400, 504, 404, 409, 403, 429,
                                                    400, 409, 400, 501, 500, 503, 500, 401};
  return kHttp[static_cast<size_t>(c)];
}

std::optional<Code> parse_code(std::string_view v) {
  if (v.empty() || v.size() > 2) return std::nullopt;
  int n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  if (n >= kCodes) return std::nullopt;
  return static_cast<Code>(n);
}

std::optional<Code> trailers_only_status(const http::ResponseHead& head) {
  for (const auto& h : head.headers) {
    if (h.id == http::HeaderId::kOther && http::field_is(h.name, "grpc-status"))
      return parse_code(h.value);
  }
  return std::nullopt;
}

void append_percent_encoded(std::string* out, std::string_view message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : message) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out->push_back(ch);
    } else {
      const char esc[] = {'%', kHex[c >> 4], kHex[c & 15]};
      out->append(esc, sizeof esc);
    }
  }
}

void append_status_fields(http::HeaderList* fields, Code code, std::string_view message) {
  std::string encoded;
  append_percent_encoded(&encoded, message);
  fields->emplace_back("grpc-status", std::to_string(static_cast<int>(code)));
  fields->emplace_back("grpc-message", std::move(encoded));
}

Code make_trailers_only(http::ErrorResponse* e, std::string_view content_type) {
  const Code code = code_for_gateway_status(e->status);
  e->status = 200;
  e->headers.emplace_back("content-type", content_type);
  append_status_fields(&e->headers, code, e->message);
  e->body.emplace();  // trailers-only: no message, not the JSON error
  e->content_type.clear();
  return code;
}

std::optional<net::Clock::duration> parse_timeout(std::string_view v) {
  if (v.size() < 2 || v.size() > 9) return std::nullopt;
  int64_t n = 0;
  for (char c : v.substr(0, v.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  using namespace std::chrono;
  switch (v.back()) {
    case 'H':
      return hours(n);
    case 'M':
      return minutes(n);
    case 'S':
      return seconds(n);
    case 'm':
      return milliseconds(n);
    case 'u':
      return microseconds(n);
    case 'n':
      return nanoseconds(n);
    default:
      return std::nullopt;
  }
}

std::string format_timeout(net::Clock::duration d) {
  using namespace std::chrono;
  // The finest unit whose count fits the 8 digits allowed, rounded up.
  const int64_t ns = std::max<int64_t>(duration_cast<nanoseconds>(d).count(), 1);
  constexpr std::array<std::pair<int64_t, char>, 6> kUnits = {{{1, 'n'},
                                                               {1'000, 'u'},
                                                               {1'000'000, 'm'},
                                                               {1'000'000'000, 'S'},
                                                               {60'000'000'000, 'M'},
                                                               {3'600'000'000'000, 'H'}}};
  for (auto [per, unit] : kUnits) {
    const int64_t count = (ns + per - 1) / per;
    if (count <= 99'999'999) return std::to_string(count) + unit;
  }
  return "99999999H";
}

void append_message_prefix(std::string* out, uint8_t flags, uint32_t length) {
  const char prefix[] = {static_cast<char>(flags), static_cast<char>(length >> 24),
                         static_cast<char>(length >> 16 & 255),
                         static_cast<char>(length >> 8 & 255), static_cast<char>(length & 255)};
  out->append(prefix, sizeof prefix);
}

bool MessageScanner::feed(std::string_view bytes, uint64_t limit) {
  size_t at = 0;
  size_t prefix_at = 0;  // where the prefix being read began in `bytes` (0: before them)
  while (at < bytes.size()) {
    if (remaining_) {
      const size_t skip = static_cast<size_t>(std::min<uint64_t>(remaining_, bytes.size() - at));
      remaining_ -= skip;
      at += skip;
      continue;
    }
    if (have_ == 0) prefix_at = at;
    prefix_[have_++] = static_cast<uint8_t>(bytes[at++]);
    if (have_ < sizeof prefix_) continue;
    have_ = 0;
    const uint32_t n = uint32_t{prefix_[1]} << 24 | uint32_t{prefix_[2]} << 16 |
                       uint32_t{prefix_[3]} << 8 | prefix_[4];
    if (n > limit) {
      too_long_ = n;
      kept_ = prefix_at;
      return false;
    }
    remaining_ = n;
  }
  kept_ = bytes.size();
  return true;
}

}  // namespace gatehouse::grpc
