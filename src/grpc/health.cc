#include "grpc/health.h"

#include <cstdint>
#include <optional>

#include "grpc/status.h"

namespace gatehouse::grpc {
namespace {

constexpr uint8_t kServing = 1;

// A base-128 varint from the front of *in.
std::optional<uint64_t> take_varint(std::string_view* in) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    const auto b = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    v |= uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) return v;
  }
  return std::nullopt;
}

void append_varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

}  // namespace

std::string health_check_request(std::string_view service) {
  std::string message;
  if (!service.empty()) {
    message.push_back(0x0a);  // field 1, length-delimited
    append_varint(&message, service.size());
    message.append(service);
  }
  std::string body;
  append_message_prefix(&body, 0, static_cast<uint32_t>(message.size()));
  return body + message;
}

bool health_check_serving(std::string_view body, const http::HeaderList& fields) {
  bool ok = false;
  for (const auto& [name, value] : fields) {
    if (http::iequals(name, "grpc-status")) ok = value == "0";
  }
  if (!ok || body.size() < 5 || body[0] != 0) return false;
  uint32_t n = 0;
  for (int i = 1; i <= 4; ++i) n = n << 8 | static_cast<uint8_t>(body[i]);
  std::string_view message = body.substr(5);
  if (message.size() != n) return false;
  // The last `status` wins (protobuf's rule for a repeated scalar field); unknown fields are
  // skipped by their wire type.
  uint64_t status = 0;
  while (!message.empty()) {
    auto tag = take_varint(&message);
    if (!tag) return false;
    switch (*tag & 7) {
      case 0: {  // varint
        auto v = take_varint(&message);
        if (!v) return false;
        if (*tag >> 3 == 1) status = *v;
        break;
      }
      case 1:  // 64-bit
      case 5:  // 32-bit
      {
        const size_t width = (*tag & 7) == 1 ? 8 : 4;
        if (message.size() < width) return false;
        message.remove_prefix(width);
        break;
      }
      case 2: {  // length-delimited
        auto len = take_varint(&message);
        if (!len || *len > message.size()) return false;
        message.remove_prefix(*len);
        break;
      }
      default:
        return false;
    }
  }
  return status == kServing;
}

}  // namespace gatehouse::grpc
