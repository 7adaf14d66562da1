#include "websocket/tunnel.h"

#include <array>
#include <random>

#include "websocket/frames.h"

namespace gatehouse::websocket {
namespace {

// How long a closing tunnel waits for the sides to close their connections.
constexpr auto kLinger = std::chrono::seconds(2);

}  // namespace

struct Tunnel::Direction {
  End& from;
  End& to;
  FrameReader frames;
  uint64_t* counter;
  bool* writing;
};

Tunnel::Tunnel(const net::Executor& ex, End& client, End& upstream, const config::WebSocket& limits)
    : ex_(ex), client_(client), upstream_(upstream), limits_(limits), idle_(ex) {}

net::Task<> Tunnel::run(std::string_view client_first, std::string_view upstream_first) {
  Direction up{client_, upstream_,
               FrameReader(true, limits_.max_frame_bytes, limits_.max_message_bytes),
               &bytes_.to_upstream, &writing_to_upstream_};
  // The route's limits bound what clients send; the upstream's frames are only checked for
  // their form (the upstream is trusted with its sizes, as with its response bodies).
  constexpr uint64_t kAny = ~uint64_t{0};
  Direction down{upstream_, client_, FrameReader(false, kAny, kAny), &bytes_.to_client,
                 &writing_to_client_};
  last_activity_ = net::coarse_now();
  watch_idle();
  // The upstream's side runs beside this one; whichever ends first closes both connections,
  // which ends the other, waited for below.
  bool down_done = false;
  net::Timer done(ex_, net::Clock::time_point::max());
  net::asio::co_spawn(ex_, pump(down, upstream_first), [&](std::exception_ptr) {
    down_done = true;
    done.cancel();
  });
  co_await pump(up, client_first);
  while (!down_done) co_await done.async_wait(net::use_task);
  idle_.cancel();
}

net::Task<> Tunnel::pump(Direction& d, std::string_view first) {
  std::array<char, 16 * 1024> buf;
  std::string_view data = first;
  while (true) {
    if (!data.empty() && !closing_) {
      if (uint16_t code = d.frames.feed(data)) {
        shutdown(code);
      } else {
        // Most messages go out at once; only what the socket does not take now is waited for.
        std::string_view rest = data, none;
        if (!d.to.send_now(rest, none)) break;
        *d.counter += data.size() - rest.size();
        if (!rest.empty()) {
          *d.writing = true;
          const bool ok = co_await d.to.send_rest(rest, {}, d.counter);
          *d.writing = false;
          if (!ok) break;
        }
      }
    }
    // Closing: what still comes is read and dropped, so that the peer gets the Close frame
    // before the connection ends (a close with unread bytes would be a reset, which may destroy
    // it: the lingering close of RFC 9112 9.6).
    auto [ec, n] = co_await d.from.read_some(net::asio::buffer(buf));
    if (ec || n == 0) break;  // that side closed (after its Close frame, or not)
    last_activity_ = net::coarse_now();
    data = std::string_view(buf.data(), n);
  }
  // One side is gone: so is the tunnel (the other side's read ends with its connection).
  if (!closing_ || ++pumps_done_ == 2) {
    closing_ = true;
    client_.close();
    upstream_.close();
  }
}

void Tunnel::watch_idle() {
  idle_.expires_at(last_activity_ + limits_.idle_timeout);
  idle_.async_wait([this](boost::system::error_code ec) {
    if (ec || closing_) return;
    if (net::coarse_now() - last_activity_ < limits_.idle_timeout) return watch_idle();
    shutdown(kGoingAway);
  });
}

void Tunnel::shutdown(uint16_t code) {
  if (closing_) return;
  closing_ = true;
  closed_with_ = code;
  // A Close frame to each side not in the middle of a frame, written now (the bytes fit in the
  // socket's buffer), and no more after it; the connections close when both sides have closed
  // theirs, or after kLinger.
  thread_local std::mt19937 rng{std::random_device{}()};
  std::string_view none;
  if (!writing_to_client_) {
    std::string f = close_frame(code, false);
    std::string_view frame = f;
    client_.send_now(frame, none);
  }
  if (!writing_to_upstream_) {
    std::string f = close_frame(code, true, static_cast<uint32_t>(rng()));
    std::string_view frame = f;
    upstream_.send_now(frame, none);
  }
  client_.shutdown_send();
  upstream_.shutdown_send();
  idle_.expires_after(kLinger);
  idle_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    client_.close();
    upstream_.close();
  });
}

}  // namespace gatehouse::websocket
