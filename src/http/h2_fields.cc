#include "http/h2_fields.h"

namespace gatehouse::http {

void submit_trailers(nghttp2_session* session, int32_t id, const HeaderList& trailers) {
  FieldBlock block(0);
  for (const auto& [n, v] : trailers) {
    if (!h2_connection_specific(n)) block.add(n, v);
  }
  const auto& nv = block.nv();
  nghttp2_submit_trailer(session, id, nv.data(), nv.size());
}

}  // namespace gatehouse::http
