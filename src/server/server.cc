#include "server/server.h"

#include <sys/inotify.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>

#include "admin/admin.h"
#include "config/snapshot.h"
#include "filters/registry.h"
#include "http/error_response.h"
#include "observe/access_log.h"
#include "observe/log.h"
#include "observe/metrics.h"
#include "server/worker.h"
#include "trace/exporter.h"

namespace gatehouse::server {
namespace {

std::string endpoint_text(const net::tcp::endpoint& ep) {
  return ep.address().is_v6() ? "[" + ep.address().to_string() + "]:" + std::to_string(ep.port())
                              : ep.address().to_string() + ":" + std::to_string(ep.port());
}

// Workers share a port through SO_REUSEPORT, which would also let a second gatehouse (any process
// of the same user) bind it, and the kernel would then split connections between two configs. So
// an address this process does not hold yet is first bound without it: that fails with
// EADDRINUSE when anything listens there. (A port of 0 is always free: the kernel picks one.)
std::optional<std::string> held_elsewhere(net::asio::io_context& io, const net::tcp::endpoint& ep) {
  if (ep.port() == 0) return std::nullopt;
  net::Acceptor probe(io.get_executor());
  boost::system::error_code ec;
  probe.open(ep.protocol(), ec);
  if (!ec) probe.set_option(net::asio::socket_base::reuse_address(true), ec);
  if (!ec) probe.bind(ep, ec);
  if (ec != boost::system::errc::address_in_use) return std::nullopt;  // other errors: at bind
  return "cannot listen on " + endpoint_text(ep) +
         ": Address already in use (another process listens there)";
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  http::append_json_escaped(&out, s);
  return out + "\"";
}

std::string_view balance_name(config::Balance b) {
  switch (b) {
    case config::Balance::kRoundRobin:
      return "round_robin";
    case config::Balance::kLeastRequest:
      return "least_request";
    case config::Balance::kRandom:
      return "random";
    case config::Balance::kConsistentHash:
      return "consistent_hash";
  }
  return "";
}

class Server final : public admin::AdminHandler {
 public:
  Server(std::string config_path, RunOptions options)
      : config_path_(std::move(config_path)), options_(options) {}

  int run() {
    std::signal(SIGPIPE, SIG_IGN);
    std::vector<config::ConfigError> errors;
    auto cfg = config::load_config(config_path_, &errors);
    if (!cfg) {
      for (const auto& e : errors) spdlog::error("{}", e.to_string());
      spdlog::error("not starting: {} error(s) in {}", errors.size(), config_path_);
      return 1;
    }
    snapshot_ = config::make_snapshot(std::move(*cfg), ++version_);
    // The watch first: a change made as soon as "listening on" is logged must not be missed.
    if (options_.watch) watch_config();
    if (!start_admin() || !start_workers()) return 1;
    background_ = filters::start_background(main_io_);
    health_checks_ = upstream::start_health_checks(main_io_);
    exporter_->start();
    wait_signal();
    std::thread joiner([this] {
      for (auto& t : threads_) t.join();
      net::asio::post(main_io_, [this] {
        signals_.cancel();
        drain_budget_.cancel();
        watch_.close();
        watch_delay_.cancel();
        if (admin_) admin_->close();
        background_->stop();
        health_checks_->stop();
        exporter_->stop();
      });
    });
    main_io_.run();
    joiner.join();
    spdlog::info("stopped{}", aborted_ ? " (drain budget exceeded)" : "");
    return aborted_ ? 2 : 0;
  }

 private:
  bool start_workers() {
    const auto& c = snapshot_->config;
    std::string log_error;
    access_fd_ = observe::open_access_log(c.observability.access_log, &log_error);
    if (!log_error.empty()) {
      spdlog::error("not starting: {}", log_error);
      return false;
    }
    raise_open_file_limit(c.server.limits.max_connections);
    int n = c.server.workers > 0
                ? c.server.workers
                : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    exporter_ = std::make_unique<trace::Exporter>(main_io_, n);
    exporter_->configure(snapshot_);
    for (int i = 0; i < n; ++i) {
      workers_.push_back(std::make_unique<Worker>(i, snapshot_, access_fd_, &open_connections_,
                                                  exporter_->sink(i)));
    }
    for (const auto& l : c.server.listen) {
      std::string error;
      if (!open_listener(l, /*running=*/false, &error)) {
        spdlog::error("not starting: {}", error);
        return false;
      }
    }
    spdlog::info("gatehouse {} started: {} worker(s), {} route(s), {} upstream(s), config {}",
                 GATEHOUSE_VERSION, n, c.routes.size(), c.upstreams.size(), config_path_);
    for (auto& w : workers_) threads_.emplace_back([&w] { w->run(); });
    return true;
  }

