#include "exchange/composite.h"

#include <algorithm>
#include <cstdio>

#include "config/units.h"
#include "exchange/composite_answer.h"
#include "exchange/exchange.h"
#include "http/parser.h"

namespace gatehouse::exchange {
namespace {

namespace json = boost::json;
using Phase = upstream::RequestSource::Phase;

// One leg's sub-request, as the codec of its Exchange: the request head the composite made, and
// the answer kept in memory (its status, its body up to the leg's limit, or the gateway's own
// answer for it).
class LegDownstream final : public Downstream, public std::enable_shared_from_this<LegDownstream> {
 public:
  LegDownstream(WorkerContext& w, const CompositeRequest& in, uint64_t max_bytes)
      : exchange(w), in_(in), max_bytes_(max_bytes), timer_(w.io().get_executor()) {}

  Exchange exchange;
  http::RequestHead head;
  std::string target;
  std::vector<std::pair<std::string, std::string>> fields;  // the head's, which views point into
  // The answer.
  int status = 0;
  std::string body;
  std::string cache_control;  // its lines joined
  std::string etag;
  bool too_large = false;
  bool cut = false;
  std::optional<http::ErrorResponse> answered;  // the gateway's own answer for the leg

  // The head's views into `target` and `fields`, once both are whole.
  void make_head(std::string_view method) {
    head.reset();
    head.method = method;
    head.target = target;
    const auto q = target.find('?');
    head.path = std::string_view(target).substr(0, q);
    head.query =
        q == std::string::npos ? std::string_view() : std::string_view(target).substr(q + 1);
    head.minor_version = 1;
    for (const auto& [name, value] : fields) {
      http::Header h{name, value};
      h.id = http::classify_field(h.name, &h.hop_by_hop);
      head.headers.push_back(h);
    }
    if (!request_body.empty()) {
      head.framing = http::Framing::kContentLength;
      head.content_length = request_body.size();
    }
  }
  void stop_timer() { timer_.cancel(); }

  // RequestSource: the client's body for the leg that takes it (Content-Length framed), else none.
  std::string_view request_body;
  std::string_view body_buffered() override { return request_body; }
  void body_consumed(size_t n, bool) override { request_body.remove_prefix(n); }
  net::Task<bool> body_read_more() override { co_return false; }
  void interim_response(const http::ResponseHead&) override {}
  void set_deadline(Phase phase, net::Clock::duration after) override {
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this(), phase](boost::system::error_code ec) {
      if (ec) return;
      if (phase == Phase::kStream || phase == Phase::kSend)
        self->exchange.abort();
      else
        self->exchange.deadline_passed(phase);
    });
  }

  // Downstream.
  std::string_view peer_ip() const override { return in_.client_ip; }
  bool peer_trusted() const override { return false; }
  bool secure() const override { return in_.secure; }
  std::string_view protocol() const override { return "HTTP/1.1"; }
  void release_head() override {}
  bool body_timed_out() const override { return false; }
  void start_response(const http::ResponseHead& h, const http::HeaderList&,
                      const std::vector<std::string>&, std::string_view, bool,
                      bool* payload) override {
    status = h.status;
    *payload = true;  // the content, whatever its framing
    for (const auto& f : h.headers) note(f.name, f.value);
  }
  bool send_now(std::string_view& b, bool* ok) override {
    *ok = take(b);
    b = {};
    return true;
  }
  net::Task<bool> send(std::string_view b) override { co_return take(b); }
  bool send_payload_now(const std::vector<std::string_view>& pieces, bool* ok) override {
    *ok = true;
    for (auto p : pieces) *ok = *ok && take(p);
    return true;
  }
  net::Task<bool> send_payload(const std::vector<std::string_view>& pieces) override {
    bool ok = true;
    for (auto p : pieces) ok = ok && take(p);
    co_return ok;
  }
  net::Task<bool> send_chunk(std::string_view data, const http::HeaderList*) override {
    co_return take(data);
  }
  net::Task<websocket::Tunnel::Bytes> tunnel(net::Stream&, std::string_view,
                                             const config::WebSocket&) override {
    co_return websocket::Tunnel::Bytes{};
  }
  net::Task<> answer(const http::ErrorResponse& e, std::string_view, std::string_view) override {
    status = e.status;
    if (!e.body && !e.shared_body) {
      answered = e;  // the gateway's own answer for the leg: why it has none
    } else {
      // A filter's answer with a body of its own (the leg's cache, a hit): the leg's answer.
      take(e.body ? std::string_view(*e.body) : e.shared());
      for (const auto& [name, value] : e.headers) note(name, value);
    }
    co_return;
  }
  void close_after() override {}
  void cut_response() override { cut = true; }
  uint64_t bytes_received() const override { return 0; }
  uint64_t bytes_sent() const override { return body.size(); }

