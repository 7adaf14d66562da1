// Response heads from upstreams: parse_response_head for a GET and for a HEAD, then the head the
// gateway sends to its client. Invariants: a parsed head re-serialised parses to the same head;
// GET and HEAD agree on everything but the body; the head built for the client parses, with the
// same status and framing, and without the upstream's hop-by-hop fields.
#include <string>
#include <string_view>

#include "fuzz/fuzz.h"
#include "fuzz/head_checks.h"
#include "http/parser.h"
#include "http/proxy_headers.h"

namespace {

using namespace gatehouse;
using namespace gatehouse::http;

std::string serialise(const ResponseHead& h) {
  std::string s = "HTTP/1.";
  s += static_cast<char>('0' + h.minor_version);
  s += ' ';
  s += std::to_string(h.status);
  if (!h.reason.empty()) s.append(" ").append(h.reason);
  s.append("\r\n");
  fuzz::append_fields(h.headers, &s);
  return s;
}

void check_same(const ResponseHead& a, const ResponseHead& b) {
  FUZZ_CHECK(a.status == b.status);
  FUZZ_CHECK(a.reason == b.reason);
  FUZZ_CHECK(a.minor_version == b.minor_version);
  FUZZ_CHECK(a.framing == b.framing);
  FUZZ_CHECK(a.content_length == b.content_length);
  FUZZ_CHECK(a.keep_alive == b.keep_alive);
  FUZZ_CHECK(a.upgrade == b.upgrade);
  fuzz::check_same_fields(a.headers, b.headers);
}

// Names the gateway itself writes into the client's response.
bool gateway_field(std::string_view name) {
  for (std::string_view n : {"transfer-encoding", "connection", "via", "x-request-id"}) {
    if (iequals(name, n)) return true;
  }
  return false;
}

void check_client_response(const ResponseHead& resp, std::string_view method) {
  ResponseInfo info;
  info.request_id_header = "x-request-id";
  info.request_id = "fuzz";
  info.chunked = resp.framing == Framing::kChunked;
  info.close = !resp.keep_alive;
  std::string out;
  build_client_response(resp, info, &out);

  ParseLimits roomy;
  roomy.max_headers = resp.headers.size() + 8;
  ResponseHead sent;
  ParseError err;
  FUZZ_CHECK(find_head_end(out, 0) == out.size());
  FUZZ_CHECK(parse_response_head(out, roomy, method, &sent, &err) == ParseStatus::kComplete);
  FUZZ_CHECK(sent.status == resp.status);
  FUZZ_CHECK(sent.minor_version == 1);
  if (!resp.reason.empty()) FUZZ_CHECK(sent.reason == resp.reason);
  // The client must frame the body as the gateway sends it.
  FUZZ_CHECK(sent.framing == resp.framing);
  FUZZ_CHECK(sent.content_length == resp.content_length);
  FUZZ_CHECK(sent.keep_alive == resp.keep_alive);
  for (const auto& f : resp.headers) {
    if (!f.hop_by_hop || gateway_field(f.name)) continue;
    for (const auto& g : sent.headers) FUZZ_CHECK(!iequals(g.name, f.name));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = fuzz::as_text(data, size);
  size_t end = find_head_end(in, 0);
  if (end == 0) return 0;
  std::string_view head = in.substr(0, end);

  ParseLimits limits;
  ResponseHead get, head_resp;
  ParseError err, head_err;
  ParseStatus status = parse_response_head(head, limits, "GET", &get, &err);
  ParseStatus head_status = parse_response_head(head, limits, "HEAD", &head_resp, &head_err);
  FUZZ_CHECK(status == head_status);
  if (status == ParseStatus::kError) {
    FUZZ_CHECK(err.status == 502 && !err.message.empty());
    return 0;
  }
  if (status != ParseStatus::kComplete) return 0;

  // A HEAD response never has a body; otherwise both read the same head.
  FUZZ_CHECK(head_resp.framing == Framing::kNone);
  FUZZ_CHECK(get.status >= 100 && get.status <= 999);
  FUZZ_CHECK(get.head_bytes == head.size());
  FUZZ_CHECK(head_resp.status == get.status && head_resp.headers.size() == get.headers.size());
  if (get.framing == Framing::kUntilClose) FUZZ_CHECK(!get.keep_alive);
  if (get.status < 200 || get.status == 204 || get.status == 304)
    FUZZ_CHECK(get.framing == Framing::kNone);

  // The status line alone reads the same.
  ResponseHead line_only;
  FUZZ_CHECK(parse_status_line(head.substr(0, head.find("\r\n")), &line_only, &err));
  FUZZ_CHECK(line_only.status == get.status && line_only.reason == get.reason);

  for (const ResponseHead* r : {&get, &head_resp}) {
    std::string again = serialise(*r);
    ResponseHead r2;
    std::string_view method = r == &get ? "GET" : "HEAD";
    FUZZ_CHECK(parse_response_head(again, limits, method, &r2, &err) == ParseStatus::kComplete);
    check_same(*r, r2);
    FUZZ_CHECK(r2.head_bytes == again.size());
    check_client_response(*r, method);
  }
  return 0;
}