  // Every connection is a descriptor: the soft limit (often 1024) goes up to the hard one, as
  // HAProxy does for its maxconn, and a hard limit below max_connections (plus room for upstream
  // connections, listeners and logs) is said at start, not found later as accept() failures.
  static void raise_open_file_limit(uint64_t max_connections) {
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) != 0) return;
    if (r.rlim_cur < r.rlim_max) {
      rlimit raised{r.rlim_max, r.rlim_max};
      if (setrlimit(RLIMIT_NOFILE, &raised) == 0) r = raised;
    }
    const uint64_t wanted = max_connections + 256;
    if (r.rlim_cur != RLIM_INFINITY && r.rlim_cur < wanted)
      spdlog::warn(
          "open files limit {} is below {} (server.limits.max_connections {} and room for "
          "upstream connections): raise it (ulimit -n, systemd LimitNOFILE)",
          r.rlim_cur, wanted, max_connections);
  }

  // Opens a listener on every worker. Port 0 means "any": the first worker's choice becomes every
  // other worker's port. On failure no worker keeps it.
  bool open_listener(const config::Listener& l, bool running, std::string* error) {
    const std::string key = l.address.to_string();
    net::tcp::endpoint ep(net::asio::ip::make_address(l.address.ip), l.address.port);
    if (auto held = held_elsewhere(main_io_, ep)) {
      *error = *held;
      return false;
    }
    for (size_t i = 0; i < workers_.size(); ++i) {
      Worker& w = *workers_[i];
      auto open = [&] { return w.open_listener(key, ep, error); };
      auto bound = running ? w.on_thread(open) : open();
      if (!bound) {
        for (size_t k = 0; k < i; ++k) close_listener_on(*workers_[k], key, running);
        return false;
      }
      ep = *bound;
    }
    listeners_.emplace_back(key, ep);
    spdlog::info("listening on {}://{}", l.tls ? "https" : "http", endpoint_text(ep));
    return true;
  }

  void close_listener_on(Worker& w, const std::string& key, bool running) {
    if (running) {
      w.on_thread([&] {
        w.close_listener(key);
        return 0;
      });
    } else {
      w.close_listener(key);
    }
  }

  // Listeners that came or went with a reload: new ones open before the new config is published
  // (a failure rejects the reload); removed ones close after it.
  bool open_added_listeners(const config::Config& next, std::vector<config::ConfigError>* errors) {
    for (size_t i = 0; i < next.server.listen.size(); ++i) {
      const auto& l = next.server.listen[i];
      if (has_listener(l.address.to_string())) continue;
      std::string error;
      if (!open_listener(l, /*running=*/true, &error)) {
        errors->push_back({config_path_, 0, 0, "server.listen[" + std::to_string(i) + "]", error});
        return false;
      }
    }
    return true;
  }

  void close_removed_listeners(const config::Config& next) {
    for (auto it = listeners_.begin(); it != listeners_.end();) {
      bool kept = std::any_of(
          next.server.listen.begin(), next.server.listen.end(),
          [&](const config::Listener& l) { return l.address.to_string() == it->first; });
      if (kept) {
        ++it;
        continue;
      }
      for (auto& w : workers_) close_listener_on(*w, it->first, /*running=*/true);
      spdlog::info("stopped listening on http://{}", endpoint_text(it->second));
      it = listeners_.erase(it);
    }
  }

  bool has_listener(const std::string& key) const {
    return std::any_of(listeners_.begin(), listeners_.end(),
                       [&](auto& l) { return l.first == key; });
  }

  bool start_admin() {
    const auto& a = snapshot_->config.admin;
    if (!a.enabled) return true;
    std::string token;
    if (!a.token_env.empty()) {
      if (const char* v = std::getenv(a.token_env.c_str()); v && *v) token = v;
    }
    admin_ = std::make_unique<admin::AdminServer>(main_io_, *this, token);
    std::string error;
    if (!admin_->listen(a.listen, &error)) {
      spdlog::error("not starting: {}", error);
      return false;
    }
    spdlog::info("admin API on http://{}{}", endpoint_text(admin_->local_endpoint()),
                 token.empty() ? "" : " (bearer token required)");
    return true;
  }

