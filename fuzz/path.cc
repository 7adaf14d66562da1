// Path normalisation (http::normalise_path) under all four policies. Input: an origin-form path
// as the parser passes it (starting with '/', escapes valid); anything else is skipped. The
// invariants are in path_checks.h: the same answer as a naive RFC 3986 implementation, canonical
// output (no dot segments, no slashes in disguise unless kept, upper-case escapes only where
// needed), and idempotence.
#include <string_view>

#include "fuzz/fuzz.h"
#include "fuzz/path_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view path = gatehouse::fuzz::as_text(data, size);
  if (!gatehouse::fuzz::normaliser_input(path)) return 0;
  for (bool merge : {false, true}) {
    for (bool reject : {true, false}) {
      gatehouse::fuzz::check_normalise(path,
                                       {.merge_slashes = merge, .reject_encoded_slashes = reject});
    }
  }
  return 0;
}
