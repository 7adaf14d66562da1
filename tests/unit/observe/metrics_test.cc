#include "observe/metrics.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

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

// --- a reader of the text exposition format 0.0.4, strict enough to catch what Prometheus
// would refuse, or silently misread --------------------------------------------------------------

struct Sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // values unescaped
  std::string value;
};

struct Exposition {
  std::vector<std::string> families;        // in order of their TYPE line
  std::map<std::string, std::string> type;  // family -> counter, gauge, histogram
  std::map<std::string, std::string> help;
  std::vector<Sample> samples;
  std::vector<std::string> errors;  // empty when the text is well formed

  // The samples of `name` whose labels include every one of `labels`.
  std::vector<const Sample*> find(
      const std::string& name,
      const std::vector<std::pair<std::string, std::string>>& labels = {}) const {
    std::vector<const Sample*> out;
    for (const auto& s : samples) {
      if (s.name != name) continue;
      bool all = true;
      for (const auto& l : labels) {
        bool has = false;
        for (const auto& sl : s.labels) has = has || sl == l;
        all = all && has;
      }
      if (all) out.push_back(&s);
    }
    return out;
  }
  // The value of the one sample of `name` with `labels`; "" (and a test failure) otherwise.
  std::string value(const std::string& name,
                    const std::vector<std::pair<std::string, std::string>>& labels = {}) const {
    auto found = find(name, labels);
    EXPECT_EQ(found.size(), 1u) << name;
    return found.size() == 1 ? found[0]->value : "";
  }
};

bool valid_name(std::string_view n) {
  if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
  for (char c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != ':') return false;
  }
  return true;
}

bool valid_value(const std::string& v) {
  if (v == "+Inf" || v == "-Inf" || v == "NaN") return true;
  char* end = nullptr;
  std::strtod(v.c_str(), &end);
  return !v.empty() && end == v.c_str() + v.size();
}

Exposition parse(const std::string& text) {
  Exposition e;
  auto error = [&](const std::string& line, const std::string& why) {
    e.errors.push_back(why + ": " + line);
  };
  if (text.empty() || text.back() != '\n') e.errors.push_back("the text must end with a newline");
  std::string family;  // of the last TYPE line
  std::set<std::string> series;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# HELP ", 0) == 0) {
      std::string rest = line.substr(7);
      size_t sp = rest.find(' ');
      std::string name = rest.substr(0, sp);
      if (!valid_name(name)) error(line, "bad metric name");
      if (e.help.count(name)) error(line, "a second HELP");
      std::string help = sp == std::string::npos ? "" : rest.substr(sp + 1);
      for (size_t i = 0; i < help.size(); ++i) {
        if (help[i] == '\\' &&
            (i + 1 == help.size() || (help[i + 1] != '\\' && help[i + 1] != 'n')))
          error(line, "a backslash in HELP that is not an escape");
        if (help[i] == '\\') ++i;
      }
      e.help[name] = help;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream words(line.substr(7));
      std::string name, type, extra;
      words >> name >> type >> extra;
      if (!extra.empty()) error(line, "words after the type");
      if (type != "counter" && type != "gauge" && type != "histogram") error(line, "bad type");
      if (e.type.count(name)) error(line, "a second TYPE for the family");
      if (!e.help.count(name)) error(line, "TYPE without HELP before it");
      e.type[name] = type;
      e.families.push_back(name);
      family = name;
      continue;
    }
    if (line.empty() || line[0] == '#') {
      error(line, "an empty line or an unknown comment");
      continue;
    }
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (!valid_name(s.name)) error(line, "bad metric name");
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          error(line, "bad label");
          break;
        }
        std::string name = line.substr(i, eq - i);
        if (!valid_name(name) || name.rfind("__", 0) == 0) error(line, "bad label name");
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] != '\\') {
            value.push_back(line[j]);
            continue;
          }
          if (++j == line.size()) break;
          if (line[j] == '\\')
            value.push_back('\\');
          else if (line[j] == '"')
            value.push_back('"');
          else if (line[j] == 'n')
            value.push_back('\n');
          else
            error(line, "an unknown escape in a label value");
        }
        if (j >= line.size()) {
          error(line, "an unterminated label value");
          break;
        }
        for (const auto& l : s.labels) {
          if (l.first == name) error(line, "a label twice");
        }
        s.labels.emplace_back(name, value);
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) {
        error(line, "no closing brace");
        continue;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      error(line, "no space before the value");
      continue;
    }
    s.value = line.substr(i + 1);
    if (!valid_value(s.value)) error(line, "bad value");
    std::string t = e.type.count(family) ? e.type.at(family) : "";
    bool belongs = t == "histogram" ? s.name == family + "_bucket" || s.name == family + "_sum" ||
                                          s.name == family + "_count"
                                    : s.name == family;
    if (!belongs) error(line, "a sample outside its family (last TYPE: " + family + ")");
    auto sorted = s.labels;
    std::sort(sorted.begin(), sorted.end());
    std::string key = s.name;
    for (const auto& [k, v] : sorted) key += "\x1f" + k + "=" + v;
    if (!series.insert(key).second) error(line, "the same series twice");
    e.samples.push_back(std::move(s));
  }
  // Histograms: per label set, buckets in increasing `le` up to +Inf, cumulative, and a _count
  // equal to the +Inf bucket, and a _sum.
  for (const auto& [name, type] : e.type) {
    if (type != "histogram") continue;
    std::map<std::vector<std::pair<std::string, std::string>>, std::vector<const Sample*>> by_set;
    for (const auto& s : e.samples) {
      if (s.name != name + "_bucket") continue;
      auto rest = s.labels;
      std::erase_if(rest, [](const auto& l) { return l.first == "le"; });
      by_set[rest].push_back(&s);
    }
    for (const auto& [labels, buckets] : by_set) {
      double last_le = -INFINITY, last_count = 0;
      for (const Sample* b : buckets) {
        std::string le;
        for (const auto& l : b->labels) {
          if (l.first == "le") le = l.second;
        }
        double bound = le == "+Inf" ? INFINITY : std::strtod(le.c_str(), nullptr);
        if (!(bound > last_le)) e.errors.push_back(name + ": le not increasing at " + le);
        double count = std::strtod(b->value.c_str(), nullptr);
        if (count < last_count) e.errors.push_back(name + ": buckets not cumulative at " + le);
        last_le = bound;
        last_count = count;
      }
      if (last_le != INFINITY) e.errors.push_back(name + ": no +Inf bucket");
      std::vector<const Sample*> count, sum;
      for (const auto& s : e.samples) {
        if (s.labels == labels && s.name == name + "_count") count.push_back(&s);
        if (s.labels == labels && s.name == name + "_sum") sum.push_back(&s);
      }
      if (count.size() != 1 || std::strtod(count[0]->value.c_str(), nullptr) != last_count)
        e.errors.push_back(name + ": _count is not the +Inf bucket");
      if (sum.size() != 1) e.errors.push_back(name + ": no _sum");
    }
  }
  return e;
}

