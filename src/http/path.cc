#include "http/path.h"

#include <vector>

#include "crypto/digest.h"

namespace gatehouse::http {
namespace {

bool unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// True when the path may need work: any escape or backslash, a segment starting with a dot that
// is a dot segment (or one with parameters), or "//" when merging. Most paths have none of these
// and leave without a copy.
bool may_need_work(std::string_view p, bool merge_slashes) {
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '%' || c == '\\') return true;
    if (c != '/' || i + 1 == p.size()) continue;
    char next = p[i + 1];
    if (next == '/' && merge_slashes) return true;
    if (next == '.') {
      size_t j = i + 2;
      if (j < p.size() && p[j] == '.') ++j;
      if (j == p.size() || p[j] == '/' || p[j] == ';') return true;
    }
  }
  return false;
}

bool is_dot_segment_with_params(std::string_view s) {
  return s.starts_with(".;") || s.starts_with("..;");
}

}  // namespace

PathVerdict normalise_path(std::string_view path, const PathPolicy& policy, std::string* out,
                           std::string_view* why) {
  if (path.empty() || path[0] != '/' || !may_need_work(path, policy.merge_slashes))
    return PathVerdict::kUnchanged;

  // 1-3: decode unreserved characters, refuse NUL and (by default) slashes in disguise.
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string decoded;
  decoded.reserve(path.size());
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '\\' && policy.reject_encoded_slashes) {
      *why = "a backslash in the path is not allowed";
      return PathVerdict::kRejected;
    }
    if (c != '%') {
      decoded += c;
      continue;
    }
    // The parser has checked the escape.
    int v = crypto::hex_value(path[i + 1]) * 16 + crypto::hex_value(path[i + 2]);
    i += 2;
    if (v == 0) {
      *why = "an encoded NUL in the path is not allowed";
      return PathVerdict::kRejected;
    }
    if ((v == '/' || v == '\\') && policy.reject_encoded_slashes) {
      *why = "an encoded '/' or '\\' in the path is not allowed";
      return PathVerdict::kRejected;
    }
    if (unreserved(static_cast<unsigned char>(v))) {
      decoded += static_cast<char>(v);
    } else {
      decoded += '%';
      decoded += kHex[v >> 4];
      decoded += kHex[v & 15];
    }
  }

  // 4-6: walk the segments (a kept %2F is text here, never a separator).
  std::vector<std::string_view> kept;
  bool trailing_slash = false;
  std::string_view rest = std::string_view(decoded).substr(1);
  while (true) {
    size_t slash = rest.find('/');
    bool last = slash == std::string_view::npos;
    std::string_view seg = rest.substr(0, slash);
    if (seg == "." || seg == "..") {
      if (seg == ".." && !kept.empty()) kept.pop_back();
      trailing_slash = last;  // "/a/b/.." is "/a/" (RFC 3986 5.2.4)
    } else if (is_dot_segment_with_params(seg)) {
      *why = "a dot segment with parameters in the path is not allowed";
      return PathVerdict::kRejected;
    } else if (!(seg.empty() && policy.merge_slashes && !last)) {
      kept.push_back(seg);
    }
    if (last) break;
    rest.remove_prefix(slash + 1);
  }

  std::string result = "/";
  for (size_t i = 0; i < kept.size(); ++i) {
    if (i) result += '/';
    result += kept[i];
  }
  // A final dot segment leaves an empty last segment: one more '/' after whatever was kept, even
  // when that ends in an empty segment itself ("/a//." is "/a//", as RFC 3986 5.2.4 has it; the
  // check used to be "result does not end in '/'", which made it "/a/", found by
  // fuzz/request_head.cc). With nothing kept, "/" already is that empty segment.
  if (trailing_slash && !kept.empty()) result += '/';
  if (result == path) return PathVerdict::kUnchanged;
  *out = std::move(result);
  return PathVerdict::kNormalised;
}

}  // namespace gatehouse::http
