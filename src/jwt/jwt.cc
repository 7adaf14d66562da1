// JWS compact serialisation (RFC 7515) and JWT (RFC 7519) verification with keys from JWK / JWKS
// (RFC 7517, 7518, 8037) or PEM, on OpenSSL 3 (non-deprecated EVP APIs only) and Boost.JSON.
// See jwt.h for the contract; the comments here say why each rule is the way it is.
// The token itself is read here (shape, header, the key that signed it, claims); the other parts
// have a file each (encoding.cc, keys.cc, signature.cc; internal.h is what they share).
#include "jwt/jwt.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <exception>

#include "jwt/internal.h"

namespace gatehouse::jwt {
namespace {

namespace json = boost::json;

}  // namespace

std::string_view failure_name(Failure f) {
  switch (f) {
    case Failure::kMalformed:
      return "malformed";
    case Failure::kTooLarge:
      return "too_large";
    case Failure::kAlgorithm:
      return "algorithm";
    case Failure::kCritical:
      return "critical";
    case Failure::kUnknownKey:
      return "unknown_key";
    case Failure::kSignature:
      return "signature";
    case Failure::kExpired:
      return "expired";
    case Failure::kNotYetValid:
      return "not_yet_valid";
    case Failure::kIssuer:
      return "issuer";
    case Failure::kAudience:
      return "audience";
    case Failure::kMissingClaim:
      return "missing_claim";
    case Failure::kScope:
      return "scope";
  }
  return "unknown";
}

namespace {

// RFC 7519 section 2: a NumericDate is a JSON number of seconds, possibly non-integer. Doubles
// hold every integer below 2^53 exactly, so comparisons at today's times are exact.
struct NumericDate {
  bool present = false;
  bool number = false;
  double value = 0;
};

NumericDate numeric_date(const json::object& claims, std::string_view name) {
  const json::value* v = claims.if_contains(name);
  if (!v) return {};
  switch (v->kind()) {
    case json::kind::int64:
      return {true, true, static_cast<double>(v->get_int64())};
    case json::kind::uint64:
      return {true, true, static_cast<double>(v->get_uint64())};
    case json::kind::double_:
      return {true, true, v->get_double()};
    default:
      return {true, false, 0};
  }
}

bool has_word(std::string_view list, std::string_view word) {
  while (!list.empty()) {
    size_t space = list.find(' ');
    if (list.substr(0, space) == word) return true;
    if (space == std::string_view::npos) break;
    list.remove_prefix(space + 1);
  }
  return false;
}

// RFC 8693 section 4.2 "scope": space-separated. "scp" (common in Azure AD and Okta tokens):
// an array of strings, or a space-separated string.
bool has_scope(const json::object& claims, std::string_view want) {
  if (const json::value* scope = claims.if_contains("scope"); scope && scope->is_string()) {
    if (has_word(scope->get_string(), want)) return true;
  }
  if (const json::value* scp = claims.if_contains("scp")) {
    if (scp->is_string()) return has_word(scp->get_string(), want);
    if (const json::array* a = scp->if_array()) {
      return std::any_of(a->begin(), a->end(), [&](const json::value& e) {
        return e.is_string() && e.get_string() == want;
      });
    }
  }
  return false;
}

std::optional<Failure> check_claims(const json::object& claims, const Rules& rules, int64_t now) {
  const double earliest = static_cast<double>(now) - static_cast<double>(rules.leeway.count());
  const double latest = static_cast<double>(now) + static_cast<double>(rules.leeway.count());
  // RFC 7519 section 4.1.4: the token must not be accepted on or after "exp".
  NumericDate exp = numeric_date(claims, "exp");
  NumericDate nbf = numeric_date(claims, "nbf");
  NumericDate iat = numeric_date(claims, "iat");
  for (const NumericDate* d : {&exp, &nbf, &iat}) {
    if (d->present && !d->number) return Failure::kMalformed;
  }
  if (exp.present && exp.value <= earliest) return Failure::kExpired;
  // RFC 7519 section 4.1.5: not before "nbf". An "iat" in the future (beyond the leeway) means
  // a wrong clock or a forged token; RFC 7519 leaves it to the application, we refuse.
  if (nbf.present && nbf.value > latest) return Failure::kNotYetValid;
  if (iat.present && iat.value > latest) return Failure::kNotYetValid;

  // RFC 7519 section 4.1.1: "iss" is a case-sensitive string, compared exactly.
  if (!rules.issuer.empty()) {
    const json::value* iss = claims.if_contains("iss");
    if (!iss || !iss->is_string() || iss->get_string() != rules.issuer) return Failure::kIssuer;
  }
  // RFC 7519 section 4.1.3: "aud" is one string or an array of strings; we must be among them.
  if (!rules.audiences.empty()) {
    const json::value* aud = claims.if_contains("aud");
    auto ours = [&](const json::value& v) {
      return v.is_string() && std::find(rules.audiences.begin(), rules.audiences.end(),
                                        std::string_view(v.get_string())) != rules.audiences.end();
    };
    bool found = false;
    if (aud && aud->is_string()) {
      found = ours(*aud);
    } else if (aud && aud->is_array()) {
      found = std::any_of(aud->get_array().begin(), aud->get_array().end(), ours);
    }
    if (!found) return Failure::kAudience;
  }
  for (const std::string& name : rules.required_claims) {
    const json::value* v = claims.if_contains(name);
    if (!v || v->is_null()) return Failure::kMissingClaim;
  }
  for (const std::string& scope : rules.required_scopes) {
    if (!has_scope(claims, scope)) return Failure::kScope;
  }
  return std::nullopt;
}

std::optional<Failure> verify_token(std::string_view token, const KeySet& keys, const Rules& rules,
                                    int64_t now, Verified* out) {
  // Cheapest refusals first, before any allocation: size, then shape (RFC 7515 section 7.1:
  // exactly three base64url parts; a JWE has five, the JSON serialisations are not compact).
  if (token.size() > rules.max_token_bytes) return Failure::kTooLarge;
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Failure::kMalformed;
  }
  std::string_view header_b64 = token.substr(0, dot1);
  std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string_view signature_b64 = token.substr(dot2 + 1);
  if (!base64url_valid(header_b64) || !base64url_valid(payload_b64) ||
      !base64url_valid(signature_b64)) {
    return Failure::kMalformed;
  }

