// A circuit breaker for one upstream target, per worker (each worker judges the traffic it sends;
// no lock or atomic on the request path).
//
//   closed    -> open       the failure rate over the sliding `window` reaches `failure_rate` with
//                           at least `min_requests` requests (or `consecutive_failures` in a row)
//   open      -> half-open  after `open_for`; no request reaches the target meanwhile
//   half-open -> closed     `half_open_requests` probes all succeed
//   half-open -> open       a probe fails; `open_for` doubles each time, up to `max_open_for`
// A failure is a connect error, a timeout, a reset or a 5xx answer. A half-open target whose
// probes never report back (their clients left) is probed again after another `open_for`.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

#include "config/config.h"

namespace gatehouse::upstream {

class Breaker {
 public:
  using Clock = std::chrono::steady_clock;
  enum class State : uint8_t { kClosed, kOpen, kHalfOpen };

  explicit Breaker(const config::BreakerSettings* settings = nullptr) : s_(settings) {}
  // The state of `before` (a target that stays over a reload), judged from now on by `settings`.
  Breaker(const Breaker& before, const config::BreakerSettings* settings) : Breaker(before) {
    s_ = settings;
  }

  // May the target get a request now? In half-open, each true is one probe.
  bool allow(Clock::time_point now);
  // What allow() would answer now, without taking a probe.
  bool would_allow(Clock::time_point now) const;
  // The outcome of a request that allow() let through. True when the state changed.
  bool record(bool success, Clock::time_point now);
  State state() const { return state_; }
  Clock::time_point open_until() const { return open_until_; }

 private:
  static constexpr size_t kBuckets = 10;
  struct Bucket {
    uint32_t total = 0, failures = 0;
  };
  void open(Clock::time_point now, bool again);
  void close();
  Bucket& current(Clock::time_point now);

  const config::BreakerSettings* s_;
  State state_ = State::kClosed;
  std::array<Bucket, kBuckets> buckets_{};
  int64_t bucket_index_ = 0;  // which slice of time buckets_[index % kBuckets] counts
  uint32_t consecutive_ = 0;
  Clock::time_point open_until_{}, half_open_since_{};
  Clock::duration open_for_{};
  uint32_t probes_ = 0, probe_successes_ = 0;
};

const char* state_name(Breaker::State s);

}  // namespace gatehouse::upstream
