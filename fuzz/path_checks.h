// The path normaliser's contract (http/path.h), checked against a second, deliberately naive
// implementation: decode, refuse, merge slashes, then RFC 3986 5.2.4's remove_dot_segments on the
// string. Shared by the path target and the request head target (which normalises parsed paths).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "fuzz/fuzz.h"
#include "http/path.h"

namespace gatehouse::fuzz {

inline int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline bool is_unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// What normalise_path requires of its input: an origin-form path with valid escapes.
inline bool normaliser_input(std::string_view p) {
  if (p.empty() || p[0] != '/') return false;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] != '%') continue;
    if (i + 2 >= p.size() || hex_digit(p[i + 1]) < 0 || hex_digit(p[i + 2]) < 0) return false;
    i += 2;
  }
  return true;
}

// RFC 3986 section 5.2.4, step by step on strings.
inline std::string remove_dot_segments(std::string in) {
  std::string out;
  auto pop_last = [&] {
    size_t k = out.rfind('/');
    out.erase(k == std::string::npos ? 0 : k);
  };
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.erase(0, 3);
    } else if (in.starts_with("./")) {
      in.erase(0, 2);
    } else if (in.starts_with("/./")) {
      in.replace(0, 3, "/");
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../")) {
      in.replace(0, 4, "/");
      pop_last();
    } else if (in == "/..") {
      in = "/";
      pop_last();
    } else if (in == "." || in == "..") {
      in.clear();
    } else {
      size_t end = in.find('/', in[0] == '/' ? 1 : 0);
      out.append(in, 0, end);
      in.erase(0, end);
    }
  }
  return out;
}

// The canonical form, or nullopt when the path must be refused.
inline std::optional<std::string> reference_normalise(std::string_view path,
                                                      const http::PathPolicy& policy) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string decoded;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '\\' && policy.reject_encoded_slashes) return std::nullopt;
    if (path[i] != '%') {
      decoded += path[i];
      continue;
    }
    int v = hex_digit(path[i + 1]) * 16 + hex_digit(path[i + 2]);
    i += 2;
    if (v == 0) return std::nullopt;
    if ((v == '/' || v == '\\') && policy.reject_encoded_slashes) return std::nullopt;
    if (is_unreserved(static_cast<unsigned char>(v))) {
      decoded += static_cast<char>(v);
    } else {
      decoded += '%';
      decoded += kHex[v >> 4];
      decoded += kHex[v & 15];
    }
  }
  // Segments like "..;x" anywhere, even ones that dot removal would drop.
  for (size_t start = 1; start <= decoded.size();) {
    size_t end = decoded.find('/', start);
    std::string_view seg = std::string_view(decoded).substr(start, end - start);
    if (seg.starts_with(".;") || seg.starts_with("..;")) return std::nullopt;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (policy.merge_slashes) {
    std::string merged;
    for (char c : decoded) {
      if (!(c == '/' && !merged.empty() && merged.back() == '/')) merged += c;
    }
    decoded = std::move(merged);
  }
  std::string out = remove_dot_segments(decoded);
  return out.empty() ? "/" : out;
}

// Properties of any canonical path: no dot segments, escapes upper case and only where needed,
// no NUL, and (by policy) no slashes in disguise and no empty segments.
inline void check_canonical(std::string_view p, const http::PathPolicy& policy) {
  FUZZ_CHECK(!p.empty() && p[0] == '/');
  for (size_t start = 1; start <= p.size();) {
    size_t end = p.find('/', start);
    std::string_view seg = p.substr(start, end - start);
    FUZZ_CHECK(seg != "." && seg != "..");
    if (policy.merge_slashes) FUZZ_CHECK(!seg.empty() || end == std::string_view::npos);
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\') FUZZ_CHECK(!policy.reject_encoded_slashes);
    if (p[i] != '%') continue;
    FUZZ_CHECK(i + 2 < p.size());
    char hi = p[i + 1], lo = p[i + 2];
    FUZZ_CHECK(hex_digit(hi) >= 0 && hex_digit(lo) >= 0);
    FUZZ_CHECK(!(hi >= 'a' && hi <= 'f') && !(lo >= 'a' && lo <= 'f'));
    int v = hex_digit(hi) * 16 + hex_digit(lo);
    FUZZ_CHECK(v != 0 && !is_unreserved(static_cast<unsigned char>(v)));
    if (v == '/' || v == '\\') FUZZ_CHECK(!policy.reject_encoded_slashes);
    i += 2;
  }
}

// Normalises `path` (which must satisfy normaliser_input) and checks the verdict, the canonical
// form against the reference, its properties, and idempotence.
inline void check_normalise(std::string_view path, const http::PathPolicy& policy) {
  std::string out = "\x01untouched";
  std::string_view why;
  http::PathVerdict verdict = http::normalise_path(path, policy, &out, &why);
  std::optional<std::string> expected = reference_normalise(path, policy);
  if (verdict == http::PathVerdict::kRejected) {
    FUZZ_CHECK(!why.empty());
    FUZZ_CHECK(!expected);
    return;
  }
  if (verdict == http::PathVerdict::kUnchanged) {
    FUZZ_CHECK(out == "\x01untouched");
    out = std::string(path);
  } else {
    FUZZ_CHECK(out != path);
  }
  FUZZ_CHECK(expected && *expected == out);
  check_canonical(out, policy);
  std::string again;
  FUZZ_CHECK(http::normalise_path(out, policy, &again, &why) == http::PathVerdict::kUnchanged);
}

}  // namespace gatehouse::fuzz
