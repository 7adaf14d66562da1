#include "exchange/request_body.h"

#include <algorithm>

namespace gatehouse::exchange {

void FilteredRequestBody::start(upstream::RequestSource& from, http::Framing framing,
                                uint64_t length, uint64_t max_bytes,
                                const std::vector<std::shared_ptr<const filters::Filter>>& chain,
                                filters::RequestContext& ctx) {
  from_ = &from;
  chain_ = &chain;
  ctx_ = &ctx;
  framing_ = framing;
  remaining_ = framing == http::Framing::kContentLength ? length : 0;
  max_bytes_ = max_bytes;
  seen_ = 0;
  in_done_ = refused_ = false;
  decoder_.reset();
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
  std::string_view avail = from_->body_buffered();
  data_.clear();
  size_t take = 0;
  if (framing_ == http::Framing::kNone) {
    in_done_ = true;  // a body a filter makes for a request without one: its one, last, piece
  } else if (framing_ == http::Framing::kContentLength) {
    take = static_cast<size_t>(std::min<uint64_t>(remaining_, avail.size()));
    data_.append(avail.substr(0, take));
    remaining_ -= take;
    in_done_ = remaining_ == 0;
  } else {
    spans_.clear();
    auto r = decoder_.feed(avail, &spans_);
    take = r.consumed;
    for (auto s : spans_) data_.append(s);
    if (r.error) return refuse({400, "bad_request", "malformed chunked request body", {}});
    in_done_ = r.done;
  }
  if (framing_ != http::Framing::kNone) from_->body_consumed(take, false);
  seen_ += data_.size();
  if (seen_ > max_bytes_) {
    return refuse({413,
                   "body_too_large",
                   "the request body is larger than " + std::to_string(max_bytes_) + " bytes",
                   {}});
  }
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
