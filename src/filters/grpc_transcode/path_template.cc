#include "filters/grpc_transcode/path_template.h"

#include <cctype>

#include "http/url.h"

namespace gatehouse::filters::transcode {
namespace {

bool is_ident(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

bool is_field_path(std::string_view s) {
  while (true) {
    const auto dot = s.find('.');
    if (!is_ident(s.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    s.remove_prefix(dot + 1);
  }
}

// A literal segment: no characters the grammar gives a meaning to.
bool is_literal(std::string_view s) {
  return !s.empty() && s.find_first_of("{}*=:/") == std::string_view::npos;
}

}  // namespace

std::optional<PathTemplate> PathTemplate::parse(std::string_view text, std::string* why) {
  PathTemplate t;
  t.text_ = std::string(text);
  if (!text.starts_with('/')) {
    *why = "a path template starts with '/'";
    return std::nullopt;
  }
  std::string_view rest = text.substr(1);
  // The verb: after the last ':' that is outside a variable.
  const auto close = rest.rfind('}');
  const auto colon = rest.rfind(':');
  if (colon != std::string_view::npos && (close == std::string_view::npos || colon > close)) {
    t.verb_ = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (!is_literal(t.verb_)) {
      *why = "the verb after ':' must be a literal";
      return std::nullopt;
    }
    ++t.literals_;
  }
  auto add = [&](std::string_view seg) {
    if (seg == "*") {
      t.segments_.push_back({Kind::kStar, {}});
    } else if (seg == "**") {
      t.segments_.push_back({Kind::kStars, {}});
    } else if (is_literal(seg)) {
      t.segments_.push_back({Kind::kLiteral, std::string(seg)});
      ++t.literals_;
    } else {
      *why = "'" + std::string(seg) + "' is not a segment (a literal, '*', '**' or a {variable})";
      return false;
    }
    return true;
  };
  while (!rest.empty()) {
    if (rest.front() == '{') {
      const auto end = rest.find('}');
      if (end == std::string_view::npos) {
        *why = "a '{' without its '}'";
        return std::nullopt;
      }
      const std::string_view inside = rest.substr(1, end - 1);
      const auto eq = inside.find('=');
      Variable v{std::string(inside.substr(0, eq)), t.segments_.size(), 0};
      if (!is_field_path(v.field)) {
        *why = "'" + v.field + "' is not a field path";
        return std::nullopt;
      }
      if (eq == std::string_view::npos) {
        t.segments_.push_back({Kind::kStar, {}});
      } else {
        std::string_view segs = inside.substr(eq + 1);
        if (segs.empty()) {
          *why = "variable '" + v.field + "' has nothing after '='";
          return std::nullopt;
        }
        while (true) {
          const auto slash = segs.find('/');
          if (!add(segs.substr(0, slash))) return std::nullopt;
          if (slash == std::string_view::npos) break;
          segs.remove_prefix(slash + 1);
        }
      }
      v.end = t.segments_.size();
      t.variables_.push_back(std::move(v));
      rest.remove_prefix(end + 1);
    } else {
      const auto slash = rest.find('/');
      if (!add(rest.substr(0, slash))) return std::nullopt;
      rest.remove_prefix(slash == std::string_view::npos ? rest.size() : slash);
      if (rest.empty()) break;
    }
    if (rest.empty()) break;
    if (rest.front() != '/' || rest.size() == 1) {
      *why = "segments are separated by one '/' and the template does not end with one";
      return std::nullopt;
    }
    rest.remove_prefix(1);
  }
  if (t.segments_.empty()) {
    *why = "a path template has at least one segment";
    return std::nullopt;
  }
  for (size_t i = 0; i + 1 < t.segments_.size(); ++i) {
    if (t.segments_[i].kind == Kind::kStars) {
      *why = "'**' may only be the last segment";
      return std::nullopt;
    }
  }
  return t;
}

bool PathTemplate::match(std::string_view path, std::vector<FieldValue>* out) const {
  if (!path.starts_with('/')) return false;
  path.remove_prefix(1);
  if (!verb_.empty()) {
    if (!path.ends_with(verb_) || path.size() <= verb_.size() ||
        path[path.size() - verb_.size() - 1] != ':')
      return false;
    path.remove_suffix(verb_.size() + 1);
  }
  std::vector<std::string_view> parts;
  while (true) {
    const auto slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  const bool stars = segments_.back().kind == Kind::kStars;
  if (stars ? parts.size() < segments_.size() - 1 : parts.size() != segments_.size()) return false;
  for (size_t i = 0; i < segments_.size(); ++i) {
    const Segment& s = segments_[i];
    if (s.kind == Kind::kStars) break;
    if (s.kind == Kind::kLiteral ? parts[i] != s.literal : parts[i].empty()) return false;
  }
  const size_t first = out->size();
  for (const Variable& v : variables_) {
    // The segments the variable spans; one that ends with "**" takes the rest of the path.
    const size_t end = v.end == segments_.size() && stars ? parts.size() : v.end;
    std::string raw;
    for (size_t i = v.begin; i < end; ++i) raw.append(i > v.begin ? "/" : "").append(parts[i]);
    FieldValue fv{v.field, {}};
    if (!http::percent_decode(raw, &fv.value, end - v.begin != 1)) {
      out->resize(first);
      return false;
    }
    out->push_back(std::move(fv));
  }
  return true;
}

}  // namespace gatehouse::filters::transcode
