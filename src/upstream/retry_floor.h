// The floor under an upstream's retry budget, one per upstream per process: retries that a quiet
// service always gets, `min_retries_per_second` of them, refilled with time (Finagle's
// RetryBudget keeps such a minimum; Envoy's min_retry_concurrency plays the same part). The
// percentage part of the budget is earned by each worker's own requests (upstream::Client); a
// retry that finds that empty takes a token here, so a failure storm stays capped by the
// percentage plus this rate, while a service with little traffic still has its retries.
// Taken only when a retry is due, so a mutex costs nothing on the request path.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace gatehouse::upstream {

class RetryFloor {
 public:
  using Clock = std::chrono::steady_clock;

  // The one floor of `upstream`, shared while any config holds it.
  static std::shared_ptr<RetryFloor> shared(const std::string& upstream);

  // Takes a token, if one is left, from a bucket refilled at `per_second` that holds at most one
  // second's worth (it starts full).
  bool take(uint32_t per_second, Clock::time_point now);

 private:
  std::mutex mutex_;
  double tokens_ = -1;  // < 0: not used yet (full)
  Clock::time_point refilled_{};
};

}  // namespace gatehouse::upstream
