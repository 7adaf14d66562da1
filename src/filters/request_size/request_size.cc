#include "filters/request_size/request_size.h"

#include <algorithm>

#include "filters/registry.h"

namespace gatehouse::filters {

FilterStatus RequestSize::on_request(RequestContext& ctx) const {
  ctx.max_body_bytes = std::min(ctx.max_body_bytes, max_);
  if (ctx.request->framing == http::Framing::kContentLength &&
      ctx.request->content_length > ctx.max_body_bytes) {
    ctx.reply.status = 413;
    ctx.reply.code = "body_too_large";
    ctx.reply.message = "the request body is larger than " + std::to_string(max_) + " bytes";
    return FilterStatus::kRespond;
  }
  return FilterStatus::kContinue;
}

std::shared_ptr<const Filter> build_request_size(const BuildContext& ctx) {
  const auto& settings = ctx.settings;
  const auto& path = ctx.path;
  const auto& reader = ctx.reader;
  if (!reader.check_map(settings, path, {"max_body_bytes"})) return nullptr;
  auto n = settings["max_body_bytes"];
  if (!n) {
    reader.error(settings, path, "'max_body_bytes' is required");
    return nullptr;
  }
  auto size = reader.size(n, config::child(path, "max_body_bytes"));
  if (!size) return nullptr;
  return std::make_shared<RequestSize>(*size);
}

}  // namespace gatehouse::filters
