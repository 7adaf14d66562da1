// grpc_transcode: HTTP/JSON clients to gRPC services, as Envoy's grpc_json_transcoder and
// grpc-gateway do (docs/grpc.md, "Transcoding"). A route key rather than a plugin:
//   - name: reviews-json
//     match: { path: "/api/reviews/{id}", methods: [GET] }
//     to: reviews-grpc                       # a protocol: grpc upstream
//     grpc_transcode: { descriptor_set: protos/reviews.pb, method: shop.Reviews/GetReview }
// The request becomes the method's input message (proto3 JSON, libprotobuf's mapping): the
// fields its path binds (the route's {captures} with an explicit `method`; else the variables of
// the google.api.http rule that matches the method and path), then its query parameters (dotted
// field paths; a repeated field takes each value), then the JSON body (the whole message, or
// the rule's `body` field). It goes upstream as a gRPC call (POST /pkg.Service/Method,
// application/grpc, one length-prefixed message). A unary answer is the output message as JSON,
// or, for a status other than OK, the HTTP status google.rpc's table gives it with a
// google.rpc.Status JSON body ({"code", "message", "details"}): the response head waits for the
// call's end (its trailers), whose metadata become response headers. A server stream is answered
// as newline-delimited JSON (application/x-ndjson) or one JSON array (`stream: array`), message
// by message; a status other than OK after the first message ends it with {"error": Status}.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "filters/filter.h"
#include "filters/grpc_transcode/descriptor_set.h"

namespace gatehouse::filters {

class GrpcTranscode final : public Filter {
 public:
  GrpcTranscode(std::shared_ptr<const transcode::DescriptorSet> set,
                const transcode::Method* method, std::vector<transcode::HttpBinding> bindings,
                bool array)
      : set_(std::move(set)), method_(method), bindings_(std::move(bindings)), array_(array) {}

  std::string_view name() const override { return "grpc_transcode"; }
  FilterStatus on_request(RequestContext& ctx) const override;
  FilterStatus on_request_body(RequestContext& ctx, std::string& data, bool end) const override;
  FilterStatus on_response(RequestContext& ctx) const override;
  void on_response_trailers(RequestContext& ctx, http::HeaderList& trailers) const override;
  void on_response_body(RequestContext& ctx, std::string& data, bool end) const override;

 private:
  // The binding a request takes, and the fields its path binds; null when none maps it.
  const transcode::HttpBinding* find_binding(const http::RequestHead& req,
                                             std::vector<transcode::FieldValue>* fields) const;
  std::string error_json(int code, std::string_view message, std::string_view details) const;

  std::shared_ptr<const transcode::DescriptorSet> set_;
  const transcode::Method* method_;               // an explicit method, or null ...
  std::vector<transcode::HttpBinding> bindings_;  // ... for the annotations' bindings
  bool array_;                                    // a server stream as one JSON array
};

struct BuildContext;
// Builds the filter from a route's grpc_transcode settings (config errors through ctx.reader).
std::shared_ptr<const Filter> build_grpc_transcode(const BuildContext& ctx);

}  // namespace gatehouse::filters
