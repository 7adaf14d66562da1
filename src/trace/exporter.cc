#include "trace/exporter.h"

#include <spdlog/spdlog.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <random>

#include "http/url.h"
#include "tls/client_context.h"
#include "trace/otlp.h"
#include "upstream/fetch.h"

namespace gatehouse::trace {

namespace {

// The first export retry waits this long (with full jitter), each next one twice as long.
constexpr auto kFirstBackoff = std::chrono::milliseconds(250);
constexpr auto kMaxBackoff = std::chrono::seconds(5);
constexpr auto kMaxRetryAfter = std::chrono::seconds(30);

bool gzip(std::string_view in, std::string* out) {
  z_stream z{};
  // 15 window bits + 16: a gzip wrapper (RFC 1952), as Content-Encoding: gzip means.
  if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return false;
  out->resize(deflateBound(&z, in.size()));
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out->data());
  z.avail_out = static_cast<uInt>(out->size());
  const bool ok = deflate(&z, Z_FINISH) == Z_STREAM_END;
  out->resize(z.total_out);
  deflateEnd(&z);
  return ok;
}

// OTLP/HTTP 1.0, "Retryable Response Codes".
bool retryable(int status) {
  return status == 0 || status == 429 || status == 502 || status == 503 || status == 504;
}

// The resource: service.name, service.version and service.instance.id unless the config gives
// them, then the config's.
std::vector<std::pair<std::string, std::string>> resource_of(const config::Tracing& cfg,
                                                             const std::string& instance) {
  std::vector<std::pair<std::string, std::string>> r = cfg.resource;
  auto add = [&r](std::string key, std::string value) {
    if (std::none_of(r.begin(), r.end(), [&](const auto& kv) { return kv.first == key; }))
      r.emplace_back(std::move(key), std::move(value));
  };
  add("service.name", "gatehouse");
  add("service.version", GATEHOUSE_VERSION);
  add("service.instance.id", instance);
  add("telemetry.sdk.name", "gatehouse");
  add("telemetry.sdk.language", "cpp");
  return r;
}

}  // namespace

bool SpanSink::admit(size_t count, const config::Tracing& cfg) {
  if (queued_ + count > std::max<size_t>(1, cfg.max_queue / workers_)) {
    dropped_.fetch_add(count, std::memory_order_relaxed);
    return false;
  }
  // A request's spans stay together: a batch they would take past max_batch is sent first (a
  // batch is larger than max_batch only when one request's spans are).
  if (filling_.spans && filling_.spans + count > cfg.max_batch) close_batch();
  return true;
}

bool SpanSink::added(size_t count, const config::Tracing& cfg) {
  filling_.spans += count;
  queued_ += count;
  if (filling_.spans >= cfg.max_batch) close_batch();
  const bool wake = !full_.empty() && !woken_;
  woken_ = woken_ || wake;
  return wake;
}

void SpanSink::close_batch() {
  const size_t capacity = filling_.bytes.capacity();
  full_.push_back(std::move(filling_));
  filling_ = {};
  filling_.bytes.reserve(capacity);  // the next batch is about as large: no growing it again
}

void SpanSink::take(std::vector<SpanBatch>* out) {
  std::lock_guard lock(m_);
  for (auto& b : full_) out->push_back(std::move(b));
  full_.clear();
  if (filling_.spans) out->push_back(std::move(filling_));
  filling_ = {};
  queued_ = 0;
  woken_ = false;
}

Exporter::Exporter(net::asio::io_context& io, size_t workers)
    : io_(io), timer_(io.get_executor()), in_flight_(std::make_unique<upstream::FetchSet>()) {
  for (size_t i = 0; i < workers; ++i)
    sinks_.push_back(
        std::make_unique<SpanSink>(workers, [this] { net::asio::post(io_, [this] { wake(); }); }));
}

Exporter::~Exporter() = default;

void Exporter::configure(std::shared_ptr<const config::Snapshot> snapshot) {
  snapshot_ = std::move(snapshot);
}

void Exporter::start() {
  running_ = true;
  net::asio::co_spawn(io_.get_executor(), run(), net::asio::detached);
}

void Exporter::stop() {
  running_ = false;
  timer_.cancel();
  in_flight_->cancel_all();
}

void Exporter::wake() {
  woken_ = true;
  timer_.cancel();
}

Exporter::Stats Exporter::stats() const {
  Stats s = stats_;
  for (const auto& sink : sinks_) s.dropped_full += sink->dropped();
  return s;
}

