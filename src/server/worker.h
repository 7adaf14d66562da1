// A worker: one thread running one io_context, with its own SO_REUSEPORT acceptors, upstream
// connection pools, load-balancer state and access-log buffer. A connection lives and dies on one
// worker, so nothing on the request path takes a lock or touches another worker's memory.
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config/snapshot.h"
#include "exchange/context.h"
#include "net/asio.h"
#include "observe/access_log.h"
#include "observe/metrics.h"
#include "upstream/balancer.h"
#include "upstream/pool.h"
#include "upstream/upstream.h"

namespace gatehouse::exchange {
class RequestStatePool;
}

namespace gatehouse::server {

// What a worker reports to a scrape or /status, copied on its own thread.
struct WorkerStats {
  observe::MetricsShard metrics;
  uint64_t connections = 0;
  struct Target {
    std::string upstream, address;
    uint32_t in_flight = 0;
    size_t idle = 0;
  };
  std::vector<Target> targets;
};

class Worker final : public exchange::WorkerContext {
 public:
  Worker(int id, std::shared_ptr<const config::Snapshot> snapshot, int access_log_fd,
         std::atomic<uint64_t>* open_connections, trace::SpanSink& spans);
  ~Worker();

  // Opens a listener named `key` (its configured address) on `endpoint`; returns the address
  // actually bound (port 0 resolved), or nullopt with *error set. Before run() call it directly;
  // once running, only through on_thread().
  std::optional<net::tcp::endpoint> open_listener(const std::string& key,
                                                  const net::tcp::endpoint& endpoint,
                                                  std::string* error);
  void close_listener(const std::string& key);
  // Runs f on this worker's thread and waits for its result (main thread, while running).
  template <class F>
  auto on_thread(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    net::asio::post(io_, [&task] { task(); });
    return result.get();
  }
  // The thread body: serves until drained.
  void run();
  // Thread-safe: new requests use `snapshot` from now on; requests in flight keep theirs.
  void publish(std::shared_ptr<const config::Snapshot> snapshot);
  // Thread-safe: stop accepting, close idle connections, let busy ones finish their request.
  void drain();
  // Thread-safe: close every connection now (drain budget exceeded).
  void abort();
  // Thread-safe: calls done(stats) on this worker's thread (at once, empty, if it has stopped).
  void collect(std::function<void(WorkerStats)> done);

  // --- exchange::WorkerContext: for connections, on this worker's thread only ---
  net::asio::io_context& io() override { return io_; }
  const std::shared_ptr<exchange::View>& view() const override { return view_; }
  upstream::Random& rng() override { return rng_; }
  bool draining() const override { return draining_; }
  void log_access(const observe::AccessRecord& record) override;
  observe::MetricsShard& metrics() override { return metrics_; }
  trace::SpanSink& spans() override { return spans_; }
  filters::WorkerState& filter_state() override { return filter_state_; }
  void add(exchange::Drainable* c) override { connections_.insert(c); }
  void remove(exchange::Drainable* c) override;

 private:
  net::Task<> accept_loop(std::shared_ptr<net::Acceptor> acceptor, std::string key);
  net::Task<> choose_protocol(net::Socket socket, config::Listener listener);
  void close_tunnels_if_alone();
  void close_shared_connections();  // a drain's end: plugins' and upstreams' own
  void flush_access_log();
  void adopt(std::shared_ptr<const config::Snapshot> snapshot);

  int id_;
  // All I/O of a worker happens on its own thread: only posting (publish, drain, abort) crosses
  // threads, so the reactor's per-operation locking is switched off and the scheduler's kept.
  net::asio::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::shared_ptr<exchange::View> view_;
  upstream::WorkerUpstreams upstreams_;  // pools kept across reloads
  std::unordered_map<std::string, std::shared_ptr<net::Acceptor>> acceptors_;  // by key
  std::unordered_set<exchange::Drainable*> connections_;
  upstream::Random rng_;
  int access_log_fd_;
  std::string access_buf_;
  bool flush_posted_ = false;
  bool draining_ = false;
  bool running_ = false;
  std::atomic<bool> stopped_{false};
  std::atomic<uint64_t>* open_connections_;
  observe::MetricsShard metrics_;
  trace::SpanSink& spans_;  // the exporter's, which outlives the worker's requests
  filters::WorkerState filter_state_;
  // Last: its exchanges use the members above, and go first.
  std::unique_ptr<exchange::RequestStatePool> request_states_;
};

}  // namespace gatehouse::server
