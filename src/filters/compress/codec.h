// Content codings the compress plugin produces (RFC 9110 8.4.1): gzip (zlib, RFC 1952), br
// (Brotli, RFC 7932) and zstd (RFC 8878), as streaming encoders; and the choice of one from a
// request's Accept-Encoding (RFC 9110 12.5.3).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::filters::compress {

enum class Coding { kGzip, kBrotli, kZstd };
std::string_view name_of(Coding c);  // as in Content-Encoding: gzip, br, zstd
std::optional<Coding> coding_named(std::string_view name);

// One response body's encoder: pieces in, encoded bytes out, as they come.
class Encoder {
 public:
  virtual ~Encoder() = default;
  // Encodes `in` and appends what the encoder has ready to *out; with `end`, finishes the stream
  // (everything held back comes out). False on an encoder failure (out of memory).
  virtual bool write(std::string_view in, bool end, std::string* out) = 0;
};
// `level`: the coding's own scale (gzip 1-9, br 0-11, zstd 1-19).
std::unique_ptr<Encoder> make_encoder(Coding c, int level);

// The coding to use for a request whose Accept-Encoding field lines are `lines`, among `offered`
// (in the server's order of preference): the one with the highest q-value, ties going to the
// earlier in `offered`; none when the request has no Accept-Encoding (RFC 9110 12.5.3: any
// coding is then acceptable, but a client that says nothing is served identity, as NGINX and
// every CDN do) or accepts none of them (q=0, or not listed and no "*").
std::optional<Coding> choose(const std::vector<std::string_view>& lines,
                             const std::vector<Coding>& offered);

}  // namespace gatehouse::filters::compress
