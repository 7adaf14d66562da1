#include "filters/registry.h"

#include <algorithm>
#include <array>
#include <string_view>

#include "filters/request_size/request_size.h"

namespace gatehouse::filters {
namespace {

using Builder = std::shared_ptr<const Filter> (*)(const YAML::Node&, const std::string&,
                                                  const config::YamlReader&);
struct Entry {
  std::string_view name;
  Builder build;  // null: named in the contract, not built yet
};

constexpr std::array kPlugins = {
    Entry{"request_size", &build_request_size},
    Entry{"key_auth", nullptr},
    Entry{"jwt_auth", nullptr},
    Entry{"acl", nullptr},
    Entry{"ip_rules", nullptr},
    Entry{"cors", nullptr},
    Entry{"rate_limit", nullptr},
    Entry{"cache", nullptr},
    Entry{"compress", nullptr},
};

}  // namespace

std::shared_ptr<const Filter> build_filter(const std::string& name, const YAML::Node& key,
                                           const YAML::Node& settings, const std::string& path,
                                           const config::YamlReader& reader) {
  auto it = std::find_if(kPlugins.begin(), kPlugins.end(), [&](auto& e) { return e.name == name; });
  if (it == kPlugins.end()) {
    std::string list;
    for (auto& e : kPlugins) list += (list.empty() ? "" : ", ") + std::string(e.name);
    reader.error(key, path, "unknown plugin '" + name + "' (known: " + list + ")");
    return nullptr;
  }
  if (!it->build) {
    reader.error(key, path, "plugin '" + name + "' is not supported yet by this version of gatehouse");
    return nullptr;
  }
  return it->build(settings, path, reader);
}

}  // namespace gatehouse::filters
