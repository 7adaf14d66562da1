#include "observe/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "grpc/status.h"

namespace gatehouse::observe {
namespace {

constexpr std::array<std::string_view, 9> kMethods = {"GET",   "HEAD",    "POST",  "PUT",  "DELETE",
                                                      "PATCH", "OPTIONS", "TRACE", "other"};

uint32_t method_index(std::string_view m) {
  for (uint32_t i = 0; i + 1 < kMethods.size(); ++i) {
    if (m == kMethods[i]) return i;
  }
  return kMethods.size() - 1;
}

// Label values: backslash, double quote and line feed escaped (exposition format 0.0.4).
void label(std::string* out, std::string_view name, std::string_view value, bool first = false) {
  out->append(first ? "" : ",").append(name).append("=\"");
  for (char c : value) {
    if (c == '\\')
      out->append("\\\\");
    else if (c == '"')
      out->append("\\\"");
    else if (c == '\n')
      out->append("\\n");
    else
      out->push_back(c);
  }
  out->push_back('"');
}

// The shortest text that reads back as the same double ("0.0025", not "0.0025000000000000001").
std::string number(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

// One sample with one label: name{label="value"} count.
void sample(std::string* out, std::string_view name, std::string_view label, std::string_view value,
            uint64_t count) {
  out->append(name).append("{").append(label).append("=\"").append(value).append("\"} ");
  out->append(std::to_string(count)).append("\n");
}

// In OpenMetrics (`om`), a counter's family is named without the `_total` its samples carry.
void header(std::string* out, bool om, std::string_view name, std::string_view type,
            std::string_view help) {
  if (om && type == "counter" && name.ends_with("_total")) name.remove_suffix(6);
  out->append("# HELP ").append(name).append(" ").append(help).append("\n");
  out->append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

// `labels`: written already ('route="a"', or several).
// `om`: OpenMetrics, whose buckets may carry an exemplar: the trace of one of their requests.
void histogram(std::string* out, bool om, std::string_view name, std::string_view labels,
               const Histogram& h) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= Histogram::kBounds.size(); ++i) {
    cumulative += h.counts()[i];
    out->append(name).append("_bucket{").append(labels);
    label(out, "le", i < Histogram::kBounds.size() ? number(Histogram::kBounds[i]) : "+Inf");
    out->append("} ").append(std::to_string(cumulative));
    if (const Exemplar* e = om ? h.exemplar(i) : nullptr) {
      out->append(" # {trace_id=\"").append(e->trace_id.data(), e->trace_id.size());
      out->append("\"} ").append(number(e->value)).append(" ").append(number(e->timestamp));
    }
    out->push_back('\n');
  }
  out->append(name).append("_sum{").append(labels);
  out->append("} ").append(number(h.sum())).append("\n");
  out->append(name).append("_count{").append(labels);
  out->append("} ").append(std::to_string(h.count())).append("\n");
}

void histogram(std::string* out, bool om, std::string_view name, std::string_view label_name,
               std::string_view label_value, const Histogram& h) {
  std::string labels;
  label(&labels, label_name, label_value, true);
  histogram(out, om, name, labels, h);
}

void gauge(std::string* out, bool om, std::string_view name, std::string_view help, double v,
           std::string_view type = "gauge") {
  header(out, om, name, type, help);
  out->append(name).append(" ").append(number(v)).append("\n");
}

// Keys sorted, so the output is stable from scrape to scrape.
template <class Map>
std::vector<const typename Map::value_type*> sorted(const Map& m) {
  std::vector<const typename Map::value_type*> v;
  for (const auto& e : m) v.push_back(&e);
  std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->first < b->first; });
  return v;
}

}  // namespace

