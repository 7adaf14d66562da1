// The Generic Cell Rate Algorithm (ITU-T I.371, as used by Redis's redis-cell and Stripe): a rate
// limit kept as one number per key, the theoretical arrival time (TAT) of the next request.
// A limit of `count` requests per `period` with a burst of `burst` has emission interval
// T = period / count and tolerance tau = (burst - 1) * T. A request at `now` conforms when
// TAT - now <= tau; it then moves TAT to max(TAT, now) + T. So `burst` requests may come at once,
// then one per T; a key whose TAT is in the past is the same as a key never seen (which is why
// idle keys can be dropped without changing any answer). Pure arithmetic in nanoseconds.
#pragma once

#include <algorithm>
#include <cstdint>

namespace gatehouse::filters::gcra {

struct Limit {
  int64_t interval_ns;   // T
  int64_t tolerance_ns;  // tau = (burst - 1) * T
  int64_t count;         // quota per window, for the headers
  int64_t window_s;      // the window, for the headers
};

inline Limit make_limit(int64_t count, int64_t period_ns, int64_t burst) {
  int64_t t = std::max<int64_t>(1, period_ns / count);
  return Limit{t, (std::max<int64_t>(burst, 1) - 1) * t, count,
               std::max<int64_t>(1, period_ns / 1'000'000'000)};
}

struct Decision {
  bool allowed;
  int64_t remaining;      // requests that would still conform now, after this one
  int64_t reset_s;        // seconds until the quota is whole again
  int64_t retry_after_s;  // when refused: seconds until a request would conform
};

// Decides one request at `now` against `tat` (updated when allowed). `tat` 0 = never seen.
inline Decision decide(const Limit& l, int64_t now, int64_t& tat) {
  constexpr int64_t kSecond = 1'000'000'000;
  int64_t base = std::max(tat, now);
  if (base - now > l.tolerance_ns) {
    int64_t wait = base - l.tolerance_ns - now;
    return {false, 0, (base - now + kSecond - 1) / kSecond,
            std::max<int64_t>(1, (wait + kSecond - 1) / kSecond)};
  }
  tat = base + l.interval_ns;
  int64_t ahead = tat - now;  // > 0
  int64_t remaining = ahead > l.tolerance_ns ? 0 : (l.tolerance_ns - ahead) / l.interval_ns + 1;
  return {true, remaining, (ahead + kSecond - 1) / kSecond, 0};
}

}  // namespace gatehouse::filters::gcra