 private:
  // What the answer says of its caching (composite_answer.h: merged_cache_control, merged_etag).
  void note(std::string_view name, std::string_view value) {
    if (http::iequals(name, "cache-control"))
      cache_control.append(cache_control.empty() ? "" : ", ").append(value);
    else if (http::iequals(name, "etag"))
      etag.assign(value);
  }
  // False (the client is gone, for the exchange) once the answer passes the leg's limit.
  bool take(std::string_view b) {
    if (too_large || body.size() + b.size() > max_bytes_) {
      too_large = true;
      return false;
    }
    body.append(b);
    return true;
  }

  const CompositeRequest& in_;
  uint64_t max_bytes_;
  net::Timer timer_;
};

// Why a leg did not give the composite an answer.
struct Failure {
  int status = 502;
  std::string error;  // a short code: leg_status, not_json, upstream_timeout, ...
  std::string message;
};

class Composite : public std::enable_shared_from_this<Composite> {
 public:
  Composite(WorkerContext& w, std::shared_ptr<View> view, const config::Route& route,
            CompositeRequest in)
      : w_(w),
        view_(std::move(view)),
        agg_(*route.aggregate),
        in_(std::move(in)),
        legs_(agg_.legs.size()),
        answers_(agg_.legs.size()),
        all_done_(w.io().get_executor(), net::Clock::time_point::max()),
        deadline_(w.io().get_executor()) {
    values_ = {in_.captures, in_.query, in_.headers, answers_};
  }

  net::Task<> run() {
    auto self = shared_from_this();
    if (agg_.timeout.count() > 0) {
      deadline_.expires_after(agg_.timeout);
      deadline_.async_wait([self](boost::system::error_code ec) {
        if (!ec) self->stop_all(Stop::kTimeout);
      });
    }
    for (size_t i = 0; i < legs_.size(); ++i)
      if (agg_.legs[i].needs.empty()) start(i);
    while (ended_ < legs_.size()) co_await all_done_.async_wait(net::use_task);
    deadline_.cancel();
  }

  http::ErrorResponse answer() const;
  std::string log() const;  // each leg's status and time, for the access log

 private:
  enum class Stop { kNone, kTimeout, kCancelled };
  enum class State { kWaiting, kRunning, kDone, kFailed };
  struct Leg {
    State state = State::kWaiting;
    Stop stop = Stop::kNone;  // why the composite stopped it
    std::shared_ptr<LegDownstream> down;
    std::string_view text;  // the answer as it came (JSON), when done
    json::value shaped;     // its shape (config::AggregateLeg::shaped)
    Failure failure;
    net::Clock::time_point started, ended;  // for the access log
  };

  std::string leg_name(size_t i) const {
    return "leg '" + agg_.legs[i].name + "' (upstream " + agg_.legs[i].route->to[0].upstream + ")";
  }

  void start(size_t i);
  net::Task<> serve(size_t i, std::shared_ptr<Composite> self);
  void settle(size_t i);
  void fail(size_t i, Failure f);
  void ended(size_t i);
  bool fill(size_t i, std::string* target, Failure* why) const;
  void stop_all(Stop why);

  WorkerContext& w_;
  std::shared_ptr<View> view_;
  const config::Aggregate& agg_;
  CompositeRequest in_;
  std::vector<Leg> legs_;
  std::vector<json::value> answers_;  // each leg's, parsed, by index (what other legs read)
  TemplateValues values_;
  size_t ended_ = 0;
  std::optional<size_t> required_failed_;  // the first required leg that failed
  net::Timer all_done_;                    // never fires: cancelled when the last leg ends
  net::Timer deadline_;                    // the aggregate's timeout
};

bool Composite::fill(size_t i, std::string* target, Failure* why) const {
  std::string what;
  switch (fill_template(agg_.legs[i].path, values_, target, &what)) {
    case FillError::kNone:
      return true;
    case FillError::kDependencyValue:
      *why = {502, "dependency_value",
              leg_name(i) + " needs " + what + " from another leg's answer, which has it not" +
                  " as a string, number or bool"};
      return false;
    case FillError::kDotSegment:
      *why = {502, "bad_value",
              leg_name(i) + ": the value '" + what + "' would be a dot segment of its path"};
      return false;
  }
  return false;
}

