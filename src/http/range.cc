#include "http/range.h"

#include <algorithm>

#include "http/conditional.h"
#include "http/date.h"
#include "http/message.h"

namespace gatehouse::http {
namespace {

// 1*DIGIT, nullopt otherwise or on overflow.
std::optional<uint64_t> digits(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

}  // namespace

RangeVerdict parse_range(std::string_view value, uint64_t length, std::vector<ByteRange>* out) {
  out->clear();
  value = trim_ows(value);
  size_t eq = value.find('=');
  if (eq == std::string_view::npos || !iequals(trim_ows(value.substr(0, eq)), "bytes"))
    return RangeVerdict::kIgnore;
  std::string_view set = value.substr(eq + 1);
  size_t specs = 0;
  bool any = false;
  while (!set.empty()) {
    size_t comma = set.find(',');
    std::string_view spec = trim_ows(set.substr(0, comma));
    set.remove_prefix(comma == std::string_view::npos ? set.size() : comma + 1);
    if (spec.empty()) continue;  // RFC 9110 5.6.1
    any = true;
    if (++specs > kMaxRanges) {
      out->clear();
      return RangeVerdict::kIgnore;
    }
    size_t dash = spec.find('-');
    if (dash == std::string_view::npos) {
      out->clear();
      return RangeVerdict::kIgnore;
    }
    auto first = digits(spec.substr(0, dash));
    std::string_view rest = spec.substr(dash + 1);
    if (dash == 0) {  // suffix-range: the last N bytes
      auto n = digits(rest);
      if (!n) {
        out->clear();
        return RangeVerdict::kIgnore;
      }
      if (*n > 0 && length > 0) out->push_back({length - std::min(*n, length), length - 1});
      continue;
    }
    auto last = rest.empty() ? std::optional<uint64_t>(UINT64_MAX) : digits(rest);
    if (!first || !last || *last < *first) {  // an invalid int-range invalidates the field
      out->clear();
      return RangeVerdict::kIgnore;
    }
    if (*first < length) out->push_back({*first, std::min(*last, length - 1)});
  }
  if (!any) return RangeVerdict::kIgnore;
  if (out->empty()) return RangeVerdict::kUnsatisfiable;
  // Merge overlapping or adjacent ranges, keeping the order of the first of each group when the
  // ranges were already ascending; otherwise ascending order (a client asking for ranges out of
  // order and overlapping gets them coalesced, as 14.2 allows).
  std::vector<ByteRange> sorted = *out;
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::vector<ByteRange> merged;
  for (const auto& r : sorted) {
    if (!merged.empty() && r.first <= merged.back().last + 1)
      merged.back().last = std::max(merged.back().last, r.last);
    else
      merged.push_back(r);
  }
  if (merged.size() != out->size()) *out = std::move(merged);
  return RangeVerdict::kSatisfiable;
}

bool if_range_allows(std::string_view if_range, std::string_view etag,
                     std::optional<std::chrono::system_clock::time_point> last_modified,
                     std::optional<std::chrono::system_clock::time_point> date) {
  if_range = trim_ows(if_range);
  if (if_range.empty()) return true;
  if (if_range.front() == '"' || if_range.starts_with("W/")) {
    auto asked = parse_entity_tag(if_range);
    auto stored = parse_entity_tag(etag);
    return asked && stored && strong_match(*asked, *stored);
  }
  auto when = parse_http_date(if_range);
  if (!when || !last_modified || *when != *last_modified) return false;
  return date && *date - *last_modified >= std::chrono::seconds(1);
}

std::string content_range(const ByteRange& r, uint64_t length) {
  return "bytes " + std::to_string(r.first) + "-" + std::to_string(r.last) + "/" +
         std::to_string(length);
}

std::string unsatisfied_range(uint64_t length) { return "bytes */" + std::to_string(length); }

std::string byteranges_body(std::string_view representation, const std::vector<ByteRange>& ranges,
                            std::string_view content_type, std::string_view boundary) {
  std::string out;
  for (const auto& r : ranges) {
    out.append("--").append(boundary).append("\r\n");
    if (!content_type.empty()) out.append("Content-Type: ").append(content_type).append("\r\n");
    out.append("Content-Range: ")
        .append(content_range(r, representation.size()))
        .append("\r\n\r\n");
    out.append(representation.substr(r.first, r.size())).append("\r\n");
  }
  out.append("--").append(boundary).append("--\r\n");
  return out;
}

}  // namespace gatehouse::http
