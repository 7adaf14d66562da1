#include "filters/cache/flights.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace gatehouse::filters::cache {

bool Flights::lead(const std::string& key) {
  std::lock_guard lock(mutex_);
  return flights_.try_emplace(key).second;
}

bool Flights::join(const std::string& key, boost::asio::io_context& io, Wake wake) {
  std::lock_guard lock(mutex_);
  auto it = flights_.find(key);
  if (it == flights_.end()) return false;
  it->second.push_back({&io, std::move(wake)});
  return true;
}

void Flights::land(const std::string& key) {
  std::vector<Waiter> waiters;
  {
    std::lock_guard lock(mutex_);
    auto it = flights_.find(key);
    if (it == flights_.end()) return;
    waiters = std::move(it->second);
    flights_.erase(it);
  }
  for (auto& w : waiters) boost::asio::post(*w.io, std::move(w.wake));
}

size_t Flights::in_air() const {
  std::lock_guard lock(mutex_);
  return flights_.size();
}

}  // namespace gatehouse::filters::cache
