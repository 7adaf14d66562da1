// One request's part in a distributed trace: the context it continues (or the trace it starts),
// the sampling decision, the gateway's server span and a client span per upstream try, the
// events of the gateway's decisions, and the trace context sent upstream. At the request's end,
// its spans are written in OTLP's encoding and handed to the exporter's queue (trace/exporter.h).
//
// Reused request after request by its exchange: its buffers keep their capacity.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "http/message.h"
#include "http/outgoing_request.h"
#include "observe/access_log.h"
#include "trace/context.h"
#include "trace/otlp.h"
#include "upstream/balancer.h"
#include "upstream/client.h"

namespace gatehouse::trace {

class SpanSink;

// Unix time in nanoseconds, as spans carry it.
uint64_t unix_nanos();

// What the server span says beyond the access log's record of the request.
struct RequestEnd {
  const observe::AccessRecord& log;  // the request as logged: method, status, route, ...
  std::string_view route_template;   // the route's path, as http.route
  bool secure = false;               // it came over TLS
};

class RequestTrace final : public upstream::TryObserver {
 public:
  // A new request, traced as `cfg` says (null: not at all): its context read from `req`, the
  // sampling decided, the server span's id made, and the fields for the upstream written.
  void begin(const config::Tracing* cfg, const http::RequestHead& req, upstream::Random& rng,
             uint64_t start_ns);
  // Not traced (a request refused before it was read); what begin() clears.
  void reset();
  bool on() const { return cfg_ != nullptr; }
  bool sampled() const { return sampled_; }
  // Its spans may be exported (sampled, or kept if it fails): tries and events are recorded.
  bool recording() const { return recording_; }
  // The trace id and the server span's id, in hex (empty when off): the access log's and every
  // error body's.
  std::string_view trace_id() const { return {trace_hex_, cfg_ ? sizeof trace_hex_ : 0}; }
  std::string_view span_id() const { return {span_hex_, cfg_ ? sizeof span_hex_ : 0}; }
  // The trace context fields the upstream request carries instead of the client's (with the
  // server span as the parent, until each try writes its own span id there).
  const http::HeaderList& upstream_fields() const { return fields_; }
  bool replaces_w3c() const { return w3c_; }
  bool replaces_b3() const { return b3_ || b3_multi_; }
  // A traceparent with the server span as its parent: a composite's legs are its children.
  void server_traceparent(std::string* out) const;
  const std::string& tracestate() const { return tracestate_; }

  // An event on the server span, now. Its value may be empty.
  void event(std::string_view name, std::string_view key = {}, std::string_view value = {});

  // upstream::TryObserver
  void try_started(http::OutgoingRequest& head, std::string_view target) override;
  void try_ended(int status, std::string_view error, bool answered) override;

  // The request ended: its spans go to `sink` when they are to be exported (sampled, or an error
  // kept by always_sample_errors).
  void finish(const RequestEnd& end, SpanSink& sink);

 private:
  struct Try {
    SpanId id{};
    uint64_t start_ns = 0, end_ns = 0;  // end 0: until the request's end
    std::string target;
    int status = 0;
    std::string error;
  };
  struct Event {
    std::string_view name, key;  // static text
    std::string value;
    uint64_t ns;
  };
  void write_spans(const RequestEnd& end, uint64_t end_ns, ByteBuffer* out);

  const config::Tracing* cfg_ = nullptr;
  upstream::Random* rng_ = nullptr;
  bool sampled_ = false;
  bool recording_ = false;
  bool w3c_ = false, b3_ = false, b3_multi_ = false;  // propagated in these formats
  bool has_parent_ = false;
  TraceId trace_{};
  SpanId span_{}, parent_{};
  char trace_hex_[32], span_hex_[16];
  std::string tracestate_;
  http::HeaderList fields_;
  std::string user_agent_, host_;  // copied when recording
  uint64_t start_ns_ = 0;
  std::vector<Try> tries_;
  std::vector<Event> events_;
};

}  // namespace gatehouse::trace