  // Every worker's stats, each copied on its own thread; completes on the main thread.
  net::Task<std::vector<WorkerStats>> gather() {
    auto token = net::use_task;
    auto [stats] =
        co_await net::asio::async_initiate<decltype(token), void(std::vector<WorkerStats>)>(
            [this](auto handler) {
              struct State {
                decltype(handler) done;
                std::vector<WorkerStats> stats;
                size_t pending;
              };
              auto state = std::make_shared<State>(State{std::move(handler), {}, workers_.size()});
              state->stats.resize(workers_.size());
              for (size_t i = 0; i < workers_.size(); ++i) {
                workers_[i]->collect([this, state, i](WorkerStats s) {
                  net::asio::post(main_io_, [state, i, s = std::move(s)]() mutable {
                    state->stats[i] = std::move(s);
                    if (--state->pending == 0) std::move(state->done)(std::move(state->stats));
                  });
                });
              }
            },
            token);
    co_return std::move(stats);
  }

 public:
  bool ready() const override { return !draining_; }

  net::Task<std::string> metrics_text(bool openmetrics) override {
    auto stats = co_await gather();
    observe::MetricsShard all;
    observe::ProcessMetrics p;
    for (const auto& s : stats) {
      all.merge(s.metrics);
      p.downstream_connections += s.connections;
      for (const auto& t : s.targets) p.upstream_connections += t.in_flight + t.idle;
    }
    p.reloads_ok = reloads_ok_;
    p.reloads_error = reloads_error_;
    p.config_version = version_;
    p.config_loaded_at =
        std::chrono::duration<double>(snapshot_->loaded_at.time_since_epoch()).count();
    p.workers = static_cast<int>(workers_.size());
    const trace::Exporter::Stats traced = exporter_->stats();
    p.spans_exported = traced.exported;
    p.spans_dropped_full = traced.dropped_full;
    p.spans_dropped_failed = traced.dropped_failed;
    p.span_export_retries = traced.retries;
    const auto& c = snapshot_->config;
    for (size_t u = 0; u < c.upstreams.size(); ++u) {
      const auto& shared = snapshot_->upstreams[u];
      for (const auto& h : shared.health)
        p.health.push_back({c.upstreams[u].name, h->address, h->healthy(), h->transitions.load()});
      if (const auto& b = shared.bulkhead)
        p.bulkheads.push_back({c.upstreams[u].name, b->in_flight(), b->waiting()});
    }
    p.plugin_values = filters::plugin_values();
    co_return observe::format_prometheus(all, p, metric_families_, openmetrics);
  }

  net::Task<std::string> status_json() override {
    auto stats = co_await gather();
    const auto& c = snapshot_->config;
    std::string loaded_at;
    observe::append_timestamp(snapshot_->loaded_at, &loaded_at);
    std::string j = "{\"version\":" + std::to_string(version_) + ",\"loaded_at\":\"" + loaded_at +
                    "\"" + ",\"config_file\":" + json_string(config_path_) +
                    ",\"draining\":" + (draining_ ? "true" : "false") +
                    ",\"workers\":" + std::to_string(workers_.size());
    uint64_t connections = 0;
    for (const auto& s : stats) connections += s.connections;
    j += ",\"connections\":" + std::to_string(connections);
    j += ",\"reloads\":{\"ok\":" + std::to_string(reloads_ok_) +
         ",\"error\":" + std::to_string(reloads_error_) + "}";
    if (last_reload_at_) {  // the last reload asked for (by POST /reload, SIGHUP or --watch)
      std::string at;
      observe::append_timestamp(*last_reload_at_, &at);
      j.append(",\"last_reload\":{\"at\":\"").append(at).append("\",\"ok\":");
      j.append(last_reload_errors_.empty() ? "true" : "false").append(",\"errors\":[");
      for (size_t i = 0; i < last_reload_errors_.size(); ++i)
        j.append(i ? "," : "").append(json_string(last_reload_errors_[i]));
      j += "]}";
    }
    j += ",\"listeners\":[";
    for (size_t i = 0; i < listeners_.size(); ++i)
      j += (i ? "," : "") + json_string("http://" + endpoint_text(listeners_[i].second));
    j += "],\"routes\":[";
    for (const config::Route* r : snapshot_->routes.ordered()) {
      j += (j.back() == '[' ? "" : ",") + std::string("{\"name\":") + json_string(r->name) +
           ",\"upstreams\":[";
      for (size_t i = 0; i < r->to.size(); ++i) {
        j += (i ? "," : "") + std::string("{\"upstream\":") + json_string(r->to[i].upstream) +
             ",\"weight\":" + std::to_string(r->to[i].weight) + "}";
      }
      j += "]}";
    }
    j += "],\"upstreams\":[";
    for (size_t u = 0; u < c.upstreams.size(); ++u) {
      const auto& up = c.upstreams[u];
      j += (u ? "," : "") + std::string("{\"name\":") + json_string(up.name) +
           ",\"balance\":" + json_string(balance_name(up.balance));
      const auto& shared = snapshot_->upstreams[u];
      if (const auto& b = shared.bulkhead) {
        j += ",\"bulkhead\":{\"max_concurrent_requests\":" + std::to_string(b->limit()) +
             ",\"in_flight\":" + std::to_string(b->in_flight()) +
             ",\"max_pending\":" + std::to_string(b->max_pending()) +
             ",\"waiting\":" + std::to_string(b->waiting()) + "}";
      }
      j += ",\"targets\":[";
      for (size_t t = 0; t < up.targets.size(); ++t) {
        std::string address = up.targets[t].address.to_string();
        uint64_t in_flight = 0, idle = 0;
        for (const auto& s : stats) {
          for (const auto& ts : s.targets) {
            if (ts.upstream == up.name && ts.address == address) {
              in_flight += ts.in_flight;
              idle += ts.idle;
            }
          }
        }
        j += (t ? "," : "") + std::string("{\"address\":") + json_string(address) +
             ",\"weight\":" + std::to_string(up.targets[t].weight) +
             ",\"in_flight\":" + std::to_string(in_flight) +
             ",\"idle_connections\":" + std::to_string(idle) + ",\"health\":" +
             json_string(shared.health.empty()         ? "unchecked"
                         : shared.health[t]->healthy() ? "healthy"
                                                       : "unhealthy") +
             ",\"circuit_breaker\":" +
             json_string(shared.breakers.empty()
                             ? "none"
                             : upstream::state_name(shared.breakers[t]->state())) +
             "}";
      }
      j += "]}";
    }
    j += "]}\n";
    co_return j;
  }