void Composite::start(size_t i) {
  Leg& l = legs_[i];
  const config::AggregateLeg& leg = agg_.legs[i];
  auto down = std::make_shared<LegDownstream>(w_, in_, agg_.max_leg_bytes);
  Failure why;
  if (!fill(i, &down->target, &why)) return fail(i, std::move(why));
  // The request id, and the trace context, always; the client's other headers only as the leg
  // says (its credentials too).
  const auto& cfg = view_->snapshot->config;
  down->fields.reserve(in_.headers.size() + leg.add_headers.size() + 1);
  down->fields.emplace_back(cfg.observability.request_id_header, in_.request_id);
  for (const auto& [name, value] : in_.headers) {
    const bool wanted =
        name == "traceparent" || name == "tracestate" ||
        (leg.credentials && (name == "authorization" || name == "cookie")) ||
        std::find(leg.headers.begin(), leg.headers.end(), name) != leg.headers.end();
    if (wanted) down->fields.emplace_back(name, value);
  }
  for (const auto& h : leg.add_headers) down->fields.push_back(h);
  if (leg.body && !in_.body.empty()) {
    down->request_body = in_.body;
    down->fields.emplace_back("content-length", std::to_string(in_.body.size()));
    for (const auto& [name, value] : in_.headers)
      if (name == "content-type") down->fields.emplace_back(name, value);
  }
  down->make_head(leg.method);
  l.down = std::move(down);
  l.state = State::kRunning;
  l.started = net::Clock::now();
  net::asio::co_spawn(w_.io().get_executor(), serve(i, shared_from_this()), net::asio::detached);
}

// `self` keeps the composite alive while the leg's coroutine runs.
net::Task<> Composite::serve(size_t i, std::shared_ptr<Composite> self) {
  (void)self;
  auto down = legs_[i].down;
  down->exchange.begin(view_);
  co_await down->exchange.serve(down->head, *down, agg_.legs[i].route.get());
  down->stop_timer();
  down->exchange.finish(*down);
  down->exchange.end();
  settle(i);
}

// The leg's sub-request ended: its answer, or why there is none.
void Composite::settle(size_t i) {
  Leg& l = legs_[i];
  const LegDownstream& d = *l.down;
  const config::AggregateLeg& leg = agg_.legs[i];
  const std::string name = leg_name(i);
  if (l.stop == Stop::kTimeout) {
    return fail(i, {504, "aggregate_timeout",
                    name + " did not answer within the aggregate's timeout of " +
                        config::format_duration(agg_.timeout)});
  }
  if (l.stop == Stop::kCancelled)
    return fail(i, {502, "cancelled", name + " was stopped: a required leg failed"});
  if (d.too_large) {
    return fail(i, {502, "too_large",
                    name + " answered more than max_leg_bytes (" +
                        std::to_string(agg_.max_leg_bytes) + " bytes)"});
  }
  if (d.answered)
    return fail(i, {d.answered->status, d.answered->code, name + ": " + d.answered->message});
  if (d.cut) return fail(i, {502, "upstream_reset_mid_body", name + " broke off its answer"});
  if (d.status < 200 || d.status > 299)
    return fail(i, {d.status, "leg_status", name + " answered " + std::to_string(d.status)});
  l.text = d.body;
  std::string why;
  if (!leg.raw && !parse_answer(d.body, &answers_[i], &why))
    return fail(i, {502, "not_json", name + " answered what is not JSON: " + why});
  if (leg.shaped()) {
    if (!shape_answer(answers_[i], leg.fields, leg.rename, &l.shaped) ||
        (leg.merge && !l.shaped.is_object()))
      return fail(i, {502, "not_shapable",
                      name + " answered " +
                          (leg.merge ? "what is not an object, to merge"
                                     : "what has no fields to select or rename")});
  }
  l.state = State::kDone;
  ended(i);
}

void Composite::fail(size_t i, Failure f) {
  Leg& l = legs_[i];
  l.state = State::kFailed;
  l.failure = std::move(f);
  if (!agg_.legs[i].optional && !required_failed_) {
    required_failed_ = i;
    stop_all(Stop::kCancelled);  // the answer is this failure: the others are not waited for
  }
  ended(i);
}

