// Path normalisation before routing (docs/security.md has the threat model).
//
// A gateway that routes on one spelling of a path while the upstream resolves another can be
// walked around: `/api/public/..%2Fadmin`, `/api/public/%2e%2e/admin` and `//admin` all reach
// `/admin` on some backends while matching a public route here. So the path is brought to one
// canonical form first, routing sees only that form, and the upstream receives it too:
//   1. percent-encoded unreserved characters (RFC 3986 2.3: ALPHA DIGIT - . _ ~) are decoded, and
//      the hex digits of the escapes that stay are upper-cased (RFC 3986 6.2.2.1-2);
//   2. an encoded '/' or '\' (%2F, %5C), or a raw '\', is refused by default: backends disagree on
//      whether it separates segments. With `encoded_slashes: keep` it is forwarded as is and never
//      treated as a separator here;
//   3. an encoded NUL (%00) is always refused;
//   4. a dot segment with parameters (`..;x`, `.;x`), which Java servlet containers resolve as a
//      dot segment, is refused;
//   5. dot segments are removed (RFC 3986 5.2.4); `..` never climbs above the root;
//   6. optionally, runs of '/' are merged into one.
#pragma once

#include <string>
#include <string_view>

namespace gatehouse::http {

struct PathPolicy {
  bool merge_slashes = false;
  bool reject_encoded_slashes = true;  // %2F, %5C and a raw '\'
};

enum class PathVerdict { kUnchanged, kNormalised, kRejected };

// Normalises `path` (an origin-form path, starting with '/', percent-encoding already checked).
// kUnchanged: `path` is already canonical and `out` is untouched (the common case, no copy).
// kNormalised: the canonical form is in `out`. kRejected: `*why` says what was refused.
PathVerdict normalise_path(std::string_view path, const PathPolicy& policy, std::string* out,
                           std::string_view* why);

}  // namespace gatehouse::http
