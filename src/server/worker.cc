#include "server/worker.h"

#include <sys/socket.h>

#include <algorithm>
#include <thread>

#include "filters/registry.h"
#include "http1/connection.h"
#include "http2/connection.h"
#include "net/stream.h"
#include "observe/access_log.h"
#include "observe/log.h"
#include "tls/client_context.h"
#include "tls/server_context.h"

namespace gatehouse::server {

Worker::Worker(int id, std::shared_ptr<const config::Snapshot> snapshot, int access_log_fd,
               std::atomic<uint64_t>* open_connections, trace::SpanSink& spans)
    : id_(id),
      rng_(static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) +
           static_cast<uint64_t>(id) * 7919),
      access_log_fd_(access_log_fd),
      open_connections_(open_connections),
      spans_(spans),
      request_states_(std::make_unique<exchange::RequestStatePool>(*this)) {
  adopt(std::move(snapshot));
}

Worker::~Worker() = default;

void Worker::adopt(std::shared_ptr<const config::Snapshot> snapshot) {
  auto view = std::make_shared<exchange::View>();
  view->snapshot = std::move(snapshot);
  const auto& cfg = view->snapshot->config;
  view->upstreams = upstreams_.adopt(view->snapshot->upstreams, rng_);
  for (const auto& r : cfg.routes) {
    std::vector<uint32_t> weights;
    for (const auto& t : r.to) weights.push_back(t.weight);
    view->splits.emplace_back(std::move(weights));
  }
  view_ = std::move(view);
}

void Worker::publish(std::shared_ptr<const config::Snapshot> snapshot) {
  net::asio::post(io_,
                  [this, snapshot = std::move(snapshot)]() mutable { adopt(std::move(snapshot)); });
}

