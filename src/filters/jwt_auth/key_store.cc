#include "filters/jwt_auth/key_store.h"

#include <map>
#include <mutex>

namespace gatehouse::filters {
namespace {

// URL -> store, weakly: a store lives as long as some config's provider holds it. Touched at
// config load and by the fetcher, both on the main thread, but `validate` and tests may load
// configs from other threads, hence the mutex (never on the request path).
std::mutex registry_mutex;
std::map<std::string, std::weak_ptr<KeyStore>>& registry() {
  static std::map<std::string, std::weak_ptr<KeyStore>> stores;
  return stores;
}

}  // namespace

std::shared_ptr<KeyStore> KeyStore::fixed(jwt::KeySet keys) {
  auto s = std::make_shared<KeyStore>();
  s->set_keys(std::move(keys));
  return s;
}

std::shared_ptr<KeyStore> KeyStore::for_url(const std::string& url,
                                            std::chrono::milliseconds refresh) {
  std::lock_guard lock(registry_mutex);
  auto& weak = registry()[url];
  auto store = weak.lock();
  if (!store) {
    store = std::make_shared<KeyStore>();
    store->url_ = url;
    store->refresh_ = refresh;
    weak = store;
  } else if (refresh < store->refresh_.load()) {
    store->refresh_ = refresh;
  }
  return store;
}

std::vector<std::shared_ptr<KeyStore>> KeyStore::url_stores() {
  std::lock_guard lock(registry_mutex);
  std::vector<std::shared_ptr<KeyStore>> out;
  for (auto it = registry().begin(); it != registry().end();) {
    if (auto s = it->second.lock()) {
      out.push_back(std::move(s));
      ++it;
    } else {
      it = registry().erase(it);
    }
  }
  return out;
}

void KeyStore::set_keys(jwt::KeySet keys) {
  keys_.store(std::make_shared<const jwt::KeySet>(std::move(keys)), std::memory_order_release);
}

}  // namespace gatehouse::filters
