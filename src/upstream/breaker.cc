#include "upstream/breaker.h"

#include <algorithm>

#include "config/shared_by_key.h"

namespace gatehouse::upstream {

const char* state_name(Breaker::State s) {
  switch (s) {
    case Breaker::State::kClosed:
      return "closed";
    case Breaker::State::kOpen:
      return "open";
    case Breaker::State::kHalfOpen:
      return "half_open";
  }
  return "";
}

std::shared_ptr<Breaker> Breaker::shared(const std::string& upstream, const std::string& address) {
  static config::SharedByKey<Breaker> registry;
  return registry.get(upstream + " " + address, [] { return std::make_shared<Breaker>(); });
}

// --- admission -------------------------------------------------------------------------------

bool Breaker::allow(const Settings& s, Clock::time_point now, std::optional<State>* moved) {
  switch (state()) {
    case State::kClosed:
      return true;
    case State::kOpen:
      if (now < open_until()) return false;
      break;
    case State::kHalfOpen:
      break;
  }
  std::lock_guard lock(mutex_);
  switch (state_.load(std::memory_order_relaxed)) {
    case State::kClosed:  // closed by another worker's probe meanwhile
      return true;
    case State::kOpen:
      if (now < open_until()) return false;
      state_.store(State::kHalfOpen, std::memory_order_release);
      half_open_since_ = now;
      probes_ = probe_successes_ = 0;
      if (moved) *moved = State::kHalfOpen;
      break;
    case State::kHalfOpen:
      if (now - half_open_since_ >= open_for_) {  // probes lost: try again
        half_open_since_ = now;
        probes_ = probe_successes_ = 0;
      }
      break;
  }
  if (probes_ >= s.half_open_requests) return false;
  ++probes_;
  return true;
}

bool Breaker::would_allow(const Settings& s, Clock::time_point now) const {
  switch (state()) {
    case State::kClosed:
      return true;
    case State::kOpen:
      return now >= open_until();
    case State::kHalfOpen:
      break;
  }
  std::lock_guard lock(mutex_);
  return now - half_open_since_ >= open_for_ || probes_ < s.half_open_requests;
}

// --- outcomes --------------------------------------------------------------------------------

uint64_t Breaker::slice_of(const Settings& s, Clock::time_point now) {
  auto slice = std::max<Clock::duration>(s.window / kBuckets, std::chrono::milliseconds(1));
  return static_cast<uint64_t>(now.time_since_epoch() / slice);
}

void Breaker::count(uint64_t slice, bool success) {
  auto& bucket = buckets_[slice % kBuckets];
  const uint64_t stamp = slice & kSliceMask;
  uint64_t word = bucket.load(std::memory_order_relaxed), next;
  do {
    uint64_t total = 0, failures = 0;
    if (word >> (2 * kCountBits) == stamp) {  // else it counts an older slice: start afresh
      total = word >> kCountBits & kCountMax;
      failures = word & kCountMax;
    }
    if (total < kCountMax) {
      ++total;
      failures += success ? 0 : 1;
    }
    next = stamp << (2 * kCountBits) | total << kCountBits | failures;
  } while (!bucket.compare_exchange_weak(word, next, std::memory_order_relaxed));
}

Breaker::Counts Breaker::window(uint64_t slice) const {
  Counts c;
  for (const auto& bucket : buckets_) {
    uint64_t word = bucket.load(std::memory_order_relaxed);
    // Older than the window: skipped. A slice a little ahead (another worker's clock read came
    // later) counts.
    uint64_t age = (slice - (word >> (2 * kCountBits))) & kSliceMask;
    if (age >= kBuckets && age <= kSliceMask - kBuckets) continue;
    c.total += word >> kCountBits & kCountMax;
    c.failures += word & kCountMax;
  }
  return c;
}

std::optional<Breaker::State> Breaker::record(const Settings& s, bool success,
                                              Clock::time_point now) {
  switch (state()) {
    case State::kOpen:
      return std::nullopt;  // a late answer to a request sent before the breaker opened
    case State::kHalfOpen: {
      std::lock_guard lock(mutex_);
      if (state_.load(std::memory_order_relaxed) != State::kHalfOpen) return std::nullopt;
      if (!success) {
        open(s, now, /*again=*/true);
        return State::kOpen;
      }
      if (++probe_successes_ >= s.half_open_requests) {
        close();
        return State::kClosed;
      }
      return std::nullopt;
    }
    case State::kClosed:
      break;
  }
  const uint64_t slice = slice_of(s, now);
  count(slice, success);
  if (success) {
    if (consecutive_.load(std::memory_order_relaxed)) consecutive_.store(0);
    // A success can only tip the rate when failures are in the window: without one (the common
    // case), no lock and no sum.
    uint64_t last = last_failure_slice_.load(std::memory_order_relaxed);
    if (!last || slice - (last - 1) >= kBuckets) return std::nullopt;
  } else {
    last_failure_slice_.store(slice + 1, std::memory_order_relaxed);
    consecutive_.fetch_add(1);
  }
  std::lock_guard lock(mutex_);
  if (state_.load(std::memory_order_relaxed) != State::kClosed) return std::nullopt;
  bool in_a_row = s.consecutive_failures && consecutive_.load() >= s.consecutive_failures;
  Counts c = window(slice);
  if (in_a_row ||
      (c.total >= s.min_requests && static_cast<double>(c.failures) >= s.failure_rate * c.total)) {
    open(s, now, /*again=*/false);
    return State::kOpen;
  }
  return std::nullopt;
}

void Breaker::open(const Settings& s, Clock::time_point now, bool again) {
  open_for_ = again ? std::min<Clock::duration>(open_for_ * 2, s.max_open_for)
                    : Clock::duration(s.open_for);
  open_until_.store((now + open_for_).time_since_epoch().count(), std::memory_order_release);
  state_.store(State::kOpen, std::memory_order_release);
  clear_counts();
}

void Breaker::close() {
  state_.store(State::kClosed, std::memory_order_release);
  clear_counts();
}

void Breaker::clear_counts() {
  for (auto& bucket : buckets_) bucket.store(0, std::memory_order_relaxed);
  last_failure_slice_.store(0, std::memory_order_relaxed);
  consecutive_.store(0);
}

}  // namespace gatehouse::upstream
