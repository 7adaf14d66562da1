// What an exchange (and the codec that feeds it) needs of the worker it runs on, as an interface:
// the worker (src/server/) sits above the codecs and the exchange and implements it, so nothing
// below it names the server.
#pragma once

#include <memory>
#include <vector>

#include "config/snapshot.h"
#include "filters/slots.h"
#include "net/asio.h"
#include "observe/access_log.h"
#include "observe/metrics.h"
#include "trace/exporter.h"
#include "upstream/balancer.h"
#include "upstream/upstream.h"

namespace gatehouse::exchange {

// Everything a worker derives from one snapshot. A request holds the view it started with, so a
// reload never pulls a balancer or a pool from under a request in flight.
struct View {
  std::shared_ptr<const config::Snapshot> snapshot;
  std::vector<upstream::Upstream> upstreams;     // by upstream index
  std::vector<upstream::SmoothWeighted> splits;  // by route order
};

// A client connection (or stream) a worker tracks, so that a drain or an abort reaches it.
class Drainable {
 public:
  // An idle one closes now; a busy one after its current response.
  virtual void drain() = 0;
  virtual void close_now() = 0;
  // A WebSocket tunnel, which has no end of its own: a drain closes it (1001) once nothing but
  // tunnels is left.
  virtual bool tunnelling() const { return false; }

 protected:
  ~Drainable() = default;
};

// The worker, as its connections and exchanges see it. Everything runs on the worker's thread.
class WorkerContext {
 public:
  virtual net::asio::io_context& io() = 0;
  virtual const std::shared_ptr<View>& view() const = 0;
  virtual upstream::Random& rng() = 0;
  virtual observe::MetricsShard& metrics() = 0;
  // Formats the record into the worker's buffer (nothing at all when the access log is off).
  virtual void log_access(const observe::AccessRecord& record) = 0;
  // Where its requests' spans wait for export.
  virtual trace::SpanSink& spans() = 0;
  virtual bool draining() const = 0;
  // What filters keep per worker (filters/slots.h); released when the worker drains.
  virtual filters::WorkerState& filter_state() = 0;
  virtual void add(Drainable* d) = 0;
  virtual void remove(Drainable* d) = 0;

 protected:
  ~WorkerContext() = default;
};

}  // namespace gatehouse::exchange
