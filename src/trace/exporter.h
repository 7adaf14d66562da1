// The export of finished spans with OTLP/HTTP (https://opentelemetry.io/docs/specs/otlp/), off
// the request path. Each worker hands its requests' spans to a SpanSink of its own; the exporter,
// on the main thread, takes them in batches and POSTs each to the collector as an
// ExportTraceServiceRequest in protobuf (gzip), retrying what the collector may take later (429,
// 502, 503, 504, a failed or timed-out connection) with backoff and its Retry-After.
//
// A worker never waits for the collector: a sink's lock covers an append or a swap, never I/O,
// and a full queue drops the spans (counted) instead of growing or blocking. A dead or slow
// collector costs the requests nothing but their spans.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/snapshot.h"
#include "net/asio.h"
#include "trace/otlp.h"

namespace gatehouse::upstream {
class FetchSet;
struct FetchRequest;
}  // namespace gatehouse::upstream
namespace gatehouse::http {
struct Url;
}
namespace gatehouse::tls {
class ClientContext;
}

namespace gatehouse::trace {

// Spans of OTLP's encoding (SpanWriter's), as the spans of one ScopeSpans message.
struct SpanBatch {
  ByteBuffer bytes;
  size_t spans = 0;
};

// One worker's spans waiting for export. push() on the worker, take() on the exporter's thread.
class SpanSink {
 public:
  // `share`: the part of tracing's max_queue this sink may hold (max_queue / workers);
  // `wake`: called (from the worker) when a batch fills.
  SpanSink(size_t workers, std::function<void()> wake)
      : workers_(workers), wake_(std::move(wake)) {}
  // A request's spans (`count` of them), which `write(ByteBuffer*)` appends to the batch, under
  // the lock (they are written where they wait: no copy); dropped and counted when the queue has
  // no room.
  template <class Write>
  void push(size_t count, const config::Tracing& cfg, Write&& write) {
    bool wake = false;
    {
      std::lock_guard lock(m_);
      if (!admit(count, cfg)) return;
      write(&filling_.bytes);
      wake = added(count, cfg);
    }
    if (wake) wake_();
  }
  // Every batch waiting, the one filling too, appended to *out.
  void take(std::vector<SpanBatch>* out);
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  // With m_ held: room for `count` more spans (else they are counted as dropped), in a batch
  // they do not take past max_batch; then, once written, whether the exporter is to be woken.
  bool admit(size_t count, const config::Tracing& cfg);
  bool added(size_t count, const config::Tracing& cfg);
  void close_batch();  // the filling batch is full: it waits for the exporter (m_ held)
  const size_t workers_;
  const std::function<void()> wake_;
  std::mutex m_;
  SpanBatch filling_;
  std::vector<SpanBatch> full_;
  size_t queued_ = 0;   // spans in filling_ and full_
  bool woken_ = false;  // wake_ was called since the last take()
  std::atomic<uint64_t> dropped_{0};
};

class Exporter {
 public:
  Exporter(net::asio::io_context& io, size_t workers);
  ~Exporter();
  SpanSink& sink(size_t worker) { return *sinks_[worker]; }
  // The config in force (at start and after each reload; main thread).
  void configure(std::shared_ptr<const config::Snapshot> snapshot);
  void start();
  // Stops exporting: what is waiting is dropped, an export in flight cancelled.
  void stop();

  struct Stats {
    uint64_t exported = 0;        // spans the collector took
    uint64_t dropped_full = 0;    // spans dropped for want of room in the queue
    uint64_t dropped_failed = 0;  // spans of exports that failed for good
    uint64_t retries = 0;         // export requests sent again
  };
  Stats stats() const;  // main thread

 private:
  net::Task<> run();
  // One batch to the collector, with its retries: true when it took it.
  net::Task<bool> deliver(const config::Tracing& cfg, std::string request);
  // One try: the status (0 when no answer came), and a Retry-After in seconds.
  net::Task<int> post(const http::Url& url, upstream::FetchRequest& req, int* retry_after);
  void wake();

  net::asio::io_context& io_;
  std::vector<std::unique_ptr<SpanSink>> sinks_;
  std::shared_ptr<const config::Snapshot> snapshot_;
  net::Timer timer_;
  std::unique_ptr<upstream::FetchSet> in_flight_;
  std::shared_ptr<const tls::ClientContext> tls_;  // made at the first https:// export
  bool running_ = false;
  bool woken_ = false;
  bool failing_ = false;  // the last export failed (logged once until one succeeds)
  std::minstd_rand rng_{std::random_device{}()};  // backoff jitter
  Stats stats_;
};

}  // namespace gatehouse::trace
