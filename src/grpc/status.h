// gRPC over HTTP/2 as the gateway needs it (https://github.com/grpc/grpc/blob/master/doc/
// PROTOCOL-HTTP2.md): which requests are gRPC calls, the status codes and how the gateway's own
// answers map onto them, the percent-encoded status message, and the grpc-timeout header.
// Pure functions, no I/O: the exchange and the upstream client use them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "http/error_response.h"
#include "http/message.h"
#include "net/asio.h"

namespace gatehouse::grpc {

// The status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
enum class Code : uint8_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};
constexpr int kCodes = 17;

// "UNAVAILABLE" for kUnavailable; the lower-case form ("unavailable") is the config's.
std::string_view code_name(Code c);
std::optional<Code> code_from_config_name(std::string_view lower);

// A gRPC call: Content-Type application/grpc, alone or with a subtype ("+proto", "+json") or
// parameters. gRPC-Web (application/grpc-web...) is not one: it is translated, not proxied as is.
bool is_grpc_content_type(std::string_view content_type);
// The Content-Type of the gateway's own answer to a request of this Content-Type: that of a gRPC
// call ("application/grpc") or of a gRPC-Web one ("application/grpc-web", or
// "application/grpc-web-text"); empty for any other request.
std::string_view answer_content_type(std::string_view content_type);

// The code a gateway answer of this HTTP status stands for: the table of docs/grpc.md, after
// gRPC's own mapping of HTTP statuses (doc/http-grpc-status-mapping.md), made precise where the
// gateway knows more than a status says: its timeouts are DEADLINE_EXCEEDED, its rate limits and
// size limits RESOURCE_EXHAUSTED, a path it has no route for UNIMPLEMENTED.
Code code_for_gateway_status(int http_status);

// The HTTP status a code stands for: google.rpc.Code's table (google/rpc/code.proto), used where
// an upstream's gRPC status must be told in HTTP terms (breakers, metrics, transcoding).
int http_status_for(Code c);

// The status of a trailers-only response (grpc-status in the head itself): none for a head that
// starts a response with messages, or a status that is not a number of 0 to 16.
std::optional<Code> trailers_only_status(const http::ResponseHead& head);
std::optional<Code> parse_code(std::string_view v);

// The status message as grpc-message carries it: UTF-8 with every byte outside printable ASCII,
// and '%', percent-encoded.
void append_percent_encoded(std::string* out, std::string_view message);
// The fields that end a call with `code`: grpc-status, and grpc-message (`message`,
// percent-encoded); in a trailers-only head, or in trailers.
void append_status_fields(http::HeaderList* fields, Code code, std::string_view message);

// The gateway's own answer `e` to a gRPC call, made a trailers-only response: HTTP 200,
// Content-Type application/grpc, grpc-status and grpc-message (the answer's message) in the one
// HEADERS, no body. Its other fields (Retry-After, WWW-Authenticate, the rate-limit fields) stay,
// as metadata. The code it carries.
Code make_trailers_only(http::ErrorResponse* e, std::string_view content_type);

// grpc-timeout (TimeoutValue TimeoutUnit: at most 8 digits, then H, M, S, m, u or n). None when
// malformed.
std::optional<net::Clock::duration> parse_timeout(std::string_view v);
// `d` as a grpc-timeout value (rounded up to the unit, so a server never gets more than is left;
// at least 1n).
std::string format_timeout(net::Clock::duration d);

// A message's prefix (gRPC's framing): a flag byte (0: a message, not compressed; gRPC-Web's
// 0x80: its trailers), then the length, 4 bytes big-endian.
void append_message_prefix(std::string* out, uint8_t flags, uint32_t length);

// Walks a stream of length-prefixed messages (gRPC's framing: a compressed-flag byte, the
// message's length in 4 bytes big-endian, the message), piece by piece as it streams, to hold
// each message's length to a limit without buffering any message.
class MessageScanner {
 public:
  // The next bytes of the stream. False, with too_long() the offending length, once a message
  // longer than `limit` starts; `bytes` up to kept() come before it (the messages to pass on).
  bool feed(std::string_view bytes, uint64_t limit);
  uint32_t too_long() const { return too_long_; }
  size_t kept() const { return kept_; }

 private:
  uint8_t prefix_[5] = {};
  size_t kept_ = 0;
  size_t have_ = 0;         // bytes of the current prefix seen
  uint64_t remaining_ = 0;  // bytes of the current message still to come
  uint32_t too_long_ = 0;
};

}  // namespace gatehouse::grpc
