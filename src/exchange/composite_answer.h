// A composite route's answer, made of its legs' (exchange/composite.h, docs/aggregation.md): their
// JSON read, values found in it for other legs' paths, the composed document, and the caching
// headers the legs allow it. Pure functions, for the composite and its tests; Boost.JSON's header
// stays out of the exchange's.
#pragma once

#include <boost/json/value.hpp>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"

namespace gatehouse::exchange {

// What a leg's path template is filled with (exchange/composite.h's CompositeRequest, and the
// answers of the legs it reads).
struct TemplateValues {
  std::span<const std::pair<std::string, std::string>> captures;  // percent-decoded
  std::string_view query;                                         // as the client sent it
  std::span<const std::pair<std::string, std::string>> headers;   // names in lower case
  std::span<const boost::json::value> answers;                    // by leg index
};

// Why a template could not be filled.
enum class FillError { kNone, kDependencyValue, kDotSegment };

// `parts` filled into *out: each value percent-decoded where the client sent it encoded, then
// encoded as one URI component (RFC 3986 2.3: no '/', '?', '&' or '=' of its own). kDependency
// Value for a leg's value that is missing or not a scalar, kDotSegment for a value that would be
// a whole "." or ".." segment of the path (it would move the request elsewhere); *what: the
// offending reference or value.
FillError fill_template(std::span<const config::TemplatePart> parts, const TemplateValues& values,
                        std::string* out, std::string* what);

// A leg's answer nests at most this deep (objects and arrays); deeper is "not JSON" for it.
constexpr size_t kMaxAnswerDepth = 64;

// `text` parsed; false, with *why, when it is not one JSON value. A key given twice keeps its
// last value (what a dependent leg reads).
bool parse_answer(std::string_view text, boost::json::value* out, std::string* why);

// The value at a dotted path of `root` (object keys; array indexes as numbers), as the text a
// path takes: a string as it is, a number as JSON writes it (a big integer beyond 64 bits as a
// double), a bool as true or false. False for a path that leads nowhere, or to null, an object
// or an array.
bool scalar_at(const boost::json::value& root, std::string_view path, std::string* out);

// `answer` with only the `fields` (each a path of keys; all when none), then its top-level keys
// renamed; an
// array's objects one by one. False for an answer that is neither an object nor an array of
// them, when there is something to shape.
bool shape_answer(const boost::json::value& answer,
                  std::span<const std::vector<std::string>> fields,
                  std::span<const std::pair<std::string, std::string>> rename,
                  boost::json::value* out);

// One leg in the composed document.
struct LegResult {
  std::string_view name;
  bool ok = false;
  bool raw = false;       // its answer goes in as a JSON string
  std::string_view text;  // its answer, when ok
  int status = 0;         // when failed: why
  std::string_view error;
  std::string_view message;
  // Shaped (config::AggregateLeg): its answer written anew from `shaped`, its keys merged into
  // the document's, or placed `at` a dotted path.
  const boost::json::value* shaped = nullptr;
  bool merge = false;
  std::span<const std::string> at;
};

// {"LEG": answer, ..., "errors": {"LEG": {"status", "error", "message"}}}: an unshaped answer as
// it came (every digit of its numbers, its keys as written), null for a failed leg (a merged one
// adds nothing), `errors` only when one failed. Where two legs put the same key, the later
// leg's wins; paths that share a prefix share its objects.
std::string compose_document(const std::vector<LegResult>& legs);

// What a leg's answer said of its caching.
struct LegCaching {
  std::string_view cache_control;  // its Cache-Control, the lines joined
  std::string_view etag;
};

// The composite's Cache-Control: no more permissive than the most restrictive leg's (RFC 9111
// 5.2.2): no-store if any leg's is, or if a leg failed (a partial answer is not kept); else
// max-age the smallest of the legs' (none given: 0), private if any is, no-cache and
// must-revalidate if any has them.
std::string merged_cache_control(const std::vector<LegCaching>& legs, bool partial);
// A weak ETag (RFC 9110 8.8.3) made of every leg's, in order: the same legs' validators give the
// same tag. Empty when a leg has none, or failed.
std::string merged_etag(const std::vector<LegCaching>& legs, bool partial);

}  // namespace gatehouse::exchange
