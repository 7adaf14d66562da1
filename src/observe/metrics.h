// Prometheus metrics. Each worker counts in its own MetricsShard (plain integers, written only by
// that worker's thread: no atomics, no locks on the request path). A scrape copies every shard on
// its own worker's thread, merges the copies on the main thread and formats them as the text
// exposition format 0.0.4.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace gatehouse::observe {

// One observation a bucket points to (an OpenMetrics exemplar): its trace, value and time.
struct Exemplar {
  std::array<char, 32> trace_id{};  // hex
  double value = 0;
  double timestamp = 0;  // Unix seconds; 0: none
};

class Histogram {
 public:
  // Upper bounds in seconds (Prometheus' usual latency buckets, plus 1 ms and 2.5 ms).
  static constexpr std::array<double, 13> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                     0.25,  0.5,    1,     2.5,  5,     10};
  Histogram() = default;
  Histogram(const Histogram& o);
  Histogram& operator=(const Histogram& o);
  Histogram(Histogram&&) noexcept = default;
  Histogram& operator=(Histogram&&) noexcept = default;
  // `trace_id` (32 hex digits, of a sampled trace): the sample becomes its bucket's exemplar.
  void observe(double seconds, std::string_view trace_id = {});
  void merge(const Histogram& other);  // each bucket keeps the later exemplar
  const Exemplar* exemplar(size_t bucket) const {
    return exemplars_ && (*exemplars_)[bucket].timestamp > 0 ? &(*exemplars_)[bucket] : nullptr;
  }
  const std::array<uint64_t, kBounds.size() + 1>& counts() const {
    return counts_;
  }  // not cumulative
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  using Exemplars = std::array<Exemplar, kBounds.size() + 1>;
  std::array<uint64_t, kBounds.size() + 1> counts_{};  // the last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
  std::unique_ptr<Exemplars> exemplars_;  // made at the first traced sample
};

enum class UpstreamOutcome : uint8_t { kOk, kConnectError, kTimeout, kReset, k5xx };
constexpr size_t kUpstreamOutcomes = 5;
std::string_view outcome_name(UpstreamOutcome o);

// Transparent hashing, so lookups by string_view allocate nothing.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

struct RouteMetrics {
  std::unordered_map<uint32_t, uint64_t> requests;  // method index << 16 | status -> count
  Histogram duration;
};

struct UpstreamMetrics {
  StringMap<std::array<uint64_t, kUpstreamOutcomes>> by_target;  // target "ip:port" -> outcomes
  Histogram duration;  // request sent to response head received (or failure)
  uint64_t rejected =
      0;                // refused: max_concurrent_requests reached (and the queue full or too slow)
  uint64_t queued = 0;  // waited in the max_pending queue
  StringMap<uint64_t> breaker_transitions;  // by the state a target's breaker moved to
  // By reason: connect_failure, reset, timeout, status, grpc_status.
  std::array<uint64_t, 5> retries{};
  uint64_t retry_budget_exhausted = 0;
};

// A metric family a plugin declares and counts into, by route: counters (one per value of a second
// label, such as a decision's result, or one alone) or histograms. A plugin lists its families in
// the plugin registry (filters/registry.cc), so the exposition names them before their first
// sample, and the core names no plugin's metric.
struct Family {
  enum class Kind : uint8_t { kCounter, kHistogram };
  std::string_view name;
  std::string_view help;
  Kind kind = Kind::kCounter;
  std::string_view value_label;              // counters: the second label, e.g. "result" (or none)
  std::span<const std::string_view> values;  // its values, one counter each
};

// One family's samples in a shard, by route.
struct FamilySamples {
  StringMap<std::vector<uint64_t>> counters;  // by route, then by value
  StringMap<Histogram> histograms;            // by route
};

// The counters MetricsShard::count() found last, by family and route: a request counts into the
// same few series again and again, and each search hashes the route's name in two maps. It points
// into its shard's maps, so a copied or moved shard starts with an empty memo (and so does the
// source of a move).
class CounterMemo {
 public:
  CounterMemo() = default;
  CounterMemo(const CounterMemo&) {}
  CounterMemo(CounterMemo&& o) noexcept { o.clear(); }
  CounterMemo& operator=(const CounterMemo&) {
    clear();
    return *this;
  }
  CounterMemo& operator=(CounterMemo&& o) noexcept {
    clear();
    o.clear();
    return *this;
  }