void Histogram::observe(double seconds, std::string_view trace_id) {
  size_t i = static_cast<size_t>(std::lower_bound(kBounds.begin(), kBounds.end(), seconds) -
                                 kBounds.begin());
  ++counts_[i];
  sum_ += seconds;
  ++count_;
  if (trace_id.size() == Exemplar{}.trace_id.size()) {
    if (!exemplars_) exemplars_ = std::make_unique<Exemplars>();
    Exemplar& e = (*exemplars_)[i];
    std::copy(trace_id.begin(), trace_id.end(), e.trace_id.begin());
    e.value = seconds;
    e.timestamp =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
}

void Histogram::merge(const Histogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  sum_ += other.sum_;
  count_ += other.count_;
  if (!other.exemplars_) return;
  if (!exemplars_) exemplars_ = std::make_unique<Exemplars>();
  for (size_t i = 0; i < counts_.size(); ++i) {  // the latest of each bucket's
    if ((*other.exemplars_)[i].timestamp > (*exemplars_)[i].timestamp)
      (*exemplars_)[i] = (*other.exemplars_)[i];
  }
}

Histogram::Histogram(const Histogram& o)
    : counts_(o.counts_),
      sum_(o.sum_),
      count_(o.count_),
      exemplars_(o.exemplars_ ? std::make_unique<Exemplars>(*o.exemplars_) : nullptr) {}

Histogram& Histogram::operator=(const Histogram& o) {
  if (this != &o) *this = Histogram(o);
  return *this;
}

std::string_view outcome_name(UpstreamOutcome o) {
  switch (o) {
    case UpstreamOutcome::kOk:
      return "ok";
    case UpstreamOutcome::kConnectError:
      return "connect_error";
    case UpstreamOutcome::kTimeout:
      return "timeout";
    case UpstreamOutcome::kReset:
      return "reset";
    case UpstreamOutcome::k5xx:
      return "5xx";
  }
  return "ok";
}

void MetricsShard::count_request(std::string_view route, std::string_view method, int status,
                                 double seconds, uint64_t bytes_in, uint64_t bytes_out,
                                 std::string_view trace_id) {
  auto it = routes.find(route);
  if (it == routes.end()) it = routes.emplace(std::string(route), RouteMetrics{}).first;
  ++it->second.requests[method_index(method) << 16 | static_cast<uint32_t>(status)];
  it->second.duration.observe(seconds, trace_id);
  bytes_received += bytes_in;
  bytes_sent += bytes_out;
}

void MetricsShard::count_grpc(std::string_view path, int code, double seconds) {
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  auto it = grpc.find(path);
  if (it == grpc.end()) {
    const bool room = grpc.size() < kMaxGrpcMethods && path.find('/') != std::string_view::npos;
    it = grpc.try_emplace(std::string(room ? path : "other/other")).first;
  }
  ++it->second.by_code[code >= 0 && code < 17 ? code : 2];
  it->second.duration.observe(seconds);
}

void MetricsShard::count_upstream(std::string_view upstream, std::string_view target,
                                  UpstreamOutcome outcome, double seconds) {
  auto it = upstreams.find(upstream);
  if (it == upstreams.end()) it = upstreams.emplace(std::string(upstream), UpstreamMetrics{}).first;
  auto t = it->second.by_target.find(target);
  if (t == it->second.by_target.end())
    t = it->second.by_target.emplace(std::string(target), std::array<uint64_t, kUpstreamOutcomes>{})
            .first;
  ++t->second[static_cast<size_t>(outcome)];
  it->second.duration.observe(seconds);
}

void MetricsShard::count(const Family& f, std::string_view route, size_t value_index) {
  if (auto* counters = counter_memo.find(&f, route)) {
    ++(*counters)[value_index];
    return;
  }
  auto& by_route = families[&f].counters;
  auto it = by_route.find(route);
  if (it == by_route.end())
    it = by_route
             .emplace(std::string(route),
                      std::vector<uint64_t>(std::max<size_t>(1, f.values.size())))
             .first;
  counter_memo.remember(&f, route, &it->second);
  ++it->second[value_index];
}

void MetricsShard::observe(const Family& f, std::string_view route, double seconds) {
  auto& by_route = families[&f].histograms;
  auto it = by_route.find(route);
  if (it == by_route.end()) it = by_route.emplace(std::string(route), Histogram{}).first;
  it->second.observe(seconds);
}

void MetricsShard::merge(const MetricsShard& other) {
  for (const auto& [name, r] : other.routes) {
    auto& mine = routes[name];
    for (const auto& [key, n] : r.requests) mine.requests[key] += n;
    mine.duration.merge(r.duration);
  }
  for (const auto& [name, u] : other.upstreams) {
    auto& mine = upstreams[name];
    for (const auto& [target, counts] : u.by_target) {
      auto& c = mine.by_target[target];
      for (size_t i = 0; i < kUpstreamOutcomes; ++i) c[i] += counts[i];
    }
    mine.duration.merge(u.duration);
    mine.rejected += u.rejected;
    mine.queued += u.queued;
    for (const auto& [state, n] : u.breaker_transitions) mine.breaker_transitions[state] += n;
    for (size_t i = 0; i < mine.retries.size(); ++i) mine.retries[i] += u.retries[i];
    mine.retry_budget_exhausted += u.retry_budget_exhausted;
  }
  for (const auto& [method, g] : other.grpc) {
    auto& mine = grpc[method];
    for (size_t i = 0; i < mine.by_code.size(); ++i) mine.by_code[i] += g.by_code[i];
    mine.duration.merge(g.duration);
  }
  for (const auto& [family, samples] : other.families) {
    auto& mine = families[family];
    for (const auto& [route, counts] : samples.counters) {
      auto& c = mine.counters[route];
      c.resize(counts.size());
      for (size_t i = 0; i < counts.size(); ++i) c[i] += counts[i];
    }
    for (const auto& [route, h] : samples.histograms) mine.histograms[route].merge(h);
  }
  bytes_received += other.bytes_received;
  bytes_sent += other.bytes_sent;
  for (size_t i = 0; i < requests_by_protocol.size(); ++i)
    requests_by_protocol[i] += other.requests_by_protocol[i];
  tunnels_opened += other.tunnels_opened;
  tunnels_closed += other.tunnels_closed;
  tunnel_bytes_to_upstream += other.tunnel_bytes_to_upstream;
  tunnel_bytes_to_client += other.tunnel_bytes_to_client;
}

std::string format_prometheus(const MetricsShard& m, const ProcessMetrics& p,
                              std::span<const Family* const> families, bool om) {
  std::string out;
  header(&out, om, "gatehouse_requests_total", "counter",
         "Requests by route, method and status code.");
  for (const auto* route : sorted(m.routes)) {
    for (const auto* e : sorted(route->second.requests)) {
      out.append("gatehouse_requests_total{");
      label(&out, "route", route->first, true);
      label(&out, "method", kMethods[e->first >> 16]);
      label(&out, "code", std::to_string(e->first & 0xffff));
      out.append("} ").append(std::to_string(e->second)).append("\n");
    }
  }
  header(&out, om, "gatehouse_request_duration_seconds", "histogram",
         "Time from the request head to the end of the response, by route.");
  for (const auto* route : sorted(m.routes))
    histogram(&out, om, "gatehouse_request_duration_seconds", "route", route->first,
              route->second.duration);

  // "service/method" as its two labels.
  auto grpc_labels = [](std::string_view key) {
    const auto slash = key.find('/');
    std::string labels;
    label(&labels, "service", key.substr(0, slash), true);
    label(&labels, "method", key.substr(slash + 1));
    return labels;
  };
  header(&out, om, "gatehouse_grpc_requests_total", "counter",
         "gRPC calls by service, method and status code (the gateway's own answers too).");
  for (const auto* g : sorted(m.grpc)) {
    const std::string labels = grpc_labels(g->first);
    for (size_t code = 0; code < g->second.by_code.size(); ++code) {
      if (!g->second.by_code[code]) continue;
      out.append("gatehouse_grpc_requests_total{").append(labels);
      label(&out, "code", grpc::code_name(static_cast<grpc::Code>(code)));
      out.append("} ").append(std::to_string(g->second.by_code[code])).append("\n");
    }
  }
  header(&out, om, "gatehouse_grpc_request_duration_seconds", "histogram",
         "Time from a gRPC call's head to its end, by service and method.");
  for (const auto* g : sorted(m.grpc)) {
    histogram(&out, om, "gatehouse_grpc_request_duration_seconds", grpc_labels(g->first),
              g->second.duration);
  }

  header(&out, om, "gatehouse_upstream_requests_total", "counter",
         "Upstream exchanges by upstream, target and outcome.");
  for (const auto* up : sorted(m.upstreams)) {
    for (const auto* target : sorted(up->second.by_target)) {
      for (size_t i = 0; i < kUpstreamOutcomes; ++i) {
        out.append("gatehouse_upstream_requests_total{");
        label(&out, "upstream", up->first, true);
        label(&out, "target", target->first);
        label(&out, "outcome", outcome_name(static_cast<UpstreamOutcome>(i)));
        out.append("} ").append(std::to_string(target->second[i])).append("\n");
      }
    }
  }
  header(&out, om, "gatehouse_upstream_rejected_total", "counter",
         "Requests refused because the upstream's max_concurrent_requests was reached (and its "
         "max_pending queue was full, or freed no slot within timeouts.queue).");
  for (const auto* up : sorted(m.upstreams)) {
    out.append("gatehouse_upstream_rejected_total{");
    label(&out, "upstream", up->first, true);
    out.append("} ").append(std::to_string(up->second.rejected)).append("\n");
  }
  header(&out, om, "gatehouse_upstream_queued_total", "counter",
         "Requests that waited in the upstream's max_pending queue for a slot.");
  for (const auto* up : sorted(m.upstreams)) {
    out.append("gatehouse_upstream_queued_total{");
    label(&out, "upstream", up->first, true);
    out.append("} ").append(std::to_string(up->second.queued)).append("\n");
  }
  header(&out, om, "gatehouse_upstream_retries_total", "counter",
         "Retries by upstream and reason.");
  static constexpr const char* kReasons[] = {"connect_failure", "reset", "timeout", "status",
                                             "grpc_status"};
  for (const auto* up : sorted(m.upstreams)) {
    for (size_t i = 0; i < std::size(kReasons); ++i) {
      out.append("gatehouse_upstream_retries_total{");
      label(&out, "upstream", up->first, true);
      label(&out, "reason", kReasons[i]);
      out.append("} ").append(std::to_string(up->second.retries[i])).append("\n");
    }
  }
  header(&out, om, "gatehouse_upstream_retry_budget_exhausted_total", "counter",
         "Retries not made because the upstream's retry budget was spent.");
  for (const auto* up : sorted(m.upstreams)) {
    out.append("gatehouse_upstream_retry_budget_exhausted_total{");
    label(&out, "upstream", up->first, true);
    out.append("} ").append(std::to_string(up->second.retry_budget_exhausted)).append("\n");
  }
  header(&out, om, "gatehouse_upstream_breaker_transitions_total", "counter",
         "Circuit-breaker state changes of the upstream's targets, by the state entered.");
  for (const auto* up : sorted(m.upstreams)) {
    for (const auto* t : sorted(up->second.breaker_transitions)) {
      out.append("gatehouse_upstream_breaker_transitions_total{");
      label(&out, "upstream", up->first, true);
      label(&out, "state", t->first);
      out.append("} ").append(std::to_string(t->second)).append("\n");
    }
  }
  header(
      &out, om, "gatehouse_upstream_request_duration_seconds", "histogram",
      "Time from sending the request upstream to its response head (or the failure), by upstream.");
  for (const auto* up : sorted(m.upstreams))
    histogram(&out, om, "gatehouse_upstream_request_duration_seconds", "upstream", up->first,
              up->second.duration);

  for (const Family* f : families) {
    auto it = m.families.find(f);
    const FamilySamples* samples = it == m.families.end() ? nullptr : &it->second;
    if (f->kind == Family::Kind::kHistogram) {
      header(&out, om, f->name, "histogram", f->help);
      if (samples) {
        for (const auto* h : sorted(samples->histograms))
          histogram(&out, om, f->name, "route", h->first, h->second);
      }
      continue;
    }
    header(&out, om, f->name, "counter", f->help);
    if (!samples) continue;
    for (const auto* c : sorted(samples->counters)) {
      for (size_t i = 0; i < c->second.size(); ++i) {
        out.append(f->name).append("{");
        label(&out, "route", c->first, true);
        if (!f->values.empty()) label(&out, f->value_label, f->values[i]);
        out.append("} ").append(std::to_string(c->second[i])).append("\n");
      }
    }
  }

  gauge(&out, om, "gatehouse_downstream_connections", "Open client connections.",
        static_cast<double>(p.downstream_connections));
  gauge(&out, om, "gatehouse_upstream_connections", "Open upstream connections (in use and idle).",
        static_cast<double>(p.upstream_connections));
  gauge(&out, om, "gatehouse_received_bytes_total",
        "Bytes received from clients (heads and bodies).", static_cast<double>(m.bytes_received),
        "counter");
  gauge(&out, om, "gatehouse_sent_bytes_total", "Bytes sent to clients (heads and bodies).",
        static_cast<double>(m.bytes_sent), "counter");
  header(&out, om, "gatehouse_downstream_requests_total", "counter",
         "Requests by the protocol the client spoke.");
  for (size_t i = 0; i < MetricsShard::kProtocols.size(); ++i) {
    sample(&out, "gatehouse_downstream_requests_total", "protocol", MetricsShard::kProtocols[i],
           m.requests_by_protocol[i]);
  }
  gauge(&out, om, "gatehouse_websocket_tunnels_open", "WebSocket tunnels open now.",
        static_cast<double>(m.tunnels_opened - m.tunnels_closed));
  gauge(&out, om, "gatehouse_websocket_tunnels_total", "WebSocket tunnels opened.",
        static_cast<double>(m.tunnels_opened), "counter");
  header(&out, om, "gatehouse_websocket_bytes_total", "counter",
         "Bytes through WebSocket tunnels, by direction.");
  sample(&out, "gatehouse_websocket_bytes_total", "direction", "upstream",
         m.tunnel_bytes_to_upstream);
  sample(&out, "gatehouse_websocket_bytes_total", "direction", "client", m.tunnel_bytes_to_client);
  header(&out, om, "gatehouse_config_reloads_total", "counter", "Configuration reloads by result.");
  sample(&out, "gatehouse_config_reloads_total", "result", "ok", p.reloads_ok);
  sample(&out, "gatehouse_config_reloads_total", "result", "error", p.reloads_error);
  header(&out, om, "gatehouse_config_info", "gauge",
         "The configuration version in use (always 1).");
  out.append("gatehouse_config_info{version=\"")
      .append(std::to_string(p.config_version))
      .append("\"} 1\n");
  gauge(&out, om, "gatehouse_config_last_reload_timestamp_seconds",
        "When the configuration in use was loaded (Unix time).", p.config_loaded_at);
  gauge(&out, om, "gatehouse_workers", "Worker threads.", p.workers);
  gauge(&out, om, "gatehouse_tracing_spans_exported_total", "Spans the OTLP collector accepted.",
        static_cast<double>(p.spans_exported), "counter");
  header(&out, om, "gatehouse_tracing_spans_dropped_total", "counter",
         "Spans not exported: the queue was full, or the export failed after its retries.");
  sample(&out, "gatehouse_tracing_spans_dropped_total", "reason", "queue_full",
         p.spans_dropped_full);
  sample(&out, "gatehouse_tracing_spans_dropped_total", "reason", "export_failed",
         p.spans_dropped_failed);
  gauge(&out, om, "gatehouse_tracing_export_retries_total",
        "OTLP export requests sent again after a retryable failure.",
        static_cast<double>(p.span_export_retries), "counter");
  header(&out, om, "gatehouse_upstream_target_healthy", "gauge",
         "Active health checks: 1 when the target is in the balancer, 0 when taken out.");
  for (const auto& h : p.health) {
    out.append("gatehouse_upstream_target_healthy{");
    label(&out, "upstream", h.upstream, true);
    label(&out, "target", h.target);
    out.append("} ").append(h.healthy ? "1" : "0").append("\n");
  }
  header(&out, om, "gatehouse_upstream_health_transitions_total", "counter",
         "Active health checks: times a target was taken out of or put back into the balancer.");
  for (const auto& h : p.health) {
    out.append("gatehouse_upstream_health_transitions_total{");
    label(&out, "upstream", h.upstream, true);
    label(&out, "target", h.target);
    out.append("} ").append(std::to_string(h.transitions)).append("\n");
  }
  header(&out, om, "gatehouse_upstream_bulkhead_in_flight", "gauge",
         "Requests holding one of the upstream's max_concurrent_requests slots, whole process.");
  for (const auto& b : p.bulkheads) {
    out.append("gatehouse_upstream_bulkhead_in_flight{");
    label(&out, "upstream", b.upstream, true);
    out.append("} ").append(std::to_string(b.in_flight)).append("\n");
  }
  header(&out, om, "gatehouse_upstream_bulkhead_waiting", "gauge",
         "Requests waiting in the upstream's max_pending queue for a slot.");
  for (const auto& b : p.bulkheads) {
    out.append("gatehouse_upstream_bulkhead_waiting{");
    label(&out, "upstream", b.upstream, true);
    out.append("} ").append(std::to_string(b.waiting)).append("\n");
  }

  for (const auto& v : p.plugin_values) gauge(&out, om, v.name, v.help, v.value, v.type);

  // process_* as the Prometheus client libraries name them, from /proc/self.
  long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
  std::string line;
  {
    // Closed before the descriptors are counted below: it is the scrape's, not the process's.
    std::ifstream stat("/proc/self/stat");
    std::getline(stat, line);
  }
  auto rparen = line.rfind(')');
  if (rparen != std::string::npos && ticks > 0) {
    std::istringstream fields(line.substr(rparen + 2));
    std::vector<std::string> f;
    for (std::string x; fields >> x;) f.push_back(x);
    // Fields from 3 (state) on: utime=14, stime=15, starttime=22, rss=24 (1-based in proc(5)).
    if (f.size() > 21) {
      double cpu = (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(ticks);
      gauge(&out, om, "process_cpu_seconds_total", "User and system CPU time, in seconds.", cpu,
            "counter");
      gauge(&out, om, "process_resident_memory_bytes", "Resident memory, in bytes.",
            std::stod(f[21]) * static_cast<double>(page));
      double boot_time = 0;
      std::ifstream sys("/proc/stat");
      for (std::string l; std::getline(sys, l);) {
        if (l.rfind("btime ", 0) == 0) boot_time = std::stod(l.substr(6));
      }
      gauge(&out, om, "process_start_time_seconds", "Start time of the process (Unix time).",
            boot_time + std::stod(f[19]) / static_cast<double>(ticks));
    }
  }
  size_t fds = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++fds;
    }
    closedir(d);
  }
  gauge(&out, om, "process_open_fds", "Open file descriptors.",
        static_cast<double>(fds > 0 ? fds - 1 : 0));
  if (om) out.append("# EOF\n");
  return out;
}

}  // namespace gatehouse::observe
