#include "upstream/health.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <list>

#include "config/shared_by_key.h"
#include "observe/log.h"

namespace gatehouse::upstream {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
constexpr auto use_task = asio::as_tuple(asio::use_awaitable);

config::SharedByKey<Health>& registry() {
  static config::SharedByKey<Health> targets;
  return targets;
}

class Checker final : public HealthChecker {
 public:
  explicit Checker(asio::io_context& io) : io_(io), tick_(io) { schedule(); }
  void stop() override {
    stopped_ = true;
    tick_.cancel();
    for (auto* s : in_flight_) {
      boost::system::error_code ec;
      s->close(ec);
    }
  }

 private:
  void schedule() {
    tick_.expires_after(std::chrono::milliseconds(20));
    tick_.async_wait([this](boost::system::error_code ec) {
      if (ec || stopped_) return;
      auto now = std::chrono::steady_clock::now();
      for (auto& h : registry().live()) {
        if (h->checking || now < h->next_check) continue;
        h->checking = true;
        h->next_check = now + h->settings.interval;
        asio::co_spawn(io_, check(h), asio::detached);
      }
      schedule();
    });
  }

  // One check: connect, and (plain HTTP) GET the path; a 2xx or 3xx status line within the
  // timeout is a success.
  asio::awaitable<void> check(std::shared_ptr<Health> h) {
    tcp::socket s(io_);
    in_flight_.push_back(&s);
    struct Forget {
      std::list<tcp::socket*>& l;
      tcp::socket* s;
      ~Forget() { l.remove(s); }
    } forget{in_flight_, &s};
    asio::steady_timer deadline(io_, h->settings.timeout);
    deadline.async_wait([&s](boost::system::error_code ec) {
      if (!ec) {
        boost::system::error_code ignored;
        s.close(ignored);
      }
    });
    bool ok = false;
    boost::system::error_code ec;
    auto colon = h->address.rfind(':');
    auto host = h->address.substr(0, colon);
    if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
    auto ip = asio::ip::make_address(host, ec);
    if (!ec) {
      tcp::endpoint ep(ip, static_cast<uint16_t>(std::stoi(h->address.substr(colon + 1))));
      std::tie(ec) = co_await s.async_connect(ep, use_task);
      if (!ec && h->tls) {
        ok = true;
      } else if (!ec) {
        std::string req = "GET " + h->settings.path + " HTTP/1.1\r\nHost: " + h->address +
                          "\r\nUser-Agent: gatehouse-health-check\r\nConnection: close\r\n\r\n";
        std::tie(ec, std::ignore) = co_await asio::async_write(s, asio::buffer(req), use_task);
        char buf[64];
        size_t got = 0;
        while (!ec && got < 12) {
          size_t n = 0;
          std::tie(ec, n) = co_await s.async_read_some(asio::buffer(buf + got, sizeof buf - got), use_task);
          got += n;
        }
        // "HTTP/1.1 204 ..."
        ok = got >= 12 && std::string_view(buf, 5) == "HTTP/" && (buf[9] == '2' || buf[9] == '3');
      }
    }
    deadline.cancel();
    record(*h, ok);
    h->checking = false;
  }

  void record(Health& h, bool ok) {
    if (ok) {
      h.failures = 0;
      if (!h.healthy() && ++h.successes >= h.settings.healthy_after) {
        h.set_healthy(true);
        ++h.transitions;
        spdlog::info("health: {} target {} is healthy again", h.upstream, h.address);
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

  asio::io_context& io_;
  asio::steady_timer tick_;
  bool stopped_ = false;
  std::list<tcp::socket*> in_flight_;
};

}  // namespace

std::shared_ptr<Health> Health::shared(const std::string& upstream, const config::Target& target,
                                       const config::HealthCheck& settings, bool tls) {
  std::string address = target.address.to_string();
  auto h = registry().get(upstream + " " + address, [&] {
    auto fresh = std::make_shared<Health>();
    fresh->upstream = upstream;
    fresh->address = address;
    return fresh;
  });
  h->settings = settings;  // read by the checker on the main thread, which also loads configs
  h->tls = tls;
  return h;
}

std::unique_ptr<HealthChecker> start_health_checks(boost::asio::io_context& io) {
  return std::make_unique<Checker>(io);
}

}  // namespace gatehouse::upstream
