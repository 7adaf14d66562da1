#include "filters/jwt_auth/jwks_fetcher.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <list>

#include "filters/jwt_auth/key_store.h"
#include "http/url.h"
#include "observe/log.h"

namespace gatehouse::filters {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
constexpr auto use_task = asio::as_tuple(asio::use_awaitable);
constexpr std::chrono::seconds kFetchTimeout{5};
constexpr size_t kMaxJwksBytes = 1 << 20;

class Fetcher final : public Background {
 public:
  explicit Fetcher(asio::io_context& io)
      : io_(io), tick_(io), tls_(asio::ssl::context::tls_client) {
    tls_.set_default_verify_paths();
    tls_.set_verify_mode(asio::ssl::verify_peer);
    tls_.set_options(asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    schedule(std::chrono::milliseconds(0));
  }

  void stop() override {
    stopped_ = true;
    tick_.cancel();
    for (auto& cancel : in_flight_) cancel();
  }

 private:
  void schedule(std::chrono::milliseconds after) {
    tick_.expires_after(after);
    tick_.async_wait([this](boost::system::error_code ec) {
      if (ec || stopped_) return;
      for (auto& store : KeyStore::url_stores()) {
        if (due(*store)) start_fetch(store);
      }
      schedule(std::chrono::seconds(1));
    });
  }

  static bool due(KeyStore& s) {
    if (s.fetching) return false;
    auto now = KeyStore::Clock::now();
    if (s.failures > 0 || !s.keys()) {
      auto backoff = std::chrono::seconds(std::min(30, 1 << std::min(s.failures, 5)));
      if (s.failures > 0 && now - s.last_attempt < backoff) return false;
      s.take_refresh_wish();
      return true;
    }
    if (now - s.last_success >= s.refresh()) return true;
    return now - s.last_attempt >= KeyStore::kMinRefetch && s.take_refresh_wish();
  }

  void start_fetch(std::shared_ptr<KeyStore> store) {
    store->fetching = true;
    store->last_attempt = KeyStore::Clock::now();
    asio::co_spawn(io_, fetch(store), [this, store](std::exception_ptr e, std::string error) {
      store->fetching = false;
      if (e) error = "unexpected failure";
      if (error.empty()) {
        store->failures = 0;
        store->last_success = KeyStore::Clock::now();
        return;
      }
      ++store->failures;
      spdlog::warn("jwks: fetching {} failed ({}); {}", store->url(), error,
                   store->keys() ? "the keys fetched before stay in use" : "no keys yet");
    });
  }

  // Fetches and installs the JWKS; returns an error text, empty on success.
  asio::awaitable<std::string> fetch(std::shared_ptr<KeyStore> store) {
    std::string why;
    auto url = gatehouse::http::parse_url(store->url(), &why);
    if (!url) co_return "bad URL: " + why;
    const bool tls = url->scheme == "https";
    if (!tls && url->scheme != "http") co_return "bad URL: not http:// or https://";
    tcp::resolver resolver(io_);
    auto [rec, endpoints] =
        co_await resolver.async_resolve(url->host, std::to_string(url->port), use_task);
    if (rec) co_return "cannot resolve " + url->host + ": " + rec.message();

    beast::ssl_stream<beast::tcp_stream> stream(io_, tls_);
    auto& tcp_layer = beast::get_lowest_layer(stream);
    auto cancel = in_flight_.insert(in_flight_.end(), [&tcp_layer] { tcp_layer.close(); });
    struct Forget {
      std::list<std::function<void()>>& list;
      std::list<std::function<void()>>::iterator it;
      ~Forget() { list.erase(it); }
    } forget{in_flight_, cancel};

    tcp_layer.expires_after(kFetchTimeout);
    auto [cec, ep] = co_await tcp_layer.async_connect(endpoints, use_task);
    if (cec) co_return "cannot connect: " + cec.message();

    http::request<http::empty_body> req{http::verb::get, url->path, 11};
    req.set(http::field::host, url->host);
    req.set(http::field::accept, "application/json");
    req.set(http::field::user_agent, "gatehouse-jwks");
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxJwksBytes);
    beast::flat_buffer buffer;
    boost::system::error_code ec;
    if (tls) {
      // SNI and host name verification (RFC 6125) for the identity provider's certificate.
      SSL_set_tlsext_host_name(stream.native_handle(), url->host.c_str());
      stream.set_verify_callback(asio::ssl::host_name_verification(url->host));
      std::tie(ec) = co_await stream.async_handshake(asio::ssl::stream_base::client, use_task);
      if (ec) co_return "TLS: " + ec.message();
      std::tie(ec, std::ignore) = co_await http::async_write(stream, req, use_task);
      if (!ec)
        std::tie(ec, std::ignore) = co_await http::async_read(stream, buffer, parser, use_task);
    } else {
      std::tie(ec, std::ignore) = co_await http::async_write(tcp_layer, req, use_task);
      if (!ec)
        std::tie(ec, std::ignore) = co_await http::async_read(tcp_layer, buffer, parser, use_task);
    }
    if (ec) co_return ec.message();
    auto& res = parser.get();
    if (res.result_int() != 200) co_return "HTTP status " + std::to_string(res.result_int());

    std::string error;
    std::vector<std::string> skipped;
    auto set = jwt::parse_jwks(res.body(), &error, &skipped);
    if (!set) co_return "not a JWKS: " + error;
    for (const auto& s : skipped) spdlog::warn("jwks: {}: key skipped: {}", store->url(), s);
    if (set->keys.empty()) co_return "no usable key in the JWKS";
    size_t n = set->keys.size();
    store->set_keys(std::move(*set));
    spdlog::info("jwks: {} key(s) from {}", n, store->url());
    co_return std::string();
  }

  asio::io_context& io_;
  asio::steady_timer tick_;
  asio::ssl::context tls_;
  bool stopped_ = false;
  std::list<std::function<void()>> in_flight_;
};

}  // namespace

std::unique_ptr<Background> start_jwks_fetcher(boost::asio::io_context& io) {
  return std::make_unique<Fetcher>(io);
}

}  // namespace gatehouse::filters
