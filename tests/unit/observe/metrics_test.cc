#include "observe/metrics.h"

#include <gtest/gtest.h>

namespace gatehouse::observe {
namespace {

constexpr std::string_view kOutcomes[] = {"won", "lost"};
const Family kGames{"test_games_total", "Games by route and outcome.", Family::Kind::kCounter,
                    "outcome", kOutcomes};
const Family kPlain{
    "test_plain_total", "A counter with the route only.", Family::Kind::kCounter, {}, {}};
const Family kLatency{
    "test_latency_seconds", "Latency by route.", Family::Kind::kHistogram, {}, {}};
const Family kUnused{
    "test_unused_total", "Registered, never counted.", Family::Kind::kCounter, {}, {}};
const Family* const kAll[] = {&kGames, &kPlain, &kLatency, &kUnused};

// A plugin's families are counted per shard, merged across shards, and formatted with their HELP
// and TYPE even before their first sample.
TEST(MetricsFamilyTest, CountMergeAndFormat) {
  MetricsShard a, b;
  a.count(kGames, "r1", 0);
  a.count(kGames, "r1", 1);
  b.count(kGames, "r1", 0);
  b.count(kGames, "r0", 1);
  b.count(kPlain, "r1");
  a.observe(kLatency, "r1", 0.002);
  b.observe(kLatency, "r1", 3);
  MetricsShard all;
  all.merge(a);
  all.merge(b);
  std::string text = format_prometheus(all, ProcessMetrics{}, kAll);
  EXPECT_NE(
      text.find(
          "# HELP test_games_total Games by route and outcome.\n# TYPE test_games_total counter\n"
          "test_games_total{route=\"r0\",outcome=\"won\"} 0\n"
          "test_games_total{route=\"r0\",outcome=\"lost\"} 1\n"
          "test_games_total{route=\"r1\",outcome=\"won\"} 2\n"
          "test_games_total{route=\"r1\",outcome=\"lost\"} 1\n"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("test_plain_total{route=\"r1\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_bucket{route=\"r1\",le=\"0.0025\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_count{route=\"r1\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE test_unused_total counter\n"), std::string::npos);
  EXPECT_EQ(text.find("test_unused_total{"), std::string::npos);
}

}  // namespace
}  // namespace gatehouse::observe
