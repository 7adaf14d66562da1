// What a codec needs only while a request is in progress: the exchange (with its upstream call
// and that call's buffers), the request head, and the codec's buffers and scratch. An HTTP/1.1
// connection takes one from its worker's pool when the first bytes of a request arrive and gives
// it back when it goes idle with nothing buffered, so that an idle keep-alive connection holds
// about 1.5 KiB rather than tens of KiB (nginx likewise frees its request buffers between
// keep-alive requests); an HTTP/2 stream takes one for its life. The pool keeps a bounded number
// for reuse, so a request's path does not allocate them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "exchange/context.h"
#include "exchange/exchange.h"
#include "http/error_response.h"
#include "http/message.h"
#include "net/asio.h"
#include "net/buffer.h"

namespace gatehouse::exchange {

struct RequestState {
  explicit RequestState(WorkerContext& worker) : exchange(worker) {}

  net::Buffer in;  // HTTP/1.1: from the client, the head, then the body (or the next request)
  Exchange exchange;
  http::RequestHead req;
  http::ErrorResponse refusal;  // a head refused by read_head()
  std::string head_out;         // the response head (HTTP/2: the request head, as HTTP/1.1)
  std::string interim_out;      // an interim (1xx) response head
  std::string chunk_out;        // the next chunk of a body the filters rewrite, framed
  std::vector<net::asio::const_buffer> iov;
};

// One per worker; used on its thread only.
class RequestStatePool {
 public:
  explicit RequestStatePool(WorkerContext& worker) : w_(worker) {}

  std::unique_ptr<RequestState> take() {
    if (free_.empty()) return std::make_unique<RequestState>(w_);
    auto s = std::move(free_.back());
    free_.pop_back();
    return s;
  }
  // From a connection gone idle: its request is finished and its read buffer empty.
  void give(std::unique_ptr<RequestState> s) {
    s->exchange.end();
    // A buffer a large head or a streamed body grew is not kept at that size.
    if (s->in.capacity() > net::kReadChunk) s->in = {};
    if (free_.size() < kKeep) free_.push_back(std::move(s));
  }

 private:
  // Enough for the requests a worker serves at once under a steady load; more are made (and
  // freed) as needed.
  static constexpr size_t kKeep = 128;

  WorkerContext& w_;
  std::vector<std::unique_ptr<RequestState>> free_;
};

}  // namespace gatehouse::exchange
