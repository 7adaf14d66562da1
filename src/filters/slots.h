// State a filter keeps without the core knowing its type: per request (Slots, in the request's
// context, cleared for the next request) and per worker (WorkerState, owned by the worker,
// released when it drains). A filter declares its key next to its code,
//
//   inline const filters::SlotKey<std::shared_ptr<const Claims>> kClaims{"jwt_auth.claims"};
//
// and reads or writes the value through it; another filter that knows the key (a rate limit keyed
// by a JWT claim) can read it too. Keys are compared by address, so each is one object.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace gatehouse::filters {

template <class T>
struct SlotKey {
  const char* name;  // for debugging
};

// Per-request values. A lookup is a short linear scan: a request carries a handful at most. Each
// value is kept in place when it fits (a shared_ptr, a few strings), so that setting one costs no
// allocation of its own (std::any keeps anything larger than a pointer on the heap: one malloc and
// one free per filter per request).
class Slots {
 public:
  template <class T>
  void set(const SlotKey<T>& key, T value) {
    if (T* v = get(key)) {
      *v = std::move(value);
      return;
    }
    items_.emplace_back(&key, std::move(value));
  }
  template <class T>
  const T* get(const SlotKey<T>& key) const {
    for (const auto& item : items_) {
      if (item.key == &key) return std::launder(static_cast<const T*>(item.value()));
    }
    return nullptr;
  }
  template <class T>
  T* get(const SlotKey<T>& key) {
    return const_cast<T*>(std::as_const(*this).get(key));
  }
  void clear() { items_.clear(); }  // keeps the capacity for the next request

 private:
  static constexpr size_t kInline = 64;

  class Item {
   public:
    template <class T>
    Item(const void* k, T&& v) : key(k) {
      using V = std::decay_t<T>;
      if constexpr (fits<V>()) {
        new (inline_) V(std::forward<T>(v));
      } else {
        heap_ = new V(std::forward<T>(v));
      }
      ops_ = &kOps<V>;
    }
    Item(Item&& o) noexcept : key(o.key), ops_(o.ops_) { ops_->move(o, *this); }
    Item& operator=(Item&& o) noexcept {
      if (this != &o) {
        ops_->destroy(*this);
        key = o.key;
        ops_ = o.ops_;
        ops_->move(o, *this);
      }
      return *this;
    }
    ~Item() { ops_->destroy(*this); }
    const void* value() const { return heap_ ? heap_ : static_cast<const void*>(inline_); }

    const void* key;

   private:
    template <class V>
    static constexpr bool fits() {
      return sizeof(V) <= kInline && alignof(V) <= alignof(std::max_align_t) &&
             std::is_nothrow_move_constructible_v<V>;
    }
    struct Ops {
      void (*move)(Item& from, Item& to);  // to's storage is empty
      void (*destroy)(Item& item);
    };
    template <class V>
    static void move_value(Item& from, Item& to) {
      if constexpr (fits<V>()) {
        new (to.inline_) V(std::move(*std::launder(reinterpret_cast<V*>(from.inline_))));
      } else {
        to.heap_ = std::exchange(from.heap_, nullptr);
      }
    }
    template <class V>
    static void destroy_value(Item& item) {
      if constexpr (fits<V>()) {
        std::launder(reinterpret_cast<V*>(item.inline_))->~V();
      } else {
        delete static_cast<V*>(item.heap_);
      }
    }
    template <class V>
    static constexpr Ops kOps{&move_value<V>, &destroy_value<V>};

    alignas(std::max_align_t) unsigned char inline_[kInline];
    void* heap_ = nullptr;
    const Ops* ops_;
  };

  std::vector<Item> items_;
};

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
