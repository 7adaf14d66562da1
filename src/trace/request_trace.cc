#include "trace/request_trace.h"

#include <chrono>
#include <cstring>

#include "trace/exporter.h"
#include "trace/otlp.h"

namespace gatehouse::trace {

namespace {

using Propagator = config::Tracing::Propagator;

template <size_t N>
void random_id(upstream::Random& rng, std::array<uint8_t, N>* id) {
  do {
    for (size_t i = 0; i < N; i += 8) {
      const uint64_t r = rng.next();
      std::memcpy(id->data() + i, &r, std::min<size_t>(8, N - i));
    }
  } while (std::all_of(id->begin(), id->end(), [](uint8_t b) { return b == 0; }));
}

// "host:port" (or "[v6]:port") into its host and port (0: none).
std::pair<std::string_view, int64_t> split_host_port(std::string_view a) {
  const auto colon = a.rfind(':');
  if (colon == std::string_view::npos || (a.front() == '[' && a.back() == ']')) return {a, 0};
  int64_t port = 0;
  for (char c : a.substr(colon + 1)) {
    if (c < '0' || c > '9') return {a, 0};
    port = port * 10 + (c - '0');
  }
  std::string_view host = a.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  return {host, port};
}

// network.protocol.version from the log's protocol: "1.1", "2".
std::string_view protocol_version(std::string_view protocol) {
  return protocol.substr(0, 5) == "HTTP/" ? protocol.substr(5) : protocol;
}

}  // namespace

uint64_t unix_nanos() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

void RequestTrace::begin(const config::Tracing* cfg, const http::RequestHead& req,
                         upstream::Random& rng, uint64_t start_ns) {
  reset();
  if (!cfg) return;
  cfg_ = cfg;
  rng_ = &rng;
  start_ns_ = start_ns;
  w3c_ = b3_ = b3_multi_ = false;
  for (Propagator p : cfg->propagation) {
    w3c_ |= p == Propagator::kTraceContext;
    b3_ |= p == Propagator::kB3;
    b3_multi_ |= p == Propagator::kB3Multi;
  }

  // The fields of the formats read, in one pass.
  std::string_view traceparent, b3, b3_trace, b3_span, b3_sampled, b3_flags;
  int traceparents = 0;
  std::string joined_state;  // tracestate may be split over several fields (RFC 9110 5.3)
  std::string_view user_agent;
  for (const auto& h : req.headers) {
    if (h.id == http::HeaderId::kTraceContext) {
      if (h.name.size() == 11) {
        traceparent = h.value;
        ++traceparents;
      } else {
        joined_state.append(joined_state.empty() ? "" : ",").append(h.value);
      }
    } else if (h.id == http::HeaderId::kB3) {
      if (h.name.size() == 2)
        b3 = h.value;
      else if (http::iequals(h.name, "x-b3-traceid"))
        b3_trace = h.value;
      else if (http::iequals(h.name, "x-b3-spanid"))
        b3_span = h.value;
      else if (http::iequals(h.name, "x-b3-sampled"))
        b3_sampled = h.value;
      else if (http::iequals(h.name, "x-b3-flags"))
        b3_flags = h.value;
    } else if (h.name.size() == 10 && http::iequals(h.name, "user-agent")) {
      user_agent = h.value;
    }
  }
  // The first format (in the configured order) whose context is valid is the one continued.
  std::optional<Parent> parent;
  bool from_w3c = false;
  for (Propagator p : cfg->propagation) {
    if (parent) break;
    if (p == Propagator::kTraceContext && traceparents == 1) {
      parent = parse_traceparent(traceparent);
      from_w3c = parent.has_value();
    } else if (p == Propagator::kB3 && !b3.empty()) {
      parent = parse_b3(b3);
    } else if (p == Propagator::kB3Multi &&
               (!b3_trace.empty() || !b3_sampled.empty() || !b3_flags.empty())) {
      parent = parse_b3_multi(b3_trace, b3_span, b3_sampled, b3_flags);
    }
  }
  has_parent_ = parent && parent->has_ids;
  if (has_parent_) {
    trace_ = parent->trace_id;
    parent_ = parent->span_id;
  } else {
    random_id(rng, &trace_);
  }
  // Parent-based sampling: the caller's decision stands; a new trace (or a caller that left it
  // open) is decided by the ratio.
  sampled_ =
      parent && parent->sampled ? *parent->sampled : sampled_by_ratio(trace_, cfg->sample_ratio);
  // tracestate belongs to a valid traceparent only (3.3).
  if (from_w3c && !joined_state.empty() && !normalize_tracestate(joined_state, &tracestate_))
    tracestate_.clear();
  random_id(rng, &span_);
  write_hex(trace_.data(), trace_.size(), trace_hex_);
  write_hex(span_.data(), span_.size(), span_hex_);

  recording_ = !cfg->otlp_endpoint.empty() && (sampled_ || cfg->always_sample_errors);
  if (recording_) {
    user_agent_.assign(user_agent);
    host_.assign(req.host);
  }

  // What the upstream gets, the server span as the parent until a try writes its own id. The
  // fields' strings are reused request after request.
  size_t n = 0;
  auto field = [&](std::string_view name) -> std::string& {
    if (fields_.size() == n) fields_.emplace_back();
    auto& [field_name, value] = fields_[n++];
    field_name.assign(name);
    value.clear();
    return value;
  };
  if (w3c_) {
    append_traceparent(trace_, span_, sampled_, &field("traceparent"));
    if (!tracestate_.empty()) field("tracestate") = tracestate_;
  }
  if (b3_) append_b3(trace_, span_, sampled_, &field("b3"));
  if (b3_multi_) {
    field("X-B3-TraceId") = trace_id();
    field("X-B3-SpanId") = span_id();
    field("X-B3-Sampled").push_back(sampled_ ? '1' : '0');
  }
  fields_.resize(n);
}

void RequestTrace::reset() {
  cfg_ = nullptr;
  sampled_ = recording_ = false;
  tracestate_.clear();
  tries_.clear();
  events_.clear();
}

void RequestTrace::server_traceparent(std::string* out) const {
  append_traceparent(trace_, span_, sampled_, out);
}

void RequestTrace::event(std::string_view name, std::string_view key, std::string_view value) {
  if (!recording_) return;
  events_.push_back({name, key, std::string(value), unix_nanos()});
}

void RequestTrace::try_started(http::OutgoingRequest& head, std::string_view target) {
  SpanId id;
  random_id(*rng_, &id);
  // The try's own span id, in the fields the gateway wrote (named as begin() names them; the
  // client's own were left out).
  for (size_t i = head.fields(); i-- > 0;) {
    const std::string_view name = head.field(i).name;
    if (w3c_ && name == "traceparent")
      write_hex(id.data(), id.size(), head.value_data(i) + kTraceparentSpanAt);
    else if (b3_ && name == "b3")
      write_hex(id.data(), id.size(), head.value_data(i) + kB3SpanAt);
    else if (b3_multi_ && name == "X-B3-SpanId")
      write_hex(id.data(), id.size(), head.value_data(i));
  }
  if (!recording_) return;
  Try& t = tries_.emplace_back();
  t.id = id;
  t.start_ns = unix_nanos();
  t.target.assign(target);
  if (tries_.size() > 1) {
    const Try& before = tries_[tries_.size() - 2];
    event("gatehouse.retry", "error.type",
          before.error.empty() ? std::to_string(before.status) : before.error);
  }
}

void RequestTrace::try_ended(int status, std::string_view error, bool answered) {
  if (tries_.empty()) return;  // not recording
  Try& t = tries_.back();
  t.status = status;
  t.error.assign(error);
  if (!answered) t.end_ns = unix_nanos();
}

void RequestTrace::finish(const RequestEnd& end, SpanSink& sink) {
  if (!recording_) return;
  const bool failed = end.log.status >= 500 || (end.log.status == 0 && !end.log.error.empty());
  if (!sampled_ && !(cfg_->always_sample_errors && failed)) return;
  const uint64_t end_ns = unix_nanos();
  sink.push(1 + tries_.size(), *cfg_, [&](ByteBuffer* out) { write_spans(end, end_ns, out); });
}

// The attributes follow OpenTelemetry's HTTP semantic conventions (semconv 1.26: HTTP server and
// client spans); the gateway's own under gatehouse.*.
void RequestTrace::write_spans(const RequestEnd& end, uint64_t end_ns, ByteBuffer* out) {
  const bool has_route = !end.route_template.empty();
  std::string name(end.log.method);
  if (has_route) name.append(" ").append(end.route_template);
  {
    SpanWriter s(out, trace_, span_, has_parent_ ? &parent_ : nullptr, tracestate_, sampled_, name,
                 SpanKind::kServer, start_ns_, end_ns);
    s.attr("http.request.method", end.log.method);
    const std::string_view target = end.log.path;
    s.attr("url.path", target.substr(0, target.find('?')));
    s.attr("url.scheme", end.secure ? "https" : "http");
    if (has_route) s.attr("http.route", end.route_template);
    if (end.log.status) s.attr("http.response.status_code", int64_t{end.log.status});
    const auto [host, port] = split_host_port(host_);
    if (!host.empty()) s.attr("server.address", host);
    if (port) s.attr("server.port", port);
    s.attr("network.protocol.version", protocol_version(end.log.protocol));
    if (!user_agent_.empty()) s.attr("user_agent.original", user_agent_);
    if (!end.log.client.empty()) s.attr("client.address", end.log.client);
    if (!end.log.route.empty()) s.attr("gatehouse.route", end.log.route);
    if (!end.log.upstream.empty()) s.attr("gatehouse.upstream", end.log.upstream);
    if (!end.log.consumer.empty()) s.attr("gatehouse.consumer", end.log.consumer);
    s.attr("gatehouse.request_id", end.log.request_id);
    if (!end.log.cache.empty()) s.attr("gatehouse.cache", end.log.cache);
    if (!end.log.error.empty())
      s.attr("error.type", end.log.error);
    else if (end.log.status >= 500)
      s.attr("error.type", std::to_string(end.log.status));
    for (const Event& e : events_) {
      s.event(e.name, e.ns);
      if (!e.key.empty()) s.attr(e.key, e.value);
      s.end_event();
    }
    // A server span is an error when the answer is a 5xx (or none was given); a 4xx is the
    // client's doing and leaves it unset.
    if (end.log.status >= 500 || end.log.status == 0) s.status(StatusCode::kError, end.log.error);
    s.finish();
  }
  for (size_t i = 0; i < tries_.size(); ++i) {
    const Try& t = tries_[i];
    const uint64_t t_end = t.end_ns ? t.end_ns : end_ns;
    SpanWriter s(out, trace_, t.id, &span_, tracestate_, sampled_, end.log.method,
                 SpanKind::kClient, t.start_ns, t_end);
    s.attr("http.request.method", end.log.method);
    const auto [host, port] = split_host_port(t.target);
    s.attr("server.address", host);
    if (port) s.attr("server.port", port);
    if (t.status) s.attr("http.response.status_code", int64_t{t.status});
    if (i > 0) s.attr("http.request.resend_count", static_cast<int64_t>(i));
    if (!end.log.upstream.empty()) s.attr("gatehouse.upstream", end.log.upstream);
    // A client span is an error for a 4xx too (the call did not do what was asked).
    if (!t.error.empty()) {
      s.attr("error.type", t.error);
      s.status(StatusCode::kError, t.error);
    } else if (t.status >= 400) {
      s.attr("error.type", std::to_string(t.status));
      s.status(StatusCode::kError);
    }
    s.finish();
  }
}

}  // namespace gatehouse::trace
