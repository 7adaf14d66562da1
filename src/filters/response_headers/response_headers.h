// response_headers: headers set on, or removed from, every response of a route (as NGINX's
// add_header, Kong's response-transformer or Envoy's response_headers_to_add).
//   plugins:
//     response_headers: { add: { x-frame-options: DENY, cache-control: no-store },
//                         remove: [server, x-powered-by] }
// A response-phase filter only: `remove` drops those headers from the upstream's response, then
// `add` appends its headers, to the upstream's responses and to other filters' answers alike.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "filters/filter.h"

namespace gatehouse::filters {

class ResponseHeaders final : public Filter {
 public:
  ResponseHeaders(http::HeaderList add, std::vector<std::string> remove)
      : add_(std::move(add)), remove_(std::move(remove)) {}
  std::string_view name() const override { return "response_headers"; }
  FilterStatus on_request(RequestContext&) const override { return FilterStatus::kContinue; }
  FilterStatus on_response(RequestContext& ctx) const override;

 private:
  http::HeaderList add_;
  std::vector<std::string> remove_;  // lower case
};

struct BuildContext;
std::shared_ptr<const Filter> build_response_headers(const BuildContext& ctx);

}  // namespace gatehouse::filters
