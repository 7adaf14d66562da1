// The admin API (docs/cli-contract.md): /healthz, /readyz, /status, /metrics, POST /reload,
// POST /cache/purge.
// It runs on the main thread's io_context, on its own listener (never a traffic port), and knows
// the rest of the process only through AdminHandler.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "config/units.h"
#include "net/asio.h"

namespace gatehouse::admin {

// What the admin API asks of the process. Called on the main thread.
class AdminHandler {
 public:
  virtual ~AdminHandler() = default;
  virtual bool ready() const = 0;
  virtual net::Task<std::string> status_json() = 0;
  // The Prometheus text exposition, or OpenMetrics (with exemplars) when `openmetrics`.
  virtual net::Task<std::string> metrics_text(bool openmetrics) = 0;
  // Reloads the config file: {true, JSON with the new version} or {false, JSON with the errors}.
  virtual std::pair<bool, std::string> reload() = 0;
  // POST /cache/purge with its JSON body: the status and the JSON answer.
  virtual net::Task<std::pair<int, std::string>> purge_cache(std::string_view body) = 0;
};

class AdminServer {
 public:
  // `token` empty: no authentication. Otherwise every path but /healthz needs
  // "Authorization: Bearer <token>".
  AdminServer(net::asio::io_context& io, AdminHandler& handler, std::string token);
  ~AdminServer();

  // Binds and starts accepting. Returns false with *error set.
  bool listen(const config::SocketAddress& address, std::string* error);
  net::tcp::endpoint local_endpoint() const;
  void close();

 private:
  net::Task<> accept_loop();
  net::Task<> serve(net::Socket socket);

  net::asio::io_context& io_;
  AdminHandler& handler_;
  std::string token_;
  std::unique_ptr<net::Acceptor> acceptor_;
};

}  // namespace gatehouse::admin
