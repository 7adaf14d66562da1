// The circuit breaker's state machine with simulated time.
#include "upstream/breaker.h"

#include <gtest/gtest.h>

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
  Breaker b(&s);
  EXPECT_FALSE(b.record(false, t0));
  EXPECT_FALSE(b.record(false, t0));
  EXPECT_FALSE(b.record(false, t0)) << "3 requests < min_requests 4";
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.record(true, t0)) << "4 requests, 75% failures";
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_FALSE(b.allow(t0 + seconds(29)));
}

TEST(Breaker, OldFailuresLeaveTheWindow) {
  auto s = settings();
  Breaker b(&s);
  b.record(false, t0);
  b.record(false, t0);
  b.record(true, t0 + seconds(11));  // the two failures are older than the window now
  b.record(true, t0 + seconds(11));
  EXPECT_FALSE(b.record(false, t0 + seconds(11)));
  EXPECT_EQ(b.state(), State::kClosed) << "1 failure of 3 in the window";
}

TEST(Breaker, HalfOpenProbesCloseOnSuccess) {
  auto s = settings();
  Breaker b(&s);
  for (int i = 0; i < 4; ++i) b.record(false, t0);
  ASSERT_EQ(b.state(), State::kOpen);
  auto t = t0 + seconds(30);
  EXPECT_TRUE(b.allow(t));
  EXPECT_EQ(b.state(), State::kHalfOpen);
  EXPECT_TRUE(b.allow(t));
  EXPECT_FALSE(b.allow(t)) << "only half_open_requests probes";
  EXPECT_FALSE(b.record(true, t));
  EXPECT_TRUE(b.record(true, t));
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.allow(t));
}

TEST(Breaker, FailedProbeReopensForLongerUpToTheCap) {
  auto s = settings();
  Breaker b(&s);
  for (int i = 0; i < 4; ++i) b.record(false, t0);
  auto t = t0 + seconds(30);
  ASSERT_TRUE(b.allow(t));
  EXPECT_TRUE(b.record(false, t));
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.open_until(), t + seconds(60)) << "open_for doubled";
  t = b.open_until();
  ASSERT_TRUE(b.allow(t));
  b.record(false, t);
  EXPECT_EQ(b.open_until(), t + seconds(100)) << "capped at max_open_for";
  // A success after that resets open_for for the next opening.
  t = b.open_until();
  b.allow(t);
  b.allow(t);
  b.record(true, t);
  b.record(true, t);
  ASSERT_EQ(b.state(), State::kClosed);
  for (int i = 0; i < 4; ++i) b.record(false, t);
  EXPECT_EQ(b.open_until(), t + seconds(30));
}

TEST(Breaker, ConsecutiveFailuresOpenItToo) {
  auto s = settings();
  s.min_requests = 1000;
  s.consecutive_failures = 3;
  Breaker b(&s);
  b.record(false, t0);
  b.record(false, t0);
  b.record(true, t0);
  b.record(false, t0);
  b.record(false, t0);
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.record(false, t0));
  EXPECT_EQ(b.state(), State::kOpen);
}

TEST(Breaker, LostProbesAreRetriedAfterAnotherOpenFor) {
  auto s = settings();
  Breaker b(&s);
  for (int i = 0; i < 4; ++i) b.record(false, t0);
  auto t = t0 + seconds(30);
  b.allow(t);
  b.allow(t);  // two probes whose answers never come
  EXPECT_FALSE(b.allow(t + seconds(10)));
  EXPECT_TRUE(b.allow(t + seconds(30)));
}

TEST(Breaker, WithoutSettingsItNeverOpens) {
  Breaker b;
  for (int i = 0; i < 100; ++i) b.record(false, t0);
  EXPECT_TRUE(b.allow(t0));
}

}  // namespace
}  // namespace gatehouse::upstream
