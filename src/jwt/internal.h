// Private to src/jwt/: what the files of the JWT verifier share (encoding.cc: base64url and strict
// JSON; keys.cc: JWK, JWKS and PEM into keys; signature.cc: algorithms and JWS signatures; jwt.cc:
// the token and its claims). Brings OpenSSL, which stays out of jwt.h.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "jwt/jwt.h"

namespace gatehouse::jwt {

// ---------------------------------------------------------------------------------------------
// OpenSSL ownership.

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG_free>>;

inline const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// ---------------------------------------------------------------------------------------------
// Algorithms (signature.cc).

enum class Family : uint8_t { kHmac, kRsaPkcs1, kRsaPss, kEcdsa, kEdDsa };

Family family(Alg alg);
// The SHA-2 digest of an algorithm; nullptr for EdDSA, which hashes internally (RFC 8032).
const EVP_MD* digest(Alg alg);
size_t hash_bytes(Alg alg);

// ---------------------------------------------------------------------------------------------
// Encoding (encoding.cc).

// base64url without padding, strict (see base64url_decode in jwt.h); no decoding done.
bool base64url_valid(std::string_view in);
// Standard JSON only (RFC 8259: no comments, no trailing commas, valid UTF-8), no trailing data,
// no repeated member names. nullopt otherwise.
std::optional<boost::json::value> parse_strict(std::string_view text);
// The member `name` of `o` when it is a string; empty otherwise.
std::string_view string_member(const boost::json::object& o, std::string_view name);
// A string from a fetched document, for an error message that may end up in a log: quoted and
// escaped as JSON (no raw control characters), and cut short.
std::string quoted(std::string_view s);

// ---------------------------------------------------------------------------------------------
// Keys (keys.cc; verified in signature.cc).

enum class KeyType : uint8_t { kOct, kRsa, kP256, kP384, kEd25519 };

struct Key::Impl {
  KeyType type = KeyType::kOct;
  std::optional<Alg> alg;  // the JWK's own "alg": then the only algorithm this key verifies
  std::string secret;      // kOct
  PkeyPtr pkey;            // everything else

  ~Impl() { OPENSSL_cleanse(secret.data(), secret.size()); }
};

}  // namespace gatehouse::jwt
