// grpc_web: gRPC-Web (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md) from browsers
// to gRPC services, as Envoy's grpc_web filter does:
//   plugins:
//     grpc_web: {}
// A request whose Content-Type is application/grpc-web (binary) or application/grpc-web-text
// (base64), with any +subtype, goes to the upstream as the gRPC call it stands for:
// application/grpc with the same subtype, the text form's body decoded. The response comes back as
// gRPC-Web: its messages as they came (base64 again for the text form), then its trailers as one
// more frame in the body (flag 0x80, "name:value\r\n" lines), since a browser cannot read HTTP
// trailers. An answer the upstream gave trailers-only keeps its status in the head, which gRPC-Web
// allows. Other requests pass untouched, plain gRPC included. The gateway's own answers to a
// gRPC-Web call are gRPC statuses in the head (the exchange, grpc/status.h). Browsers need the
// cors plugin too, exposing grpc-status and grpc-message (docs/grpc.md).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "filters/filter.h"

namespace gatehouse::filters {

class GrpcWeb final : public Filter {
 public:
  std::string_view name() const override { return "grpc_web"; }
  FilterStatus on_request(RequestContext& ctx) const override;
  FilterStatus on_request_body(RequestContext& ctx, std::string& data, bool end) const override;
  FilterStatus on_response(RequestContext& ctx) const override;
  void on_response_trailers(RequestContext& ctx, http::HeaderList& trailers) const override;
  void on_response_body(RequestContext& ctx, std::string& data, bool end) const override;
};

// Base64 (RFC 4648 4), padded: each piece of a text response is encoded whole, so that no byte
// of a message waits for the next one (PROTOCOL-WEB.md: messages are flushed atomically; a
// stream of padded chunks is valid).
void base64_encode(std::string_view in, std::string* out);
// False on a character outside the alphabet, or padding anywhere but at the end of a group. A
// gRPC-Web text body may be padded piece by piece: padding ends a group, not the stream.
bool base64_decode_piece(std::string_view in, bool end, std::string* carry, std::string* out);

struct BuildContext;
std::shared_ptr<const Filter> build_grpc_web(const BuildContext& ctx);

}  // namespace gatehouse::filters
