// response_replace: replaces strings in response bodies as they stream, as NGINX's sub_filter
// (ngx_http_sub_module) or APISIX's response-rewrite filters do; for instance the internal address
// a backend writes into its links:
//   plugins:
//     response_replace:
//       replace: { "http://orders.internal:8080": "https://api.example.com" }
//       types: [text/html, application/json]     # the default: [text/html]; "*" for any
// Every occurrence of each `replace` key is replaced, the earliest first (the first listed, where
// two start together); a match split across the pieces the body arrives in is found all the same:
// the filter holds back the bytes that may begin one (at most the longest key less one). Only
// responses of the listed media types, and not content-coded (a gzip body has no text to find):
// the others stream through untouched. A rewritten body loses its Content-Length (it goes chunked)
// and its strong validators: ETag and Last-Modified name bytes the client no longer gets (RFC 9110
// 8.8.1; NGINX drops them too).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "filters/filter.h"

namespace gatehouse::filters {

class ResponseReplace final : public Filter {
 public:
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  ResponseReplace(Pairs pairs, std::vector<std::string> types);
  std::string_view name() const override { return "response_replace"; }
  FilterStatus on_request(RequestContext&) const override { return FilterStatus::kContinue; }
  FilterStatus on_response(RequestContext& ctx) const override;
  void on_response_body(RequestContext& ctx, std::string& data, bool end) const override;

  // The streaming replacement, for one body: `text` (what was held back, then the new piece)
  // rewritten into *out, except the tail that may begin a match (when not `end`), left in *held.
  void rewrite(std::string_view text, bool end, std::string* out, std::string* held) const;

 private:
  bool applies_to(std::string_view content_type) const;

  Pairs pairs_;
  std::vector<std::string> types_;  // lower case media types, or "*"
  size_t longest_ = 0;
};

struct BuildContext;
std::shared_ptr<const Filter> build_response_replace(const BuildContext& ctx);

}  // namespace gatehouse::filters
