// The chunked transfer coding (http::ChunkedDecoder). Input: one byte of settings, then the body.
// Invariants: fed in one piece or in random pieces (many of one byte), the decoder consumes the
// same bytes, reaches the same verdict and yields the same payload and trailers; the payload spans
// point into the input; a decoded body re-encoded with append_chunk decodes to the same payload
// and trailer fields; reset() forgets everything.
#include "http/chunked.h"

#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz.h"

namespace {

using namespace gatehouse;
using namespace gatehouse::http;

struct Outcome {
  bool done = false;
  bool error = false;
  size_t consumed = 0;
  std::string payload;
  uint64_t payload_bytes = 0;
  std::string trailers;
};

void check_spans(std::string_view piece, const std::vector<std::string_view>& spans) {
  for (auto s : spans) {
    FUZZ_CHECK(!s.empty());
    FUZZ_CHECK(s.data() >= piece.data() && s.data() + s.size() <= piece.data() + piece.size());
  }
}

Outcome one_piece(ChunkedDecoder& dec, std::string_view body) {
  Outcome o;
  std::vector<std::string_view> spans;
  auto r = dec.feed(body, &spans);
  check_spans(body.substr(0, r.consumed), spans);
  for (auto s : spans) o.payload.append(s);
  o.done = r.done;
  o.error = r.error;
  o.consumed = r.consumed;
  o.payload_bytes = dec.payload_bytes();
  o.trailers = std::string(dec.trailers());
  return o;
}

Outcome in_pieces(ChunkedDecoder& dec, std::string_view body, fuzz::Splitter& split) {
  Outcome o;
  size_t at = 0;
  while (at < body.size()) {
    std::string_view piece = body.substr(at, split.piece(body.size() - at));
    std::vector<std::string_view> spans;
    auto r = dec.feed(piece, &spans);
    FUZZ_CHECK(r.consumed <= piece.size());
    FUZZ_CHECK(!(r.done && r.error));
    check_spans(piece.substr(0, r.consumed), spans);
    for (auto s : spans) o.payload.append(s);
    o.consumed += r.consumed;
    at += piece.size();
    if (r.error || r.done) {
      o.error = r.error;
      o.done = r.done;
      break;
    }
    // Not done and no error: every byte belongs to the body.
    FUZZ_CHECK(r.consumed == piece.size());
  }
  o.payload_bytes = dec.payload_bytes();
  o.trailers = std::string(dec.trailers());
  return o;
}

void check_same(const Outcome& a, const Outcome& b) {
  FUZZ_CHECK(a.done == b.done);
  FUZZ_CHECK(a.error == b.error);
  FUZZ_CHECK(a.consumed == b.consumed);
  FUZZ_CHECK(a.payload == b.payload);
  FUZZ_CHECK(a.payload_bytes == b.payload_bytes);
  FUZZ_CHECK(a.trailers == b.trailers);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // Settings: bit 0 keeps trailers; bits 1-2 pick the line limit, bits 3-4 the trailer limit.
  const uint8_t settings = data[0];
  const bool keep = settings & 1;
  static constexpr size_t kLines[] = {4096, 1, 8, 64};
  static constexpr size_t kTrailers[] = {16 * 1024, 1, 10, 100};
  const size_t max_line = kLines[(settings >> 1) & 3];
  const size_t max_trailers = kTrailers[(settings >> 3) & 3];
  std::string_view body = fuzz::as_text(data + 1, size - 1);

  ChunkedDecoder whole(max_line);
  if (keep) whole.keep_trailers(max_trailers);
  Outcome a = one_piece(whole, body);
  FUZZ_CHECK(!(a.done && a.error));
  FUZZ_CHECK(a.consumed <= body.size());
  if (!a.done && !a.error) FUZZ_CHECK(a.consumed == body.size());
  FUZZ_CHECK(a.payload.size() == a.payload_bytes);
  if (keep) FUZZ_CHECK(a.trailers.size() <= max_trailers);
  if (!keep) FUZZ_CHECK(a.trailers.empty());

  ChunkedDecoder pieces(max_line);
  if (keep) pieces.keep_trailers(max_trailers);
  fuzz::Splitter split(body);
  check_same(a, in_pieces(pieces, body, split));

  // reset(): a fresh decoder, which keeps no trailers.
  whole.reset();
  FUZZ_CHECK(whole.payload_bytes() == 0 && whole.trailers().empty());
  if (keep) whole.keep_trailers(max_trailers);
  check_same(a, one_piece(whole, body));

  if (!a.done) return 0;
  // Re-encoded as one chunk with the trailer fields, the body decodes to the same.
  HeaderList fields;
  parse_trailer_fields(a.trailers, &fields);
  for (const auto& [name, value] : fields) {
    FUZZ_CHECK(!name.empty());
    FUZZ_CHECK(value.empty() || (value.front() != ' ' && value.back() != ' '));
  }
  std::string encoded;
  append_chunk(a.payload, true, &fields, &encoded);
  ChunkedDecoder again(encoded.size() + 1);
  again.keep_trailers(encoded.size() + 1);
  Outcome b = one_piece(again, encoded);
  FUZZ_CHECK(b.done && !b.error && b.consumed == encoded.size());
  FUZZ_CHECK(b.payload == a.payload);
  HeaderList fields2;
  parse_trailer_fields(b.trailers, &fields2);
  FUZZ_CHECK(fields2 == fields);
  return 0;
}
