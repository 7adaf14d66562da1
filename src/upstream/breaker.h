// A circuit breaker for one upstream target, one per process: every worker's outcomes count in the
// same window, a transition happens once, half-open probes are counted across workers, and the
// state outlives a reload for a target that stays (same upstream, same address), as Envoy keeps a
// host's outlier state over a cluster update.
//
//   closed    -> open       the failure rate over the sliding `window` reaches `failure_rate` with
//                           at least `min_requests` requests (or `consecutive_failures` in a row)
//   open      -> half-open  after `open_for`; no request reaches the target meanwhile
//   half-open -> closed     `half_open_requests` probes all succeed
//   half-open -> open       a probe fails; `open_for` doubles each time, up to `max_open_for`
// A failure is a connect error, a timeout, a reset or a 5xx answer. A half-open target whose
// probes never report back (their clients left) is probed again after another `open_for`.
//
// The cost on the request path, closed: allow() is one atomic load; record() one compare-and-swap
// on the current time bucket (a lock-free counter shared by the workers, exact, never stale) and,
// only while a failure is in the window, the lock to judge. Open and half-open take the lock: they
// are rare and short. The settings come with each call, from the caller's config, so a reload
// that changes them applies to the state as it stands and nothing outlives its config.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "config/config.h"

namespace gatehouse::upstream {

class Breaker {
 public:
  using Clock = std::chrono::steady_clock;
  using Settings = config::BreakerSettings;
  enum class State : uint8_t { kClosed, kOpen, kHalfOpen };

  // The one breaker of `address` in `upstream`, shared while any config holds it.
  static std::shared_ptr<Breaker> shared(const std::string& upstream, const std::string& address);

  // May the target get a request now? In half-open, each true is one probe. *moved: the state
  // this call moved the breaker to (open -> half-open), if it did.
  bool allow(const Settings& s, Clock::time_point now, std::optional<State>* moved = nullptr);
  // What allow() would answer now, without taking a probe.
  bool would_allow(const Settings& s, Clock::time_point now) const;
  // The outcome of a request that allow() let through. The state this call moved the breaker to,
  // if it did (exactly one caller sees each transition).
  std::optional<State> record(const Settings& s, bool success, Clock::time_point now);

  State state() const { return state_.load(std::memory_order_acquire); }
  Clock::time_point open_until() const {
    return Clock::time_point(Clock::duration(open_until_.load(std::memory_order_acquire)));
  }

 private:
  static constexpr size_t kBuckets = 10;
  // A bucket is one 64-bit word, so that the workers count in it without a lock: the slice of
  // time it counts (24 bits, modulo) | requests (20 bits) | failures (20 bits), both saturating.
  static constexpr int kCountBits = 20;
  static constexpr uint64_t kCountMax = (uint64_t{1} << kCountBits) - 1;
  static constexpr uint64_t kSliceMask = (uint64_t{1} << 24) - 1;
  struct Counts {
    uint64_t total = 0, failures = 0;
  };

  static uint64_t slice_of(const Settings& s, Clock::time_point now);
  void count(uint64_t slice, bool success);
  Counts window(uint64_t slice) const;
  // With mutex_ held.
  void open(const Settings& s, Clock::time_point now, bool again);
  void close();
  void clear_counts();

  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> last_failure_slice_{0};  // +1; 0: none yet
  std::atomic<uint32_t> consecutive_{0};
  std::atomic<State> state_{State::kClosed};
  std::atomic<Clock::rep> open_until_{0};

  mutable std::mutex mutex_;  // transitions, and the probe bookkeeping below
  Clock::time_point half_open_since_{};
  Clock::duration open_for_{};
  uint32_t probes_ = 0, probe_successes_ = 0;
};

const char* state_name(Breaker::State s);

}  // namespace gatehouse::upstream
