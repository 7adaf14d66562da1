#include "filters/jwt_auth/jwks_fetcher.h"

#include <boost/asio/ip/basic_resolver.hpp>

#include "filters/jwt_auth/key_store.h"
#include "http/url.h"
#include "net/asio.h"
#include "observe/log.h"
#include "tls/client_context.h"
#include "upstream/fetch.h"

namespace gatehouse::filters {
namespace {

namespace asio = boost::asio;
constexpr std::chrono::seconds kFetchTimeout{5};
constexpr size_t kMaxJwksBytes = 1 << 20;

class Fetcher final : public Background {
 public:
  explicit Fetcher(asio::io_context& io) : io_(io), tick_(io) {
    schedule(std::chrono::milliseconds(0));
  }

  void stop() override {
    stopped_ = true;
    tick_.cancel();
    in_flight_.cancel_all();
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
    asio::co_spawn(
        io_.get_executor(), fetch(store), [this, store](std::exception_ptr e, std::string error) {
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
  net::Task<std::string> fetch(std::shared_ptr<KeyStore> store) {
    std::string why;
    auto url = gatehouse::http::parse_url(store->url(), &why);
    if (!url) co_return "bad URL: " + why;
    const bool https = url->scheme == "https";
    if (!https && url->scheme != "http") co_return "bad URL: not http:// or https://";
    if (https && !tls_) {
      // Identity providers are verified against the system store (SSL_CERT_FILE / SSL_CERT_DIR),
      // TLS 1.2 or later, with the URL's host name checked, through the proxy's own TLS stack.
      // Made on the first https:// fetch: loading the store is not free, and most configs never
      // fetch a key set.
      std::string error;
      tls_ = tls::ClientContext::create(tls::ClientSettings{}, &error);
      if (!tls_) co_return "TLS: " + error;
    }
    asio::ip::basic_resolver<net::tcp, net::Executor> resolver(io_.get_executor());
    auto [rec, endpoints] =
        co_await resolver.async_resolve(url->host, std::to_string(url->port), net::use_task);
    if (rec || endpoints.empty()) co_return "cannot resolve " + url->host + ": " + rec.message();

    upstream::Fetch fetch(io_.get_executor(), &in_flight_);
    const bool default_port = url->port == (https ? 443 : 80);
    std::string host = url->host.find(':') != std::string::npos ? "[" + url->host + "]" : url->host;
    if (!default_port) host += ":" + std::to_string(url->port);
    upstream::FetchRequest req;
    req.endpoint = *endpoints.begin();
    req.tls = https ? tls_.get() : nullptr;
    req.server_name = url->host;
    req.head.start("GET", url->path);
    req.head.add("Host", host);
    req.head.add("Accept", "application/json");
    req.head.add("User-Agent", "gatehouse-jwks");
    req.head.add("Connection", "close");
    req.head.finish();
    req.want_body = true;
    req.max_body = kMaxJwksBytes;
    req.timeout = kFetchTimeout;
    upstream::FetchResult res = co_await fetch.run(req);
    if (!res.error.empty()) co_return res.error;
    if (res.status != 200) co_return "HTTP status " + std::to_string(res.status);

    std::string error;
    std::vector<std::string> skipped;
    auto set = jwt::parse_jwks(res.body, &error, &skipped);
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
  std::shared_ptr<const tls::ClientContext> tls_;
  bool stopped_ = false;
  upstream::FetchSet in_flight_;
};

}  // namespace

std::unique_ptr<Background> start_jwks_fetcher(boost::asio::io_context& io) {
  return std::make_unique<Fetcher>(io);
}

}  // namespace gatehouse::filters
