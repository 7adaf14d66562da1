// What an HTTP/1.1 connection needs only while a request is in progress: the read buffer, the
// exchange (with its upstream call and that call's buffers) and the codec's scratch. A connection
// takes one from its worker's pool when the first bytes of a request arrive and gives it back
// when it goes idle with nothing buffered, so that an idle keep-alive connection holds about
// 1.5 KiB rather than tens of KiB; nginx likewise frees its request buffers between keep-alive
// requests. The pool keeps a bounded number for reuse, so the keep-alive path does
// not allocate.
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

namespace gatehouse::http1 {

struct RequestState {
  explicit RequestState(exchange::WorkerContext& worker) : exchange(worker) {}

  net::Buffer in;  // from the client: the head, then the body (or the next pipelined request)
  exchange::Exchange exchange;
  http::RequestHead req;
  http::ErrorResponse refusal;  // a head refused by read_head()
  std::string head_out;         // the response head
  std::string interim_out;      // an interim (1xx) response head
  std::string chunk_out;        // the next chunk of a body the filters rewrite, framed
  std::vector<net::asio::const_buffer> iov;
};

// One per worker; used on its thread only.
class RequestStatePool {
 public:
  explicit RequestStatePool(exchange::WorkerContext& worker) : w_(worker) {}

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

  exchange::WorkerContext& w_;
  std::vector<std::unique_ptr<RequestState>> free_;
};

}  // namespace gatehouse::http1
