// A thin layer over yaml-cpp that reads typed values and collects every error with its place:
// "FILE:LINE:COL: yaml.path: message". Used at config load only (main thread), never on the data
// plane. Include it from .cc files only: yaml-cpp stays out of widely included headers.
#pragma once

#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/units.h"

namespace gatehouse::config {

class YamlReader {
 public:
  YamlReader(std::string file, std::vector<ConfigError>* errors)
      : file_(std::move(file)), errors_(errors) {}

  void error(const YAML::Node& at, const std::string& path, std::string message) const;
  // Logs "FILE:LINE:COL: yaml.path: message" as a warning; the config stays valid.
  void warning(const YAML::Node& at, const std::string& path, std::string message) const;

  // A map whose keys are all in `known`: unknown keys and duplicates are errors. Returns false
  // (after reporting) when the node is not a map.
  bool check_map(const YAML::Node& node, const std::string& path,
                 std::initializer_list<std::string_view> known) const;

  std::optional<std::string> str(const YAML::Node& n, const std::string& path) const;
  std::optional<bool> boolean(const YAML::Node& n, const std::string& path) const;
  std::optional<int64_t> integer(const YAML::Node& n, const std::string& path, int64_t min,
                                 int64_t max) const;
  std::optional<Duration> duration(const YAML::Node& n, const std::string& path) const;
  std::optional<uint64_t> size(const YAML::Node& n, const std::string& path) const;
  // A scalar or a sequence of scalars, as a list.
  std::vector<std::string> str_list(const YAML::Node& n, const std::string& path) const;

  const std::string& file() const { return file_; }
  // A path written in the config: relative ones are relative to the config file's directory.
  std::string resolve_path(const std::string& name) const;

 private:
  std::string file_;
  std::vector<ConfigError>* errors_;
};

// "routes[2].match" style path helpers.
inline std::string child(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}
inline std::string index(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

}  // namespace gatehouse::config
