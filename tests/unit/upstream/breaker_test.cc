// The circuit breaker's state machine with simulated time.
#include "upstream/breaker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace gatehouse::upstream {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using State = Breaker::State;

config::BreakerSettings settings() {
  config::BreakerSettings s;
  s.failure_rate = 0.5;
  s.min_requests = 4;
  s.window = seconds(10);
  s.open_for = seconds(30);
  s.max_open_for = seconds(100);
  s.half_open_requests = 2;
  return s;
}

const Breaker::Clock::time_point t0 = Breaker::Clock::time_point(seconds(1000));

TEST(Breaker, OpensAtTheFailureRateOnlyWithEnoughRequests) {
  auto s = settings();
  Breaker b;
  EXPECT_FALSE(b.record(s, false, t0));
  EXPECT_FALSE(b.record(s, false, t0));
  EXPECT_FALSE(b.record(s, false, t0)) << "3 requests < min_requests 4";
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.record(s, true, t0)) << "4 requests, 75% failures";
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_FALSE(b.allow(s, t0 + seconds(29)));
}

TEST(Breaker, OldFailuresLeaveTheWindow) {
  auto s = settings();
  Breaker b;
  b.record(s, false, t0);
  b.record(s, false, t0);
  b.record(s, true, t0 + seconds(11));  // the two failures are older than the window now
  b.record(s, true, t0 + seconds(11));
  EXPECT_FALSE(b.record(s, false, t0 + seconds(11)));
  EXPECT_EQ(b.state(), State::kClosed) << "1 failure of 3 in the window";
}

TEST(Breaker, HalfOpenProbesCloseOnSuccess) {
  auto s = settings();
  Breaker b;
  for (int i = 0; i < 4; ++i) b.record(s, false, t0);
  ASSERT_EQ(b.state(), State::kOpen);
  auto t = t0 + seconds(30);
  EXPECT_TRUE(b.allow(s, t));
  EXPECT_EQ(b.state(), State::kHalfOpen);
  EXPECT_TRUE(b.allow(s, t));
  EXPECT_FALSE(b.allow(s, t)) << "only half_open_requests probes";
  EXPECT_FALSE(b.record(s, true, t));
  EXPECT_TRUE(b.record(s, true, t));
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.allow(s, t));
}

TEST(Breaker, FailedProbeReopensForLongerUpToTheCap) {
  auto s = settings();
  Breaker b;
  for (int i = 0; i < 4; ++i) b.record(s, false, t0);
  auto t = t0 + seconds(30);
  ASSERT_TRUE(b.allow(s, t));
  EXPECT_TRUE(b.record(s, false, t));
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.open_until(), t + seconds(60)) << "open_for doubled";
  t = b.open_until();
  ASSERT_TRUE(b.allow(s, t));
  b.record(s, false, t);
  EXPECT_EQ(b.open_until(), t + seconds(100)) << "capped at max_open_for";
  // A success after that resets open_for for the next opening.
  t = b.open_until();
  b.allow(s, t);
  b.allow(s, t);
  b.record(s, true, t);
  b.record(s, true, t);
  ASSERT_EQ(b.state(), State::kClosed);
  for (int i = 0; i < 4; ++i) b.record(s, false, t);
  EXPECT_EQ(b.open_until(), t + seconds(30));
}

TEST(Breaker, ConsecutiveFailuresOpenItToo) {
  auto s = settings();
  s.min_requests = 1000;
  s.consecutive_failures = 3;
  Breaker b;
  b.record(s, false, t0);
  b.record(s, false, t0);
  b.record(s, true, t0);
  b.record(s, false, t0);
  b.record(s, false, t0);
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.record(s, false, t0));
  EXPECT_EQ(b.state(), State::kOpen);
}

TEST(Breaker, LostProbesAreRetriedAfterAnotherOpenFor) {
  auto s = settings();
  Breaker b;
  for (int i = 0; i < 4; ++i) b.record(s, false, t0);
  auto t = t0 + seconds(30);
  b.allow(s, t);
  b.allow(s, t);  // two probes whose answers never come
  EXPECT_FALSE(b.allow(s, t + seconds(10)));
  EXPECT_TRUE(b.allow(s, t + seconds(30)));
}

TEST(Breaker, OneBreakerPerUpstreamAndAddressWhileAConfigHoldsIt) {
  auto a = Breaker::shared("app", "127.0.0.1:1");
  EXPECT_EQ(Breaker::shared("app", "127.0.0.1:1"), a)
      << "every worker and the next config share it";
  EXPECT_NE(Breaker::shared("app", "127.0.0.1:2"), a);
  EXPECT_NE(Breaker::shared("other", "127.0.0.1:1"), a);
}

// The workers' outcomes count in one window, and each transition is seen by one caller only (it
// alone logs and counts it).
TEST(Breaker, ConcurrentOutcomesOpenItOnceAtTheSharedCount) {
  auto s = settings();
  s.min_requests = 4000;
  s.failure_rate = 1.0;
  Breaker b;
  std::atomic<int> opened{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (b.record(s, false, t0) == State::kOpen) ++opened;
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(b.state(), State::kOpen) << "4 x 1000 failures reach min_requests 4000 together";
  EXPECT_EQ(opened.load(), 1);
}

TEST(Breaker, HalfOpenProbesAreCountedAcrossWorkers) {
  auto s = settings();
  Breaker b;
  for (int i = 0; i < 4; ++i) b.record(s, false, t0);
  ASSERT_EQ(b.state(), State::kOpen);
  auto t = t0 + seconds(30);
  std::atomic<int> probes{0}, moved{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 8; ++w) {
    workers.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        std::optional<State> to;
        if (b.allow(s, t, &to)) ++probes;
        if (to) ++moved;
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(probes.load(), 2) << "half_open_requests for the process, not per worker";
  EXPECT_EQ(moved.load(), 1);
  EXPECT_FALSE(b.would_allow(s, t));
}

// Without a failure in the window, a success is only counted (no judgement is due); the counts
// still hold, so that failures later in the window are judged against every request.
TEST(Breaker, SuccessesCountTowardsTheRateJudgedAtTheNextFailure) {
  auto s = settings();
  s.min_requests = 10;
  Breaker b;
  for (int i = 0; i < 6; ++i) EXPECT_FALSE(b.record(s, true, t0));
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(b.record(s, false, t0)) << "5 of 11 < 50%";
  EXPECT_EQ(b.record(s, false, t0), State::kOpen) << "6 of 12";
}

}  // namespace
}  // namespace gatehouse::upstream
