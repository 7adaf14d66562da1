// The verification keys of one JWT provider, replaced as a whole when a JWKS is fetched again.
//
// Workers read the current set with one atomic shared_ptr load per verification (next to the
// signature check it guards, tens of microseconds, that is noise). Keys from a URL live in a store
// shared by every config that names the same URL, so a reload keeps the keys already fetched and
// never has a window without them; the fetcher (jwks_fetcher.h) finds the stores through
// url_stores() and stops fetching a URL once no config uses it.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "jwt/jwt.h"

namespace gatehouse::filters {

class KeyStore {
 public:
  using Clock = std::chrono::steady_clock;

  // A store whose keys never change (a JWKS file, inline keys).
  static std::shared_ptr<KeyStore> fixed(jwt::KeySet keys);
  // The store for a JWKS URL: the live one if some config already uses the URL, else a new,
  // empty one. `refresh` is the shortest refresh interval asked for.
  static std::shared_ptr<KeyStore> for_url(const std::string& url,
                                           std::chrono::milliseconds refresh);
  // Every live URL store (for the fetcher).
  static std::vector<std::shared_ptr<KeyStore>> url_stores();

  // Null until the first successful fetch of a URL store.
  std::shared_ptr<const jwt::KeySet> keys() const { return keys_.load(std::memory_order_acquire); }
  void set_keys(jwt::KeySet keys);

  const std::string& url() const { return url_; }
  std::chrono::milliseconds refresh() const { return refresh_.load(); }

  // A token named a kid we do not have: ask the fetcher for a new set, at most once per
  // kMinRefetch (a flood of made-up kids must not become a flood of fetches).
  void want_refresh() { refresh_wanted_.store(true, std::memory_order_relaxed); }
  bool take_refresh_wish() { return refresh_wanted_.exchange(false, std::memory_order_relaxed); }
  static constexpr std::chrono::seconds kMinRefetch{5};

  // Fetch bookkeeping, touched by the fetcher's thread only.
  Clock::time_point last_attempt{}, last_success{};
  int failures = 0;
  bool fetching = false;

 private:
  std::string url_;
  std::atomic<std::chrono::milliseconds> refresh_{std::chrono::minutes(10)};
  std::atomic<std::shared_ptr<const jwt::KeySet>> keys_;
  std::atomic<bool> refresh_wanted_{false};
};

}  // namespace gatehouse::filters
