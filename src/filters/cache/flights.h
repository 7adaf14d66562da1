// Request coalescing: concurrent misses for one key send one request upstream. The first to miss
// leads the flight; the others join it and are woken, each on its own worker's thread, when the
// leader's response is stored or turns out not to be (it lands), and then look the key up again.
// Process-wide (a key's misses may arrive on every worker), under one mutex: only misses touch
// it, and each only twice. As nginx's proxy_cache_lock and Varnish's waiting list.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace gatehouse::filters::cache {

class Flights {
 public:
  using Wake = std::function<void()>;

  // True: the caller now leads the flight for `key` (none was in the air) and must land it.
  bool lead(const std::string& key);
  // Waits for the flight for `key`: `wake` is posted to `io` when it lands. False (and `wake`
  // is dropped) when none is in the air.
  bool join(const std::string& key, boost::asio::io_context& io, Wake wake);
  // The leader is done: every waiter is woken, and the next miss leads a new flight.
  void land(const std::string& key);

  size_t in_air() const;

 private:
  struct Waiter {
    boost::asio::io_context* io;
    Wake wake;
  };
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::vector<Waiter>> flights_;
};

}  // namespace gatehouse::filters::cache
