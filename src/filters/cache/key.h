// Cache keys: "scheme://host/path?query" (the URL), then each configured extra ("\x1e" name=value),
// then a variant's Vary values ("\x1f" ...). Neither separator can appear in a request target or
// a field value the parser accepts, so a key cannot be forged from another request's parts. And
// what a purge names: a URL, a prefix, or a tag.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

namespace gatehouse::filters::cache {

constexpr char kExtra = '\x1e';
constexpr char kVariant = '\x1f';

// The URL part of a key.
inline std::string_view url_of(std::string_view key) {
  return key.substr(0, std::min(key.find(kExtra), key.find(kVariant)));
}

// The path and query of a URL.
inline std::string_view path_of(std::string_view url) {
  auto authority = url.find("://");
  auto slash = authority == std::string_view::npos ? 0 : url.find('/', authority + 3);
  return slash == std::string_view::npos ? std::string_view("/") : url.substr(slash);
}

// A purge (admin POST /cache/purge): entries whose URL is `value`, or starts with it (a URL, or
// a path for any scheme and host), or that carry the tag `value`.
struct Purge {
  enum class Kind { kUrl, kPrefix, kTag } kind = Kind::kUrl;
  std::string value;

  // For kUrl and kPrefix: whether the purge names `url`.
  bool names_url(std::string_view url) const {
    if (kind == Kind::kUrl) return url == value;
    return value.starts_with('/') ? path_of(url).starts_with(value) : url.starts_with(value);
  }
};

}  // namespace gatehouse::filters::cache
