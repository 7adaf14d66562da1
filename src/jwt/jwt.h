// JSON Web Tokens (RFC 7519) in the JWS compact serialisation (RFC 7515), verified with keys from
// JWK / JWKS documents (RFC 7517, 7518, 8037) or PEM. Pure logic on OpenSSL 3 and Boost.JSON:
// no I/O, no clocks (the caller passes "now"), thread-safe once built (keys are immutable).
//
// Verification order, cheapest refusal first, so that a bad token costs little: size, shape
// (three base64url parts, strict alphabet, no padding), header (a JSON object, a known "alg" that
// the rules allow, never "none", no "crit" member we do not understand), key (by "kid"; an HMAC
// algorithm never verifies against an RSA/EC/OKP key: algorithm confusion), signature, claims.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::jwt {

enum class Alg : uint8_t {
  kHS256,
  kHS384,
  kHS512,
  kRS256,
  kRS384,
  kRS512,
  kPS256,
  kPS384,
  kPS512,
  kES256,
  kES384,
  kEdDSA,  // Ed25519 only (RFC 8037)
};

// "HS256" -> kHS256 ...; "none" and anything unknown -> nullopt.
std::optional<Alg> alg_from_name(std::string_view name);
std::string_view alg_name(Alg alg);

// A verification key: an HMAC secret, or a public key (RSA >= 2048 bits, EC P-256/P-384,
// Ed25519). Immutable; shared between threads.
class Key {
 public:
  ~Key();
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;

  // An HMAC secret (raw bytes; at least 32 bytes). `alg` restricts it to one HS algorithm.
  static std::shared_ptr<const Key> hmac(std::string secret, std::string kid,
                                         std::optional<Alg> alg, std::string* error);
  // A PEM public key (SubjectPublicKeyInfo) or certificate.
  static std::shared_ptr<const Key> from_pem(std::string_view pem, std::string kid,
                                             std::string* error);
  // One JWK (a JSON object): kty RSA (n, e), EC (crv, x, y), OKP (crv Ed25519, x), oct (k).
  // Honours "alg" (the key verifies only that algorithm) and "use" (must be "sig" if present).
  static std::shared_ptr<const Key> from_jwk(const boost::json::object& jwk, std::string* error);

  const std::string& kid() const { return kid_; }
  // True when this key may verify a token signed with `alg`: the algorithm family and curve
  // match the key type (HS* only with oct keys, RS*/PS* only with RSA, ES256 only with P-256,
  // ES384 only with P-384, EdDSA only with Ed25519) and the JWK's own "alg", if any, is `alg`.
  bool accepts(Alg alg) const;
  // Checks `signature` (already base64url-decoded; for ES*, the JWS R||S form) over
  // `signing_input`. False when !accepts(alg).
  bool verify(Alg alg, std::string_view signing_input, std::string_view signature) const;

 private:
  struct Impl;
  explicit Key(std::unique_ptr<Impl> impl, std::string kid);
  std::unique_ptr<Impl> impl_;
  std::string kid_;
};

struct KeySet {
  std::vector<std::shared_ptr<const Key>> keys;
};

// Parses a JWKS document ({"keys": [...]}). A key that cannot be used (unknown kty or curve, RSA
// under 2048 bits, "use" other than "sig", a point not on its curve) is left out and described
// in *skipped; a document that is not a JSON object with a "keys" array is an error (nullopt).
std::optional<KeySet> parse_jwks(std::string_view json, std::string* error,
                                 std::vector<std::string>* skipped = nullptr);

struct Rules {
  std::vector<Alg> algorithms;         // accepted; never empty in practice
  std::string issuer;                  // empty: "iss" not checked
  std::vector<std::string> audiences;  // empty: "aud" not checked; else one must be in "aud"
  std::chrono::seconds leeway{0};      // for exp, nbf, iat
  std::vector<std::string> required_claims;
  std::vector<std::string> required_scopes;  // all must be in "scope" (space-separated string)
                                             // or "scp" (array of strings, or a string)
  size_t max_token_bytes = 8192;
};

enum class Failure : uint8_t {
  kMalformed,  // shape, base64url, JSON, or a header/claims that is not an object
  kTooLarge,
  kAlgorithm,    // "none", unknown, or not in rules.algorithms
  kCritical,     // a "crit" header parameter
  kUnknownKey,   // no key with the token's kid (the caller may refresh its key set)
  kSignature,    // no key accepted the signature
  kExpired,      // exp <= now - leeway
  kNotYetValid,  // nbf > now + leeway, or iat > now + leeway
  kIssuer,
  kAudience,
  kMissingClaim,
  kScope,
};
std::string_view failure_name(Failure f);

struct Verified {
  Alg alg{};
  std::string kid;
  boost::json::object claims;
};

// Verifies a compact JWS token completely (see the top of this file). `now` is Unix seconds.
// On success fills *out and returns nullopt; otherwise returns why it failed.
std::optional<Failure> verify(std::string_view token, const KeySet& keys, const Rules& rules,
                              int64_t now, Verified* out);

// A claim as text for a header: a string as is, an array of strings joined by single spaces, a
// number or boolean in JSON form; empty when absent, null, an object, or an array with
// non-strings.
std::string claim_text(const boost::json::object& claims, std::string_view name);

// base64url (RFC 4648 section 5) without padding, strict: '=' or any character outside the
// alphabet, or a length of 1 mod 4, is refused. Exposed for tests and for JWK members.
std::optional<std::string> base64url_decode(std::string_view in);

}  // namespace gatehouse::jwt
