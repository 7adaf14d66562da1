// Active health checks (`health_check` on an upstream): the main thread asks every target
// `GET path` each `interval` (over TLS for `tls` upstreams, verified as requests are);
// `unhealthy_after` failures in a row take it out of the balancer, `healthy_after` successes bring
// it back. A success is a status in `expected_statuses` within `timeout`. One check per target for
// the whole process (not one per worker); workers read the verdict, a flag shared across reloads by
// upstream and address: a target that stays keeps its state; a new one starts in `initial_state`,
// and when that is unhealthy its first passing check suffices (as Envoy does at start-up), so a
// target added by a reload is not kept out for healthy_after intervals.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"

namespace boost::asio {
class io_context;
}

namespace gatehouse::upstream {

class Health {
 public:
  bool healthy() const { return healthy_.load(std::memory_order_relaxed); }

  // The state of `address` in `upstream` (live if some config already checks it), with the
  // settings of the config being loaded.
  static std::shared_ptr<Health> shared(const std::string& upstream, const config::Target& target,
                                        const config::HealthCheck& settings,
                                        std::shared_ptr<const tls::ClientContext> tls,
                                        bool http2 = false);

  // Main thread only.
  std::string upstream, address;
  config::HealthCheck settings;
  std::shared_ptr<const tls::ClientContext> tls;  // null: plain HTTP
  std::string server_name;                        // TLS: SNI and the name the certificate carries
  bool http2 = false;                             // the upstream speaks HTTP/2
  std::chrono::steady_clock::time_point next_check{};
  bool checking = false;
  bool checked = false;  // a check has finished
  uint32_t failures = 0, successes = 0;
  std::atomic<uint64_t> transitions{0};  // read by scrapes (main thread too, but kept atomic)
  void set_healthy(bool h) { healthy_.store(h, std::memory_order_relaxed); }

 private:
  std::atomic<bool> healthy_{true};
};

class HealthChecker {
 public:
  virtual ~HealthChecker() = default;
  virtual void stop() = 0;
};
// Checks every live Health on `io` until stop().
std::unique_ptr<HealthChecker> start_health_checks(boost::asio::io_context& io);

}  // namespace gatehouse::upstream
