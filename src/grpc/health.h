// gRPC's health checking protocol (grpc/doc/health-checking.md): the request of
// grpc.health.v1.Health/Check and the reading of its answer, for the active health checks of a
// `protocol: grpc` upstream (upstream/health.h). The two messages are small enough to encode by
// hand (protobuf's wire format, https://protobuf.dev/programming-guides/encoding/):
//   HealthCheckRequest  { string service = 1; }
//   HealthCheckResponse { ServingStatus status = 1; }  // SERVING = 1
#pragma once

#include <string>
#include <string_view>

#include "http/message.h"

namespace gatehouse::grpc {

inline constexpr std::string_view kHealthCheckPath = "/grpc.health.v1.Health/Check";

// The request's body: one length-prefixed, uncompressed message asking about `service`.
std::string health_check_request(std::string_view service);

// The answer says SERVING: grpc-status 0 (among `fields`, the response's head and trailers) and
// one message whose status is SERVING.
bool health_check_serving(std::string_view body, const http::HeaderList& fields);

}  // namespace gatehouse::grpc
