// compress: response bodies compressed as they stream, in the coding the client prefers among
// gzip, br and zstd (RFC 9110 8.4.1, 12.5.3), as NGINX's gzip and brotli modules or Envoy's
// compressor filter:
//   plugins:
//     compress: { types: [application/json, text/*], min_size: 256, level: { gzip: 6, br: 4 } }
// Only 200 responses of the listed types, not already content-coded, without Cache-Control:
// no-transform, and (when their length is known) at least min_size bytes. Such a response always
// says Vary: Accept-Encoding (its representation depends on it, compressed or not); compressed,
// it loses its Content-Length (sent chunked), Accept-Ranges (ranges would be of the coded bytes)
// and its strong ETag, which is weakened (W/"..."): the coded bytes are not the ones it names
// (RFC 9110 8.8.1). Streaming: no body is buffered whole. The cache, which runs before this
// filter, stores the coded response as a variant (by Vary), so a hit is not compressed again.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "filters/compress/codec.h"
#include "filters/filter.h"

namespace gatehouse::filters {

struct BuildContext;

class Compress final : public Filter {
 public:
  struct Settings {
    std::vector<std::string> types;         // lower case; "type/*" matches a whole type, "*" any
    std::vector<compress::Coding> codings;  // the server's order of preference
    uint64_t min_size = 256;
    int gzip_level = 6, br_level = 4, zstd_level = 3;
  };
  explicit Compress(Settings s) : s_(std::move(s)) {}
  std::string_view name() const override { return "compress"; }
  FilterStatus on_request(RequestContext& ctx) const override;
  FilterStatus on_response(RequestContext& ctx) const override;
  void on_response_body(RequestContext& ctx, std::string& data, bool end) const override;

  bool applies_to(std::string_view content_type) const;

 private:
  int level_of(compress::Coding c) const;
  Settings s_;
};

std::shared_ptr<const Filter> build_compress(const BuildContext& ctx);

}  // namespace gatehouse::filters