net::Task<> Exporter::run() {
  const std::string instance = [] {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    return std::string(host) + "-" + std::to_string(getpid());
  }();
  std::vector<SpanBatch> batches;
  // The config of the moment: a reload may change the collector, or turn tracing off.
  auto tracing_now = [this]() -> const config::Tracing* {
    const auto& t = snapshot_->config.observability.tracing;
    return t ? &*t : nullptr;
  };
  while (running_) {
    if (!woken_) {
      const auto* t = tracing_now();
      timer_.expires_after(t ? t->interval : config::Duration(1000));
      co_await timer_.async_wait(net::use_task);
    }
    woken_ = false;
    if (!running_) break;
    std::shared_ptr<const config::Snapshot> held = snapshot_;  // while its tracing is in use
    const config::Tracing* tracing = tracing_now();
    batches.clear();
    for (auto& sink : sinks_) sink->take(&batches);
    if (batches.empty() || !tracing || tracing->otlp_endpoint.empty()) continue;
    const auto resource = resource_of(*tracing, instance);
    for (const SpanBatch& b : batches) {
      std::string request;
      write_export_request(resource, "gatehouse", GATEHOUSE_VERSION, b.bytes.view(), &request);
      const bool ok = running_ && co_await deliver(*tracing, std::move(request));
      (ok ? stats_.exported : stats_.dropped_failed) += b.spans;
    }
  }
}

net::Task<bool> Exporter::deliver(const config::Tracing& cfg, std::string request) {
  std::string why;
  const auto url = http::parse_url(cfg.otlp_endpoint, &why);  // checked at load
  const bool https = url->scheme == "https";
  // The request, made once for every try.
  upstream::FetchRequest req;
  std::string host = url->host.find(':') != std::string::npos ? "[" + url->host + "]" : url->host;
  if (url->port != (https ? 443 : 80)) host += ":" + std::to_string(url->port);
  req.server_name = url->host;
  req.head.start("POST", url->path);
  req.head.add("Host", host);
  req.head.add("Content-Type", "application/x-protobuf");
  if (cfg.gzip && gzip(request, &req.body))
    req.head.add("Content-Encoding", "gzip");
  else
    req.body = std::move(request);
  req.head.add("User-Agent", "gatehouse/" GATEHOUSE_VERSION);
  for (const auto& [n, v] : cfg.headers) req.head.add(n, v);
  req.head.add("Content-Length", std::to_string(req.body.size()));
  req.head.set_body(http::Framing::kContentLength, req.body.size());
  req.head.finish();
  req.want_body = true;  // for Retry-After
  req.max_body = 64 << 10;
  req.timeout = cfg.timeout;

  bool delivered = false;
  int status = 0;
  for (int attempt = 0; running_; ++attempt) {
    int retry_after = 0;
    status = co_await post(*url, req, &retry_after);
    delivered = status >= 200 && status < 300;
    if (delivered || !retryable(status) || attempt >= cfg.max_retries || !running_) break;
    // An exponential backoff, jittered over its upper half, or the collector's own Retry-After.
    auto wait = std::min<net::Clock::duration>(kFirstBackoff * (1 << attempt), kMaxBackoff);
    std::uniform_int_distribution<int64_t> jitter(wait.count() / 2, wait.count());
    wait = net::Clock::duration(jitter(rng_));
    if (retry_after > 0)
      wait = std::min<net::Clock::duration>(std::chrono::seconds(retry_after), kMaxRetryAfter);
    ++stats_.retries;
    timer_.expires_after(wait);
    co_await timer_.async_wait(net::use_task);
  }
  if (delivered && failing_)
    spdlog::info("tracing: exports to {} succeed again", cfg.otlp_endpoint);
  if (!delivered && !failing_ && running_)
    spdlog::warn("tracing: export to {} failed ({}); spans are dropped until it works",
                 cfg.otlp_endpoint, status ? "HTTP status " + std::to_string(status) : "no answer");
  failing_ = !delivered;
  co_return delivered;
}

net::Task<int> Exporter::post(const http::Url& url, upstream::FetchRequest& req, int* retry_after) {
  std::string why;
  if (url.scheme == "https" && !tls_) {
    tls_ = tls::ClientContext::create(tls::ClientSettings{}, &why);
    if (!tls_) co_return 0;
  }
  req.tls = url.scheme == "https" ? tls_.get() : nullptr;
  net::asio::ip::basic_resolver<net::tcp, net::Executor> resolver(io_.get_executor());
  auto [rec, endpoints] =
      co_await resolver.async_resolve(url.host, std::to_string(url.port), net::use_task);
  if (rec || endpoints.empty()) co_return 0;
  req.endpoint = *endpoints.begin();
  upstream::Fetch fetch(io_.get_executor(), in_flight_.get());
  upstream::FetchResult res = co_await fetch.run(req);
  for (const auto& [n, v] : res.fields) {
    if (http::iequals(n, "retry-after"))
      std::from_chars(v.data(), v.data() + v.size(), *retry_after);
  }
  co_return res.error.empty() ? res.status : 0;
}

}  // namespace gatehouse::trace
