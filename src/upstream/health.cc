#include "upstream/health.h"

#include <list>

#include "config/shared_by_key.h"
#include "http/parser.h"
#include "observe/log.h"
#include "net/asio.h"
#include "net/stream.h"

namespace gatehouse::upstream {
namespace {

config::SharedByKey<Health>& registry() {
  static config::SharedByKey<Health> targets;
  return targets;
}

// The status code on the first line of `head` (read as the proxy reads a status line), or 0.
int status_of(std::string_view head) {
  auto end = head.find("\r\n");
  http::ResponseHead response;
  http::ParseError err;
  if (end == std::string_view::npos || !http::parse_status_line(head.substr(0, end), &response, &err)) return 0;
  return response.status;
}

class Checker final : public HealthChecker {
 public:
  explicit Checker(net::asio::io_context& io) : io_(io), tick_(io.get_executor()) {
    schedule(std::chrono::steady_clock::now());
  }
  void stop() override {
    stopped_ = true;
    tick_.cancel();
    for (auto* s : in_flight_) {
      boost::system::error_code ec;
      s->close(ec);
    }
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

  // One check: connect (and the TLS handshake), GET the path, read the status line; all within
  // the timeout, which closes the socket when it passes.
  net::Task<> check(std::shared_ptr<Health> h) {
    net::Stream s(io_.get_executor());
    in_flight_.push_back(&s.socket());
    struct Forget {
      std::list<net::Socket*>& l;
      net::Socket* s;
      ~Forget() { l.remove(s); }
    } forget{in_flight_, &s.socket()};
    net::Timer deadline(io_.get_executor(), h->settings.timeout);
    deadline.async_wait([&s](boost::system::error_code ec) {
      if (!ec) {
        boost::system::error_code ignored;
        s.socket().close(ignored);
      }
    });
    int status = 0;
    boost::system::error_code ec;
    auto colon = h->address.rfind(':');
    auto host = h->address.substr(0, colon);
    if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
    auto ip = net::asio::ip::make_address(host, ec);
    if (!ec) {
      net::tcp::endpoint ep(ip, static_cast<uint16_t>(std::stoi(h->address.substr(colon + 1))));
      std::tie(ec) = co_await s.socket().async_connect(ep, net::use_task);
      bool ok = !ec;
      if (ok) s.socket().non_blocking(true, ec);
      if (ok && h->tls) {
        ok = s.start_tls_client(*h->tls, h->server_name, nullptr);
        if (ok) ok = co_await s.handshake();
      }
      std::string req = "GET " + h->settings.path + " HTTP/1.1\r\nHost: " + h->address +
                        "\r\nUser-Agent: gatehouse-health-check\r\nConnection: close\r\n\r\n";
      std::string_view a = req, b;
      if (ok) ok = s.send_now(a, b);
      if (ok && !a.empty()) ok = co_await s.send_rest(a, b, nullptr);
      char buf[256];
      size_t got = 0;
      while (ok && got < sizeof buf && std::string_view(buf, got).find('\n') == std::string_view::npos) {
        auto read = co_await s.read_some(net::asio::buffer(buf + got, sizeof buf - got));
        size_t n = std::get<1>(read);
        ok = !std::get<0>(read) && n > 0;
        got += n;
      }
      status = status_of(std::string_view(buf, got));
      s.drop();
    }
    deadline.cancel();
    bool passed = std::any_of(h->settings.expected_statuses.begin(), h->settings.expected_statuses.end(),
                              [&](auto range) { return status >= range.first && status <= range.second; });
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
        spdlog::info("health: {} target {} is healthy{}", h.upstream, h.address, first ? "" : " again");
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
  std::list<net::Socket*> in_flight_;
};

}  // namespace

std::shared_ptr<Health> Health::shared(const std::string& upstream, const config::Target& target,
                                       const config::HealthCheck& settings,
                                       std::shared_ptr<const tls::ClientContext> tls) {
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
  return h;
}

std::unique_ptr<HealthChecker> start_health_checks(boost::asio::io_context& io) {
  return std::make_unique<Checker>(io);
}

}  // namespace gatehouse::upstream
