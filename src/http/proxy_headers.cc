#include "http/proxy_headers.h"

#include <algorithm>
#include <charconv>

namespace gatehouse::http {

using namespace std::string_view_literals;
namespace {

void append_header(std::string* out, std::string_view name, std::string_view value) {
  out->append(name).append(": "sv).append(value).append("\r\n"sv);
}

}  // namespace

bool removed_by_filter(const std::vector<std::string>* remove, std::string_view name) {
  if (!remove) return false;
  return std::any_of(remove->begin(), remove->end(),
                     [&](const std::string& r) { return iequals(r, name); });
}

std::string_view real_client_ip(const RequestHead& req, std::string_view peer, bool peer_trusted,
                                const std::vector<config::Cidr>& trusted) {
  if (!peer_trusted) return peer;
  // Walk the hops from the nearest (rightmost, last header) to the farthest.
  for (auto h = req.headers.rbegin(); h != req.headers.rend(); ++h) {
    if (h->id != HeaderId::kXForwardedFor) continue;
    std::string_view list = h->value;
    while (!list.empty()) {
      size_t comma = list.rfind(',');
      std::string_view hop =
          trim_ows(comma == std::string_view::npos ? list : list.substr(comma + 1));
      list = comma == std::string_view::npos ? std::string_view() : list.substr(0, comma);
      if (hop.empty()) continue;
      auto addr = config::parse_ip(hop);
      bool hop_trusted =
          addr && std::any_of(trusted.begin(), trusted.end(),
                              [&](const config::Cidr& c) { return c.contains(*addr); });
      if (!hop_trusted) return hop;  // the first hop no trusted proxy vouches beyond
      peer = hop;                    // all trusted so far: the farthest one seen
    }
  }
  return peer;
}

void append_query_without(std::string_view query, const std::vector<std::string>& drop,
                          std::string* out) {
  bool first = true;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    std::string_view name = pair.substr(0, pair.find('='));
    if (std::find(drop.begin(), drop.end(), name) == drop.end() && !pair.empty()) {
      if (!first) out->push_back('&');
      out->append(pair);
      first = false;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
}

void build_upstream_request(const RequestHead& req, const ForwardInfo& info, OutgoingRequest* out) {
  out->start(info.method.empty() ? req.method : info.method, info.path_and_query);
  bool host_sent = false;
  std::string xff;  // trusted chain, when the peer is a trusted proxy
  bool proto_sent = false, xhost_sent = false;
  for (const auto& h : req.headers) {
    if (h.hop_by_hop) continue;
    switch (h.id) {
      case HeaderId::kHost:
        out->add(h.name, info.host);
        host_sent = true;
        continue;
      case HeaderId::kXForwardedFor:
        // Believed only from a trusted proxy; from anyone else it is a spoofing attempt.
        if (info.peer_trusted) xff.append(xff.empty() ? "" : ", ").append(h.value);
        continue;
      case HeaderId::kXForwardedProto:
        if (!info.peer_trusted) continue;
        proto_sent = true;
        break;
      case HeaderId::kXForwardedHost:
        if (!info.peer_trusted) continue;
        xhost_sent = true;
        break;
      case HeaderId::kConsumerIdentity:
        continue;  // identity comes from the gateway's auth filters, never from the client
      case HeaderId::kTraceContext:
        if (info.replace_trace_context) continue;
        break;
      case HeaderId::kB3:
        if (info.replace_b3) continue;
        break;
      case HeaderId::kContentLength:
        if (info.body_rechunked) continue;
        break;
      default:
        break;
    }
    if (h.name.size() == info.request_id_header.size() && iequals(h.name, info.request_id_header))
      continue;
    if (removed_by_filter(info.remove, h.name)) continue;
    out->add(h.name, h.value);
  }
  if (!host_sent) out->add("Host", info.host);
  xff.append(xff.empty() ? "" : ", ").append(info.client_ip);
  out->add("X-Forwarded-For", xff);
  if (!proto_sent) out->add("X-Forwarded-Proto", info.proto);
  if (!xhost_sent && !req.host.empty()) out->add("X-Forwarded-Host", req.host);
  out->add("Via", req.minor_version == 0 ? "1.0 gatehouse" : "1.1 gatehouse");
  out->add_unique(info.request_id_header, info.request_id);
  if (info.trace) {
    for (auto& [n, v] : *info.trace) out->add_unique(n, v);
  }
  if (info.add) {
    for (auto& [n, v] : *info.add) out->add(n, v);
  }
  if (req.framing == Framing::kChunked || info.body_rechunked) {
    out->add("Transfer-Encoding", "chunked");
    out->set_body(Framing::kChunked, 0);
  } else {
    out->set_body(req.framing, req.content_length);
  }
  if (!info.upgrade.empty()) {
    // The hop-by-hop fields of an upgrade, for this hop (RFC 9110 7.8).
    out->add("Connection", "upgrade");
    out->add("Upgrade", info.upgrade);
  }
  out->finish();
}

void build_client_response(const ResponseHead& resp, const ResponseInfo& info, std::string* out) {
  char status[4];
  std::to_chars(status, status + 3, resp.status);
  out->append("HTTP/1.1 "sv).append(status, 3).append(" "sv);
  out->append(resp.reason.empty() ? reason_phrase(resp.status) : resp.reason).append("\r\n"sv);
  for_each_client_field(
      resp, info, [out](std::string_view n, std::string_view v) { append_header(out, n, v); });
  if (info.chunked) out->append("Transfer-Encoding: chunked\r\n"sv);
  if (!info.upgrade.empty()) {
    append_header(out, "Connection", "upgrade");
    append_header(out, "Upgrade", info.upgrade);
  } else if (info.close) {
    out->append("Connection: close\r\n"sv);
  } else if (info.client_http10) {
    out->append("Connection: keep-alive\r\n"sv);
  }
  out->append("\r\n"sv);
}

void build_interim_response(const ResponseHead& resp, std::string* out) {
  char status[4];
  std::to_chars(status, status + 3, resp.status);
  out->append("HTTP/1.1 "sv).append(status, 3).append(" "sv);
  out->append(resp.reason.empty() ? reason_phrase(resp.status) : resp.reason).append("\r\n"sv);
  for (const auto& h : resp.headers) {
    if (h.hop_by_hop || h.id == HeaderId::kContentLength || h.id == HeaderId::kTransferEncoding)
      continue;
    append_header(out, h.name, h.value);
  }
  append_header(out, "Via", resp.minor_version == 0 ? "1.0 gatehouse" : "1.1 gatehouse");
  out->append("\r\n"sv);
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 103:
      return "Early Hints";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace gatehouse::http
