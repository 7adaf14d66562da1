// Shared by the request and response head targets: a head's fields written back as HTTP/1.1, and
// two parses of the same fields compared field by field.
#pragma once

#include <string>

#include "fuzz/fuzz.h"
#include "http/message.h"

namespace gatehouse::fuzz {

// Appends the fields and the empty line that ends the head.
template <class Fields>
void append_fields(const Fields& fields, std::string* out) {
  for (const auto& f : fields) out->append(f.name).append(": ").append(f.value).append("\r\n");
  out->append("\r\n");
}

template <class Fields>
void check_same_fields(const Fields& a, const Fields& b) {
  FUZZ_CHECK(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    FUZZ_CHECK(a[i].name == b[i].name);
    FUZZ_CHECK(a[i].value == b[i].value);
    FUZZ_CHECK(a[i].id == b[i].id);
    FUZZ_CHECK(a[i].hop_by_hop == b[i].hop_by_hop);
  }
}

}  // namespace gatehouse::fuzz
