// Request heads from clients: find_head_end, parse_request_head, then what the proxy does with a
// parsed head. Invariants: the head's end is found the same in one piece and byte by byte; a
// parsed head re-serialised parses to the same head; tighter limits never accept what looser ones
// refuse; the head built for the upstream parses, with the same method, target and body framing
// and no hop-by-hop field of the client's; the parsed path normalises as path_checks.h says.
#include <string>
#include <string_view>

#include "fuzz/fuzz.h"
#include "fuzz/head_checks.h"
#include "fuzz/path_checks.h"
#include "http/parser.h"
#include "http/proxy_headers.h"

namespace {

using namespace gatehouse;
using namespace gatehouse::http;

std::string serialise(const RequestHead& h) {
  std::string s;
  s.append(h.method).append(" ").append(h.target).append(" HTTP/1.");
  s += static_cast<char>('0' + h.minor_version);
  s.append("\r\n");
  fuzz::append_fields(h.headers, &s);
  return s;
}

void check_same(const RequestHead& a, const RequestHead& b) {
  FUZZ_CHECK(a.method == b.method);
  FUZZ_CHECK(a.target == b.target);
  FUZZ_CHECK(a.path == b.path);
  FUZZ_CHECK(a.query == b.query);
  FUZZ_CHECK(a.host == b.host);
  FUZZ_CHECK(a.minor_version == b.minor_version);
  FUZZ_CHECK(a.framing == b.framing);
  FUZZ_CHECK(a.content_length == b.content_length);
  FUZZ_CHECK(a.keep_alive == b.keep_alive);
  FUZZ_CHECK(a.upgrade == b.upgrade);
  FUZZ_CHECK(a.expect_continue == b.expect_continue);
  fuzz::check_same_fields(a.headers, b.headers);
}

// Names the gateway itself writes into the upstream request.
bool gateway_field(std::string_view name) {
  for (std::string_view n : {"host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                             "via", "x-request-id", "transfer-encoding"}) {
    if (iequals(name, n)) return true;
  }
  return false;
}

void check_upstream_request(const RequestHead& req) {
  std::string path_and_query(req.path);
  if (req.target.find('?') != std::string_view::npos) path_and_query.append("?").append(req.query);
  ForwardInfo info;
  info.client_ip = "192.0.2.1";
  info.request_id_header = "x-request-id";
  info.request_id = "fuzz";
  info.path_and_query = path_and_query;
  info.host = req.host;
  OutgoingRequest head;
  build_upstream_request(req, info, &head);
  std::string_view out = head.text();

  ParseLimits roomy;
  roomy.max_headers = req.headers.size() + 16;  // the gateway adds its own fields
  RequestHead up;
  ParseError err;
  FUZZ_CHECK(find_head_end(out, 0) == out.size());
  FUZZ_CHECK(parse_request_head(out, roomy, &up, &err) == ParseStatus::kComplete);
  FUZZ_CHECK(up.method == req.method);
  FUZZ_CHECK(up.target == path_and_query);
  FUZZ_CHECK(up.minor_version == 1);
  FUZZ_CHECK(up.host == req.host);
  // The body must be framed exactly as the client framed it, or the upstream reads another body
  // than the one the gateway checked (request smuggling).
  FUZZ_CHECK(up.framing == req.framing);
  FUZZ_CHECK(up.content_length == req.content_length);
  FUZZ_CHECK(up.keep_alive && !up.upgrade && !up.expect_continue);
  // What an HTTP/2 upstream stream takes instead of the text says the same.
  FUZZ_CHECK(head.method() == up.method && head.target() == up.target);
  FUZZ_CHECK(head.framing() == up.framing && head.content_length() == up.content_length);
  FUZZ_CHECK(head.fields() == up.headers.size());
  for (size_t i = 0; i < head.fields() && i < up.headers.size(); ++i) {
    FUZZ_CHECK(head.field(i).name == up.headers[i].name);
    FUZZ_CHECK(head.field(i).value == up.headers[i].value);
  }
  for (const auto& f : req.headers) {
    if (!f.hop_by_hop || gateway_field(f.name)) continue;
    for (const auto& g : up.headers) FUZZ_CHECK(!iequals(g.name, f.name));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = fuzz::as_text(data, size);

  // The end of the head, in one piece and as the connection finds it while bytes trickle in.
  size_t end = find_head_end(in, 0);
  size_t found = 0, searched = 0;
  fuzz::Splitter split(in);
  for (size_t n = 0; n < in.size() && !found;) {
    n += split.piece(in.size() - n);
    found = find_head_end(in.substr(0, n), searched);
    searched = n;
  }
  FUZZ_CHECK(found == end);
  if (end == 0) return 0;
  std::string_view head = in.substr(0, end);

  ParseLimits limits;
  RequestHead req;
  ParseError err;
  ParseStatus status = parse_request_head(head, limits, &req, &err);
  if (status == ParseStatus::kError) {
    FUZZ_CHECK(err.status >= 400 && err.status <= 505 && !err.message.empty());
  }

  // Tighter limits: never accept what the default limits refuse, and parse the same when they do.
  ParseLimits tight;
  tight.max_headers = size % 7;
  tight.max_target_bytes = size % 61;
  RequestHead small;
  ParseError small_err;
  ParseStatus small_status = parse_request_head(head, tight, &small, &small_err);
  if (small_status == ParseStatus::kComplete) {
    FUZZ_CHECK(status == ParseStatus::kComplete);
    check_same(req, small);
  }
  if (status != ParseStatus::kComplete) return 0;

  FUZZ_CHECK(req.head_bytes == head.size());
  FUZZ_CHECK(req.framing != Framing::kUntilClose);
  FUZZ_CHECK((req.framing == Framing::kContentLength) == (req.content_length > 0));

  // Re-serialised, the head parses to the same head.
  std::string again = serialise(req);
  FUZZ_CHECK(find_head_end(again, 0) == again.size());
  RequestHead req2;
  FUZZ_CHECK(parse_request_head(again, limits, &req2, &err) == ParseStatus::kComplete);
  check_same(req, req2);
  FUZZ_CHECK(req2.head_bytes == again.size());

  check_upstream_request(req);

  // Routing sees the normalised path.
  if (fuzz::normaliser_input(req.path)) {
    for (bool merge : {false, true}) {
      for (bool reject : {true, false}) {
        fuzz::check_normalise(req.path, {.merge_slashes = merge, .reject_encoded_slashes = reject});
      }
    }
  }
  return 0;
}