  // Header (RFC 7515 section 5.2 steps 2-5).
  std::optional<std::string> header_text = base64url_decode(header_b64);
  std::optional<json::value> header_v = header_text ? parse_strict(*header_text) : std::nullopt;
  const json::object* header = header_v ? header_v->if_object() : nullptr;
  if (!header) return Failure::kMalformed;
  const json::value* alg_v = header->if_contains("alg");
  if (!alg_v || !alg_v->is_string()) return Failure::kAlgorithm;
  // "none" (RFC 7518 section 3.6) is never in the table, so it can never be allowed.
  std::optional<Alg> alg = alg_from_name(alg_v->get_string());
  if (!alg ||
      std::find(rules.algorithms.begin(), rules.algorithms.end(), *alg) == rules.algorithms.end()) {
    return Failure::kAlgorithm;
  }
  // RFC 7515 section 4.1.11: we understand no extension, so any "crit" must be refused ("b64":
  // false of RFC 7797 arrives this way and would change what the signature covers).
  if (header->contains("crit")) return Failure::kCritical;
  std::optional<std::string_view> kid;
  if (const json::value* k = header->if_contains("kid")) {
    if (!k->is_string()) return Failure::kMalformed;
    kid = std::string_view(k->get_string());
  }
  // Keys come only from our key set, never from the token ("jwk", "jku", "x5c", "x5u" are
  // ignored): a key the token brings proves nothing about who signed it.

  // Signature over the ASCII "header.payload" exactly as received (RFC 7515 section 5.2 step 8).
  std::optional<std::string> signature = base64url_decode(signature_b64);
  if (!signature) return Failure::kMalformed;
  std::string_view signing_input = token.substr(0, dot2);
  bool kid_known = false;
  bool any_candidate = false;
  const Key* signer = nullptr;
  for (const auto& key : keys.keys) {
    if (!key || (kid && key->kid() != *kid)) continue;
    kid_known = true;
    // Algorithm confusion: a key only ever verifies the family and curve it was made for, so
    // an "HS256" token cannot be checked with an RSA public key's bytes as the HMAC secret.
    if (!key->accepts(*alg)) continue;
    any_candidate = true;
    if (key->verify(*alg, signing_input, *signature)) {
      signer = key.get();
      break;
    }
  }
  if (!signer) {
    // An unknown kid tells the caller its key set may be stale (key rotation); a known kid
    // whose keys all fail is a bad signature.
    if (kid ? !kid_known : !any_candidate) return Failure::kUnknownKey;
    return Failure::kSignature;
  }

  // Claims (RFC 7519 section 7.2 steps 9-10), only now that the signature is good.
  std::optional<std::string> payload_text = base64url_decode(payload_b64);
  std::optional<json::value> payload = payload_text ? parse_strict(*payload_text) : std::nullopt;
  if (!payload || !payload->is_object()) return Failure::kMalformed;
  if (auto failure = check_claims(payload->get_object(), rules, now)) return failure;

  if (out) {
    out->alg = *alg;
    out->kid = signer->kid();  // the token's kid when it has one
    out->claims = std::move(payload->get_object());
  }
  return std::nullopt;
}

}  // namespace

std::optional<Failure> verify(std::string_view token, const KeySet& keys, const Rules& rules,
                              int64_t now, Verified* out) {
  try {
    return verify_token(token, keys, rules, now, out);
  } catch (const std::exception&) {
    // Only allocation failures can get here (the JSON parser reports errors by code).
    return Failure::kMalformed;
  }
}

std::string claim_text(const json::object& claims, std::string_view name) {
  const json::value* v = claims.if_contains(name);
  if (!v) return {};
  switch (v->kind()) {
    case json::kind::string:
      return std::string(v->get_string());
    case json::kind::array: {
      std::string text;
      bool first = true;
      for (const json::value& e : v->get_array()) {
        if (!e.is_string()) return {};
        if (!first) text.push_back(' ');
        text.append(e.get_string());
        first = false;
      }
      return text;
    }
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
    case json::kind::bool_:
      return json::serialize(*v);
    case json::kind::null:
    case json::kind::object:
      return {};
  }
  return {};
}

}  // namespace gatehouse::jwt