  net::Task<std::pair<int, std::string>> purge_cache(std::string_view body) override {
    auto token = net::use_task;
    auto [status, json] =
        co_await net::asio::async_initiate<decltype(token), void(int, std::string)>(
            [&](auto handler) {
              auto h = std::make_shared<decltype(handler)>(std::move(handler));
              filters::purge_cache(body, main_io_,
                                   [h](int s, std::string j) { std::move (*h)(s, std::move(j)); });
            },
            token);
    co_return std::pair<int, std::string>{status, std::move(json)};
  }

  std::pair<bool, std::string> reload() override {
    auto errors = reload_config();
    if (errors.empty()) return {true, "{\"version\":" + std::to_string(version_) + "}\n"};
    std::string j =
        "{\"error\":\"invalid_config\",\"message\":" +
        json_string(std::to_string(errors.size()) + " error(s); still serving config version " +
                    std::to_string(version_)) +
        ",\"errors\":[";
    for (size_t i = 0; i < errors.size(); ++i)
      j.append(i ? "," : "").append(json_string(errors[i].to_string()));
    return {false, j + "]}\n"};
  }

 private:
  // --watch: inotify on the file's directory, since editors and config managers often replace
  // the file (write a new one, rename it over) rather than write into it.
  void watch_config() {
    namespace fs = std::filesystem;
    fs::path file = fs::absolute(config_path_);
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0 || inotify_add_watch(fd, file.parent_path().c_str(),
                                    IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
      spdlog::error("--watch: cannot watch {}: {}", file.parent_path().string(),
                    std::strerror(errno));
      if (fd >= 0) ::close(fd);
      return;
    }
    watch_.assign(fd);
    watch_name_ = file.filename().string();
    spdlog::info("watching {} for changes", file.string());
    read_watch();
  }

  void read_watch() {
    watch_.async_wait(net::asio::posix::stream_descriptor::wait_read,
                      [this](boost::system::error_code ec) {
                        if (ec) return;
                        alignas(inotify_event) char buf[4096];
                        bool ours = false;
                        ssize_t n;
                        while ((n = ::read(watch_.native_handle(), buf, sizeof buf)) > 0) {
                          for (char* p = buf; p < buf + n;) {
                            auto* e = reinterpret_cast<inotify_event*>(p);
                            if (e->len && watch_name_ == e->name) ours = true;
                            p += sizeof(inotify_event) + e->len;
                          }
                        }
                        if (ours) {
                          // Writers often touch a file several times in a row: reload once they are
                          // done.
                          watch_delay_.expires_after(std::chrono::milliseconds(100));
                          watch_delay_.async_wait([this](boost::system::error_code e2) {
                            if (!e2) {
                              spdlog::info("{} changed: reloading", config_path_);
                              reload_config();
                            }
                          });
                        }
                        read_watch();
                      });
  }

