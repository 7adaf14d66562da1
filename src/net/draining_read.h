// A read that tells Asio's reactor when it emptied the socket, so that the socket's next read
// waits for epoll instead of trying first (docs/architecture.md, decision 29).
//
// Asio starts every read by trying it (a "speculative" recv), and tries again on the next read
// unless the last one found the end of the stream. But a read that came back shorter than its
// buffer has emptied the socket: Linux's TCP hands over everything queued (its backlog included)
// up to the buffer's size. Reading into a DrainingBuffer instead of a mutable_buffer chooses the
// operation below, Asio's own receive with one change: a short read reports "done and
// exhausted", which turns off the next try until epoll reports the socket readable (the
// registration is edge-triggered, and bytes that arrive after the read emptied the socket raise
// an edge). Writes already work this way in Asio (reactive_socket_send_op: a short write is
// "exhausted").
//
// One thing a short read does not rule out: the end of the stream, when the peer's FIN came with
// the last bytes, is still to be read and raises no new edge. So a waiting read may rely on the
// edge only when one must come (net::Stream: the answer to what it just sent); others try first.
//
// The operation is a specialisation of Asio's detail class for our buffer type: Boost 1.81's
// (Asio 1.26) layout, checked below; a newer Boost must be read again before this is kept.
#pragma once

// basic_stream_socket.hpp before the detail header, which needs the socket types it declares.
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/detail/reactive_socket_recv_op.hpp>
#include <boost/asio/version.hpp>

#include "net/asio.h"

static_assert(BOOST_ASIO_VERSION == 102600,
              "net/draining_read.h specialises Asio 1.26's receive operation: check it against "
              "this Asio's reactive_socket_recv_op.hpp");

namespace gatehouse::net {

// One buffer to read into (a MutableBufferSequence, as a mutable_buffer is).
struct DrainingBuffer : asio::mutable_buffer {
  explicit DrainingBuffer(asio::mutable_buffer b) : asio::mutable_buffer(b) {}
};

}  // namespace gatehouse::net

namespace boost::asio::detail {

template <>
class reactive_socket_recv_op_base<gatehouse::net::DrainingBuffer> : public reactor_op {
 public:
  reactive_socket_recv_op_base(const boost::system::error_code& success_ec, socket_type socket,
                               socket_ops::state_type state,
                               const gatehouse::net::DrainingBuffer& buffer,
                               socket_base::message_flags flags, func_type complete_func)
      : reactor_op(success_ec, &reactive_socket_recv_op_base::do_perform, complete_func),
        socket_(socket),
        state_(state),
        buffer_(buffer),
        flags_(flags) {}

  static status do_perform(reactor_op* base) {
    auto* o = static_cast<reactive_socket_recv_op_base*>(base);
    const bool stream = (o->state_ & socket_ops::stream_oriented) != 0;
    if (!socket_ops::non_blocking_recv1(o->socket_, o->buffer_.data(), o->buffer_.size(), o->flags_,
                                        stream, o->ec_, o->bytes_transferred_)) {
      return not_done;  // nothing there: the reactor waits for epoll
    }
    // Short (the end of the stream and errors included): the socket is empty now.
    return stream && o->bytes_transferred_ < o->buffer_.size() ? done_and_exhausted : done;
  }

 private:
  socket_type socket_;
  socket_ops::state_type state_;
  gatehouse::net::DrainingBuffer buffer_;
  socket_base::message_flags flags_;
};

}  // namespace boost::asio::detail
