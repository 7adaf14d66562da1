#include "upstream/breaker.h"

#include <algorithm>

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

bool Breaker::allow(Clock::time_point now) {
  if (!s_) return true;
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kOpen:
      if (now < open_until_) return false;
      state_ = State::kHalfOpen;
      half_open_since_ = now;
      probes_ = probe_successes_ = 0;
      break;
    case State::kHalfOpen:
      if (now - half_open_since_ >= open_for_) {  // probes lost: try again
        half_open_since_ = now;
        probes_ = probe_successes_ = 0;
      }
      break;
  }
  if (probes_ >= s_->half_open_requests) return false;
  ++probes_;
  return true;
}

bool Breaker::would_allow(Clock::time_point now) const {
  if (!s_) return true;
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kOpen:
      return now >= open_until_;
    case State::kHalfOpen:
      return now - half_open_since_ >= open_for_ || probes_ < s_->half_open_requests;
  }
  return false;
}

Breaker::Bucket& Breaker::current(Clock::time_point now) {
  auto slice = std::max<Clock::duration>(s_->window / kBuckets, std::chrono::milliseconds(1));
  int64_t index = now.time_since_epoch() / slice;
  if (index - bucket_index_ >= static_cast<int64_t>(kBuckets)) {
    buckets_.fill({});
  } else {
    for (int64_t i = bucket_index_ + 1; i <= index; ++i) buckets_[i % kBuckets] = {};
  }
  bucket_index_ = std::max(bucket_index_, index);
  return buckets_[bucket_index_ % kBuckets];
}

bool Breaker::record(bool success, Clock::time_point now) {
  if (!s_) return false;
  switch (state_) {
    case State::kOpen:
      return false;  // a late answer to a request sent before the breaker opened
    case State::kHalfOpen:
      if (!success) {
        open(now, /*again=*/true);
        return true;
      }
      if (++probe_successes_ >= s_->half_open_requests) {
        close();
        return true;
      }
      return false;
    case State::kClosed:
      break;
  }
  Bucket& b = current(now);
  ++b.total;
  if (!success) ++b.failures;
  consecutive_ = success ? 0 : consecutive_ + 1;
  if (s_->consecutive_failures && consecutive_ >= s_->consecutive_failures) {
    open(now, false);
    return true;
  }
  uint64_t total = 0, failures = 0;
  for (const auto& x : buckets_) {
    total += x.total;
    failures += x.failures;
  }
  if (total >= s_->min_requests && static_cast<double>(failures) >= s_->failure_rate * total) {
    open(now, false);
    return true;
  }
  return false;
}

void Breaker::open(Clock::time_point now, bool again) {
  open_for_ = again ? std::min<Clock::duration>(open_for_ * 2, s_->max_open_for)
                    : Clock::duration(s_->open_for);
  open_until_ = now + open_for_;
  state_ = State::kOpen;
  buckets_.fill({});
  consecutive_ = 0;
}

void Breaker::close() {
  state_ = State::kClosed;
  buckets_.fill({});
  consecutive_ = 0;
}

}  // namespace gatehouse::upstream
