#include "upstream/balancer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gatehouse::upstream {
namespace {

config::Upstream make_upstream(const std::vector<uint32_t>& weights, config::Balance balance) {
  config::Upstream up;
  up.name = "u";
  up.balance = balance;
  for (size_t i = 0; i < weights.size(); ++i) {
    config::Target t;
    t.address.ip = "10.0.0." + std::to_string(i + 1);
    t.address.port = 8080;
    t.weight = weights[i];
    up.targets.push_back(t);
  }
  return up;
}

TEST(SmoothWeightedTest, NginxSequenceFor511) {
  SmoothWeighted sw({5, 1, 1});
  std::string seq;
  for (int i = 0; i < 14; ++i) seq.push_back(static_cast<char>('a' + sw.next()));
  EXPECT_EQ(seq, "aabacaaaabacaa");
}

TEST(SmoothWeightedTest, ExactProportionsOverEveryCycle) {
  const std::vector<uint32_t> weights = {3, 7, 1, 4};
  const int total = 15;
  SmoothWeighted sw(weights);
  EXPECT_EQ(sw.size(), 4u);
  for (int cycle = 0; cycle < 5; ++cycle) {
    std::vector<int> counts(weights.size(), 0);
    for (int i = 0; i < total; ++i) ++counts[sw.next()];
    for (size_t t = 0; t < weights.size(); ++t) {
      EXPECT_EQ(counts[t], static_cast<int>(weights[t])) << "cycle " << cycle << " target " << t;
    }
  }
}

TEST(SmoothWeightedTest, NoLongRuns) {
  // With 2:1 the heavy target never runs more than twice in a row.
  SmoothWeighted sw({2, 1});
  std::string seq;
  for (int i = 0; i < 30; ++i) seq.push_back(static_cast<char>('a' + sw.next()));
  EXPECT_EQ(seq.find("aaa"), std::string::npos) << seq;
  EXPECT_EQ(seq.find("bb"), std::string::npos) << seq;
}

TEST(SmoothWeightedTest, ZeroWeightIsNeverPicked) {
  SmoothWeighted sw({0, 1, 2});
  for (int i = 0; i < 30; ++i) EXPECT_NE(sw.next(), 0u);
}

TEST(BalancerTest, RoundRobinCyclesEvenly) {
  auto up = make_upstream({1, 1, 1}, config::Balance::kRoundRobin);
  Balancer b(up, nullptr, 1);
  std::string seq;
  for (int i = 0; i < 9; ++i) seq.push_back(static_cast<char>('a' + b.pick({})));
  EXPECT_EQ(seq, "abcabcabc");
}

TEST(BalancerTest, RoundRobinFollowsWeights) {
  auto up = make_upstream({5, 1, 1}, config::Balance::kRoundRobin);
  Balancer b(up, nullptr, 1);
  std::string seq;
  for (int i = 0; i < 7; ++i) seq.push_back(static_cast<char>('a' + b.pick({})));
  EXPECT_EQ(seq, "aabacaa");
}

TEST(BalancerTest, SingleTargetAlwaysPicked) {
  for (auto algo : {config::Balance::kRoundRobin, config::Balance::kRandom,
                    config::Balance::kLeastRequest, config::Balance::kConsistentHash}) {
    auto up = make_upstream({3}, algo);
    HashRing ring(up.targets);
    Balancer b(up, &ring, 7);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(b.pick({"key" + std::to_string(i)}), 0u);
  }
}

TEST(BalancerTest, RandomRoughlyFollowsWeights) {
  auto up = make_upstream({1, 3, 6}, config::Balance::kRandom);
  Balancer b(up, nullptr, 12345);
  std::vector<int> counts(3, 0);
  const int n = 100'000;
  for (int i = 0; i < n; ++i) ++counts[b.pick({})];
  EXPECT_GT(counts[0], 8'500);
  EXPECT_LT(counts[0], 11'500);
  EXPECT_GT(counts[1], 27'000);
  EXPECT_LT(counts[1], 33'000);
  EXPECT_GT(counts[2], 57'000);
  EXPECT_LT(counts[2], 63'000);
}

TEST(BalancerTest, RandomDependsOnSeed) {
  auto up = make_upstream({1, 1, 1, 1}, config::Balance::kRandom);
  Balancer a(up, nullptr, 1), b(up, nullptr, 2), c(up, nullptr, 1);
  std::string sa, sb, sc;
  for (int i = 0; i < 64; ++i) {
    sa.push_back(static_cast<char>('0' + a.pick({})));
    sb.push_back(static_cast<char>('0' + b.pick({})));
    sc.push_back(static_cast<char>('0' + c.pick({})));
  }
  EXPECT_EQ(sa, sc);
  EXPECT_NE(sa, sb);
}

TEST(BalancerTest, LeastRequestPrefersFewerInFlight) {
  auto up = make_upstream({1, 1}, config::Balance::kLeastRequest);
  Balancer b(up, nullptr, 99);
  b.started(0);
  b.started(0);
  b.started(1);
  EXPECT_EQ(b.in_flight(0), 2u);
  EXPECT_EQ(b.in_flight(1), 1u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(b.pick({}), 1u);

  b.finished(0);
  b.finished(0);
  EXPECT_EQ(b.in_flight(0), 0u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(b.pick({}), 0u);
}

TEST(BalancerTest, LeastRequestAvoidsTheBusiestOfMany) {
  auto up = make_upstream({1, 1, 1, 1}, config::Balance::kLeastRequest);
  Balancer b(up, nullptr, 5);
  for (int i = 0; i < 10; ++i) b.started(2);
  std::vector<int> counts(4, 0);
  for (int i = 0; i < 1000; ++i) ++counts[b.pick({})];
  // Two distinct random choices: the busy target loses every comparison it takes part in.
  EXPECT_EQ(counts[2], 0);
  for (size_t t : {0u, 1u, 3u}) EXPECT_GT(counts[t], 200) << t;
}

TEST(BalancerTest, LeastRequestWeighsInFlightByWeight) {
  auto up = make_upstream({4, 1}, config::Balance::kLeastRequest);
  Balancer b(up, nullptr, 3);
  // 3 in flight on a weight-4 target is a lighter load (0.75) than 1 on a weight-1 target.
  for (int i = 0; i < 3; ++i) b.started(0);
  b.started(1);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(b.pick({}), 0u);
  // With nothing in flight the heavier target wins the tie.
  for (int i = 0; i < 3; ++i) b.finished(0);
  b.finished(1);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(b.pick({}), 0u);
}

TEST(HashRingTest, SameKeySameTarget) {
  auto up = make_upstream({1, 1, 1, 1}, config::Balance::kConsistentHash);
  HashRing ring(up.targets);
  HashRing again(up.targets);
  Balancer b1(up, &ring, 1), b2(up, &again, 2);
  for (int k = 0; k < 200; ++k) {
    std::string key = "user-" + std::to_string(k);
    size_t t = b1.pick({key});
    EXPECT_EQ(b1.pick({key}), t) << key;
    EXPECT_EQ(b2.pick({key}), t) << key;  // every worker maps a key alike
    EXPECT_EQ(ring.pick(hash64(key)), t);
  }
}

TEST(HashRingTest, SpreadsKeysOverAllTargets) {
  auto up = make_upstream({1, 1, 1, 1}, config::Balance::kConsistentHash);
  HashRing ring(up.targets);
  std::vector<int> counts(4, 0);
  for (int k = 0; k < 10'000; ++k) ++counts[ring.pick(hash64("key-" + std::to_string(k)))];
  for (int c : counts) {
    EXPECT_GT(c, 1'500);
    EXPECT_LT(c, 3'500);
  }
}

TEST(HashRingTest, FollowsWeights) {
  auto up = make_upstream({1, 3}, config::Balance::kConsistentHash);
  HashRing ring(up.targets);
  int heavy = 0;
  for (int k = 0; k < 10'000; ++k) heavy += ring.pick(hash64("key-" + std::to_string(k))) == 1;
  EXPECT_GT(heavy, 6'500);
  EXPECT_LT(heavy, 8'500);
}

TEST(HashRingTest, AddingATargetMovesAboutOneFifthOfKeysAllToTheNewTarget) {
  auto four = make_upstream({1, 1, 1, 1}, config::Balance::kConsistentHash);
  auto five = make_upstream({1, 1, 1, 1, 1}, config::Balance::kConsistentHash);
  HashRing before(four.targets), after(five.targets);
  const int n = 10'000;
  int moved = 0;
  for (int k = 0; k < n; ++k) {
    uint64_t h = hash64("session-" + std::to_string(k));
    size_t a = before.pick(h), b = after.pick(h);
    if (a != b) {
      ++moved;
      EXPECT_EQ(b, 4u) << "key " << k << " moved between old targets";
    }
  }
  EXPECT_GT(moved, n / 10);
  EXPECT_LT(moved, n * 3 / 10);
}

TEST(HashRingTest, KeyHashAboveTheLastPointWrapsAround) {
  auto up = make_upstream({1, 1}, config::Balance::kConsistentHash);
  HashRing ring(up.targets);
  EXPECT_EQ(ring.pick(UINT64_MAX), ring.pick(0));
}

TEST(BalancerTest, ConsistentHashWithoutKeyFallsBackToWeightedRandom) {
  auto up = make_upstream({1, 1}, config::Balance::kConsistentHash);
  HashRing ring(up.targets);
  Balancer b(up, &ring, 11);
  std::vector<int> counts(2, 0);
  for (int i = 0; i < 2'000; ++i) ++counts[b.pick({})];
  EXPECT_GT(counts[0], 800);
  EXPECT_GT(counts[1], 800);
}

TEST(Hash64Test, DistinguishesNearbyInputs) {
  EXPECT_EQ(hash64("abc"), hash64("abc"));
  EXPECT_NE(hash64("abc"), hash64("abd"));
  EXPECT_NE(hash64(""), hash64("a"));
  // The finaliser spreads nearby keys over the high bits too (a ring position is the whole hash).
  std::vector<bool> seen(256, false);
  int distinct = 0;
  for (int k = 0; k < 256; ++k) {
    auto top = hash64("key-" + std::to_string(k)) >> 56;
    if (!seen[top]) ++distinct;
    seen[top] = true;
  }
  EXPECT_GT(distinct, 120);  // ~162 expected for uniform hashes
}

TEST(RandomTest, BelowStaysInRange) {
  Random r(42);
  for (int i = 0; i < 1000; ++i) EXPECT_LT(r.below(7), 7u);
  EXPECT_EQ(r.below(0), 0u);
  Random z(0);
  EXPECT_NE(z.next(), 0u);  // a zero seed must not give a stuck generator
}

}  // namespace
}  // namespace gatehouse::upstream

namespace gatehouse::upstream {
namespace {

// ---- picks among allowed targets (a retry, or a first pick refused by health or a breaker) ----

TEST(BalancerAllowedTest, EveryAlgorithmPicksOnlyAllowedTargets) {
  const std::vector<uint8_t> allowed = {0, 1, 0, 1};
  for (auto balance : {config::Balance::kRoundRobin, config::Balance::kRandom,
                       config::Balance::kLeastRequest, config::Balance::kConsistentHash}) {
    auto up = make_upstream({5, 1, 5, 1}, balance);
    HashRing ring(up.targets);
    Balancer b(up, balance == config::Balance::kConsistentHash ? &ring : nullptr, 7);
    for (int i = 0; i < 200; ++i) {
      std::string key = "user-" + std::to_string(i);
      size_t t = b.pick(PickInput{key}, allowed);
      ASSERT_TRUE(t == 1 || t == 3) << static_cast<int>(balance) << " picked " << t;
    }
  }
}

TEST(BalancerAllowedTest, NoneAllowedIsNone) {
  auto up = make_upstream({1, 1}, config::Balance::kRoundRobin);
  Balancer b(up, nullptr, 1);
  EXPECT_EQ(b.pick({}, std::vector<uint8_t>{0, 0}), kNone);
  EXPECT_EQ(b.pick({}, std::vector<uint8_t>{0, 1}), 1u);
}

// The allowed targets share the picks by their weights: round robin exactly, random roughly.
TEST(BalancerAllowedTest, WeightsHoldAmongTheAllowed) {
  const std::vector<uint8_t> allowed = {0, 1, 1};
  auto rr_up = make_upstream({100, 3, 1}, config::Balance::kRoundRobin);
  Balancer rr(rr_up, nullptr, 1);
  std::vector<int> counts(3, 0);
  for (int i = 0; i < 400; ++i) ++counts[rr.pick({}, allowed)];
  EXPECT_EQ(counts, (std::vector<int>{0, 300, 100}));

  auto random_up = make_upstream({100, 3, 1}, config::Balance::kRandom);
  Balancer random(random_up, nullptr, 3);
  counts.assign(3, 0);
  for (int i = 0; i < 4000; ++i) ++counts[random.pick({}, allowed)];
  EXPECT_EQ(counts[0], 0);
  EXPECT_NEAR(counts[1] / 4000.0, 0.75, 0.04);
}

// With round robin, picks among the others (retries) leave the plain rotation's shares intact.
TEST(BalancerAllowedTest, RoundRobinRetriesDoNotStealTheNextTurn) {
  auto up = make_upstream({1, 1}, config::Balance::kRoundRobin);
  Balancer b(up, nullptr, 1);
  std::vector<int> first(2, 0);
  for (int i = 0; i < 10; ++i) {
    size_t t = b.pick({});
    ++first[t];
    if (t == 0) {
      EXPECT_EQ(b.pick({}, std::vector<uint8_t>{0, 1}), 1u);  // a retry off target 0
    }
  }
  EXPECT_EQ(first, (std::vector<int>{5, 5}));
}

// A key's retry walks the ring to the next allowed target, the same one every time.
TEST(BalancerAllowedTest, ConsistentHashSkipsToTheNextAllowedTargetOnTheRing) {
  auto up = make_upstream({1, 1, 1, 1}, config::Balance::kConsistentHash);
  HashRing ring(up.targets);
  Balancer b(up, &ring, 1);
  for (int i = 0; i < 50; ++i) {
    std::string key = "k" + std::to_string(i);
    size_t home = b.pick(PickInput{key});
    std::vector<uint8_t> allowed(4, 1);
    allowed[home] = 0;
    size_t next = b.pick(PickInput{key}, allowed);
    EXPECT_NE(next, home);
    EXPECT_EQ(b.pick(PickInput{key}, allowed), next);
  }
}

}  // namespace
}  // namespace gatehouse::upstream
