// State a filter keeps without the core knowing its type: per request (Slots, in the request's
// context, cleared for the next request) and per worker (WorkerState, owned by the worker,
// released when it drains). A filter declares its key next to its code,
//
//   inline const filters::SlotKey<std::shared_ptr<const Claims>> kClaims{"jwt_auth.claims"};
//
// and reads or writes the value through it; another filter that knows the key (a rate limit keyed
// by a JWT claim) can read it too. Keys are compared by address, so each is one object.
#pragma once

#include <any>
#include <memory>
#include <utility>
#include <vector>

namespace gatehouse::filters {

template <class T>
struct SlotKey {
  const char* name;  // for debugging
};

// Per-request values. A lookup is a short linear scan: a request carries a handful at most.
class Slots {
 public:
  template <class T>
  void set(const SlotKey<T>& key, T value) {
    for (auto& [k, v] : items_) {
      if (k == &key) {
        v = std::move(value);
        return;
      }
    }
    items_.emplace_back(&key, std::move(value));
  }
  template <class T>
  const T* get(const SlotKey<T>& key) const {
    for (const auto& [k, v] : items_) {
      if (k == &key) return std::any_cast<T>(&v);
    }
    return nullptr;
  }
  template <class T>
  T* get(const SlotKey<T>& key) {
    return const_cast<T*>(std::as_const(*this).get(key));
  }
  void clear() { items_.clear(); }  // keeps the capacity for the next request

 private:
  std::vector<std::pair<const void*, std::any>> items_;
};

// Per-worker values, made on first use (default-constructed) and destroyed together when the
// worker drains: a plugin's connections (Redis), its caches and scratch space. Only the worker's
// thread touches them, so they need no locks.
class WorkerState {
 public:
  template <class T>
  T& get(const SlotKey<T>& key) {
    for (auto& [k, v] : items_) {
      if (k == &key) return *static_cast<T*>(v.get());
    }
    auto made = std::make_shared<T>();
    T& ref = *made;
    items_.emplace_back(&key, std::move(made));
    return ref;
  }
  void clear() { items_.clear(); }

 private:
  std::vector<std::pair<const void*, std::shared_ptr<void>>> items_;
};

}  // namespace gatehouse::filters
