#include "filters/jwt_auth/key_store.h"

#include "config/shared_by_key.h"

namespace gatehouse::filters {
namespace {

// URL -> store: a store lives as long as some config's provider holds it.
config::SharedByKey<KeyStore>& registry() {
  static config::SharedByKey<KeyStore> stores;
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
  bool created = false;
  auto store = registry().get(
      url,
      [&] {
        auto s = std::make_shared<KeyStore>();
        s->url_ = url;
        s->refresh_ = refresh;
        return s;
      },
      &created);
  if (!created && refresh < store->refresh_.load()) store->refresh_ = refresh;
  return store;
}

std::vector<std::shared_ptr<KeyStore>> KeyStore::url_stores() { return registry().live(); }

void KeyStore::set_keys(jwt::KeySet keys) {
  keys_.store(std::make_shared<const jwt::KeySet>(std::move(keys)), std::memory_order_release);
}

}  // namespace gatehouse::filters
