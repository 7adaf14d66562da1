// Request coalescing: concurrent misses for one key send one request upstream. The first to miss
// leads the flight; the others join it. When the leader's response will be stored and its length
// is known, the leader publishes it: the entry (its body still filling) and, piece by piece, how
// much of the body has arrived, so that the waiters answer their clients from it as it comes.
// When the response is stored, or turns out not to be, the flight lands: waiters that were not
// streaming look the key up again. Waiters are woken on their own workers' threads.
//
// Process-wide (a key's misses may arrive on every worker), under one lock for the map and one
// per flight (spin locks: spin_lock.h): only misses touch them. As nginx's proxy_cache_lock and
// Varnish's waiting list, which also streams the busy object to its waiters.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "filters/cache/flat_index.h"
#include "filters/cache/pool.h"
#include "filters/cache/spin_lock.h"

namespace boost::asio {
class io_context;
}

namespace gatehouse::filters::cache {

struct Entry;

class Flight : public std::enable_shared_from_this<Flight> {
 public:
  using Wake = std::function<void()>;

  Flight(std::string_view key, size_t hash) : key(key), hash(hash) {}
  const pool::String key;  // the key it is in the air for
  const size_t hash;

  struct State {
    uint64_t version = 0;  // changes with every publish, advance and land
    bool landed = false;   // no more will come: stored, or not to be
    // Published: the entry being stored (its body has `length` bytes, reserved, of which the
    // first `received` are final) and the key of the variant it is (null: the flight's key).
    std::shared_ptr<const Entry> entry;
    std::shared_ptr<const std::string> variant_key;
    uint64_t length = 0;
    uint64_t received = 0;
  };

  // The leader's side.
  void publish(std::shared_ptr<const Entry> entry, std::string_view variant_key, uint64_t length);
  void advance(uint64_t received);
  // No more will come; `received`: the published body's final length, when it ends here (one
  // change for the last bytes and the landing).
  void land(uint64_t received = 0);

  State state() const;
  // Posts `wake` to `io` once the state's version is past `seen` (at once when it already is).
  void wait(uint64_t seen, boost::asio::io_context& io, Wake wake);

 private:
  struct Waiter {
    boost::asio::io_context* io;
    Wake wake;
  };
  void changed(std::unique_lock<SpinLock>& lock);  // wakes every waiter, after the unlock

  mutable SpinLock lock_;
  State state_;
  std::vector<Waiter> waiters_;
  bool in_air_ = false;  // in Flights' index (under Flights' lock)
  friend class Flights;
};

class Flights {
 public:
  // The flight the caller now leads for `key` (whose key_hash() is `hash`), or null when one is
  // in the air (join it).
  std::shared_ptr<Flight> lead(std::string_view key) { return lead(key, key_hash(key)); }
  std::shared_ptr<Flight> lead(std::string_view key, size_t hash);
  // The flight in the air for `key`, or null.
  std::shared_ptr<Flight> join(std::string_view key) const;
  // The leader is done: `flight` leaves the air (the next miss leads a new one) and lands.
  void land(Flight& flight, uint64_t received = 0);

  size_t in_air() const;

 private:
  mutable SpinLock lock_;
  FlatIndex<Flight> flights_;  // the leaders own them; a flight leaves the index as it lands
};

}  // namespace gatehouse::filters::cache
