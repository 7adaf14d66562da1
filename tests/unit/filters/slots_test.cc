#include "filters/slots.h"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <string>

namespace gatehouse::filters {
namespace {

// Counts live instances, to see every value destroyed exactly once, whether kept in place or
// (too large) on the heap, through the vector's growth and the context's move.
struct Counted {
  static inline int live = 0;
  explicit Counted(std::string s) : text(std::move(s)) { ++live; }
  Counted(Counted&& o) noexcept : text(std::move(o.text)) { ++live; }
  Counted& operator=(Counted&&) noexcept = default;
  ~Counted() { --live; }
  std::string text;
};
struct Large {
  Counted c{"large"};
  std::array<char, 200> pad{};
};

const SlotKey<std::shared_ptr<int>> kShared{"shared"};
const SlotKey<Counted> kCounted{"counted"};
const SlotKey<Large> kLarge{"large"};
const SlotKey<int> kUnset{"unset"};

TEST(Slots, KeepsOneValuePerKeyAndReleasesThemAll) {
  auto shared = std::make_shared<int>(7);
  {
    Slots slots;
    slots.set(kShared, shared);
    slots.set(kCounted, Counted(std::string(40, 'x')));  // a heap string: moved, never copied
    slots.set(kLarge, Large{});
    EXPECT_EQ(shared.use_count(), 2);
    EXPECT_EQ(**slots.get(kShared), 7);
    EXPECT_EQ(slots.get(kCounted)->text, std::string(40, 'x'));
    EXPECT_EQ(slots.get(kLarge)->c.text, "large");
    EXPECT_EQ(slots.get(kUnset), nullptr);
    EXPECT_EQ(Counted::live, 2);

    slots.set(kCounted, Counted("again"));  // replaced in place
    EXPECT_EQ(slots.get(kCounted)->text, "again");
    EXPECT_EQ(Counted::live, 2);

    Slots moved = std::move(slots);  // as a background request takes the cache's slots
    EXPECT_EQ(moved.get(kCounted)->text, "again");
    EXPECT_EQ(moved.get(kLarge)->c.text, "large");
    moved.clear();
    EXPECT_EQ(Counted::live, 0);
    EXPECT_EQ(shared.use_count(), 1);
    moved.set(kShared, shared);  // usable again after clear()
    EXPECT_EQ(shared.use_count(), 2);
  }
  EXPECT_EQ(shared.use_count(), 1);
  EXPECT_EQ(Counted::live, 0);
}

}  // namespace
}  // namespace gatehouse::filters
