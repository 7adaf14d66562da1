#include "filters/grpc_web/grpc_web.h"

#include <array>
#include <cstdint>

#include "filters/registry.h"
#include "grpc/status.h"

namespace gatehouse::filters {
namespace {

constexpr uint8_t kTrailerFlag = 0x80;

// What the filter keeps for a gRPC-Web call.
struct Call {
  bool text = false;
  std::string_view media;  // application/grpc-web or application/grpc-web-text
  std::string subtype;     // "+proto", ";charset=...", or empty: what followed the media type
  std::string carry;       // the request's base64 not yet a whole group
  std::string trailer_frame;
};
inline const SlotKey<Call> kCall{"grpc_web.call"};

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

void base64_encode(std::string_view in, std::string* out) {
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = uint32_t{static_cast<uint8_t>(in[i])} << 16 |
                       uint32_t{static_cast<uint8_t>(in[i + 1])} << 8 |
                       static_cast<uint8_t>(in[i + 2]);
    const char group[] = {kAlphabet[v >> 18], kAlphabet[v >> 12 & 63], kAlphabet[v >> 6 & 63],
                          kAlphabet[v & 63]};
    out->append(group, 4);
  }
  const std::string_view rest = in.substr(i);
  if (!rest.empty()) {
    const uint32_t v = uint32_t{static_cast<uint8_t>(rest[0])} << 16 |
                       (rest.size() > 1 ? uint32_t{static_cast<uint8_t>(rest[1])} << 8 : 0);
    const char group[] = {kAlphabet[v >> 18], kAlphabet[v >> 12 & 63],
                          rest.size() > 1 ? kAlphabet[v >> 6 & 63] : '=', '='};
    out->append(group, 4);
  }
}

bool base64_decode_piece(std::string_view in, bool end, std::string* carry, std::string* out) {
  for (char c : in) {
    if (c == '\r' || c == '\n') continue;
    carry->push_back(c);
    if (carry->size() < 4) continue;
    std::array<int, 4> v{};
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char g = (*carry)[k];
      if (g == '=' && k >= 2) {
        ++pad;
        v[k] = 0;
        continue;
      }
      if (pad) return false;  // a character after padding, in one group
      v[k] = base64_value(g);
      if (v[k] < 0) return false;
    }
    const uint32_t bits =
        uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 | uint32_t(v[3]);
    out->push_back(static_cast<char>(bits >> 16));
    if (pad < 2) out->push_back(static_cast<char>(bits >> 8 & 255));
    if (pad < 1) out->push_back(static_cast<char>(bits & 255));
    carry->clear();
  }
  return !end || carry->empty();
}

FilterStatus GrpcWeb::on_request(RequestContext& ctx) const {
  const std::string_view type = ctx.request->get("content-type");
  // The media type without its +subtype or parameters: gRPC-Web's two, or another request.
  const std::string_view media = grpc::answer_content_type(type);
  if (!media.starts_with("application/grpc-web")) return FilterStatus::kContinue;
  Call call;
  call.text = media.ends_with("-text");
  call.media = media;
  call.subtype = std::string(type.substr(media.size()));
  ctx.upstream_remove.emplace_back("content-type");
  ctx.upstream_add.emplace_back("content-type", "application/grpc" + call.subtype);
  if (call.text) {
    ctx.upstream_remove.emplace_back("content-length");  // the decoded body is shorter
    ctx.watch_request_body();
  }
  ctx.slots.set(kCall, std::move(call));
  return FilterStatus::kContinue;
}

FilterStatus GrpcWeb::on_request_body(RequestContext& ctx, std::string& data, bool end) const {
  Call* call = ctx.slots.get(kCall);
  if (!call || !call->text) return FilterStatus::kContinue;
  std::string decoded;
  if (!base64_decode_piece(data, end, &call->carry, &decoded)) {
    ctx.reply = http::ErrorResponse{
        400, "bad_request", "the gRPC-Web text body is not base64 (RFC 4648)", {}};
    return FilterStatus::kRespond;
  }
  data = std::move(decoded);
  return FilterStatus::kContinue;
}

FilterStatus GrpcWeb::on_response(RequestContext& ctx) const {
  Call* call = ctx.slots.get(kCall);
  if (!call || !ctx.response) return FilterStatus::kContinue;  // the gateway's own: the exchange's
  ctx.response_remove.emplace_back("content-type");
  ctx.response_add.emplace_back("content-type", std::string(call->media) + call->subtype);
  ctx.watch_response_body();
  return FilterStatus::kContinue;
}

// The trailers become the body's last frame (PROTOCOL-WEB.md): a browser cannot read trailers.
void GrpcWeb::on_response_trailers(RequestContext& ctx, http::HeaderList& trailers) const {
  Call* call = ctx.slots.get(kCall);
  if (!call || trailers.empty()) return;
  std::string block;
  for (const auto& [name, value] : trailers) {
    for (char c : name) block.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
    block.append(":").append(value).append("\r\n");
  }
  call->trailer_frame.clear();
  grpc::append_message_prefix(&call->trailer_frame, kTrailerFlag,
                              static_cast<uint32_t>(block.size()));
  call->trailer_frame += block;
  trailers.clear();
}

void GrpcWeb::on_response_body(RequestContext& ctx, std::string& data, bool end) const {
  Call* call = ctx.slots.get(kCall);
  if (!call) return;
  if (end) data += call->trailer_frame;
  if (!call->text) return;
  std::string encoded;
  base64_encode(data, &encoded);
  data = std::move(encoded);
}

std::shared_ptr<const Filter> build_grpc_web(const BuildContext& ctx) {
  if (!ctx.reader.check_map(ctx.settings, ctx.path, {})) return nullptr;
  return std::make_shared<GrpcWeb>();
}

}  // namespace gatehouse::filters
