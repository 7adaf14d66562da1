// The one explicit list of plugins (no static-initialiser registration, which a linker may drop).
// Used at config load only.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/yaml_reader.h"
#include "filters/filter.h"

namespace boost::asio {
class io_context;
}
#include "observe/metrics.h"

namespace gatehouse::filters {

// What a plugin's builder gets: its settings, where they are (for errors), and the sections of
// the config parsed before routes (server, consumers).
struct BuildContext {
  const YAML::Node& settings;
  const std::string& path;  // YAML path of the settings, e.g. routes[2].plugins.key_auth
  const config::YamlReader& reader;
  const config::Config& config;
  std::string_view route;  // the route's name
};

// Builds the filter named `name` from its settings; reports errors through `reader` and returns
// null when the settings are invalid or the plugin is unknown.
std::shared_ptr<const Filter> build_filter(const std::string& name, const YAML::Node& key,
                                           const BuildContext& ctx);

// The filter a route key stands for (grpc_transcode), from its settings; null after reporting
// its errors.
std::shared_ptr<const Filter> build_route_filter(std::string_view key, const BuildContext& ctx);

// The plugin's phase: filters run in increasing phase order (see filters/filter.h).
int filter_phase(std::string_view name);

// The metric families the plugins register (observe/metrics.h), for the exposition.
std::vector<const observe::Family*> metric_families();
// The process-wide values the plugins keep (the cache's stored bytes and entries), now.
std::vector<observe::ProcessMetrics::Value> plugin_values();

// The admin API's POST /cache/purge, on the main thread's `io`: its JSON body ({"url": U} |
// {"prefix": P} | {"tag": T}) applied to the response cache's tiers; `done` gets the status and
// the JSON answer.
void purge_cache(std::string_view json_body, boost::asio::io_context& io,
                 std::function<void(int, std::string)> done);

// Work plugins do off the request path (fetching JWKS), on the main thread's io_context, for
// every config loaded from now on. stop() ends it so that the io_context can return.
class Background {
 public:
  virtual ~Background() = default;
  virtual void stop() = 0;
};
std::unique_ptr<Background> start_background(boost::asio::io_context& io);

// A jwt_providers entry (filters/jwt_auth/provider.h), or null after reporting its errors.
class JwtProvider;
std::shared_ptr<const JwtProvider> build_jwt_provider(const std::string& name, const YAML::Node& n,
                                                      const std::string& path,
                                                      const config::YamlReader& r);

}  // namespace gatehouse::filters