std::string errors_of(const Exposition& e) {
  std::string out;
  for (const auto& x : e.errors) out += x + "\n";
  return out;
}

// The exposition's text without the process_* families (CPU time, memory: they move between two
// scrapes of the same shard).
std::string without_process(const std::string& text) {
  std::string out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.find("process_") == std::string::npos) out += line + "\n";
  }
  return out;
}

// --- histograms ---------------------------------------------------------------------------------

// A bucket counts the values up to and including its bound ("le"): a value on a bound is in that
// bucket, the next value above it is in the next; past the last bound is +Inf.
TEST(MetricsHistogram, BucketBoundariesAreInclusive) {
  const auto& bounds = Histogram::kBounds;
  for (size_t i = 0; i < bounds.size(); ++i) {
    Histogram on, above;
    on.observe(bounds[i]);
    above.observe(std::nextafter(bounds[i], INFINITY));
    for (size_t k = 0; k <= bounds.size(); ++k) {
      EXPECT_EQ(on.counts()[k], k == i ? 1u : 0u) << "value " << bounds[i] << ", bucket " << k;
      EXPECT_EQ(above.counts()[k], k == i + 1 ? 1u : 0u)
          << "just above " << bounds[i] << ", bucket " << k;
    }
  }
  Histogram h;
  h.observe(0);
  h.observe(-0.5);  // a clock step: still "<= 0.001"
  h.observe(1e9);
  EXPECT_EQ(h.counts().front(), 2u);
  EXPECT_EQ(h.counts().back(), 1u) << "+Inf";
  EXPECT_EQ(h.count(), 3u);
  EXPECT_DOUBLE_EQ(h.sum(), 1e9 - 0.5);
}

TEST(MetricsHistogram, MergeAddsCountsSumAndCount) {
  Histogram a, b, empty;
  a.observe(0.002);
  a.observe(0.3);
  b.observe(0.002);
  b.observe(20);
  a.merge(b);
  a.merge(empty);
  EXPECT_EQ(a.count(), 4u);
  EXPECT_DOUBLE_EQ(a.sum(), 0.002 + 0.3 + 0.002 + 20);
  EXPECT_EQ(a.counts()[1], 2u) << "le 0.0025";
  EXPECT_EQ(a.counts()[8], 1u) << "le 0.5";
  EXPECT_EQ(a.counts().back(), 1u) << "+Inf";
  EXPECT_EQ(b.count(), 2u) << "the source is unchanged";
}

// The exposition of a histogram: cumulative buckets with every bound written as its shortest
// decimal, +Inf, then _sum and _count.
TEST(MetricsHistogram, ExpositionIsCumulative) {
  MetricsShard m;
  // Values exact in binary, so that the sum is too.
  for (double s : {0.00048828125, 0.0009765625, 0.0029296875, 0.0029296875, 0.75, 12.0})
    m.count_request("r", "GET", 200, s, 0, 0);
  std::string text = format_prometheus(m, {}, {});
  const std::string expected =
      "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"0.001\"} 2\n"
      "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"0.0025\"} 2\n"
      "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"0.005\"} 4\n"
      "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"0.01\"} 4\n"
      "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"0.025\"} 4\n"
      "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"0.05\"} 4\n"
      "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"0.1\"} 4\n"
      "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"0.25\"} 4\n"
      "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"0.5\"} 4\n"
      "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"1\"} 5\n"
      "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"2.5\"} 5\n"
      "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"5\"} 5\n"
      "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"10\"} 5\n"
      "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"+Inf\"} 6\n"
      "gatehouse_request_duration_seconds_sum{route=\"r\"} 12.75732421875\n"
      "gatehouse_request_duration_seconds_count{route=\"r\"} 6\n";
  EXPECT_NE(text.find(expected), std::string::npos) << text;
}

