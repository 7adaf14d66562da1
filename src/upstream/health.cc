#include "upstream/health.h"

#include <algorithm>
#include <optional>

#include "config/shared_by_key.h"
#include "grpc/health.h"
#include "net/asio.h"
#include "observe/log.h"
#include "upstream/fetch.h"

namespace gatehouse::upstream {
namespace {

config::SharedByKey<Health>& registry() {
  static config::SharedByKey<Health> targets;
  return targets;
}

// The endpoint of a target's "ip:port" ("[v6]:port"), or nullopt.
std::optional<net::tcp::endpoint> endpoint_of(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  auto host = address.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  auto ip = net::asio::ip::make_address(host, ec);
  if (ec) return std::nullopt;
  return net::tcp::endpoint(ip, static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
}

class Checker final : public HealthChecker {
 public:
  explicit Checker(net::asio::io_context& io) : io_(io), tick_(io.get_executor()) {
    schedule(std::chrono::steady_clock::now());
  }
  void stop() override {
    stopped_ = true;
    tick_.cancel();
    in_flight_.cancel_all();
  }

 private:
  // Sleeps until the next check is due, and at most kLookAgain, so that targets a reload adds
  // are checked soon; an idle gateway without health checks wakes 4 times a second, no more.
  static constexpr auto kLookAgain = std::chrono::milliseconds(250);
  void schedule(std::chrono::steady_clock::time_point at) {
    tick_.expires_at(at);
    tick_.async_wait([this](boost::system::error_code ec) {
      if (ec || stopped_) return;
      auto now = std::chrono::steady_clock::now();
      auto next = now + kLookAgain;
      for (auto& h : registry().live()) {
        if (!h->checking && now >= h->next_check) {
          h->checking = true;
          h->next_check = now + h->settings.interval;
          net::asio::co_spawn(io_.get_executor(), check(h), net::asio::detached);
        }
        next = std::min(next, h->next_check);
      }
      schedule(std::max(next, now + std::chrono::milliseconds(1)));
    });
  }

  // One check: GET the path and read the status line, through the same streams and TLS as the
  // proxy's own upstream connections (upstream/fetch.h), all within the timeout.
  net::Task<> check(std::shared_ptr<Health> h) {
    Fetch fetch(io_.get_executor(), &in_flight_);
    FetchRequest req;
    req.tls = h->tls.get();
    req.server_name = h->server_name;
    req.http2 = h->http2;
    req.timeout = h->settings.timeout;
    if (h->settings.grpc) {
      req.head.start("POST", grpc::kHealthCheckPath);
      req.head.add("Host", h->address);
      req.head.add("Content-Type", "application/grpc");
      req.head.add("TE", "trailers");
      req.body = grpc::health_check_request(h->settings.service);
      req.head.add("Content-Length", std::to_string(req.body.size()));
      req.head.set_body(http::Framing::kContentLength, req.body.size());
      req.want_body = true;  // the status is in the message, and in the trailers
      req.max_body = 1024;
    } else {
      req.head.start("GET", h->settings.path);
      req.head.add("Host", h->address);
    }
    req.head.add("User-Agent", "gatehouse-health-check");
    req.head.add("Connection", "close");
    req.head.finish();
    FetchResult result;
    if (auto ep = endpoint_of(h->address)) {
      req.endpoint = *ep;
      result = co_await fetch.run(req);
    }
    const int status = result.status;
    bool passed = h->settings.grpc
                      ? status == 200 && grpc::health_check_serving(result.body, result.fields)
                      : std::any_of(h->settings.expected_statuses.begin(),
                                    h->settings.expected_statuses.end(), [&](auto range) {
                                      return status >= range.first && status <= range.second;
                                    });
    record(*h, passed);
    h->checking = false;
  }

  void record(Health& h, bool ok) {
    bool first = !h.checked;
    h.checked = true;
    if (ok) {
      h.failures = 0;
      if (!h.healthy() && (++h.successes >= h.settings.healthy_after || first)) {
        h.set_healthy(true);
        ++h.transitions;
        spdlog::info("health: {} target {} is healthy{}", h.upstream, h.address,
                     first ? "" : " again");
      }
    } else {
      h.successes = 0;
      if (h.healthy() && ++h.failures >= h.settings.unhealthy_after) {
        h.set_healthy(false);
        ++h.transitions;
        spdlog::warn("health: {} target {} is unhealthy ({} failed checks in a row)", h.upstream,
                     h.address, h.failures);
      }
    }
  }

  net::asio::io_context& io_;
  net::Timer tick_;
  bool stopped_ = false;
  FetchSet in_flight_;
};

}  // namespace

std::shared_ptr<Health> Health::shared(const std::string& upstream, const config::Target& target,
                                       const config::HealthCheck& settings,
                                       std::shared_ptr<const tls::ClientContext> tls, bool http2) {
  std::string address = target.address.to_string();
  auto h = registry().get(upstream + " " + address, [&] {
    auto fresh = std::make_shared<Health>();
    fresh->upstream = upstream;
    fresh->address = address;
    fresh->set_healthy(settings.initially_healthy);
    return fresh;
  });
  // Read by the checker on the main thread, which also loads configs.
  h->settings = settings;
  h->server_name = tls ? std::string(tls->server_name_for(target.host)) : std::string();
  h->tls = std::move(tls);
  h->http2 = http2;
  return h;
}

std::unique_ptr<HealthChecker> start_health_checks(boost::asio::io_context& io) {
  return std::make_unique<Checker>(io);
}

}  // namespace gatehouse::upstream