  void wait_signal() {
    signals_.async_wait([this](boost::system::error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        reload_config();
      } else {
        drain(sig == SIGTERM ? "SIGTERM" : "SIGINT");
      }
      wait_signal();
    });
  }

  // Parses and validates the whole file; publishes it to every worker only if it is valid.
  // Returns the errors (empty on success).
  std::vector<config::ConfigError> reload_config() {
    std::vector<config::ConfigError> errors;
    if (draining_) {
      errors.push_back({config_path_, 0, 0, "(process)", "draining: no reload during shutdown"});
      return errors;
    }
    auto cfg = config::load_config(config_path_, &errors);
    if (cfg) check_reloadable(*cfg, &errors);
    if (errors.empty()) open_added_listeners(*cfg, &errors);
    last_reload_at_ = std::chrono::system_clock::now();
    last_reload_errors_.clear();
    for (const auto& e : errors) last_reload_errors_.push_back(e.to_string());
    if (!errors.empty()) {
      for (const auto& e : errors) spdlog::error("{}", e.to_string());
      spdlog::error("reload rejected: {} error(s) in {}; still serving config version {}",
                    errors.size(), config_path_, version_);
      ++reloads_error_;
      return errors;
    }
    snapshot_ = config::make_snapshot(std::move(*cfg), ++version_);
    for (auto& w : workers_) w->publish(snapshot_);
    exporter_->configure(snapshot_);
    close_removed_listeners(snapshot_->config);
    ++reloads_ok_;
    spdlog::info("reloaded {}: config version {}, {} route(s), {} upstream(s)", config_path_,
                 version_, snapshot_->config.routes.size(), snapshot_->config.upstreams.size());
    return errors;
  }

  // What a running process cannot change in place (yet): reported as config errors.
  void check_reloadable(const config::Config& next, std::vector<config::ConfigError>* errors) {
    const auto& now = snapshot_->config;
    auto restart_needed = [&](const std::string& path, const std::string& what) {
      errors->push_back(
          {config_path_, 0, 0, path, what + " cannot change on reload (restart to apply)"});
    };
    if (next.server.workers != now.server.workers)
      restart_needed("server.workers", "the worker count");
    if (next.observability.access_log.sink != now.observability.access_log.sink ||
        next.observability.access_log.path != now.observability.access_log.path)
      restart_needed("observability.access_log", "the access log destination");
    if (next.server.limits.max_connections != now.server.limits.max_connections)
      restart_needed("server.limits.max_connections", "max_connections");
    if (next.admin.enabled != now.admin.enabled ||
        next.admin.listen.to_string() != now.admin.listen.to_string() ||
        next.admin.token_env != now.admin.token_env)
      restart_needed("admin", "the admin listener");
  }

  void drain(const char* why) {
    if (draining_) return;
    draining_ = true;
    const auto budget = snapshot_->config.server.timeouts.drain;
    spdlog::info("{}: draining (budget {})", why, config::format_duration(budget));
    for (auto& w : workers_) w->drain();
    drain_budget_.expires_after(budget);
    drain_budget_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      aborted_ = true;
      spdlog::warn("drain budget exceeded: closing the remaining connections");
      for (auto& w : workers_) w->abort();
    });
  }

  std::string config_path_;
  RunOptions options_;
  std::shared_ptr<const config::Snapshot> snapshot_;
  uint64_t version_ = 0;
  uint64_t reloads_ok_ = 0, reloads_error_ = 0;
  std::optional<std::chrono::system_clock::time_point> last_reload_at_;
  std::vector<std::string> last_reload_errors_;  // of the last reload (none: it took)
  int access_fd_ = -1;
  std::atomic<uint64_t> open_connections_{0};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::pair<std::string, net::tcp::endpoint>> listeners_;  // configured address, bound
  std::vector<std::thread> threads_;
  net::asio::io_context main_io_;
  net::asio::signal_set signals_{main_io_, SIGINT, SIGTERM, SIGHUP};
  net::asio::steady_timer drain_budget_{main_io_};
  net::asio::posix::stream_descriptor watch_{main_io_};
  std::string watch_name_;
  net::asio::steady_timer watch_delay_{main_io_};
  bool draining_ = false;
  bool aborted_ = false;
  std::unique_ptr<filters::Background> background_;  // JWKS fetching
  std::unique_ptr<upstream::HealthChecker> health_checks_;
  std::unique_ptr<trace::Exporter> exporter_;  // spans, to the OTLP collector
  const std::vector<const observe::Family*> metric_families_ = filters::metric_families();
  std::unique_ptr<admin::AdminServer>
      admin_;  // declared last: destroyed before the io_context users
};

}  // namespace

int run(const std::string& config_path, const RunOptions& options) {
  return Server(config_path, options).run();
}

}  // namespace gatehouse::server
