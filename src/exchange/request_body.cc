#include "exchange/request_body.h"

#include <algorithm>

namespace gatehouse::exchange {

void BodyDeframer::start(http::Framing framing, uint64_t length, uint64_t max_bytes) {
  framing_ = framing;
  remaining_ = framing == http::Framing::kContentLength ? length : 0;
  max_bytes_ = max_bytes;
  seen_ = 0;
  done_ = framing == http::Framing::kNone ||
          (framing == http::Framing::kContentLength && remaining_ == 0);
  decoder_.reset();
  refusal_.reset();
}

size_t BodyDeframer::feed(std::string_view avail, std::string* out) {
  if (done_ || refusal_) return 0;
  const size_t had = out->size();
  size_t take = 0;
  if (framing_ == http::Framing::kContentLength) {
    take = static_cast<size_t>(std::min<uint64_t>(remaining_, avail.size()));
    out->append(avail.substr(0, take));
    remaining_ -= take;
    done_ = remaining_ == 0;
  } else {
    spans_.clear();
    const auto r = decoder_.feed(avail, &spans_);
    take = r.consumed;
    for (auto s : spans_) out->append(s);
    if (r.error) {
      refusal_ = http::ErrorResponse{400, "bad_request", "malformed chunked request body", {}};
      return take;
    }
    done_ = r.done;
  }
  seen_ += out->size() - had;
  if (seen_ > max_bytes_) {
    refusal_ = http::ErrorResponse{
        413,
        "body_too_large",
        "the request body is larger than " + std::to_string(max_bytes_) + " bytes",
        {}};
  }
  return take;
}

void FilteredRequestBody::start(upstream::RequestSource& from, http::Framing framing,
                                uint64_t length, uint64_t max_bytes,
                                const std::vector<std::shared_ptr<const filters::Filter>>& chain,
                                filters::RequestContext& ctx) {
  from_ = &from;
  chain_ = &chain;
  ctx_ = &ctx;
  framing_ = framing;
  body_.start(framing, length, max_bytes);
  in_done_ = refused_ = false;
  out_.clear();
}

std::string_view FilteredRequestBody::body_buffered() {
  if (out_.empty()) pull();
  return out_;
}

net::Task<> FilteredRequestBody::prime(net::Clock::duration idle) {
  bool more = true;  // false: the client stopped sending (the call finds out why, as it would have)
  while (more && body_buffered().empty() && !refused_ && !in_done_) {
    from_->set_deadline(Phase::kStream, idle);
    more = co_await from_->body_read_more();
  }
}

net::Task<bool> FilteredRequestBody::body_read_more() {
  if (refused_) co_return false;
  if (!out_.empty()) co_return true;
  bool more = co_await from_->body_read_more();
  co_return more;
}

void FilteredRequestBody::pull() {
  if (in_done_ || refused_) return;
  // A request without a body (a filter makes one): its one, last, piece, empty.
  const bool reads = framing_ != http::Framing::kNone;
  data_.clear();
  const size_t take = reads ? body_.feed(from_->body_buffered(), &data_) : 0;
  in_done_ = body_.done();
  if (body_.refusal()) return refuse(*body_.refusal());
  if (reads) from_->body_consumed(take, false);
  if (data_.empty() && !in_done_) return;
  const auto& chain = *chain_;
  for (size_t i = 0; i < chain.size(); ++i) {
    if (!(ctx_->request_body_watchers >> i & 1)) continue;
    ctx_->current = i;
    if (chain[i]->on_request_body(*ctx_, data_, in_done_) == filters::FilterStatus::kRespond)
      return refuse(std::move(ctx_->reply));
  }
  http::append_chunk(data_, in_done_, nullptr, &out_);
  if (in_done_ && framing_ != http::Framing::kNone) from_->body_consumed(0, true);
}

void FilteredRequestBody::refuse(http::ErrorResponse e) {
  refused_ = true;
  refusal_ = std::move(e);
  out_.clear();
}

}  // namespace gatehouse::exchange
