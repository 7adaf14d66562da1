// cors: Cross-Origin Resource Sharing answered at the gateway (Fetch standard, "CORS protocol").
//   plugins:
//     cors: { origins: ["https://app.example.com"], methods: [GET, POST], headers: [content-type],
//             expose_headers: [x-total], credentials: true, max_age: 10m }
// A preflight (OPTIONS with Origin and Access-Control-Request-Method) for this route is answered
// here with 204 and never forwarded; it runs before auth, as preflights carry no credentials.
// Other requests from an allowed origin get the CORS response headers added in the response phase,
// whoever answers them. A disallowed origin,
// method or header gets no CORS headers at all, so the browser blocks it. A wildcard origin
// together with credentials is a config error (browsers refuse it, and echoing every origin with
// credentials would let any site read the responses).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "filters/filter.h"

namespace gatehouse::filters {

class Cors final : public Filter {
 public:
  struct Settings {
    std::vector<std::string> origins;  // exact origins ("scheme://host[:port]"), or "*"
    std::vector<std::string> methods{"GET", "HEAD", "POST"};
    std::vector<std::string> headers;  // lower case; empty: whatever the preflight asks for
    std::vector<std::string> expose_headers;
    bool credentials = false;
    int64_t max_age_seconds = -1;  // -1: no Access-Control-Max-Age
  };
  explicit Cors(Settings s);
  std::string_view name() const override { return "cors"; }
  FilterStatus on_request(RequestContext& ctx) const override;
  FilterStatus on_response(RequestContext& ctx) const override;
  bool answers_preflight() const override { return true; }
  bool origin_allowed(std::string_view origin) const;

 private:
  void answer_preflight(RequestContext& ctx, std::string_view origin) const;
  std::string_view allow_origin_value(std::string_view origin) const;

  Settings s_;
  bool any_origin_ = false;
  std::string methods_joined_, headers_joined_, expose_joined_, max_age_;
};

struct BuildContext;
std::shared_ptr<const Filter> build_cors(const BuildContext& ctx);

}  // namespace gatehouse::filters
