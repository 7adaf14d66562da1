// Active health checks (`health_check` on an upstream): the main thread asks every target
// `GET path` each `interval`; `unhealthy_after` failures in a row take it out of the balancer,
// `healthy_after` successes bring it back. One check per target for the whole process (not one
// per worker); workers read the verdict, a flag shared across reloads by upstream and address (a
// target that stays keeps its state; a new target starts healthy). A success is a 2xx or 3xx
// answer within `timeout`. TLS upstreams are checked by connecting only.
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
                                        const config::HealthCheck& settings, bool tls);

  // Main thread only.
  std::string upstream, address;
  config::HealthCheck settings;
  bool tls = false;
  std::chrono::steady_clock::time_point next_check{};
  bool checking = false;
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
