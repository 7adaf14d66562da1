#include "config/yaml_reader.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <set>

namespace gatehouse::config {

namespace {

ConfigError located(const std::string& file, const YAML::Node& at, const std::string& path,
                    std::string message) {
  ConfigError e;
  e.file = file;
  auto mark = at.Mark();
  e.line = mark.is_null() ? 0 : mark.line + 1;
  e.column = mark.is_null() ? 0 : mark.column + 1;
  e.path = path.empty() ? "(root)" : path;
  e.message = std::move(message);
  return e;
}

}  // namespace

void YamlReader::error(const YAML::Node& at, const std::string& path, std::string message) const {
  errors_->push_back(located(file_, at, path, std::move(message)));
}

void YamlReader::warning(const YAML::Node& at, const std::string& path, std::string message) const {
  spdlog::warn("{}", located(file_, at, path, std::move(message)).to_string());
}

bool YamlReader::check_map(const YAML::Node& node, const std::string& path,
                           std::initializer_list<std::string_view> known) const {
  if (!node.IsMap()) {
    error(node, path, "expected a mapping");
    return false;
  }
  std::set<std::string> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    YAML::Node key = it->first;  // a copy: `it->` returns a temporary
    std::string name = key.IsScalar() ? key.Scalar() : "?";
    std::string at = child(path, name);
    if (!seen.insert(name).second) {
      error(key, at, "duplicate key '" + name + "'");
    } else if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string list;
      for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      error(key, at, "unknown key '" + name + "' (expected one of: " + list + ")");
    }
  }
  return true;
}

std::optional<std::string> YamlReader::str(const YAML::Node& n, const std::string& path) const {
  if (!n.IsScalar()) {
    error(n, path, "expected a string");
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<bool> YamlReader::boolean(const YAML::Node& n, const std::string& path) const {
  if (n.IsScalar()) {
    const auto& s = n.Scalar();
    if (s == "true") return true;
    if (s == "false") return false;
  }
  error(n, path, "expected true or false");
  return std::nullopt;
}

std::optional<int64_t> YamlReader::integer(const YAML::Node& n, const std::string& path,
                                           int64_t min, int64_t max) const {
  if (n.IsScalar()) {
    const auto& s = n.Scalar();
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (!s.empty() && ec == std::errc() && ptr == s.data() + s.size()) {
      if (v >= min && v <= max) return v;
      error(n, path, "must be between " + std::to_string(min) + " and " + std::to_string(max));
      return std::nullopt;
    }
  }
  error(n, path, "expected an integer");
  return std::nullopt;
}

std::optional<Duration> YamlReader::duration(const YAML::Node& n, const std::string& path) const {
  if (n.IsScalar()) {
    if (auto d = parse_duration(n.Scalar())) return d;
  }
  error(n, path,
        "invalid duration '" + (n.IsScalar() ? n.Scalar() : std::string("?")) +
            "' (expected e.g. 250ms, 2s, 5m, 1h)");
  return std::nullopt;
}

std::optional<uint64_t> YamlReader::size(const YAML::Node& n, const std::string& path) const {
  if (n.IsScalar()) {
    if (auto s = parse_size(n.Scalar())) return s;
  }
  error(n, path,
        "invalid size '" + (n.IsScalar() ? n.Scalar() : std::string("?")) +
            "' (expected e.g. 512, 32KiB, 10MiB)");
  return std::nullopt;
}

std::vector<std::string> YamlReader::str_list(const YAML::Node& n, const std::string& path) const {
  std::vector<std::string> out;
  if (n.IsScalar()) {
    out.push_back(n.Scalar());
  } else if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) {
      if (auto s = str(n[i], index(path, i))) out.push_back(*s);
    }
  } else {
    error(n, path, "expected a string or a list of strings");
  }
  return out;
}

std::string YamlReader::resolve_path(const std::string& name) const {
  std::filesystem::path p(name);
  return p.is_relative() ? (std::filesystem::path(file_).parent_path() / p).string() : name;
}

}  // namespace gatehouse::config
