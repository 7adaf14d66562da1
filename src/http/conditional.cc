#include "http/conditional.h"

#include <algorithm>

#include "http/date.h"
#include "http/message.h"

namespace gatehouse::http {
namespace {

bool is_etagc(unsigned char c) { return c == 0x21 || (c >= 0x23 && c != 0x7f); }

}  // namespace

std::optional<EntityTag> parse_entity_tag(std::string_view s) {
  s = trim_ows(s);
  EntityTag tag;
  if (s.starts_with("W/")) {
    tag.weak = true;
    s.remove_prefix(2);
  }
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return std::nullopt;
  for (unsigned char c : s.substr(1, s.size() - 2)) {
    if (!is_etagc(c)) return std::nullopt;
  }
  tag.opaque = s;
  return tag;
}

bool if_none_match_matches(const std::vector<std::string_view>& lines, std::string_view etag) {
  auto stored = parse_entity_tag(etag);
  bool any = false, star = false;
  for (std::string_view line : lines) {
    // Elements end at a comma outside quotes: etagc allows a comma inside an opaque-tag ("a,b")
    // but no DQUOTE, so every second DQUOTE closes a tag.
    while (!line.empty()) {
      size_t comma = 0;
      for (bool quoted = false; comma < line.size() && (quoted || line[comma] != ','); ++comma) {
        if (line[comma] == '"') quoted = !quoted;
      }
      std::string_view element = trim_ows(line.substr(0, comma));
      line.remove_prefix(std::min(comma + 1, line.size()));
      if (element.empty()) continue;  // RFC 9110 5.6.1: empty elements are not counted
      if (element == "*") {
        star = true;
        continue;
      }
      auto tag = parse_entity_tag(element);
      if (!tag) return false;
      if (stored && weak_match(*tag, *stored)) any = true;
    }
  }
  return star || any;
}

bool not_modified(const std::vector<std::string_view>& if_none_match,
                  std::string_view if_modified_since, const StoredValidators& stored) {
  if (!if_none_match.empty()) return if_none_match_matches(if_none_match, stored.etag);
  if (if_modified_since.empty()) return false;
  auto since = parse_http_date(trim_ows(if_modified_since));
  if (!since) return false;  // an invalid date: the condition is ignored (13.1.3)
  const auto modified = stored.last_modified ? *stored.last_modified
                        : stored.date        ? *stored.date
                                             : stored.received;
  return modified <= *since;
}

}  // namespace gatehouse::http
