#include "filters/cache/flights.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace gatehouse::filters::cache {

void Flight::publish(std::shared_ptr<const Entry> entry, std::string_view variant_key,
                     uint64_t length) {
  std::unique_lock lock(lock_);
  state_.entry = std::move(entry);
  if (variant_key != key) state_.variant_key = std::make_shared<const std::string>(variant_key);
  state_.length = length;
  changed(lock);
}

void Flight::advance(uint64_t received) {
  std::unique_lock lock(lock_);
  state_.received = received;
  changed(lock);
}

void Flight::land(uint64_t received) {
  std::unique_lock lock(lock_);
  if (state_.landed) return;
  state_.landed = true;
  if (received > state_.received) state_.received = received;
  changed(lock);
}

Flight::State Flight::state() const {
  std::lock_guard lock(lock_);
  return state_;
}

void Flight::wait(uint64_t seen, boost::asio::io_context& io, Wake wake) {
  std::unique_lock lock(lock_);
  if (state_.version == seen) {
    waiters_.push_back({&io, std::move(wake)});
    return;
  }
  lock.unlock();
  boost::asio::post(io, std::move(wake));
}

void Flight::changed(std::unique_lock<SpinLock>& lock) {
  ++state_.version;
  if (waiters_.empty()) return;  // a miss no one waits for: nothing to wake
  std::vector<Waiter> woken = std::move(waiters_);
  waiters_.clear();
  lock.unlock();
  for (auto& w : woken) boost::asio::post(*w.io, std::move(w.wake));
}

std::shared_ptr<Flight> Flights::lead(std::string_view key, size_t h) {
  // Made before the lock is taken (from the pool, as the entries: a miss makes a flight and lands
  // one), so that the lock is held for the map alone.
  auto flight = std::allocate_shared<Flight>(pool::Allocator<Flight>(), key, h);
  std::lock_guard lock(lock_);
  if (flights_.find(key, h)) return nullptr;
  flight->in_air_ = true;
  flights_.insert(flight.get());
  return flight;
}

std::shared_ptr<Flight> Flights::join(std::string_view key) const {
  const size_t h = key_hash(key);
  std::lock_guard lock(lock_);
  Flight* flight = flights_.find(key, h);
  return flight ? flight->shared_from_this() : nullptr;
}

void Flights::land(Flight& flight, uint64_t received) {
  {
    std::lock_guard lock(lock_);
    if (flight.in_air_) flights_.erase(&flight);
    flight.in_air_ = false;
  }
  flight.land(received);
}

size_t Flights::in_air() const {
  std::lock_guard lock(lock_);
  return flights_.size();
}

}  // namespace gatehouse::filters::cache