std::optional<net::tcp::endpoint> Worker::open_listener(const std::string& key,
                                                        const net::tcp::endpoint& endpoint,
                                                        std::string* error) {
  auto acceptor = std::make_shared<net::Acceptor>(io_.get_executor());
  boost::system::error_code ec;
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(net::asio::socket_base::reuse_address(true), ec);
  if (!ec) {
    // Every worker binds the same port; the kernel spreads new connections over them.
    int one = 1;
    if (::setsockopt(acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      ec.assign(errno, boost::system::system_category());
  }
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(4096, ec);
  net::tcp::endpoint bound;
  if (!ec) bound = acceptor->local_endpoint(ec);
  if (ec) {
    *error = "cannot listen on " + endpoint.address().to_string() + ":" +
             std::to_string(endpoint.port()) + ": " + ec.message();
    return std::nullopt;
  }
  acceptors_[key] = acceptor;
  if (running_)
    net::asio::co_spawn(io_.get_executor(), accept_loop(acceptor, key), net::asio::detached);
  return bound;
}

void Worker::close_listener(const std::string& key) {
  auto it = acceptors_.find(key);
  if (it == acceptors_.end()) return;
  boost::system::error_code ec;
  it->second->close(ec);  // its accept loop ends; connections it accepted go on
  acceptors_.erase(it);
}

void Worker::run() {
  running_ = true;
  for (auto& [key, a] : acceptors_) {
    net::asio::co_spawn(io_.get_executor(), accept_loop(a, key), net::asio::detached);
  }
  io_.run();
  stopped_ = true;
  flush_access_log();
}

void Worker::collect(std::function<void(WorkerStats)> done) {
  if (stopped_) return done(WorkerStats{});
  net::asio::post(io_, [this, done = std::move(done)] {
    WorkerStats stats;
    stats.metrics = metrics_;
    stats.connections = connections_.size();
    for (const auto& up : view_->upstreams) {
      for (size_t t = 0; t < up.targets.size(); ++t) {
        const auto& target = up.targets[t];
        stats.targets.push_back({up.name(), target.pool->address(), up.balancer.in_flight(t),
                                 target.pool->idle_count()});
      }
    }
    done(std::move(stats));
  });
}

net::Task<> Worker::accept_loop(std::shared_ptr<net::Acceptor> acceptor, std::string key) {
  const uint64_t max_connections = view_->snapshot->config.server.limits.max_connections;
  while (!draining_) {
    auto [ec, socket] = co_await acceptor->async_accept(net::use_task);
    if (ec == net::asio::error::operation_aborted || draining_ || !acceptor->is_open()) break;
    if (ec) {
      // Out of file descriptors or similar: back off briefly instead of spinning.
      spdlog::warn("worker {}: accept failed: {}", id_, ec.message());
      net::Timer pause(io_.get_executor(), std::chrono::milliseconds(50));
      co_await pause.async_wait(net::use_task);
      continue;
    }
    if (open_connections_->fetch_add(1, std::memory_order_relaxed) >= max_connections) {
      open_connections_->fetch_sub(1, std::memory_order_relaxed);
      boost::system::error_code ignored;
      socket.close(ignored);  // over server.limits.max_connections: refuse at once
      continue;
    }
    // The listener's config current now: a reload's new certificates apply to the connections
    // accepted after it.
    const config::Listener* listener = nullptr;
    for (const auto& l : view_->snapshot->config.server.listen) {
      if (l.address.to_string() == key) listener = &l;
    }
    if (!listener || (!listener->h2c && !(listener->tls && listener->tls->offers_h2()))) {
      http1::Connection::start(*this, *request_states_, net::Socket(std::move(socket)),
                               listener ? listener->tls : nullptr);
    } else {
      net::asio::co_spawn(io_.get_executor(),
                          choose_protocol(net::Socket(std::move(socket)), *listener),
                          net::asio::detached);
    }
  }
}

// HTTP/1.1 or HTTP/2, for a listener that speaks both: by ALPN after the TLS handshake (RFC 7301),
// or, in cleartext, by whether the first bytes are HTTP/2's connection preface (RFC 9113 3.4).
// Within server.timeouts.header_read, as a request head's first bytes would be.
net::Task<> Worker::choose_protocol(net::Socket socket, config::Listener listener) {
  static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  // Shared with the timer's handler, which may run after this frame has handed the stream on.
  auto stream = std::make_shared<net::Stream>(std::move(socket));
  net::Stream& client = *stream;
  net::Timer timer(io_.get_executor());
  timer.expires_after(view_->snapshot->config.server.timeouts.header_read);
  timer.async_wait([weak = std::weak_ptr(stream)](boost::system::error_code ec) {
    auto s = weak.lock();
    if (!ec && s) s->drop();  // ends the handshake or the read below
  });
  std::string first;
  bool h2 = false, ok = true;
  if (listener.tls) {
    client.start_tls_server(listener.tls);
    ok = co_await client.handshake();
    h2 = ok && client.alpn() == "h2";
  } else {
    // Until the bytes differ from the preface, or all of it is here.
    char buf[256];
    while (ok && first.size() < kPreface.size() &&
           kPreface.starts_with(first.substr(0, kPreface.size()))) {
      auto [ec, n] = co_await client.read_some(net::asio::buffer(buf));
      ok = !ec && n > 0;
      if (ok) first.append(buf, n);
    }
    h2 = ok && listener.h2c && first.starts_with(kPreface);
    ok = ok && (h2 || listener.http1);
  }
  timer.cancel();
  if (!ok || draining_) {
    client.drop();
    open_connections_->fetch_sub(1, std::memory_order_relaxed);  // no codec took it
    co_return;
  }
  net::Stream chosen(std::move(client));
  stream.reset();
  if (h2) {
    http2::Connection::start(*this, *request_states_, std::move(chosen), first);
  } else {
    http1::Connection::start(*this, *request_states_, std::move(chosen), first);
  }
}

void Worker::remove(exchange::Drainable* c) {
  connections_.erase(c);
  open_connections_->fetch_sub(1, std::memory_order_relaxed);
  // The last connection of a draining worker: plugins' own connections (Redis) and the upstream
  // connections that read all the time (HTTP/2) must close too, or they would keep the
  // io_context running.
  if (draining_ && connections_.empty()) close_shared_connections();
  if (draining_) close_tunnels_if_alone();
}

// The end of a drain for WebSocket tunnels: once every request has finished, they are all that
// keeps the worker, and they never finish by themselves; each is closed with 1001 (going away).
void Worker::close_tunnels_if_alone() {
  if (std::any_of(connections_.begin(), connections_.end(),
                  [](const exchange::Drainable* c) { return !c->tunnelling(); }))
    return;
  std::vector<exchange::Drainable*> all(connections_.begin(), connections_.end());
  for (auto* c : all) c->close_now();
}

void Worker::close_shared_connections() {
  filter_state_.clear();
  upstreams_.close_all();
}

void Worker::drain() {
  net::asio::post(io_, [this] {
    draining_ = true;
    for (auto& [key, a] : acceptors_) {
      boost::system::error_code ec;
      a->close(ec);
    }
    acceptors_.clear();
    // Copy: drain() may close a connection, which removes itself from the set.
    std::vector<exchange::Drainable*> all(connections_.begin(), connections_.end());
    for (auto* c : all) c->drain();
    if (connections_.empty()) close_shared_connections();
    close_tunnels_if_alone();
  });
}

void Worker::abort() {
  net::asio::post(io_, [this] {
    std::vector<exchange::Drainable*> all(connections_.begin(), connections_.end());
    for (auto* c : all) c->close_now();
  });
}

void Worker::log_access(const observe::AccessRecord& record) {
  if (access_log_fd_ < 0) return;
  observe::format_access_record(record, view_->snapshot->config.observability.access_log.fields,
                                &access_buf_);
  if (access_buf_.size() > 64 * 1024) {
    flush_access_log();
  } else if (!flush_posted_) {
    // One write per turn of the event loop, however many requests finished in it.
    flush_posted_ = true;
    net::asio::post(io_, [this] { flush_access_log(); });
  }
}

void Worker::flush_access_log() {
  flush_posted_ = false;
  if (access_buf_.empty() || access_log_fd_ < 0) return;
  observe::write_lines(access_log_fd_, access_buf_);
  access_buf_.clear();
}

}  // namespace gatehouse::server
