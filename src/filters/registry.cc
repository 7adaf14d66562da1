#include "filters/registry.h"

#include <algorithm>
#include <array>
#include <string_view>

#include "filters/acl/acl.h"
#include "filters/cache/cache.h"
#include "filters/compress/compress.h"
#include "filters/cors/cors.h"
#include "filters/grpc_transcode/grpc_transcode.h"
#include "filters/grpc_web/grpc_web.h"
#include "filters/ip_rules/ip_rules.h"
#include "filters/jwt_auth/jwks_fetcher.h"
#include "filters/jwt_auth/jwt_auth.h"
#include "filters/key_auth/key_auth.h"
#include "filters/rate_limit/rate_limit.h"
#include "filters/request_size/request_size.h"
#include "filters/response_headers/response_headers.h"
#include "filters/response_replace/response_replace.h"

namespace gatehouse::filters {
namespace {

using Builder = std::shared_ptr<const Filter> (*)(const BuildContext&);
using Metrics = std::vector<const observe::Family*> (*)();
struct Entry {
  std::string_view name;
  Builder build;
  Metrics metrics = nullptr;  // the plugin's metric families, if it has any
};

// In phase order: a filter runs after every filter listed above it.
constexpr std::array kPlugins = {
    // Outermost: its response phase runs last, on every answer, whoever gave it.
    Entry{"response_headers", &build_response_headers},
    Entry{"cors", &build_cors},
    Entry{"ip_rules", &build_ip_rules},
    Entry{"jwt_auth", &build_jwt_auth},
    Entry{"key_auth", &build_key_auth},
    Entry{"acl", &build_acl},
    Entry{"request_size", &build_request_size},
    Entry{"rate_limit", &build_rate_limit, &rate_limit_metrics},
    Entry{"cache", &build_cache, &cache_metrics},
    Entry{"compress", &build_compress},
    Entry{"response_replace", &build_response_replace},
    // Innermost: the other filters see the gRPC-Web call and its gRPC-Web response, as the client
    // does; its body phase makes the upstream's gRPC body gRPC-Web first.
    Entry{"grpc_web", &build_grpc_web},
    // A route key (routes[].grpc_transcode), not a plugin: built by build_route_filter(). Inside
    // every plugin, so that they see the JSON request and answer, as the client does.
    Entry{"grpc_transcode", nullptr},
};

}  // namespace

std::shared_ptr<const Filter> build_filter(const std::string& name, const YAML::Node& key,
                                           const BuildContext& ctx) {
  auto it = std::find_if(kPlugins.begin(), kPlugins.end(),
                         [&](auto& e) { return e.name == name && e.build; });
  if (it == kPlugins.end()) {
    std::string list;
    for (auto& e : kPlugins)
      if (e.build) list += (list.empty() ? "" : ", ") + std::string(e.name);
    ctx.reader.error(key, ctx.path, "unknown plugin '" + name + "' (known: " + list + ")");
    return nullptr;
  }
  return it->build(ctx);
}

namespace {
class Both final : public Background {
 public:
  Both(std::unique_ptr<Background> a, std::unique_ptr<Background> b)
      : a_(std::move(a)), b_(std::move(b)) {}
  void stop() override {
    a_->stop();
    b_->stop();
  }

 private:
  std::unique_ptr<Background> a_, b_;
};
}  // namespace

std::unique_ptr<Background> start_background(boost::asio::io_context& io) {
  return std::make_unique<Both>(start_jwks_fetcher(io), start_limiter_sweeper(io));
}

std::vector<const observe::Family*> metric_families() {
  std::vector<const observe::Family*> all;
  for (const auto& e : kPlugins) {
    if (!e.metrics) continue;
    auto mine = e.metrics();
    all.insert(all.end(), mine.begin(), mine.end());
  }
  return all;
}

std::vector<observe::ProcessMetrics::Value> plugin_values() { return cache::process_values(); }

void purge_cache(std::string_view json_body, boost::asio::io_context& io,
                 std::function<void(int, std::string)> done) {
  cache::purge_from_json(json_body, io, std::move(done));
}

std::shared_ptr<const Filter> build_route_filter(std::string_view key, const BuildContext& ctx) {
  if (key == "grpc_transcode") return build_grpc_transcode(ctx);
  return nullptr;
}

int filter_phase(std::string_view name) {
  auto it = std::find_if(kPlugins.begin(), kPlugins.end(), [&](auto& e) { return e.name == name; });
  return static_cast<int>(it - kPlugins.begin());
}

}  // namespace gatehouse::filters
