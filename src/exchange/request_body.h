// A request body on its way upstream through the filters that watch it (filters/filter.h): read
// from the codec in the framing the request declared, de-framed, handed to each watching filter in
// chain order, and offered to the upstream client chunked (the filters may change its length). To
// the client it is one more RequestSource: deadlines and 100 Continue stay the codec's, and a
// retry replays the filtered bytes from the client's own copy.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "filters/filter.h"
#include "http/chunked.h"
#include "http/error_response.h"
#include "upstream/client.h"

namespace gatehouse::exchange {

// A request body's payload as it arrives, in the framing its head declares (Content-Length or
// chunked; none: an empty body, ended at once), held to a limit. What the exchange reads a body
// with, through the filters that watch it or whole (a composite route's).
class BodyDeframer {
 public:
  void start(http::Framing framing, uint64_t length, uint64_t max_bytes);
  // De-frames the start of `avail` onto *out; returns how many of its bytes were the body's.
  size_t feed(std::string_view avail, std::string* out);
  bool done() const { return done_; }
  // Why the body is refused, once it is: 400 for malformed chunked framing, 413 past the limit.
  const std::optional<http::ErrorResponse>& refusal() const { return refusal_; }

 private:
  http::Framing framing_ = http::Framing::kNone;
  uint64_t remaining_ = 0;  // Content-Length bytes still to come
  uint64_t max_bytes_ = 0;
  uint64_t seen_ = 0;  // payload bytes read
  bool done_ = false;
  http::ChunkedDecoder decoder_;
  std::vector<std::string_view> spans_;
  std::optional<http::ErrorResponse> refusal_;
};

class FilteredRequestBody final : public upstream::RequestSource {
 public:
  // The body of the request `ctx` is about, read through `from` in `framing` (`length` bytes when
  // it has a Content-Length), at most `max_bytes` of payload.
  void start(upstream::RequestSource& from, http::Framing framing, uint64_t length,
             uint64_t max_bytes, const std::vector<std::shared_ptr<const filters::Filter>>& chain,
             filters::RequestContext& ctx);
  // The body stopped short for the gateway to answer, with this (a filter's answer, or 400 / 413).
  bool refused() const { return refused_; }
  http::ErrorResponse refusal() { return std::move(refusal_); }

  // Reads the body through the filters until they pass a piece of it on, refuse it, or it ends,
  // or the client stops sending (RequestContext::hold_request_head): `idle` for each read.
  net::Task<> prime(net::Clock::duration idle);

  std::string_view body_buffered() override;
  void body_consumed(size_t n, bool done) override { out_.erase(0, n); }
  net::Task<bool> body_read_more() override;
  void interim_response(const http::ResponseHead& head) override { from_->interim_response(head); }
  void set_deadline(Phase phase, net::Clock::duration after) override {
    from_->set_deadline(phase, after);
  }

 private:
  void pull();  // de-frames what `from` holds, runs the filters over it, frames what they pass on
  void refuse(http::ErrorResponse e);

  upstream::RequestSource* from_ = nullptr;
  const std::vector<std::shared_ptr<const filters::Filter>>* chain_ = nullptr;
  filters::RequestContext* ctx_ = nullptr;
  http::Framing framing_ = http::Framing::kNone;
  bool in_done_ = false;
  bool refused_ = false;
  http::ErrorResponse refusal_;
  BodyDeframer body_;
  std::string data_;  // the piece the filters work on
  std::string out_;   // framed for the upstream, not yet taken
};

}  // namespace gatehouse::exchange
