#include "filters/cache/flights.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "filters/cache/entry.h"

namespace gatehouse::filters::cache {
namespace {

TEST(Flights, TheFirstMissLeadsAndTheOthersJoinItUntilItLands) {
  Flights f;
  auto flight = f.lead("k");
  ASSERT_TRUE(flight);
  EXPECT_FALSE(f.lead("k"));  // in the air: the next miss must join instead
  EXPECT_EQ(f.join("k"), flight);
  f.land(*flight);
  EXPECT_TRUE(flight->state().landed);
  EXPECT_EQ(f.in_air(), 0u);
  EXPECT_FALSE(f.join("k"));
  EXPECT_TRUE(f.lead("k"));  // landed: a later miss leads a new flight
}

TEST(Flights, KeysAreIndependentAndAStaleLandingLeavesTheNewFlight) {
  Flights f;
  auto a = f.lead("a");
  auto b = f.lead("b");
  ASSERT_TRUE(a && b);
  f.land(*a);
  EXPECT_EQ(f.in_air(), 1u);
  auto a2 = f.lead("a");
  f.land(*a);  // the first flight's leader again: the second flight stays in the air
  EXPECT_EQ(f.join("a"), a2);
}

TEST(Flight, TheVariantIsNamedOnlyWhenItIsNotTheFlightsKey) {
  Flights f;
  auto flight = f.lead("k");
  flight->publish(std::make_shared<Entry>(), "k", 1);
  EXPECT_EQ(flight->state().variant_key, nullptr) << "null: the flight's own key";
  auto other = f.lead("u");
  other->publish(std::make_shared<Entry>(), "u;v", 1);
  ASSERT_NE(other->state().variant_key, nullptr);
  EXPECT_EQ(*other->state().variant_key, "u;v");
  EXPECT_EQ(f.join("u"), other) << "joined by its key, not its variant's";
}

TEST(Flight, WaitersAreWokenOnTheirOwnIoContextWithEveryStep) {
  Flight flight("key", 1);
  boost::asio::io_context io;
  int woken = 0;
  flight.wait(0, io, [&] { ++woken; });
  flight.wait(0, io, [&] { ++woken; });
  io.poll();
  EXPECT_EQ(woken, 0);

  auto entry = std::make_shared<Entry>();
  auto body = new_body({}, 10);
  entry->body = body;
  flight.publish(entry, "key;variant", 10);
  EXPECT_EQ(woken, 0) << "posted, not run by the leader";
  io.restart();
  io.poll();
  EXPECT_EQ(woken, 2);

  Flight::State st = flight.state();
  EXPECT_EQ(st.entry, entry);
  EXPECT_EQ(*st.variant_key, "key;variant");
  EXPECT_EQ(st.length, 10u);
  EXPECT_EQ(st.received, 0u);

  flight.wait(st.version, io, [&] { ++woken; });
  body->append("hello");
  flight.advance(5);
  io.restart();
  io.poll();
  EXPECT_EQ(woken, 3);
  EXPECT_EQ(flight.state().received, 5u);

  // A wait for a version already passed is woken at once.
  flight.wait(st.version, io, [&] { ++woken; });
  io.restart();
  io.poll();
  EXPECT_EQ(woken, 4);

  // The last bytes come with the landing, in one change: a waiter wakes once to all of it.
  flight.wait(flight.state().version, io, [&] { ++woken; });
  body->append("world");
  flight.land(10);
  io.restart();
  io.poll();
  EXPECT_EQ(woken, 5);
  EXPECT_TRUE(flight.state().landed);
  EXPECT_EQ(flight.state().received, 10u);
  const uint64_t v = flight.state().version;
  flight.land();  // once
  EXPECT_EQ(flight.state().version, v);
  EXPECT_EQ(flight.state().received, 10u);
}

}  // namespace
}  // namespace gatehouse::filters::cache
