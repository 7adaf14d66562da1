// The one explicit list of plugins (no static-initialiser registration, which a linker may drop).
// Used at config load only.
#pragma once

#include <memory>
#include <string>

#include "config/yaml_reader.h"
#include "filters/filter.h"

namespace gatehouse::filters {

// Builds the filter named `name` from its settings; reports errors through `reader` and returns
// null when the settings are invalid, the plugin is unknown, or it is not built yet.
std::shared_ptr<const Filter> build_filter(const std::string& name, const YAML::Node& key,
                                           const YAML::Node& settings, const std::string& path,
                                           const config::YamlReader& reader);

}  // namespace gatehouse::filters
