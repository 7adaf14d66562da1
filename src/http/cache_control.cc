#include "http/cache_control.h"

#include <algorithm>

#include "http/message.h"

namespace gatehouse::http {
namespace {

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// delta-seconds (RFC 9111 1.2.2): digits, saturating at 2^31; nullopt when not digits.
std::optional<int64_t> delta_seconds(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = std::min(v * 10 + (c - '0'), CacheControl::kMaxDelta);
  }
  return v;
}

// Splits one list element `name [= value]` off the front of `s` (past its comma), the value
// unquoted when it is a quoted-string. False when nothing is left. *malformed: the element is not
// a token with a well-formed argument (its name is whatever token it starts with, maybe none).
bool next_directive(std::string_view& s, std::string_view* name, std::string* value,
                    bool* has_value, bool* malformed) {
  while (!s.empty() && (s.front() == ',' || s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  if (s.empty()) return false;
  size_t i = 0;
  while (i < s.size() && is_tchar(s[i])) ++i;
  *name = s.substr(0, i);
  value->clear();
  *has_value = false;
  size_t j = i;
  while (j < s.size() && (s[j] == ' ' || s[j] == '\t')) ++j;
  bool ok = i > 0;
  if (j < s.size() && s[j] == '=') {
    *has_value = true;
    ++j;
    while (j < s.size() && (s[j] == ' ' || s[j] == '\t')) ++j;
    if (j < s.size() && s[j] == '"') {
      ++j;
      bool closed = false;
      while (j < s.size()) {
        char c = s[j++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\' && j < s.size()) c = s[j++];
        value->push_back(c);
      }
      ok = ok && closed;
    } else {
      size_t k = j;
      while (k < s.size() && is_tchar(s[k])) ++k;
      value->assign(s.substr(j, k - j));
      ok = ok && k > j;
      j = k;
    }
  }
  // Whatever follows up to the next comma outside quotes makes the element malformed.
  while (j < s.size() && (s[j] == ' ' || s[j] == '\t')) ++j;
  if (j < s.size() && s[j] != ',') {
    ok = false;
    bool quoted = false;
    while (j < s.size() && (quoted || s[j] != ',')) {
      if (s[j] == '"') quoted = !quoted;
      if (s[j] == '\\' && quoted && j + 1 < s.size()) ++j;
      ++j;
    }
  }
  s.remove_prefix(j);
  *malformed = !ok;
  return true;
}

// A delta-seconds directive seen again: a second occurrence that disagrees, or an argument that is
// not a number, leaves 0 (stale, the most restrictive reading; RFC 9111 4.2.1).
void set_delta(int64_t* field, const std::string& value, bool has_value) {
  auto v = has_value ? delta_seconds(value) : std::nullopt;
  int64_t got = v.value_or(0);
  *field = *field == CacheControl::kAbsent || *field == got ? got : 0;
}

}  // namespace

CacheControl parse_cache_control(const std::vector<std::string_view>& lines) {
  CacheControl cc;
  std::string value;
  for (std::string_view line : lines) {
    std::string_view name;
    bool has_value, malformed;
    while (next_directive(line, &name, &value, &has_value, &malformed)) {
      if (name.empty()) continue;
      // A malformed element counts only as far as it restricts: a lifetime reads as 0, a
      // restrictive flag is kept, a permissive one (public) is not granted.
      if (malformed) has_value = false;
      if (malformed && iequals(name, "max-stale")) {
        set_delta(&cc.max_stale, value, false);
      } else if (malformed && (iequals(name, "public") || iequals(name, "only-if-cached") ||
                               iequals(name, "must-understand"))) {
        continue;
      } else if (iequals(name, "max-age")) {
        set_delta(&cc.max_age, value, has_value);
      } else if (iequals(name, "s-maxage")) {
        set_delta(&cc.s_maxage, value, has_value);
      } else if (iequals(name, "max-stale")) {
        // Without an argument: any staleness (5.2.1.2). With a bad one: none.
        if (!has_value)
          cc.max_stale = CacheControl::kMaxDelta;
        else
          set_delta(&cc.max_stale, value, true);
      } else if (iequals(name, "min-fresh")) {
        set_delta(&cc.min_fresh, value, has_value);
      } else if (iequals(name, "stale-while-revalidate")) {
        set_delta(&cc.stale_while_revalidate, value, has_value);
      } else if (iequals(name, "stale-if-error")) {
        set_delta(&cc.stale_if_error, value, has_value);
      } else if (iequals(name, "no-store")) {
        cc.no_store = true;
      } else if (iequals(name, "no-cache")) {
        cc.no_cache = true;
      } else if (iequals(name, "private")) {
        cc.private_ = true;
      } else if (iequals(name, "public")) {
        cc.public_ = true;
      } else if (iequals(name, "must-revalidate")) {
        cc.must_revalidate = true;
      } else if (iequals(name, "proxy-revalidate")) {
        cc.proxy_revalidate = true;
      } else if (iequals(name, "no-transform")) {
        cc.no_transform = true;
      } else if (iequals(name, "only-if-cached")) {
        cc.only_if_cached = true;
      } else if (iequals(name, "must-understand")) {
        cc.must_understand = true;
      }
    }
  }
  return cc;
}

CacheControl parse_cache_control(std::string_view line) {
  return parse_cache_control(std::vector<std::string_view>{line});
}

bool heuristically_cacheable(int status) {
  switch (status) {
    case 200:
    case 203:
    case 204:
    case 206:
    case 300:
    case 301:
    case 308:
    case 404:
    case 405:
    case 410:
    case 414:
    case 501:
      return true;
    default:
      return false;
  }
}

namespace {

int64_t seconds_between(ResponseTimes::Time from, ResponseTimes::Time to) {
  if (to <= from) return 0;
  auto s = std::chrono::duration_cast<std::chrono::seconds>(to - from).count();
  return std::min<int64_t>(s, CacheControl::kMaxDelta);
}

}  // namespace

int64_t freshness_lifetime(const CacheControl& cc, const ResponseTimes& t, int status,
                           double heuristic_fraction) {
  if (cc.s_maxage != CacheControl::kAbsent) return cc.s_maxage;
  if (cc.max_age != CacheControl::kAbsent) return cc.max_age;
  const ResponseTimes::Time date = t.date.value_or(t.response_time);
  if (t.expires_invalid) return 0;
  if (t.expires) return seconds_between(date, *t.expires);
  if (t.last_modified && heuristically_cacheable(status)) {
    return static_cast<int64_t>(static_cast<double>(seconds_between(*t.last_modified, date)) *
                                heuristic_fraction);
  }
  return 0;
}

int64_t current_age(const ResponseTimes& t, ResponseTimes::Time now) {
  const ResponseTimes::Time date = t.date.value_or(t.response_time);
  const int64_t apparent_age = seconds_between(date, t.response_time);
  const int64_t response_delay = seconds_between(t.request_time, t.response_time);
  const int64_t corrected_age_value = std::min(t.age + response_delay, CacheControl::kMaxDelta);
  const int64_t corrected_initial_age = std::max(apparent_age, corrected_age_value);
  const int64_t resident_time = seconds_between(t.response_time, now);
  return std::min(corrected_initial_age + resident_time, CacheControl::kMaxDelta);
}

int64_t parse_age(std::string_view value) { return delta_seconds(trim_ows(value)).value_or(0); }

}  // namespace gatehouse::http