  std::vector<uint64_t>* find(const Family* f, std::string_view route) const {
    for (const auto& s : slots_) {
      if (s.family == f && s.route == route) return s.counters;
    }
    return nullptr;
  }
  void remember(const Family* f, std::string_view route, std::vector<uint64_t>* counters) {
    Slot& s = slots_[next_++ % slots_.size()];
    s.family = f;
    s.route.assign(route);
    s.counters = counters;
  }

 private:
  void clear() { slots_ = {}; }
  struct Slot {
    const Family* family = nullptr;
    std::string route;
    std::vector<uint64_t>* counters = nullptr;
  };
  std::array<Slot, 4> slots_;
  size_t next_ = 0;
};

// gRPC calls of one method, by status code (a code outside 0-16, or none, counts as UNKNOWN).
struct GrpcMethodMetrics {
  std::array<uint64_t, 17> by_code{};
  Histogram duration;
};

struct MetricsShard {
  StringMap<RouteMetrics> routes;  // "" for requests no route took
  // gRPC calls by "service/method" (the call's path). At most kMaxGrpcMethods of them per
  // shard; calls of any other count as "other/other": a client cannot grow the label space.
  static constexpr size_t kMaxGrpcMethods = 512;
  StringMap<GrpcMethodMetrics> grpc;
  StringMap<UpstreamMetrics> upstreams;
  std::unordered_map<const Family*, FamilySamples> families;  // the plugins' metrics
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  // Requests by the protocol the client spoke (kProtocols' order).
  static constexpr std::array<std::string_view, 3> kProtocols{"HTTP/1.0", "HTTP/1.1", "HTTP/2"};
  std::array<uint64_t, 3> requests_by_protocol{};
  void count_protocol(std::string_view protocol) {
    for (size_t i = 0; i < kProtocols.size(); ++i) {
      if (kProtocols[i] == protocol) ++requests_by_protocol[i];
    }
  }
  // WebSocket tunnels: opened and closed (the difference is those open now), bytes each way.
  uint64_t tunnels_opened = 0, tunnels_closed = 0;
  uint64_t tunnel_bytes_to_upstream = 0, tunnel_bytes_to_client = 0;
  CounterMemo counter_memo;  // for count()

  // Methods outside the registered set count as "other": a client cannot grow the label space.
  // `trace_id`: a sampled request's, its duration bucket's exemplar.
  void count_request(std::string_view route, std::string_view method, int status, double seconds,
                     uint64_t bytes_in, uint64_t bytes_out, std::string_view trace_id = {});
  void count_upstream(std::string_view upstream, std::string_view target, UpstreamOutcome outcome,
                      double seconds);
  // A gRPC call to `path` ("/service/method") ended with `code` (-1: none came).
  void count_grpc(std::string_view path, int code, double seconds);
  // A plugin's counter `f` for `route` (and its value_index-th value) goes up by one.
  void count(const Family& f, std::string_view route, size_t value_index = 0);
  // A plugin's histogram `f` for `route` gets a sample.
  void observe(const Family& f, std::string_view route, double seconds);
  void merge(const MetricsShard& other);
};

// Values the process knows outside the shards.
struct ProcessMetrics {
  uint64_t downstream_connections = 0;
  uint64_t upstream_connections = 0;  // in use plus idle in pools
  uint64_t reloads_ok = 0, reloads_error = 0;
  uint64_t config_version = 0;
  double config_loaded_at = 0;  // Unix seconds
  int workers = 0;
  // Tracing's export (trace/exporter.h): spans the collector took, spans dropped (the queue was
  // full; an export failed for good), export requests sent again.
  uint64_t spans_exported = 0, spans_dropped_full = 0, spans_dropped_failed = 0;
  uint64_t span_export_retries = 0;
  struct TargetHealth {
    std::string upstream, target;
    bool healthy;
    uint64_t transitions;
  };
  std::vector<TargetHealth> health;  // targets with active health checks
  struct BulkheadState {
    std::string upstream;
    int64_t in_flight;
    uint32_t waiting;
  };
  std::vector<BulkheadState> bulkheads;  // upstreams with max_concurrent_requests
  // Process-wide values a plugin keeps (the response cache's size), each one sample.
  struct Value {
    std::string_view name, help;
    std::string_view type;  // gauge or counter
    double value;
  };
  std::vector<Value> plugin_values;
};

// The whole exposition: the shards' metrics, the plugins' `families`, the process values and
// process_* from /proc/self.
// `openmetrics`: OpenMetrics 1.0 instead (counter families named without `_total`, exemplars on
// histogram buckets, `# EOF` at the end).
std::string format_prometheus(const MetricsShard& m, const ProcessMetrics& p,
                              std::span<const Family* const> families, bool openmetrics = false);

}  // namespace gatehouse::observe