constexpr std::string_view kTraceA = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr std::string_view kTraceB = "0af7651916cd43dd8448eb211c80319c";

TEST(MetricsHistogram, ATracedSampleIsItsBucketsExemplarAndMergingKeepsTheLater) {
  Histogram a, b;
  a.observe(0.003, kTraceA);
  a.observe(0.004);  // untraced: the exemplar stays
  a.observe(0.3);
  ASSERT_NE(a.exemplar(2), nullptr) << "le 0.005";
  EXPECT_EQ(std::string_view(a.exemplar(2)->trace_id.data(), 32), kTraceA);
  EXPECT_DOUBLE_EQ(a.exemplar(2)->value, 0.003);
  EXPECT_EQ(a.exemplar(8), nullptr) << "le 0.5: no traced sample";
  a.observe(0.003, "too-short");  // not a trace id: ignored
  EXPECT_EQ(std::string_view(a.exemplar(2)->trace_id.data(), 32), kTraceA);
  b.observe(0.0045, kTraceB);  // later
  Histogram c = a;             // a copy has its own exemplars
  c.merge(b);
  EXPECT_EQ(std::string_view(c.exemplar(2)->trace_id.data(), 32), kTraceB);
  EXPECT_EQ(std::string_view(a.exemplar(2)->trace_id.data(), 32), kTraceA);
  b.merge(a);  // a's is older: b keeps its own
  EXPECT_EQ(std::string_view(b.exemplar(2)->trace_id.data(), 32), kTraceB);
}

// OpenMetrics 1.0: counter families named without _total, exemplars on the buckets, # EOF.
TEST(MetricsExposition, OpenMetricsWithExemplars) {
  MetricsShard m;
  m.count_request("r", "GET", 200, 0.003, 0, 0, kTraceA);
  m.count_request("r", "GET", 200, 0.7, 0, 0);
  const std::string om = format_prometheus(m, {}, {}, true);
  EXPECT_NE(om.find("# TYPE gatehouse_requests counter\n"), std::string::npos);
  EXPECT_NE(om.find("gatehouse_requests_total{route=\"r\",method=\"GET\",code=\"200\"} 2\n"),
            std::string::npos);
  const auto at = om.find(
      "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"0.005\"} 1 # "
      "{trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 0.003 ");
  ASSERT_NE(at, std::string::npos) << om;
  EXPECT_NE(om.find("le=\"1\"} 2\n"), std::string::npos) << "no exemplar where none was traced";
  EXPECT_TRUE(om.ends_with("# EOF\n"));
  for (size_t type = om.find("# TYPE "); type != std::string::npos;
       type = om.find("# TYPE ", type + 1)) {
    const std::string line = om.substr(type, om.find('\n', type) - type);
    if (line.ends_with(" counter")) {
      EXPECT_EQ(line.find("_total "), std::string::npos) << line;
    }
  }
  // The Prometheus text format keeps its names and has no exemplars.
  const std::string text = format_prometheus(m, {}, {});
  EXPECT_NE(text.find("# TYPE gatehouse_requests_total counter\n"), std::string::npos);
  EXPECT_EQ(text.find("trace_id"), std::string::npos);
  EXPECT_EQ(text.find("# EOF"), std::string::npos);
}

// Sums are written as the shortest text that reads back as the same double.
TEST(MetricsHistogram, SumsRoundTrip) {
  MetricsShard m;
  m.count_request("r", "GET", 200, 0.1, 0, 0);
  m.count_request("r", "GET", 200, 0.2, 0, 0);
  auto e = parse(format_prometheus(m, {}, {}));
  std::string sum = e.value("gatehouse_request_duration_seconds_sum", {{"route", "r"}});
  EXPECT_EQ(sum, "0.30000000000000004");
  EXPECT_EQ(std::strtod(sum.c_str(), nullptr), 0.1 + 0.2);
}

// --- requests, upstreams, merging --------------------------------------------------------------

