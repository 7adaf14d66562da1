// The request and response fields the cache reads: Cache-Control (http::parse_cache_control),
// If-None-Match and entity tags (http::if_none_match_matches), Range (http::parse_range) and Vary
// (cache::parse_vary, cache::vary_key). The input is a field value; the byte after its first
// newline picks a representation length for Range.
// Invariants: Cache-Control written back in canonical form parses to the same directives; its
// delta-seconds are absent or within [0, 2^31]. Satisfiable ranges lie inside the representation,
// are at most 16, never overlap or touch, and add up to no more than it. "*" matches any stored
// tag. Vary names come out lower case, sorted, once each; a request's Vary key does not depend on
// how its field lines are split.
#include <string>
#include <string_view>
#include <vector>

#include "filters/cache/policy.h"
#include "fuzz/fuzz.h"
#include "http/cache_control.h"
#include "http/conditional.h"
#include "http/range.h"

namespace {

using gatehouse::http::CacheControl;

std::string canonical(const CacheControl& cc) {
  std::string s;
  auto flag = [&](bool on, const char* name) {
    if (on) s.append(name).append(", ");
  };
  auto delta = [&](int64_t v, const char* name) {
    if (v != CacheControl::kAbsent)
      s.append(name).append("=").append(std::to_string(v)).append(", ");
  };
  flag(cc.no_store, "no-store");
  flag(cc.no_cache, "no-cache");
  flag(cc.private_, "private");
  flag(cc.public_, "public");
  flag(cc.must_revalidate, "must-revalidate");
  flag(cc.proxy_revalidate, "proxy-revalidate");
  flag(cc.no_transform, "no-transform");
  flag(cc.only_if_cached, "only-if-cached");
  flag(cc.must_understand, "must-understand");
  delta(cc.max_age, "max-age");
  delta(cc.s_maxage, "s-maxage");
  delta(cc.min_fresh, "min-fresh");
  delta(cc.stale_while_revalidate, "stale-while-revalidate");
  delta(cc.stale_if_error, "stale-if-error");
  if (cc.max_stale == CacheControl::kMaxDelta)
    s.append("max-stale");
  else
    delta(cc.max_stale, "max-stale");
  return s;
}

bool same(const CacheControl& a, const CacheControl& b) {
  return a.no_store == b.no_store && a.no_cache == b.no_cache && a.private_ == b.private_ &&
         a.public_ == b.public_ && a.must_revalidate == b.must_revalidate &&
         a.proxy_revalidate == b.proxy_revalidate && a.no_transform == b.no_transform &&
         a.only_if_cached == b.only_if_cached && a.must_understand == b.must_understand &&
         a.max_age == b.max_age && a.s_maxage == b.s_maxage && a.min_fresh == b.min_fresh &&
         a.stale_while_revalidate == b.stale_while_revalidate &&
         a.stale_if_error == b.stale_if_error && a.max_stale == b.max_stale;
}

void check_cache_control(std::string_view value) {
  CacheControl cc = gatehouse::http::parse_cache_control(value);
  for (int64_t v : {cc.max_age, cc.s_maxage, cc.min_fresh, cc.stale_while_revalidate,
                    cc.stale_if_error, cc.max_stale})
    FUZZ_CHECK(v == CacheControl::kAbsent || (v >= 0 && v <= CacheControl::kMaxDelta));
  FUZZ_CHECK(same(gatehouse::http::parse_cache_control(canonical(cc)), cc));
}

void check_range(std::string_view value, uint64_t length) {
  std::vector<gatehouse::http::ByteRange> ranges;
  auto verdict = gatehouse::http::parse_range(value, length, &ranges);
  if (verdict != gatehouse::http::RangeVerdict::kSatisfiable) {
    FUZZ_CHECK(ranges.empty());
    return;
  }
  FUZZ_CHECK(!ranges.empty() && ranges.size() <= gatehouse::http::kMaxRanges);
  uint64_t total = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    FUZZ_CHECK(ranges[i].first <= ranges[i].last && ranges[i].last < length);
    total += ranges[i].size();
    for (size_t j = 0; j < i; ++j) {
      FUZZ_CHECK(ranges[i].first > ranges[j].last + 1 || ranges[j].first > ranges[i].last + 1);
    }
  }
  FUZZ_CHECK(total <= length);
}

void check_vary(std::string_view value) {
  auto spec = gatehouse::filters::cache::parse_vary({value});
  for (size_t i = 0; i < spec.names.size(); ++i) {
    for (char c : spec.names[i]) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
    if (i) FUZZ_CHECK(spec.names[i - 1] < spec.names[i]);
  }
  // The value as one field line, and split at its first comma into two lines of the same name.
  gatehouse::http::MessageHead one, two;
  one.headers.push_back({"Accept-Encoding", value});
  size_t comma = value.find(',');
  if (comma != std::string_view::npos && value.find('"') == std::string_view::npos) {
    two.headers.push_back({"accept-encoding", value.substr(0, comma)});
    two.headers.push_back({"ACCEPT-ENCODING", value.substr(comma + 1)});
    auto ae = gatehouse::filters::cache::parse_vary({"accept-encoding"});
    FUZZ_CHECK(gatehouse::filters::cache::vary_key(ae, one) ==
               gatehouse::filters::cache::vary_key(ae, two));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text = gatehouse::fuzz::as_text(data, size);
  size_t nl = text.find('\n');
  std::string_view value = text.substr(0, nl);
  uint64_t length = nl != std::string_view::npos && nl + 1 < text.size()
                        ? static_cast<unsigned char>(text[nl + 1]) * 97
                        : 10000;
  check_cache_control(value);
  check_range(value, length);
  check_vary(value);
  FUZZ_CHECK(gatehouse::http::if_none_match_matches({"*"}, value));
  gatehouse::http::if_none_match_matches({value}, "\"v1\"");
  return 0;
}
