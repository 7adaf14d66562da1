// The circuit breaker's hot path (src/upstream/breaker.h): what a request to a healthy target pays,
// allow() before it and record(success) after it, on one thread and on two threads sharing the
// process-wide breaker as two workers do; against a plain per-thread counter (what a MetricsShard
// costs), a shared atomic counter (the price of any word two cores write) and a clock read.
//
//   cmake --build build --target breaker_bench && build/breaker_bench
// Figures and the exact command: docs/benchmarks.md, "Circuit breaker hot path".
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>

#include "upstream/breaker.h"

namespace {

using gatehouse::upstream::Breaker;

const Breaker::Settings& settings() {
  static const Breaker::Settings s;  // the defaults: 50% of at least 20 requests in 10 s
  return s;
}

// One breaker for every thread of a benchmark, as one target's breaker is for every worker.
Breaker& shared_breaker() {
  static Breaker b;
  return b;
}

// allow() + record(success) with the time read once per benchmark: the breaker's own cost, no
// clock. Closed, and no failure in the window: one atomic load and one compare-and-swap.
void BM_BreakerAllowRecord(benchmark::State& state) {
  Breaker& b = shared_breaker();
  const auto now = Breaker::Clock::now();
  for (auto _ : state) {
    bool allowed = b.allow(settings(), now);
    benchmark::DoNotOptimize(allowed);
    auto moved = b.record(settings(), true, now);
    benchmark::DoNotOptimize(moved);
  }
  if (b.state() != Breaker::State::kClosed) state.SkipWithError("the breaker left closed");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BreakerAllowRecord);
BENCHMARK(BM_BreakerAllowRecord)->Threads(2);

// The same with a clock read for each call, as the request path makes them (upstream.cc,
// client.cc).
void BM_BreakerAllowRecordWithClock(benchmark::State& state) {
  Breaker& b = shared_breaker();
  for (auto _ : state) {
    bool allowed = b.allow(settings(), Breaker::Clock::now());
    benchmark::DoNotOptimize(allowed);
    auto moved = b.record(settings(), true, Breaker::Clock::now());
    benchmark::DoNotOptimize(moved);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BreakerAllowRecordWithClock);
BENCHMARK(BM_BreakerAllowRecordWithClock)->Threads(2);

// Baseline: one read of the clock the breaker is given (what the variant above adds, twice).
void BM_SteadyClockNow(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(Breaker::Clock::now());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SteadyClockNow);

// Baseline: each thread counts in its own integer on its own cache line.
void BM_PerThreadCounter(benchmark::State& state) {
  struct alignas(64) Counter {
    uint64_t n = 0;
  } counter;
  for (auto _ : state) {
    ++counter.n;
    benchmark::DoNotOptimize(counter.n);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PerThreadCounter);
BENCHMARK(BM_PerThreadCounter)->Threads(2);

// Baseline: one atomic counter that every thread increments.
void BM_SharedAtomicCounter(benchmark::State& state) {
  static std::atomic<uint64_t> counter{0};
  for (auto _ : state) benchmark::DoNotOptimize(counter.fetch_add(1, std::memory_order_relaxed));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SharedAtomicCounter);
BENCHMARK(BM_SharedAtomicCounter)->Threads(2);

}  // namespace

BENCHMARK_MAIN();