// A leg ended: the legs waiting for it start, or fail with it.
void Composite::ended(size_t i) {
  ++ended_;
  legs_[i].ended = net::Clock::now();
  for (size_t j = 0; j < legs_.size(); ++j) {
    const auto& needs = agg_.legs[j].needs;
    if (legs_[j].state != State::kWaiting ||
        std::find(needs.begin(), needs.end(), i) == needs.end())
      continue;
    bool ready = true;
    for (size_t n : needs) {
      if (legs_[n].state == State::kFailed) {
        fail(j,
             {502, "dependency_failed",
              leg_name(j) + " needs the answer of leg '" + agg_.legs[n].name + "', which failed"});
        ready = false;
        break;
      }
      ready = ready && legs_[n].state == State::kDone;
    }
    if (ready && legs_[j].state == State::kWaiting) start(j);
  }
  if (ended_ == legs_.size()) all_done_.cancel();
}

// The aggregate's timeout, or a required leg's failure: the running legs are cancelled (each
// ends through its exchange), the waiting ones fail now.
void Composite::stop_all(Stop why) {
  for (size_t i = 0; i < legs_.size(); ++i) {
    Leg& l = legs_[i];
    if (l.state == State::kRunning && l.stop == Stop::kNone) {
      l.stop = why;
      l.down->exchange.abort();
    }
  }
  for (size_t i = 0; i < legs_.size(); ++i) {
    if (legs_[i].state != State::kWaiting) continue;
    legs_[i].stop = why;
    if (why == Stop::kTimeout) {
      fail(i, {504, "aggregate_timeout",
               leg_name(i) + " had not started within the aggregate's timeout of " +
                   config::format_duration(agg_.timeout)});
    } else {
      fail(i, {502, "cancelled", leg_name(i) + " was not called: a required leg failed"});
    }
  }
}

std::string Composite::log() const {
  std::string out = "[";
  for (size_t i = 0; i < legs_.size(); ++i) {
    const Leg& l = legs_[i];
    if (i) out += ',';
    out += "{\"leg\":";
    http::append_json_string(&out, agg_.legs[i].name);
    const int status = l.state == State::kDone ? l.down->status : l.failure.status;
    out += ",\"status\":" + std::to_string(status);
    const double ms = l.started == net::Clock::time_point{}
                          ? 0
                          : std::chrono::duration<double, std::milli>(l.ended - l.started).count();
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", ms);
    out += ",\"ms\":";
    out += text;
    if (l.state != State::kDone) {
      out += ",\"error\":";
      http::append_json_string(&out, l.failure.error);
    }
    out += '}';
  }
  out += ']';
  return out;
}

http::ErrorResponse Composite::answer() const {
  http::ErrorResponse out;
  if (required_failed_) {
    const size_t i = *required_failed_;
    const Failure& f = legs_[i].failure;
    const auto& pass = agg_.legs[i].pass_status;
    if (f.error == "leg_status" && std::find(pass.begin(), pass.end(), f.status) != pass.end()) {
      out = {f.status, "aggregate_leg_status", f.message, {}};
    } else if (f.status == 504) {
      out = {504, "aggregate_leg_timeout", f.message, {}};
    } else {
      out = {502, "aggregate_leg_failed", f.message, {}};
    }
    return out;
  }
  std::vector<LegResult> results;
  std::vector<LegCaching> caching;
  bool partial = false;
  for (size_t i = 0; i < legs_.size(); ++i) {
    const Leg& l = legs_[i];
    const bool ok = l.state == State::kDone;
    partial = partial || !ok;
    const config::AggregateLeg& leg = agg_.legs[i];
    results.push_back({leg.name, ok, leg.raw, l.text, l.failure.status, l.failure.error,
                       l.failure.message, ok && leg.shaped() ? &l.shaped : nullptr, leg.merge,
                       leg.at});
    if (ok) caching.push_back({l.down->cache_control, l.down->etag});
  }
  std::string doc = compose_document(results);
  if (doc.size() > agg_.max_bytes) {
    return {502,
            "aggregate_too_large",
            "the composed answer is larger than max_bytes (" + std::to_string(agg_.max_bytes) +
                " bytes)",
            {}};
  }
  out.status = partial ? agg_.partial_status : 200;
  out.code.clear();
  out.content_type = "application/json";
  out.body = std::move(doc);
  out.headers.emplace_back("Cache-Control", merged_cache_control(caching, partial));
  if (auto etag = merged_etag(caching, partial); !etag.empty())
    out.headers.emplace_back("ETag", std::move(etag));
  return out;
}

}  // namespace

net::Task<> serve_composite(WorkerContext& worker, std::shared_ptr<View> view,
                            const config::Route& route, CompositeRequest request,
                            http::ErrorResponse* out, std::string* legs) {
  auto composite = std::make_shared<Composite>(worker, std::move(view), route, std::move(request));
  co_await composite->run();
  *out = composite->answer();
  *legs = composite->log();
}

}  // namespace gatehouse::exchange
