// State that outlives one config: an object shared by every config that names the same key (a
// JWKS URL, a route's rate limiter, an upstream's bulkhead, a target's health), so that a reload
// keeps what was learned or counted. An object lives as long as some config holds it; the
// registry itself holds it weakly. Used at config load and by background work on the main
// thread (`validate` and tests may load configs elsewhere, hence the mutex); never on the
// request path.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace gatehouse::config {

template <class T>
class SharedByKey {
 public:
  // The live object for `key`, or a new one from make(); *created says which.
  template <class Make>
  std::shared_ptr<T> get(const std::string& key, Make make, bool* created = nullptr) {
    std::lock_guard lock(mutex_);
    auto& weak = objects_[key];
    auto object = weak.lock();
    if (created) *created = !object;
    if (!object) {
      object = make();
      weak = object;
    }
    return object;
  }

  // Every live object (and forgets the keys whose objects are gone).
  std::vector<std::shared_ptr<T>> live() {
    std::lock_guard lock(mutex_);
    std::vector<std::shared_ptr<T>> out;
    for (auto it = objects_.begin(); it != objects_.end();) {
      if (auto object = it->second.lock()) {
        out.push_back(std::move(object));
        ++it;
      } else {
        it = objects_.erase(it);
      }
    }
    return out;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::weak_ptr<T>> objects_;
};

}  // namespace gatehouse::config
