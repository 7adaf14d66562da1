#include "admin/admin.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "admin/dashboard_assets.h"
#include "http/cookie.h"
#include "http/error_response.h"
#include "http/parser.h"
#include "http/url.h"
#include "net/buffer.h"

namespace gatehouse::admin {
namespace {

constexpr size_t kMaxRequest = 16 * 1024;
constexpr size_t kMaxBody = 64 * 1024;  // a purge's JSON
constexpr auto kIdle = std::chrono::seconds(30);
// The dashboard's pages load nothing from elsewhere, and run only the gateway's own script.
constexpr std::string_view kPageHeaders =
    "Content-Security-Policy: default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'\r\nX-Content-Type-Options: nosniff\r\n";

std::string response(int status, std::string_view content_type, std::string_view body,
                     std::string_view extra_headers = {}) {
  std::string out =
      "HTTP/1.1 " + std::to_string(status) + " " + std::string(http::reason_phrase(status)) +
      "\r\nContent-Type: " + std::string(content_type) +
      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nCache-Control: no-store\r\n";
  out.append(extra_headers).append("\r\n").append(body);
  return out;
}

// The dashboard's cookie: the admin token, set by POST /dashboard/login for a browser, which
// cannot send Authorization on a page load. HttpOnly (no script reads it), SameSite=Strict (no
// other site's page sends it, so no other site can POST /reload with it).
constexpr std::string_view kTokenCookie = "gatehouse_admin";

// The token from an HTML form's body (application/x-www-form-urlencoded: token=...).
std::string form_token(std::string_view body) {
  for (std::string_view rest = body; !rest.empty();) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    if (pair.substr(0, 6) == "token=") {
      std::string value(pair.substr(6)), out;
      std::replace(value.begin(), value.end(), '+', ' ');
      return http::percent_decode(value, &out) ? out : std::string();
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return {};
}

std::string json_error(int status, std::string_view code, std::string_view message) {
  std::string body = "{\"error\":\"";
  http::append_json_escaped(&body, code);
  body += "\",\"message\":\"";
  http::append_json_escaped(&body, message);
  body += "\"}\n";
  return response(status, "application/json", body);
}

// Constant-time comparison of a presented bearer token with the configured one.
// The token presented is the configured one.
bool token_is(std::string_view presented, const std::string& token) {
  // Compare over the configured token's length whatever was presented, so the time taken says
  // nothing about how much of it matched.
  std::string padded(presented.substr(0, token.size()));
  padded.resize(token.size(), '\0');
  bool same = CRYPTO_memcmp(padded.data(), token.data(), token.size()) == 0;
  return same && presented.size() == token.size();
}

// An Authorization field that presents the token: "Bearer <token>".
bool token_matches(std::string_view authorization, const std::string& token) {
  constexpr std::string_view kScheme = "Bearer ";
  return authorization.size() >= kScheme.size() &&
         http::iequals(authorization.substr(0, kScheme.size()), kScheme) &&
         token_is(authorization.substr(kScheme.size()), token);
}

}  // namespace

AdminServer::AdminServer(net::asio::io_context& io, AdminHandler& handler, std::string token)
    : io_(io), handler_(handler), token_(std::move(token)) {}

AdminServer::~AdminServer() = default;

bool AdminServer::listen(const config::SocketAddress& address, std::string* error) {
  net::tcp::endpoint ep(net::asio::ip::make_address(address.ip), address.port);
  acceptor_ = std::make_unique<net::Acceptor>(io_.get_executor());
  boost::system::error_code ec;
  acceptor_->open(ep.protocol(), ec);
  if (!ec) acceptor_->set_option(net::asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_->bind(ep, ec);
  if (!ec) acceptor_->listen(128, ec);
  if (ec) {
    *error = "cannot listen on " + address.to_string() + " (admin): " + ec.message();
    return false;
  }
  net::asio::co_spawn(io_.get_executor(), accept_loop(), net::asio::detached);
  return true;
}

net::tcp::endpoint AdminServer::local_endpoint() const {
  boost::system::error_code ec;
  return acceptor_->local_endpoint(ec);
}

void AdminServer::close() {
  boost::system::error_code ec;
  if (acceptor_) acceptor_->close(ec);
}

net::Task<> AdminServer::accept_loop() {
  while (acceptor_->is_open()) {
    auto [ec, socket] = co_await acceptor_->async_accept(net::use_task);
    if (ec == net::asio::error::operation_aborted) break;
    if (ec) continue;
    net::asio::co_spawn(io_.get_executor(), serve(net::Socket(std::move(socket))),
                        net::asio::detached);
  }
}

net::Task<> AdminServer::serve(net::Socket socket) {
  net::Buffer in;
  http::RequestHead req;
  net::Timer idle(io_.get_executor());
  // The admin API is for operators and scrapers: one request at a time, a plain idle cut-off.
  idle.expires_after(kIdle);
  idle.async_wait([&socket](boost::system::error_code ec) {
    if (!ec) {
      boost::system::error_code ignored;
      socket.close(ignored);
    }
  });
  bool keep_alive = true;
  while (keep_alive) {
    size_t end = 0;
    while (!(end = http::find_head_end(in.data(), 0))) {
      if (in.size() >= kMaxRequest) co_return;
      auto [ptr, room] = in.prepare(4096, kMaxRequest);
      auto [ec, n] = co_await socket.async_read_some(net::asio::buffer(ptr, room), net::use_task);
      if (ec) co_return;
      in.commit(n);
    }
    http::ParseError err;
    std::string out;
    if (http::parse_request_head(in.data().substr(0, end), http::ParseLimits{}, &req, &err) !=
        http::ParseStatus::kComplete) {
      out = json_error(err.status, err.code, err.message);
      keep_alive = false;
    } else {
      const bool chunked = req.framing == http::Framing::kChunked;
      const uint64_t body_len =
          req.framing == http::Framing::kContentLength ? req.content_length : 0;
      keep_alive = req.keep_alive && !chunked;
      std::string path(req.path), method(req.method), auth(req.get("authorization"));
      // A browser's dashboard: the token comes in its cookie.
      std::string cookie_token;
      if (!http::percent_decode(http::cookie_value(req, kTokenCookie), &cookie_token))
        cookie_token.clear();
      // A scraper that asks for OpenMetrics gets it (exemplars need it), as Prometheus asks.
      const bool openmetrics =
          req.get("accept").find("application/openmetrics-text") != std::string_view::npos;
      in.consume(end);  // req's views are dead from here on
      // A body (a purge's JSON) comes with a Content-Length, small.
      std::string body;
      bool body_ok = !chunked && body_len <= kMaxBody;
      while (body_ok && in.size() < body_len) {
        auto [ptr, room] = in.prepare(4096, kMaxRequest + kMaxBody);
        auto [ec, n] = co_await socket.async_read_some(net::asio::buffer(ptr, room), net::use_task);
        if (ec) co_return;
        in.commit(n);
      }
      if (body_ok) {
        body.assign(in.data().substr(0, body_len));
        in.consume(body_len);
      }
      // The login form is open (it checks the token itself), and so is /dashboard, which shows
      // the form when the token is wanted and missing.
      const bool open_path =
          path == "/healthz" || path == "/dashboard/login" || path == "/dashboard";
      const bool authorized = token_.empty() || token_matches(auth, token_) ||
                              (!cookie_token.empty() && token_is(cookie_token, token_));
      if (!body_ok) {
        out = json_error(413, "body_too_large",
                         "admin requests take a body of at most 64 KiB, with a Content-Length");
        keep_alive = false;
      } else if (!open_path && !authorized) {
        out = json_error(401, "unauthorized", "the admin API needs Authorization: Bearer <token>");
      } else if (path == "/healthz" && (method == "GET" || method == "HEAD")) {
        out = response(200, "application/json", "{\"status\":\"ok\"}\n");
      } else if (path == "/readyz" && (method == "GET" || method == "HEAD")) {
        out = handler_.ready() ? response(200, "application/json", "{\"status\":\"ready\"}\n")
                               : response(503, "application/json", "{\"status\":\"draining\"}\n");
      } else if (path == "/status" && method == "GET") {
        out = response(200, "application/json", co_await handler_.status_json());
      } else if (path == "/metrics" && method == "GET") {
        // One co_await, outside any conditional expression (GCC 12 miscompiles one inside).
        std::string text = co_await handler_.metrics_text(openmetrics);
        out = response(200,
                       openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                   : "text/plain; version=0.0.4; charset=utf-8",
                       text);
      } else if (path == "/reload" && method == "POST") {
        auto [ok, answer] = handler_.reload();
        out = response(ok ? 200 : 400, "application/json", answer);
      } else if (path == "/dashboard" && (method == "GET" || method == "HEAD")) {
        out = authorized ? response(200, "text/html; charset=utf-8", kDashboardHtml, kPageHeaders)
                         : response(401, "text/html; charset=utf-8", kLoginHtml, kPageHeaders);
      } else if (path == "/dashboard/app.js" && method == "GET") {
        out = response(200, "text/javascript; charset=utf-8", kDashboardJs);
      } else if (path == "/dashboard/login" && method == "POST") {
        const std::string token = form_token(body);
        if (token_.empty()) {  // nothing to sign in to: the dashboard is open
          out = response(303, "text/plain", "", "Location: /dashboard\r\n");
        } else if (token_is(token, token_)) {
          std::string cookie =
              "Location: /dashboard\r\nSet-Cookie: " + std::string(kTokenCookie) + "=";
          http::append_percent_encoded(&cookie, token);  // any token, as a cookie's octets
          cookie += "; Path=/; HttpOnly; SameSite=Strict\r\n";
          out = response(303, "text/plain", "", cookie);
        } else {
          out = response(401, "text/html; charset=utf-8", kLoginHtml, kPageHeaders);
        }
      } else if (path == "/cache/purge" && method == "POST") {
        auto [status, answer] = co_await handler_.purge_cache(body);
        out = response(status, "application/json", answer);
      } else if (path == "/healthz" || path == "/readyz" || path == "/status" ||
                 path == "/metrics" || path == "/reload" || path == "/cache/purge" ||
                 path == "/dashboard" || path == "/dashboard/app.js" ||
                 path == "/dashboard/login") {
        const bool post = path == "/reload" || path == "/cache/purge" || path == "/dashboard/login";
        out = response(405, "application/json",
                       "{\"error\":\"method_not_allowed\",\"message\":\"method not allowed\"}\n",
                       post ? "Allow: POST\r\n" : "Allow: GET, HEAD\r\n");
      } else {
        out = json_error(404, "not_found", "no admin endpoint " + path);
      }
      if (method == "HEAD") out.resize(out.find("\r\n\r\n") + 4);
    }
    if (!keep_alive) out.insert(out.find("\r\n") + 2, "Connection: close\r\n");
    auto [ec, n] = co_await net::asio::async_write(socket, net::asio::buffer(out), net::use_task);
    if (ec) break;
  }
  idle.cancel();
}

}  // namespace gatehouse::admin
