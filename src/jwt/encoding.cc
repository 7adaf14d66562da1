// The encodings under a JWS: base64url, strict (RFC 4648 section 5, RFC 7515 section 2), and
// JSON read strictly (no repeated member names), with the small JSON helpers the key and token
// readers share.
#include <algorithm>
#include <array>
#include <boost/json/array.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value_stack.hpp>

#include "jwt/internal.h"

namespace gatehouse::jwt {
namespace {

namespace json = boost::json;

// ---------------------------------------------------------------------------------------------
// base64url (RFC 4648 section 5), strict.

constexpr std::array<int8_t, 256> kBase64UrlValues = [] {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  constexpr std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (size_t i = 0; i < alphabet.size(); ++i) {
    t[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
  }
  return t;
}();

int b64_value(char c) { return kBase64UrlValues[static_cast<unsigned char>(c)]; }

// ---------------------------------------------------------------------------------------------
// JSON: Boost.JSON 1.81 silently keeps one of several members with the same name, so the value
// is built through our own handler that counts member names; if the built value holds fewer
// members than the text had, a name was repeated. RFC 7515 section 4 and RFC 7519 section 4 let
// a parser either refuse such a header or claims set or keep the last duplicate; refusing means
// we can never disagree with another component's parser about which "alg" or "sub" counts.

class StrictJsonHandler {
 public:
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) { return true; }
  bool on_object_end(std::size_t n, json::error_code&) {
    stack_.push_object(n);
    return true;
  }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t n, json::error_code&) {
    stack_.push_array(n);
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    stack_.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    stack_.push_key(s);
    ++keys_;
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    stack_.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    stack_.push_string(s);
    return true;
  }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
    stack_.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
    stack_.push_uint64(u);
    return true;
  }
  bool on_double(double d, json::string_view, json::error_code&) {
    stack_.push_double(d);
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    stack_.push_bool(b);
    return true;
  }
  bool on_null(json::error_code&) {
    stack_.push_null();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

  json::value_stack stack_;
  std::size_t keys_ = 0;
};

// Members in `v` and everything nested in it. Recursion is bounded by parse_options::max_depth.
std::size_t count_members(const json::value& v) {
  std::size_t n = 0;
  if (const json::object* o = v.if_object()) {
    n += o->size();
    for (const auto& kv : *o) n += count_members(kv.value());
  } else if (const json::array* a = v.if_array()) {
    for (const auto& e : *a) n += count_members(e);
  }
  return n;
}

}  // namespace

// RFC 7515 section 2 defines base64url without '=' padding; a length of 1 mod 4 cannot encode
// whole bytes. Non-zero unused bits in the last character are refused too (RFC 4648 section 3.5
// lets decoders do so): otherwise several strings decode to the same token, which would let a
// token be altered without breaking its signature (and defeat any cache keyed by token text).
bool base64url_valid(std::string_view in) {
  if (in.size() % 4 == 1) return false;
  for (char c : in) {
    if (b64_value(c) < 0) return false;
  }
  if (in.empty()) return true;
  int last = b64_value(in.back());
  if (in.size() % 4 == 2) return (last & 0x0F) == 0;
  if (in.size() % 4 == 3) return (last & 0x03) == 0;
  return true;
}

// Standard JSON only (RFC 8259: no comments, no trailing commas, valid UTF-8), no trailing data,
// no repeated member names. nullopt otherwise.
std::optional<json::value> parse_strict(std::string_view text) {
  json::basic_parser<StrictJsonHandler> parser(json::parse_options{});
  parser.handler().stack_.reset();
  json::error_code ec;
  std::size_t used = parser.write_some(false, text.data(), text.size(), ec);
  if (ec || used != text.size()) return std::nullopt;
  json::value v = parser.handler().stack_.release();
  if (count_members(v) != parser.handler().keys_) return std::nullopt;
  return v;
}

std::string_view string_member(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  return v && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

// A string from a fetched document, for an error message that may end up in a log: quoted and
// escaped as JSON (no raw control characters), and cut short.
std::string quoted(std::string_view s) {
  constexpr size_t kMax = 64;
  std::string text = json::serialize(json::string(s.substr(0, kMax)));
  if (s.size() > kMax) text += "...";
  return text;
}

std::optional<std::string> base64url_decode(std::string_view in) {
  if (!base64url_valid(in)) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    acc = (acc << 6) | static_cast<uint32_t>(b64_value(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

}  // namespace gatehouse::jwt
