// One request outside the proxy path -- an active health check (gRPC's too), a JWKS fetch (and,
// later, cache revalidation and OTLP export) -- over the same streams and the same TLS stack as the
// proxy's own upstream connections (net::Stream, tls::ClientContext): connect, TLS with the name
// verified, send the request head and a short body, read the response head with the proxy's
// parser, then the body (Content-Length, chunked or until close) up to a limit, with its
// trailers; all within one deadline. To an HTTP/2
// upstream, the same bytes go through one stream of an HTTP/2 connection (upstream/h2/).
//
// Not pooled and never retried: the callers run on the main thread a few times a second at most,
// and each wants a fresh answer from one given address.
#pragma once

#include <chrono>
#include <list>
#include <memory>
#include <string>

#include "http/outgoing_request.h"
#include "net/asio.h"
#include "net/stream.h"

namespace gatehouse::tls {
class ClientContext;
}

namespace gatehouse::upstream {

namespace h2 {
class Stream;
}

struct FetchRequest {
  net::tcp::endpoint endpoint;
  const tls::ClientContext* tls = nullptr;  // null: plain HTTP
  std::string server_name;                  // with tls: SNI and the name the certificate carries
  http::OutgoingRequest head;               // the whole request head ...
  std::string body;    // ... and its body, when the head says it has one (set_body, Content-Length)
  bool http2 = false;  // over HTTP/2 (h2 by ALPN, or h2c with prior knowledge): upstream/h2/
  bool want_body = false;                   // false: the status line is enough
  size_t max_body = 1 << 20;                // a longer body is an error
  std::chrono::milliseconds timeout{5000};  // for the whole exchange
};

struct FetchResult {
  int status = 0;           // 0: no valid response (error says why)
  std::string body;         // with want_body
  http::HeaderList fields;  // with want_body: the head's fields, then the trailers' (gRPC's status)
  std::string error;        // empty on success
};

class Fetch;

// The fetches a background task has in flight, so that stopping the task ends them at once.
class FetchSet {
 public:
  void cancel_all();

 private:
  friend class Fetch;
  std::list<Fetch*> fetches_;
};

// One fetch, run once; cancel() (same thread) closes its connection so that run() ends at once.
// Made with a FetchSet, it belongs to that set while it lives.
class Fetch {
 public:
  explicit Fetch(const net::Executor& ex, FetchSet* set = nullptr)
      : stream_(ex), deadline_(ex), set_(set) {
    if (set_) set_->fetches_.push_back(this);
  }
  ~Fetch();
  Fetch(const Fetch&) = delete;
  Fetch& operator=(const Fetch&) = delete;
  net::Task<FetchResult> run(const FetchRequest& r);
  void cancel();

 private:
  void arm(std::chrono::milliseconds timeout);  // the deadline: cancel() when it passes
  net::Task<FetchResult> exchange(const FetchRequest& r);
  net::Task<bool> read_more(std::string* why);
  net::Task<std::tuple<boost::system::error_code, size_t>> read_some(net::asio::mutable_buffer b);

  net::Stream stream_;
  std::shared_ptr<h2::Stream> h2_;  // HTTP/2: the request's stream, on a connection of its own
  net::Timer deadline_;
  std::string in_;
  bool cancelled_ = false;
  FetchSet* set_;
  // What the deadline's handler holds instead of `this`: a handler whose timer expired is queued
  // whatever happens next (cancel() cannot recall it), and may run after the fetch ended, or after
  // the Fetch is gone. It acts only if the fetch it was armed for is still running.
  struct Armed {
    Fetch* fetch;
    bool running = false;
  };
  std::shared_ptr<Armed> armed_;
};

inline void FetchSet::cancel_all() {
  for (auto* f : fetches_) f->cancel();
}

}  // namespace gatehouse::upstream
