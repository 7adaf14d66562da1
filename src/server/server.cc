#include "server/server.h"

#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <functional>
#include <thread>

#include "config/snapshot.h"
#include "observe/access_log.h"
#include "observe/log.h"
#include "server/worker.h"

namespace gatehouse::server {
namespace {

std::string endpoint_text(const net::tcp::endpoint& ep) {
  return ep.address().is_v6() ? "[" + ep.address().to_string() + "]:" + std::to_string(ep.port())
                              : ep.address().to_string() + ":" + std::to_string(ep.port());
}

class Server {
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
    if (!start_workers()) return 1;
    wait_signal();
    std::thread joiner([this] {
      for (auto& t : threads_) t.join();
      net::asio::post(main_io_, [this] {
        signals_.cancel();
        drain_budget_.cancel();
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
    for (const auto& ep : endpoints) spdlog::info("listening on http://{}", endpoint_text(ep));
    spdlog::info("gatehouse {} started: {} worker(s), {} route(s), {} upstream(s), config {}",
                 GATEHOUSE_VERSION, n, c.routes.size(), c.upstreams.size(), config_path_);
    for (auto& w : workers_) threads_.emplace_back([&w] { w->run(); });
    return true;
  }

  void wait_signal() {
    signals_.async_wait([this](boost::system::error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        reload();
      } else {
        drain(sig == SIGTERM ? "SIGTERM" : "SIGINT");
      }
      wait_signal();
    });
  }

 public:
  // Parses and validates the whole file; publishes it to every worker only if it is valid.
  // Returns the errors (empty on success).
  std::vector<config::ConfigError> reload() {
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
  std::vector<std::thread> threads_;
  net::asio::io_context main_io_;
  net::asio::signal_set signals_{main_io_, SIGINT, SIGTERM, SIGHUP};
  net::asio::steady_timer drain_budget_{main_io_};
  bool draining_ = false;
  bool aborted_ = false;
};

}  // namespace

int run(const std::string& config_path) { return Server(config_path).run(); }

}  // namespace gatehouse::server
