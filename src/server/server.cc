#include "server/server.h"

#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <thread>

#include "admin/admin.h"
#include "config/snapshot.h"
#include "http/error_response.h"
#include "observe/access_log.h"
#include "observe/metrics.h"
#include "observe/log.h"
#include "server/worker.h"

namespace gatehouse::server {
namespace {

std::string endpoint_text(const net::tcp::endpoint& ep) {
  return ep.address().is_v6() ? "[" + ep.address().to_string() + "]:" + std::to_string(ep.port())
                              : ep.address().to_string() + ":" + std::to_string(ep.port());
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  http::append_json_escaped(&out, s);
  return out + "\"";
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  observe::AccessRecord r;  // reuse the access log's timestamp format
  r.start = t;
  std::string line;
  observe::format_access_record(r, &line);
  return line.substr(9, 24);  // {"time":"<24 chars>"
}

std::string_view balance_name(config::Balance b) {
  switch (b) {
    case config::Balance::kRoundRobin: return "round_robin";
    case config::Balance::kLeastRequest: return "least_request";
    case config::Balance::kRandom: return "random";
    case config::Balance::kConsistentHash: return "consistent_hash";
  }
  return "";
}

class Server final : public admin::AdminHandler {
 public:
  explicit Server(std::string config_path) : config_path_(std::move(config_path)) {}

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
    if (!start_admin() || !start_workers()) return 1;
    wait_signal();
    std::thread joiner([this] {
      for (auto& t : threads_) t.join();
      net::asio::post(main_io_, [this] {
        signals_.cancel();
        drain_budget_.cancel();
        if (admin_) admin_->close();
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
    int n = c.server.workers > 0 ? c.server.workers
                                 : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    std::vector<net::tcp::endpoint> endpoints;
    for (const auto& l : c.server.listen) {
      endpoints.emplace_back(net::asio::ip::make_address(l.address.ip), l.address.port);
    }
    for (int i = 0; i < n; ++i) {
      workers_.push_back(std::make_unique<Worker>(i, snapshot_, access_fd_, &open_connections_));
      std::string error;
      if (!workers_.back()->listen(endpoints, &error)) {
        spdlog::error("not starting: {}", error);
        return false;
      }
      // Port 0 means "any": the first worker's choice becomes every other worker's port.
      if (i == 0) endpoints = workers_[0]->local_endpoints();
    }
    listen_endpoints_ = endpoints;
    for (const auto& ep : endpoints) spdlog::info("listening on http://{}", endpoint_text(ep));
    spdlog::info("gatehouse {} started: {} worker(s), {} route(s), {} upstream(s), config {}",
                 GATEHOUSE_VERSION, n, c.routes.size(), c.upstreams.size(), config_path_);
    for (auto& w : workers_) threads_.emplace_back([&w] { w->run(); });
    return true;
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
    auto [stats] = co_await net::asio::async_initiate<decltype(token), void(std::vector<WorkerStats>)>(
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

  net::Task<std::string> metrics_text() override {
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
    p.config_loaded_at = std::chrono::duration<double>(snapshot_->loaded_at.time_since_epoch()).count();
    p.workers = static_cast<int>(workers_.size());
    co_return observe::format_prometheus(all, p);
  }

  net::Task<std::string> status_json() override {
    auto stats = co_await gather();
    const auto& c = snapshot_->config;
    std::string j = "{\"version\":" + std::to_string(version_) +
                    ",\"loaded_at\":" + json_string(iso_time(snapshot_->loaded_at)) +
                    ",\"config_file\":" + json_string(config_path_) +
                    ",\"draining\":" + (draining_ ? "true" : "false") +
                    ",\"workers\":" + std::to_string(workers_.size());
    uint64_t connections = 0;
    for (const auto& s : stats) connections += s.connections;
    j += ",\"connections\":" + std::to_string(connections);
    j += ",\"reloads\":{\"ok\":" + std::to_string(reloads_ok_) + ",\"error\":" +
         std::to_string(reloads_error_) + "}";
    j += ",\"listeners\":[";
    for (size_t i = 0; i < listen_endpoints_.size(); ++i)
      j += (i ? "," : "") + json_string("http://" + endpoint_text(listen_endpoints_[i]));
    j += "],\"routes\":[";
    for (const config::Route* r : snapshot_->routes.ordered()) {
      j += (j.back() == '[' ? "" : ",") + std::string("{\"name\":") + json_string(r->name) + ",\"upstreams\":[";
      for (size_t i = 0; i < r->to.size(); ++i) {
        j += (i ? "," : "") + std::string("{\"upstream\":") + json_string(r->to[i].upstream) +
             ",\"weight\":" + std::to_string(r->to[i].weight) + "}";
      }
      j += "]}";
    }
    j += "],\"upstreams\":[";
    for (size_t u = 0; u < c.upstreams.size(); ++u) {
      const auto& up = c.upstreams[u];
      j += (u ? "," : "") + std::string("{\"name\":") + json_string(up.name) + ",\"balance\":" +
           json_string(balance_name(up.balance)) + ",\"targets\":[";
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
        // Health checks and circuit breakers arrive with the resilience issue.
        j += (t ? "," : "") + std::string("{\"address\":") + json_string(address) +
             ",\"weight\":" + std::to_string(up.targets[t].weight) +
             ",\"in_flight\":" + std::to_string(in_flight) +
             ",\"idle_connections\":" + std::to_string(idle) +
             ",\"health\":\"unchecked\",\"circuit_breaker\":\"none\"}";
      }
      j += "]}";
    }
    j += "]}\n";
    co_return j;
  }

  std::pair<bool, std::string> reload() override {
    auto errors = reload_config();
    if (errors.empty()) return {true, "{\"version\":" + std::to_string(version_) + "}\n"};
    std::string j = "{\"error\":\"invalid_config\",\"message\":" +
                    json_string(std::to_string(errors.size()) + " error(s); still serving config version " +
                                std::to_string(version_)) +
                    ",\"errors\":[";
    for (size_t i = 0; i < errors.size(); ++i) j += (i ? "," : "") + json_string(errors[i].to_string());
    return {false, j + "]}\n"};
  }

 private:
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
    auto cfg = config::load_config(config_path_, &errors);
    if (cfg) check_reloadable(*cfg, &errors);
    if (!errors.empty()) {
      for (const auto& e : errors) spdlog::error("{}", e.to_string());
      spdlog::error("reload rejected: {} error(s) in {}; still serving config version {}",
                    errors.size(), config_path_, version_);
      ++reloads_error_;
      return errors;
    }
    snapshot_ = config::make_snapshot(std::move(*cfg), ++version_);
    for (auto& w : workers_) w->publish(snapshot_);
    ++reloads_ok_;
    spdlog::info("reloaded {}: config version {}, {} route(s), {} upstream(s)", config_path_,
                 version_, snapshot_->config.routes.size(), snapshot_->config.upstreams.size());
    return errors;
  }

 private:
  // What a running process cannot change in place (yet): reported as config errors.
  void check_reloadable(const config::Config& next, std::vector<config::ConfigError>* errors) {
    const auto& now = snapshot_->config;
    auto addresses = [](const config::Config& c) {
      std::vector<std::string> out;
      for (const auto& l : c.server.listen) out.push_back(l.address.to_string());
      return out;
    };
    auto restart_needed = [&](const std::string& path, const std::string& what) {
      errors->push_back({config_path_, 0, 0, path, what + " cannot change on reload (restart to apply)"});
    };
    if (addresses(next) != addresses(now)) restart_needed("server.listen", "listeners");
    if (next.server.workers != now.server.workers) restart_needed("server.workers", "the worker count");
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
  std::shared_ptr<const config::Snapshot> snapshot_;
  uint64_t version_ = 0;
  uint64_t reloads_ok_ = 0, reloads_error_ = 0;
  int access_fd_ = -1;
  std::atomic<uint64_t> open_connections_{0};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<net::tcp::endpoint> listen_endpoints_;
  std::vector<std::thread> threads_;
  net::asio::io_context main_io_;
  net::asio::signal_set signals_{main_io_, SIGINT, SIGTERM, SIGHUP};
  net::asio::steady_timer drain_budget_{main_io_};
  bool draining_ = false;
  bool aborted_ = false;
  std::unique_ptr<admin::AdminServer> admin_;  // declared last: destroyed before the io_context users
};

}  // namespace

int run(const std::string& config_path) { return Server(config_path).run(); }

}  // namespace gatehouse::server
