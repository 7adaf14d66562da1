// The YAML loader behind load_config(), shared by the files that read one section each
// (config.cc: top-level keys, admin, observability, redis, consumers; server.cc: server,
// listeners, TLS; upstreams.cc: upstreams, health checks, retries, breakers; routes.cc: routes,
// matchers, rewrites, plugins). Private to src/config/: it pulls in yaml-cpp, which stays out of
// config.h. Runs on the main thread at load; each Loader collects the errors of one file.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace gatehouse::tls {
struct ClientSettings;
}

namespace gatehouse::config {

// ASCII lower case (header names, host names).
std::string lower(std::string s);
// An HTTP token (RFC 9110 5.6.2): header names, methods, consumer and group names.
bool is_token(std::string_view s);
// A share written as "50%" or 0.5; nullopt when it is neither (the caller checks the range).
std::optional<double> share(const YAML::Node& v);

class Loader {
 public:
  Loader(const std::string& file, std::vector<ConfigError>* errors) : r_(file, errors) {}

  // Every section of the file; errors go to the reader's list, so the result is only good when
  // none were added.
  Config load(const YAML::Node& root);

 private:
  // config.cc
  std::optional<SocketAddress> address(const YAML::Node& n, const std::string& path,
                                       bool allow_hostname);
  void redis(const YAML::Node& n, Redis* out);
  void cache(const YAML::Node& n, CacheStore* out);
  void admin(const YAML::Node& n, const Server& server, Admin* a);
  void observability(const YAML::Node& n, Observability* o);
  void tracing(const YAML::Node& n, Tracing* t);
  void consumers(const YAML::Node& n, std::vector<Consumer>* out);

  // server.cc
  void server(const YAML::Node& n, Server* s);
  void protocols(const YAML::Node& n, const std::string& path, Listener* out) const;
  void http2(const YAML::Node& n, Http2* out) const;
  std::optional<WebSocket> websocket(const YAML::Node& n, const std::string& path) const;
  std::shared_ptr<const tls::ServerContext> tls(const YAML::Node& n, const std::string& path);
  // `http2`: ALPN offers h2 alone (an HTTP/2 upstream), else http/1.1.
  std::shared_ptr<const tls::ClientContext> client_tls(const YAML::Node& n, const std::string& path,
                                                       bool http2 = false);
  std::shared_ptr<const tls::ClientContext> client_context(const tls::ClientSettings& settings,
                                                           const YAML::Node& at,
                                                           const std::string& path);
  bool tls_version(const YAML::Node& v, const std::string& path, int* out);

  // upstreams.cc
  void upstreams(const YAML::Node& n, std::vector<Upstream>* out);
  std::optional<HealthCheck> health_check(const YAML::Node& n, const std::string& path, bool grpc);
  std::optional<RetryPolicy> retry(const YAML::Node& n, const std::string& path);
  std::optional<BreakerSettings> breaker(const YAML::Node& n, const std::string& path);

  // routes.cc
  void routes(const YAML::Node& n, const Config& config, std::vector<Route>* out);
  void match(const YAML::Node& n, const std::string& path, Route* r,
             std::set<std::string>* captures);
  void path_match(const YAML::Node& n, const std::string& path, PathMatch* m,
                  std::set<std::string>* captures);
  ValueMatch value_match(const std::string& name, const YAML::Node& v, const std::string& path,
                         bool* ok);
  std::shared_ptr<const re2::RE2> compile(const std::string& pattern, const YAML::Node& at,
                                          const std::string& path, bool* ok);
  void rewrite(const YAML::Node& n, const std::string& path, Route* r,
               const std::set<std::string>& captures);
  void to(const YAML::Node& n, const std::string& path, const std::vector<Upstream>& ups, Route* r);
  // A route's plugins (`only`: the names allowed there; empty: any), in phase order.
  void plugins(const YAML::Node& p, const std::string& path, const Config& config, Route* r,
               std::initializer_list<std::string_view> only = {});
  void aggregate(const YAML::Node& n, const std::string& path, const Config& config,
                 const std::set<std::string>& captures, Route* r);

  YamlReader r_;
};

}  // namespace gatehouse::config
