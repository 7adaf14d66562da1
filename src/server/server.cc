#include "server/server.h"

#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <thread>

#include "config/snapshot.h"
#include "observe/access_log.h"
#include "observe/log.h"
#include "server/worker.h"

namespace gatehouse::server {

int run(const std::string& config_path) {
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<config::ConfigError> errors;
  auto cfg = config::load_config(config_path, &errors);
  if (!cfg) {
    for (const auto& e : errors) spdlog::error("{}", e.to_string());
    spdlog::error("not starting: {} error(s) in {}", errors.size(), config_path);
    return 1;
  }
  auto snapshot = config::make_snapshot(std::move(*cfg), 1);
  const auto& c = snapshot->config;

  std::string log_error;
  int access_fd = observe::open_access_log(c.observability.access_log, &log_error);
  if (!log_error.empty()) {
    spdlog::error("not starting: {}", log_error);
    return 1;
  }

  int n_workers = c.server.workers > 0 ? c.server.workers
                                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::atomic<uint64_t> open_connections{0};
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<net::tcp::endpoint> endpoints;
  for (const auto& l : c.server.listen) {
    endpoints.emplace_back(net::asio::ip::make_address(l.address.ip), l.address.port);
  }
  for (int i = 0; i < n_workers; ++i) {
    workers.push_back(std::make_unique<Worker>(i, snapshot, access_fd, &open_connections));
    std::string error;
    if (!workers.back()->listen(endpoints, &error)) {
      spdlog::error("not starting: {}", error);
      return 1;
    }
    // Port 0 means "any": the first worker's choice becomes every other worker's port.
    if (i == 0) endpoints = workers[0]->local_endpoints();
  }
  for (const auto& ep : endpoints) {
    std::string host = ep.address().is_v6() ? "[" + ep.address().to_string() + "]"
                                            : ep.address().to_string();
    spdlog::info("listening on http://{}:{}", host, ep.port());
  }
  spdlog::info("gatehouse {} started: {} worker(s), {} route(s), {} upstream(s), config {}",
               GATEHOUSE_VERSION, n_workers, c.routes.size(), c.upstreams.size(), config_path);

  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w] { w->run(); });

  net::asio::io_context main_io;
  net::asio::signal_set signals(main_io, SIGINT, SIGTERM, SIGHUP);
  net::asio::steady_timer drain_budget(main_io);
  bool draining = false;
  bool aborted = false;
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](boost::system::error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        spdlog::warn("SIGHUP: configuration reload is not supported yet; still serving {}",
                     config_path);
      } else if (!draining) {
        draining = true;
        spdlog::info("{}: draining (budget {})", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                     config::format_duration(c.server.timeouts.drain));
        for (auto& w : workers) w->drain();
        drain_budget.expires_after(c.server.timeouts.drain);
        drain_budget.async_wait([&](boost::system::error_code ec2) {
          if (ec2) return;
          aborted = true;
          spdlog::warn("drain budget exceeded: closing the remaining connections");
          for (auto& w : workers) w->abort();
        });
      }
      wait_signal();
    });
  };
  wait_signal();
  std::thread joiner([&] {
    for (auto& t : threads) t.join();
    net::asio::post(main_io, [&] {
      signals.cancel();
      drain_budget.cancel();
    });
  });
  main_io.run();
  joiner.join();
  spdlog::info("stopped{}", aborted ? " (drain budget exceeded)" : "");
  return aborted ? 2 : 0;
}

}  // namespace gatehouse::server
