#include "filters/cache/flights.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace gatehouse::filters::cache {

void Flight::publish(std::shared_ptr<const Entry> entry, std::string variant_key, uint64_t length) {
  std::unique_lock lock(mutex_);
  state_.entry = std::move(entry);
  state_.variant_key = std::make_shared<const std::string>(std::move(variant_key));
  state_.length = length;
  changed(lock);
}

void Flight::advance(uint64_t received) {
  std::unique_lock lock(mutex_);
  state_.received = received;
  changed(lock);
}

void Flight::land() {
  std::unique_lock lock(mutex_);
  if (state_.landed) return;
  state_.landed = true;
  changed(lock);
}

Flight::State Flight::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

void Flight::wait(uint64_t seen, boost::asio::io_context& io, Wake wake) {
  std::unique_lock lock(mutex_);
  if (state_.version == seen) {
    waiters_.push_back({&io, std::move(wake)});
    return;
  }
  lock.unlock();
  boost::asio::post(io, std::move(wake));
}

void Flight::changed(std::unique_lock<std::mutex>& lock) {
  ++state_.version;
  if (waiters_.empty()) return;  // a miss no one waits for: nothing to wake
  std::vector<Waiter> woken = std::move(waiters_);
  waiters_.clear();
  lock.unlock();
  for (auto& w : woken) boost::asio::post(*w.io, std::move(w.wake));
}

std::shared_ptr<Flight> Flights::lead(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto [it, added] = flights_.try_emplace(key);
  if (!added) return nullptr;
  it->second = std::make_shared<Flight>();
  return it->second;
}

std::shared_ptr<Flight> Flights::join(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = flights_.find(key);
  return it == flights_.end() ? nullptr : it->second;
}

void Flights::land(const std::string& key, Flight& flight) {
  {
    std::lock_guard lock(mutex_);
    auto it = flights_.find(key);
    if (it != flights_.end() && it->second.get() == &flight) flights_.erase(it);
  }
  flight.land();
}

size_t Flights::in_air() const {
  std::lock_guard lock(mutex_);
  return flights_.size();
}

}  // namespace gatehouse::filters::cache
