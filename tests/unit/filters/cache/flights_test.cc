#include "filters/cache/flights.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

namespace gatehouse::filters::cache {
namespace {

TEST(Flights, TheFirstMissLeadsAndTheOthersWaitForItToLand) {
  Flights f;
  boost::asio::io_context io;
  EXPECT_TRUE(f.lead("k"));
  EXPECT_FALSE(f.lead("k"));  // in the air: the next miss must join instead
  int woken = 0;
  EXPECT_TRUE(f.join("k", io, [&] { ++woken; }));
  EXPECT_TRUE(f.join("k", io, [&] { ++woken; }));
  io.poll();
  EXPECT_EQ(woken, 0);
  f.land("k");
  EXPECT_EQ(woken, 0);  // posted to the waiters' own io_context, not run by the leader
  io.restart();
  io.poll();
  EXPECT_EQ(woken, 2);
  EXPECT_EQ(f.in_air(), 0u);
  EXPECT_TRUE(f.lead("k"));  // landed: a later miss leads a new flight
}

TEST(Flights, JoiningNoFlightSaysSo) {
  Flights f;
  boost::asio::io_context io;
  bool woken = false;
  EXPECT_FALSE(f.join("none", io, [&] { woken = true; }));
  io.poll();
  EXPECT_FALSE(woken);
  f.land("none");  // landing nothing is harmless
}

TEST(Flights, KeysAreIndependent) {
  Flights f;
  boost::asio::io_context io;
  EXPECT_TRUE(f.lead("a"));
  EXPECT_TRUE(f.lead("b"));
  int a = 0, b = 0;
  f.join("a", io, [&] { ++a; });
  f.join("b", io, [&] { ++b; });
  f.land("a");
  io.poll();
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 0);
  EXPECT_EQ(f.in_air(), 1u);
}

}  // namespace
}  // namespace gatehouse::filters::cache
