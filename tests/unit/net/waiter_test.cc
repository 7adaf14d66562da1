// net::Waiter (src/net/waiter.h): resume() continues the waiting coroutine on the caller's stack,
// not in a later turn of the event loop; and a wait still pending when the io_context goes is
// destroyed with it, freeing what the coroutine held.
#include "net/waiter.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace gatehouse::net {
namespace {

// Waits `times` times, noting each return.
Task<> waits(Waiter& w, std::vector<int>& log, int times) {
  for (int i = 1; i <= times; ++i) {
    co_await w.wait();
    log.push_back(i);
  }
}

TEST(Waiter, ResumeContinuesTheCoroutineBeforeItReturns) {
  asio::io_context io;
  Waiter w(io.get_executor());
  std::vector<int> log;
  asio::co_spawn(io.get_executor(), waits(w, log, 2), asio::detached);
  io.poll();  // the coroutine starts, and waits
  ASSERT_TRUE(w.waiting());
  w.resume();
  // No turn of the event loop in between: the coroutine ran up to its next wait inside resume().
  EXPECT_EQ(log, std::vector<int>{1});
  EXPECT_TRUE(w.waiting());
  w.resume();
  EXPECT_EQ(log, (std::vector<int>{1, 2}));
  EXPECT_FALSE(w.waiting());
}

TEST(Waiter, ResumeWithoutAWaitIsNothing) {
  asio::io_context io;
  Waiter w(io.get_executor());
  w.resume();
  EXPECT_FALSE(w.waiting());
  std::vector<int> log;
  asio::co_spawn(io.get_executor(), waits(w, log, 1), asio::detached);
  io.poll();
  EXPECT_TRUE(log.empty());  // an earlier resume() is not remembered: the caller checks first
  w.resume();
  EXPECT_EQ(log, std::vector<int>{1});
}

// The coroutine owns (through `held`) the Waiter it waits on: a cycle that only the io_context's
// shutdown can break, as it does for its own pending operations.
Task<> waits_holding(std::shared_ptr<Waiter> held) { co_await held->wait(); }

TEST(Waiter, AWaitPendingAtShutdownIsDestroyedWithTheIoContext) {
  std::weak_ptr<Waiter> gone;
  {
    asio::io_context io;
    auto w = std::make_shared<Waiter>(io.get_executor());
    gone = w;
    asio::co_spawn(io.get_executor(), waits_holding(std::move(w)), asio::detached);
    io.poll();
    ASSERT_FALSE(gone.expired());
    ASSERT_TRUE(gone.lock()->waiting());
  }
  EXPECT_TRUE(gone.expired());
}

TEST(Waiter, TwoWaitersOnOneIoContextShutDownTogether) {
  std::weak_ptr<Waiter> a, b;
  {
    asio::io_context io;
    auto wa = std::make_shared<Waiter>(io.get_executor());
    auto wb = std::make_shared<Waiter>(io.get_executor());
    a = wa;
    b = wb;
    asio::co_spawn(io.get_executor(), waits_holding(std::move(wa)), asio::detached);
    asio::co_spawn(io.get_executor(), waits_holding(std::move(wb)), asio::detached);
    io.poll();
    // One of them resumed and finished: the other stays for the shutdown.
    a.lock()->resume();
    io.poll();
    EXPECT_TRUE(a.expired());
    ASSERT_FALSE(b.expired());
  }
  EXPECT_TRUE(b.expired());
}

}  // namespace
}  // namespace gatehouse::net