TEST(MetricsShardTest, MethodsOutsideTheKnownSetCountAsOther) {
  MetricsShard m;
  for (const char* method : {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"})
    m.count_request("r", method, 200, 0.01, 0, 0);
  for (const char* method : {"BREW", "get", "CONNECT", "", "PROPFIND"})
    m.count_request("r", method, 200, 0.01, 0, 0);
  auto e = parse(format_prometheus(m, {}, {}));
  ASSERT_EQ(errors_of(e), "");
  std::set<std::string> methods;
  for (const auto* s : e.find("gatehouse_requests_total")) {
    for (const auto& [k, v] : s->labels) {
      if (k == "method") methods.insert(v);
    }
  }
  EXPECT_EQ(methods, (std::set<std::string>{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH",
                                            "OPTIONS", "TRACE", "other"}));
  EXPECT_EQ(e.value("gatehouse_requests_total", {{"method", "other"}}), "5");
  EXPECT_EQ(e.value("gatehouse_requests_total", {{"method", "GET"}}), "1");
}

TEST(MetricsShardTest, RequestsByRouteMethodAndStatus) {
  MetricsShard m;
  m.count_request("users", "GET", 200, 0.01, 100, 1000);
  m.count_request("users", "GET", 200, 0.01, 100, 1000);
  m.count_request("users", "GET", 404, 0.01, 100, 50);
  m.count_request("users", "POST", 201, 0.01, 5000, 20);
  m.count_request("", "GET", 404, 0.001, 80, 60);  // no route took it
  auto e = parse(format_prometheus(m, {}, {}));
  ASSERT_EQ(errors_of(e), "");
  auto v = [&](std::string route, std::string method, std::string code) {
    return e.value("gatehouse_requests_total",
                   {{"route", route}, {"method", method}, {"code", code}});
  };
  EXPECT_EQ(v("users", "GET", "200"), "2");
  EXPECT_EQ(v("users", "GET", "404"), "1");
  EXPECT_EQ(v("users", "POST", "201"), "1");
  EXPECT_EQ(v("", "GET", "404"), "1");
  EXPECT_EQ(e.find("gatehouse_requests_total").size(), 4u);
  EXPECT_EQ(e.value("gatehouse_received_bytes_total"), "5380");
  EXPECT_EQ(e.value("gatehouse_sent_bytes_total"), "2130");
  EXPECT_EQ(e.value("gatehouse_request_duration_seconds_count", {{"route", "users"}}), "4");
}

TEST(MetricsShardTest, UpstreamOutcomesRetriesAndBreakers) {
  MetricsShard m;
  m.count_upstream("billing", "10.0.0.1:80", UpstreamOutcome::kOk, 0.01);
  m.count_upstream("billing", "10.0.0.1:80", UpstreamOutcome::k5xx, 0.01);
  m.count_upstream("billing", "10.0.0.2:80", UpstreamOutcome::kTimeout, 2);
  m.count_upstream("billing", "10.0.0.2:80", UpstreamOutcome::kReset, 0.1);
  m.count_upstream("billing", "10.0.0.2:80", UpstreamOutcome::kConnectError, 0.001);
  auto& u = m.upstreams["billing"];
  u.rejected = 3;
  u.queued = 4;
  u.retries = {1, 2, 3, 4};
  u.retry_budget_exhausted = 5;
  u.breaker_transitions["open"] = 2;
  u.breaker_transitions["half_open"] = 1;
  auto e = parse(format_prometheus(m, {}, {}));
  ASSERT_EQ(errors_of(e), "");
  // Every outcome of a target that has any, zeros included, so rates need no absent() guards.
  EXPECT_EQ(e.find("gatehouse_upstream_requests_total").size(), 10u);
  auto outcome = [&](std::string target, std::string o) {
    return e.value("gatehouse_upstream_requests_total",
                   {{"upstream", "billing"}, {"target", target}, {"outcome", o}});
  };
  EXPECT_EQ(outcome("10.0.0.1:80", "ok"), "1");
  EXPECT_EQ(outcome("10.0.0.1:80", "5xx"), "1");
  EXPECT_EQ(outcome("10.0.0.1:80", "timeout"), "0");
  EXPECT_EQ(outcome("10.0.0.2:80", "timeout"), "1");
  EXPECT_EQ(outcome("10.0.0.2:80", "reset"), "1");
  EXPECT_EQ(outcome("10.0.0.2:80", "connect_error"), "1");
  EXPECT_EQ(outcome("10.0.0.2:80", "ok"), "0");
  EXPECT_EQ(e.value("gatehouse_upstream_rejected_total"), "3");
  EXPECT_EQ(e.value("gatehouse_upstream_queued_total"), "4");
  EXPECT_EQ(e.value("gatehouse_upstream_retries_total", {{"reason", "connect_failure"}}), "1");
  EXPECT_EQ(e.value("gatehouse_upstream_retries_total", {{"reason", "reset"}}), "2");
  EXPECT_EQ(e.value("gatehouse_upstream_retries_total", {{"reason", "timeout"}}), "3");
  EXPECT_EQ(e.value("gatehouse_upstream_retries_total", {{"reason", "status"}}), "4");
  EXPECT_EQ(e.value("gatehouse_upstream_retry_budget_exhausted_total"), "5");
  EXPECT_EQ(e.value("gatehouse_upstream_breaker_transitions_total", {{"state", "open"}}), "2");
  EXPECT_EQ(e.value("gatehouse_upstream_breaker_transitions_total", {{"state", "half_open"}}), "1");
  EXPECT_EQ(e.value("gatehouse_upstream_request_duration_seconds_count", {{"upstream", "billing"}}),
            "5");
  EXPECT_EQ(e.value("gatehouse_upstream_request_duration_seconds_bucket",
                    {{"upstream", "billing"}, {"le", "1"}}),
            "4");
}

// Per-worker shards merged into one: every kind of value adds up, keys present in one shard only
// are kept, and the order of merging does not matter.
TEST(MetricsShardTest, MergingWorkerShards) {
  MetricsShard w1, w2, w3;
  w1.count_request("a", "GET", 200, 0.01, 10, 100);
  w2.count_request("a", "GET", 200, 0.02, 20, 200);
  w2.count_request("a", "PUT", 500, 0.5, 30, 300);
  w3.count_request("b", "GET", 200, 3, 40, 400);
  w1.count_upstream("u", "t1", UpstreamOutcome::kOk, 0.01);
  w2.count_upstream("u", "t1", UpstreamOutcome::kOk, 0.01);
  w2.count_upstream("u", "t2", UpstreamOutcome::kReset, 0.01);
  w3.count_upstream("v", "t3", UpstreamOutcome::kTimeout, 1);
  w1.upstreams["u"].rejected = 1;
  w2.upstreams["u"].rejected = 2;
  w1.upstreams["u"].queued = 3;
  w3.upstreams["u"].queued = 4;
  w1.upstreams["u"].retries = {1, 0, 0, 1};
  w2.upstreams["u"].retries = {0, 1, 0, 1};
  w1.upstreams["u"].retry_budget_exhausted = 2;
  w2.upstreams["u"].retry_budget_exhausted = 5;
  w1.upstreams["u"].breaker_transitions["open"] = 1;
  w2.upstreams["u"].breaker_transitions["open"] = 1;
  w2.upstreams["u"].breaker_transitions["closed"] = 1;
  w1.count(kGames, "a", 0);
  w2.count(kGames, "a", 0);
  w2.count(kGames, "a", 1);
  w3.observe(kLatency, "a", 0.3);
  w1.observe(kLatency, "a", 0.003);

  MetricsShard forward, backward;
  for (auto* w : {&w1, &w2, &w3}) forward.merge(*w);
  for (auto* w : {&w3, &w2, &w1}) backward.merge(*w);
  std::string text = format_prometheus(forward, {}, kAll);
  EXPECT_EQ(without_process(text), without_process(format_prometheus(backward, {}, kAll)));

  auto e = parse(text);
  ASSERT_EQ(errors_of(e), "");
  EXPECT_EQ(e.value("gatehouse_requests_total", {{"route", "a"}, {"method", "GET"}}), "2");
  EXPECT_EQ(e.value("gatehouse_requests_total", {{"route", "a"}, {"method", "PUT"}}), "1");
  EXPECT_EQ(e.value("gatehouse_requests_total", {{"route", "b"}}), "1");
  EXPECT_EQ(e.value("gatehouse_request_duration_seconds_count", {{"route", "a"}}), "3");
  EXPECT_DOUBLE_EQ(
      std::strtod(e.value("gatehouse_request_duration_seconds_sum", {{"route", "a"}}).c_str(),
                  nullptr),
      0.53);
  EXPECT_EQ(e.value("gatehouse_received_bytes_total"), "100");
  EXPECT_EQ(e.value("gatehouse_sent_bytes_total"), "1000");
  EXPECT_EQ(e.value("gatehouse_upstream_requests_total",
                    {{"upstream", "u"}, {"target", "t1"}, {"outcome", "ok"}}),
            "2");
  EXPECT_EQ(e.value("gatehouse_upstream_requests_total",
                    {{"upstream", "u"}, {"target", "t2"}, {"outcome", "reset"}}),
            "1");
  EXPECT_EQ(e.value("gatehouse_upstream_requests_total",
                    {{"upstream", "v"}, {"target", "t3"}, {"outcome", "timeout"}}),
            "1");
  EXPECT_EQ(e.value("gatehouse_upstream_rejected_total", {{"upstream", "u"}}), "3");
  EXPECT_EQ(e.value("gatehouse_upstream_queued_total", {{"upstream", "u"}}), "7");
  EXPECT_EQ(e.value("gatehouse_upstream_retries_total", {{"upstream", "u"}, {"reason", "status"}}),
            "2");
  EXPECT_EQ(e.value("gatehouse_upstream_retries_total", {{"upstream", "u"}, {"reason", "reset"}}),
            "1");
  EXPECT_EQ(e.value("gatehouse_upstream_retry_budget_exhausted_total", {{"upstream", "u"}}), "7");
  EXPECT_EQ(e.value("gatehouse_upstream_breaker_transitions_total",
                    {{"upstream", "u"}, {"state", "open"}}),
            "2");
  EXPECT_EQ(e.value("gatehouse_upstream_breaker_transitions_total",
                    {{"upstream", "u"}, {"state", "closed"}}),
            "1");
  EXPECT_EQ(e.value("gatehouse_upstream_request_duration_seconds_count", {{"upstream", "u"}}), "3");
  EXPECT_EQ(e.value("test_games_total", {{"route", "a"}, {"outcome", "won"}}), "2");
  EXPECT_EQ(e.value("test_games_total", {{"route", "a"}, {"outcome", "lost"}}), "1");
  EXPECT_EQ(e.value("test_latency_seconds_count", {{"route", "a"}}), "2");
  EXPECT_EQ(e.value("test_latency_seconds_bucket", {{"route", "a"}, {"le", "0.005"}}), "1");

  // Merging leaves the sources as they were.
  EXPECT_EQ(w2.routes["a"].requests.size(), 2u);
  EXPECT_EQ(w2.upstreams["u"].rejected, 2u);
  EXPECT_EQ(w1.families[&kGames].counters["a"], (std::vector<uint64_t>{1, 0}));
}

// Rows come sorted by their labels, whatever the order in which the keys were first seen (hash
// maps underneath): one scrape and the next are laid out alike.
TEST(MetricsShardTest, RowsAreSorted) {
  MetricsShard m;
  for (const char* route : {"zeta", "alpha", "mid", "Alpha", ""})
    m.count_request(route, "GET", 200, 0.01, 0, 0);
  m.count_request("mid", "DELETE", 204, 0.01, 0, 0);
  m.count_request("mid", "GET", 404, 0.01, 0, 0);
  m.count_request("mid", "GET", 201, 0.01, 0, 0);
  auto e = parse(format_prometheus(m, {}, {}));
  ASSERT_EQ(errors_of(e), "");
  std::vector<std::string> rows;
  for (const auto* s : e.find("gatehouse_requests_total")) {
    std::string row;
    for (const auto& [k, v] : s->labels) row += v + "|";
    rows.push_back(row);
  }
  // By route, then by method (in the order of the known set) and status code.
  EXPECT_EQ(rows, (std::vector<std::string>{"|GET|200|", "Alpha|GET|200|", "alpha|GET|200|",
                                            "mid|GET|200|", "mid|GET|201|", "mid|GET|404|",
                                            "mid|DELETE|204|", "zeta|GET|200|"}));
}

// --- label escaping ---------------------------------------------------------------------------

// Route, upstream and target names come from the config: a backslash, a double quote or a line
// feed in one must be escaped (\\, \", \n), and nothing else is touched.
TEST(MetricsExposition, LabelValuesAreEscaped) {
  const std::string nasty = "a\"b\\c\nd\te}{,x=\"y\" é";
  MetricsShard m;
  m.count_request(nasty, "GET", 200, 0.01, 0, 0);
  m.count_upstream(nasty, nasty, UpstreamOutcome::kOk, 0.01);
  m.upstreams[nasty].breaker_transitions[nasty] = 1;
  m.count(kGames, nasty, 1);
  m.observe(kLatency, nasty, 0.01);
  ProcessMetrics p;
  p.health.push_back({nasty, nasty, true, 2});
  p.bulkheads.push_back({nasty, 1, 0});
  std::string text = format_prometheus(m, p, kAll);

  const std::string escaped = "a\\\"b\\\\c\\nd\te}{,x=\\\"y\\\" é";
  EXPECT_NE(text.find("gatehouse_requests_total{route=\"" + escaped +
                      "\",method=\"GET\",code=\"200\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("test_latency_seconds_bucket{route=\"" + escaped + "\",le=\"+Inf\"} 1\n"),
            std::string::npos);
  // Every sample stays on one line, and reads back as the name it was made from.
  auto e = parse(text);
  ASSERT_EQ(errors_of(e), "");
  size_t seen = 0;
  for (const auto& s : e.samples) {
    for (const auto& [k, v] : s.labels) {
      if (k == "route" || k == "upstream" || k == "target" || k == "state") {
        EXPECT_EQ(v, nasty) << s.name << " " << k;
        ++seen;
      }
    }
  }
  // requests 1, duration 16, upstream requests 5x2, rejected, queued, retries 5, budget,
  // transitions 2, upstream duration 16, games 2, latency 16, healthy 2, health transitions 2,
  // bulkheads 2.
  EXPECT_EQ(seen, 1u + 16 + 10 + 1 + 1 + 5 + 1 + 2 + 16 + 2 + 16 + 2 + 2 + 2);
}

// --- the whole exposition ----------------------------------------------------------------------

// Every family once, HELP then TYPE, before its samples; every sample in the family it follows;
// no series twice; histograms whole. Also with nothing counted yet: the core's families are named
// from the first scrape.
TEST(MetricsExposition, WellFormedEmptyAndFull) {
  const std::vector<std::string> core = {
      "gatehouse_requests_total",
      "gatehouse_request_duration_seconds",
      "gatehouse_grpc_requests_total",
      "gatehouse_grpc_request_duration_seconds",
      "gatehouse_upstream_requests_total",
      "gatehouse_upstream_rejected_total",
      "gatehouse_upstream_queued_total",
      "gatehouse_upstream_retries_total",
      "gatehouse_upstream_retry_budget_exhausted_total",
      "gatehouse_upstream_breaker_transitions_total",
      "gatehouse_upstream_request_duration_seconds",
      "test_games_total",
      "test_plain_total",
      "test_latency_seconds",
      "test_unused_total",
      "gatehouse_downstream_connections",
      "gatehouse_upstream_connections",
      "gatehouse_received_bytes_total",
      "gatehouse_sent_bytes_total",
      "gatehouse_downstream_requests_total",
      "gatehouse_websocket_tunnels_open",
      "gatehouse_websocket_tunnels_total",
      "gatehouse_websocket_bytes_total",
      "gatehouse_config_reloads_total",
      "gatehouse_config_info",
      "gatehouse_config_last_reload_timestamp_seconds",
      "gatehouse_workers",
      "gatehouse_tracing_spans_exported_total",
      "gatehouse_tracing_spans_dropped_total",
      "gatehouse_tracing_export_retries_total",
      "gatehouse_upstream_target_healthy",
      "gatehouse_upstream_health_transitions_total",
      "gatehouse_upstream_bulkhead_in_flight",
      "gatehouse_upstream_bulkhead_waiting",
  };
  auto check = [&](const Exposition& e) {
    EXPECT_EQ(errors_of(e), "");
    std::vector<std::string> first(e.families.begin(),
                                   e.families.begin() + std::min(e.families.size(), core.size()));
    EXPECT_EQ(first, core);
    for (const auto& f : e.families) {
      EXPECT_FALSE(e.help.at(f).empty()) << f;
      if (f.ends_with("_total")) {
        EXPECT_EQ(e.type.at(f), "counter") << f;
      }
    }
    EXPECT_EQ(e.type.at("gatehouse_request_duration_seconds"), "histogram");
    EXPECT_EQ(e.type.at("test_latency_seconds"), "histogram");
    EXPECT_EQ(e.type.at("gatehouse_workers"), "gauge");
    EXPECT_EQ(e.type.at("process_cpu_seconds_total"), "counter");
    EXPECT_EQ(e.type.at("process_open_fds"), "gauge");
  };
  {
    SCOPED_TRACE("empty");
    auto e = parse(format_prometheus(MetricsShard{}, ProcessMetrics{}, kAll));
    check(e);
    EXPECT_TRUE(e.find("gatehouse_requests_total").empty());
    EXPECT_TRUE(e.find("test_games_total").empty());
    EXPECT_EQ(e.value("gatehouse_config_reloads_total", {{"result", "ok"}}), "0");
  }
  {
    SCOPED_TRACE("full");
    MetricsShard m;
    m.count_request("r", "GET", 200, 0.01, 1, 2);
    m.count_upstream("u", "t", UpstreamOutcome::kOk, 0.01);
    m.upstreams["u"].breaker_transitions["open"] = 1;
    m.count(kGames, "r", 0);
    m.count(kPlain, "r");
    m.observe(kLatency, "r", 0.2);
    ProcessMetrics p;
    p.health.push_back({"u", "t", false, 3});
    p.bulkheads.push_back({"u", 2, 1});
    check(parse(format_prometheus(m, p, kAll)));
  }
}

// gRPC calls by service, method and status name, merged across shards; a path that is not
// /service/method, and methods past the cap, count as other/other.
TEST(MetricsExposition, GrpcCallsByServiceMethodAndCode) {
  MetricsShard a, b;
  a.count_grpc("/shop.Reviews/Get", 0, 0.01);
  b.count_grpc("/shop.Reviews/Get", 0, 0.02);
  b.count_grpc("/shop.Reviews/Get", 14, 0.5);
  b.count_grpc("/shop.Reviews/Get", -1, 0.5);  // no status came: UNKNOWN
  b.count_grpc("/nonsense", 12, 0.001);
  a.merge(b);
  auto e = parse(format_prometheus(a, ProcessMetrics{}, {}));
  ASSERT_EQ(errors_of(e), "");
  const std::vector<std::pair<std::string, std::string>> get = {{"service", "shop.Reviews"},
                                                                {"method", "Get"}};
  auto with = [&](std::string code) {
    auto labels = get;
    labels.emplace_back("code", code);
    return e.value("gatehouse_grpc_requests_total", labels);
  };
  EXPECT_EQ(with("OK"), "2");
  EXPECT_EQ(with("UNAVAILABLE"), "1");
  EXPECT_EQ(with("UNKNOWN"), "1");
  EXPECT_EQ(e.value("gatehouse_grpc_requests_total",
                    {{"service", "other"}, {"method", "other"}, {"code", "UNIMPLEMENTED"}}),
            "1");
  EXPECT_EQ(e.value("gatehouse_grpc_request_duration_seconds_count", get), "4");

  MetricsShard many;
  for (size_t i = 0; i < MetricsShard::kMaxGrpcMethods + 10; ++i)
    many.count_grpc("/s/m" + std::to_string(i), 0, 0.001);
  EXPECT_EQ(many.grpc.size(), MetricsShard::kMaxGrpcMethods + 1) << "the cap, and other/other";
  EXPECT_EQ(many.grpc.at("other/other").by_code[0], 10u);
}

TEST(MetricsExposition, ProtocolsAndWebSocketTunnels) {
  MetricsShard a, b;
  a.tunnels_opened = 3;
  a.tunnels_closed = 1;
  a.tunnel_bytes_to_upstream = 100;
  b.tunnels_opened = 1;
  b.tunnel_bytes_to_client = 7;
  a.count_protocol("HTTP/2");
  b.count_protocol("HTTP/2");
  b.count_protocol("HTTP/1.1");
  b.count_protocol("SPDY/3");  // not one of ours: not counted
  a.merge(b);
  auto e = parse(format_prometheus(a, ProcessMetrics{}, {}));
  EXPECT_EQ(e.value("gatehouse_downstream_requests_total", {{"protocol", "HTTP/2"}}), "2");
  EXPECT_EQ(e.value("gatehouse_downstream_requests_total", {{"protocol", "HTTP/1.1"}}), "1");
  EXPECT_EQ(e.value("gatehouse_downstream_requests_total", {{"protocol", "HTTP/1.0"}}), "0");
  EXPECT_EQ(e.value("gatehouse_websocket_tunnels_open", {}), "3");
  EXPECT_EQ(e.value("gatehouse_websocket_tunnels_total", {}), "4");
  EXPECT_EQ(e.value("gatehouse_websocket_bytes_total", {{"direction", "upstream"}}), "100");
  EXPECT_EQ(e.value("gatehouse_websocket_bytes_total", {{"direction", "client"}}), "7");
}

TEST(MetricsExposition, ProcessValues) {
  ProcessMetrics p;
  p.downstream_connections = 12;
  p.upstream_connections = 7;
  p.reloads_ok = 3;
  p.reloads_error = 1;
  p.config_version = 4;
  p.config_loaded_at = 1764930000.25;
  p.workers = 2;
  p.health.push_back({"billing", "10.0.0.1:80", true, 0});
  p.health.push_back({"billing", "10.0.0.2:80", false, 5});
  p.bulkheads.push_back({"billing", 9, 4});
  auto e = parse(format_prometheus(MetricsShard{}, p, {}));
  ASSERT_EQ(errors_of(e), "");
  EXPECT_EQ(e.value("gatehouse_downstream_connections"), "12");
  EXPECT_EQ(e.value("gatehouse_upstream_connections"), "7");
  EXPECT_EQ(e.value("gatehouse_config_reloads_total", {{"result", "ok"}}), "3");
  EXPECT_EQ(e.value("gatehouse_config_reloads_total", {{"result", "error"}}), "1");
  EXPECT_EQ(e.value("gatehouse_config_info", {{"version", "4"}}), "1");
  EXPECT_EQ(e.value("gatehouse_config_last_reload_timestamp_seconds"), "1764930000.25");
  EXPECT_EQ(e.value("gatehouse_workers"), "2");
  EXPECT_EQ(e.value("gatehouse_upstream_target_healthy", {{"target", "10.0.0.1:80"}}), "1");
  EXPECT_EQ(e.value("gatehouse_upstream_target_healthy", {{"target", "10.0.0.2:80"}}), "0");
  EXPECT_EQ(e.value("gatehouse_upstream_health_transitions_total", {{"target", "10.0.0.2:80"}}),
            "5");
  EXPECT_EQ(e.value("gatehouse_upstream_bulkhead_in_flight", {{"upstream", "billing"}}), "9");
  EXPECT_EQ(e.value("gatehouse_upstream_bulkhead_waiting", {{"upstream", "billing"}}), "4");

  // process_* from /proc/self: the start time is in the past, and open_fds counts this process's
  // descriptors (not the one used to list them).
  double start = std::strtod(e.value("process_start_time_seconds").c_str(), nullptr);
  EXPECT_GT(start, 1.5e9);
  EXPECT_LE(start, static_cast<double>(time(nullptr)) + 1);
  EXPECT_GT(std::strtod(e.value("process_resident_memory_bytes").c_str(), nullptr), 1e6);
  auto fds = [] {
    auto e = parse(format_prometheus(MetricsShard{}, ProcessMetrics{}, {}));
    return std::stol(e.value("process_open_fds"));
  };
  long before = fds();
  size_t listed = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
    ++listed;
  EXPECT_EQ(before, static_cast<long>(listed) - 1) << "not the one that listed them";
  int fd = open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(fds(), before + 1);
  close(fd);
  EXPECT_EQ(fds(), before);
}

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

// count() remembers the series it found last: more series than it remembers, interleaved, each
// get their own counts; a copy counts into its own maps, not its source's, and so does a shard
// whose maps were moved away.
TEST(MetricsFamilyTest, CountsReachTheirOwnSeries) {
  auto counts = [](const MetricsShard& m, const Family& f, const std::string& route) {
    return m.families.at(&f).counters.at(route);
  };
  MetricsShard a;
  for (int round = 0; round < 3; ++round) {
    for (int r = 0; r < 6; ++r) {
      const std::string route = "route-" + std::to_string(r);
      a.count(kGames, route, r % 2);
      a.count(kPlain, route);
    }
  }
  for (int r = 0; r < 6; ++r) {
    const std::string route = "route-" + std::to_string(r);
    EXPECT_EQ(counts(a, kGames, route), (std::vector<uint64_t>{r % 2 ? 0u : 3u, r % 2 ? 3u : 0u}));
    EXPECT_EQ(counts(a, kPlain, route), std::vector<uint64_t>{3});
  }

  MetricsShard copy = a;
  copy.count(kPlain, "route-5");
  a.count(kPlain, "route-5");
  a.count(kPlain, "route-5");
  EXPECT_EQ(counts(copy, kPlain, "route-5"), std::vector<uint64_t>{4});
  EXPECT_EQ(counts(a, kPlain, "route-5"), std::vector<uint64_t>{5});

  MetricsShard moved = std::move(a);
  a = MetricsShard{};
  a.count(kPlain, "route-5");
  moved.count(kPlain, "route-5");
  EXPECT_EQ(counts(a, kPlain, "route-5"), std::vector<uint64_t>{1});
  EXPECT_EQ(counts(moved, kPlain, "route-5"), std::vector<uint64_t>{6});
}

// The plugins' families are written in the order the registry lists them, after the core's.
TEST(MetricsFamilyTest, FamiliesInRegistryOrder) {
  const Family* const reversed[] = {&kUnused, &kLatency, &kPlain, &kGames};
  auto e = parse(format_prometheus(MetricsShard{}, ProcessMetrics{}, reversed));
  ASSERT_EQ(errors_of(e), "");
  std::vector<std::string> tests;
  for (const auto& f : e.families) {
    if (f.rfind("test_", 0) == 0) tests.push_back(f);
  }
  EXPECT_EQ(tests, (std::vector<std::string>{"test_unused_total", "test_latency_seconds",
                                             "test_plain_total", "test_games_total"}));
}

}  // namespace
}  // namespace gatehouse::observe
