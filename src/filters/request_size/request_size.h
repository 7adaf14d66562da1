// request_size: a per-route body limit below server.limits.max_body_bytes.
//   plugins: { request_size: { max_body_bytes: 64KiB } }
// A declared Content-Length over the limit is refused with 413 before any byte goes upstream; a
// chunked body is cut off with 413 when it crosses the limit.
#pragma once

#include <memory>
#include <string>

#include "filters/filter.h"

namespace gatehouse::filters {

class RequestSize final : public Filter {
 public:
  explicit RequestSize(uint64_t max_body_bytes) : max_(max_body_bytes) {}
  std::string_view name() const override { return "request_size"; }
  FilterStatus on_request(RequestContext& ctx) const override;

 private:
  uint64_t max_;
};

struct BuildContext;
std::shared_ptr<const Filter> build_request_size(const BuildContext& ctx);

}  // namespace gatehouse::filters
