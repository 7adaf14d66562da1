// Verification keys: HMAC secrets, PEM public keys and certificates, JWKs (RFC 7517, 7518 section
// 6, RFC 8037) and JWKS documents, each checked when it is read (RSA size and exponent, ROCA,
// points on their curve, "use" and "alg") so that a weak or mistyped key is refused at load.
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <boost/json/array.hpp>
#include <climits>
#include <exception>
#include <utility>

#include "jwt/internal.h"

namespace gatehouse::jwt {
namespace {

namespace json = boost::json;

std::shared_ptr<const Key> refuse(std::string* error, std::string why) {
  if (error) *error = std::move(why);
  ERR_clear_error();  // leave no stale OpenSSL errors for whoever uses this thread next
  return nullptr;
}

// ROCA (CVE-2017-15361): moduli from the vulnerable Infineon generator are congruent, modulo
// every small prime p up to 167, to a power of 65537; a random modulus passes all 38 primes with
// negligible probability. Such keys can be factored, so a signature proves nothing.
bool has_roca_fingerprint(const BIGNUM* n) {
  for (unsigned p = 3; p <= 167; p += 2) {
    bool prime = true;
    for (unsigned d = 3; d * d <= p; d += 2) prime = prime && p % d != 0;
    if (!prime) continue;
    BN_ULONG r = BN_mod_word(n, p);
    if (r == static_cast<BN_ULONG>(-1)) return false;
    unsigned g = 65537 % p, x = 1;
    bool in_subgroup = false;
    do {
      x = x * g % p;
      in_subgroup = x == r;
    } while (!in_subgroup && x != 1);
    if (!in_subgroup) return false;
  }
  return true;
}

// Rules for any RSA public key, from a JWK or PEM. RFC 7518 section 3.3: at least 2048 bits.
// The exponent must be odd and at least 3 (e = 1 makes every padded message its own signature).
bool rsa_key_ok(const EVP_PKEY* pkey, std::string* error) {
  BIGNUM* n_raw = nullptr;
  BIGNUM* e_raw = nullptr;
  bool got = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n_raw) == 1 &&
             EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e_raw) == 1;
  BnPtr n(n_raw), e(e_raw);
  if (!got) {
    *error = "RSA key without a readable modulus and exponent";
    return false;
  }
  int bits = BN_num_bits(n.get());
  if (bits < 2048) {
    *error = "RSA key of " + std::to_string(bits) + " bits (at least 2048 required)";
    return false;
  }
  if (bits > OPENSSL_RSA_MAX_MODULUS_BITS) {
    *error = "RSA key of " + std::to_string(bits) + " bits (too large to verify with)";
    return false;
  }
  if (!BN_is_odd(n.get())) {
    *error = "RSA modulus is even";
    return false;
  }
  if (!BN_is_odd(e.get()) || BN_is_one(e.get()) || BN_cmp(e.get(), n.get()) >= 0) {
    *error = "RSA public exponent is not an odd number between 3 and the modulus";
    return false;
  }
  if (has_roca_fingerprint(n.get())) {
    *error = "RSA modulus has the ROCA fingerprint (CVE-2017-15361): the key is factorable";
    return false;
  }
  return true;
}

bool ec_point_ok(EVP_PKEY* pkey) {
  // Full public-key validation: on the curve, not the point at infinity, of the group's order.
  // An off-curve point invites invalid-curve attacks.
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  return ctx && EVP_PKEY_public_check(ctx.get()) == 1;
}

PkeyPtr rsa_from_jwk(std::string_view n, std::string_view e) {
  BnPtr bn_n(BN_bin2bn(bytes(n), static_cast<int>(n.size()), nullptr));
  BnPtr bn_e(BN_bin2bn(bytes(e), static_cast<int>(e.size()), nullptr));
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !bld ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    return nullptr;
  }
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return nullptr;
  }
  return PkeyPtr(pkey);
}

PkeyPtr ec_from_jwk(const char* group, std::string_view x, std::string_view y) {
  // SEC 1 uncompressed point: 0x04 || X || Y.
  std::string point;
  point.reserve(1 + x.size() + y.size());
  point.push_back('\x04');
  point.append(x);
  point.append(y);
  std::array<OSSL_PARAM, 3> params{
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(group), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
      OSSL_PARAM_construct_end()};
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.data()) != 1) {
    return nullptr;
  }
  return PkeyPtr(pkey);
}

// A JWK member that must be a base64url string; nullopt (with *error set) otherwise.
std::optional<std::string> jwk_bytes(const json::object& jwk, std::string_view name,
                                     std::string* error) {
  const json::value* v = jwk.if_contains(name);
  if (!v || !v->is_string()) {
    *error = "member \"" + std::string(name) + "\" missing or not a string";
    return std::nullopt;
  }
  auto decoded = base64url_decode(std::string_view(v->get_string()));
  if (!decoded) *error = "member \"" + std::string(name) + "\" is not base64url";
  return decoded;
}

}  // namespace

Key::Key(std::unique_ptr<Impl> impl, std::string kid)
    : impl_(std::move(impl)), kid_(std::move(kid)) {}

Key::~Key() = default;  // frees the EVP_PKEY and wipes an HMAC secret (Impl)

std::shared_ptr<const Key> Key::hmac(std::string secret, std::string kid, std::optional<Alg> alg,
                                     std::string* error) {
  if (alg && family(*alg) != Family::kHmac) {
    return refuse(error, "alg " + std::string(alg_name(*alg)) + " is not an HMAC algorithm");
  }
  // RFC 7518 section 3.2: the key must be at least as long as the hash output.
  size_t need = alg ? hash_bytes(*alg) : 32;
  if (secret.size() < need) {
    OPENSSL_cleanse(secret.data(), secret.size());
    return refuse(error, "HMAC secret of " + std::to_string(secret.size()) + " bytes (at least " +
                             std::to_string(need) + " required)");
  }
  auto impl = std::make_unique<Impl>();
  impl->type = KeyType::kOct;
  impl->alg = alg;
  impl->secret = std::move(secret);
  return std::shared_ptr<const Key>(new Key(std::move(impl), std::move(kid)));
}

std::shared_ptr<const Key> Key::from_pem(std::string_view pem, std::string kid,
                                         std::string* error) {
  std::string ignored;
  if (!error) error = &ignored;
  if (pem.size() > INT_MAX) return refuse(error, "PEM too large");
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return refuse(error, "out of memory");
  PkeyPtr pkey;
  if (pem.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos) {
    // The certificate only carries the key: its validity dates and chain are the business of
    // whoever configured it, not of token verification.
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) return refuse(error, "not a PEM certificate");
    pkey.reset(X509_get_pubkey(cert.get()));
    if (!pkey) return refuse(error, "certificate public key unreadable");
  } else {
    pkey.reset(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    if (!pkey) return refuse(error, "not a PEM public key (SubjectPublicKeyInfo) or certificate");
  }
  auto impl = std::make_unique<Impl>();
  if (EVP_PKEY_is_a(pkey.get(), "RSA")) {
    if (!rsa_key_ok(pkey.get(), error)) return refuse(error, *error);
    impl->type = KeyType::kRsa;
  } else if (EVP_PKEY_is_a(pkey.get(), "EC")) {
    char group[64] = {};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &len) != 1) {
      return refuse(error, "EC key without a named curve");
    }
    std::string_view name(group, len);
    if (name == "prime256v1" || name == "P-256") {
      impl->type = KeyType::kP256;
    } else if (name == "secp384r1" || name == "P-384") {
      impl->type = KeyType::kP384;
    } else {
      return refuse(error, "unsupported EC curve " + std::string(name));
    }
    if (!ec_point_ok(pkey.get())) return refuse(error, "EC public key fails validation");
  } else if (EVP_PKEY_is_a(pkey.get(), "ED25519")) {
    impl->type = KeyType::kEd25519;
  } else {
    return refuse(error, "unsupported key type (RSA, EC P-256/P-384 or Ed25519 only)");
  }
  impl->pkey = std::move(pkey);
  ERR_clear_error();  // decoders may leave errors from the formats they tried first
  return std::shared_ptr<const Key>(new Key(std::move(impl), std::move(kid)));
}

std::shared_ptr<const Key> Key::from_jwk(const json::object& jwk, std::string* error) {
  std::string ignored;
  if (!error) error = &ignored;
  const json::value* kty_v = jwk.if_contains("kty");
  if (!kty_v || !kty_v->is_string()) return refuse(error, "no \"kty\"");
  std::string_view kty = kty_v->get_string();

  // RFC 7517 section 4.2: "use" is "sig" or "enc"; an encryption key must not verify.
  if (const json::value* use = jwk.if_contains("use")) {
    if (!use->is_string() || use->get_string() != "sig") {
      return refuse(error, "\"use\" is not \"sig\"");
    }
  }
  // RFC 7517 section 4.3: "key_ops" lists what the key is for; without "verify" it is not ours.
  if (const json::value* ops = jwk.if_contains("key_ops")) {
    const json::array* a = ops->if_array();
    bool verify = a && std::any_of(a->begin(), a->end(), [](const json::value& op) {
                    return op.is_string() && op.get_string() == "verify";
                  });
    if (!verify) return refuse(error, "\"key_ops\" does not include \"verify\"");
  }
  std::string kid;
  if (const json::value* k = jwk.if_contains("kid")) {
    if (!k->is_string()) return refuse(error, "\"kid\" is not a string");
    kid = std::string(k->get_string());
  }
  // RFC 7517 section 4.4: "alg" names the one algorithm the key is for. An algorithm we do not
  // implement (ES512, RSA-OAEP, A256GCM, ...) means the key is not usable here at all.
  std::optional<Alg> alg;
  if (const json::value* a = jwk.if_contains("alg")) {
    if (!a->is_string()) return refuse(error, "\"alg\" is not a string");
    alg = alg_from_name(a->get_string());
    if (!alg) return refuse(error, "unsupported \"alg\" " + quoted(a->get_string()));
  }

  std::shared_ptr<const Key> key;
  auto impl = std::make_unique<Impl>();
  impl->alg = alg;
  if (kty == "oct") {
    auto k = jwk_bytes(jwk, "k", error);
    if (!k) return refuse(error, *error);
    key = hmac(std::move(*k), std::move(kid), alg, error);
    if (!key) return nullptr;
  } else if (kty == "RSA") {
    // Only the public members (RFC 7518 section 6.3.1); "d", "p", ... are ignored.
    auto n = jwk_bytes(jwk, "n", error);
    if (!n) return refuse(error, *error);
    auto e = jwk_bytes(jwk, "e", error);
    if (!e) return refuse(error, *error);
    if (e->empty() || n->empty()) return refuse(error, "empty RSA modulus or exponent");
    if (n->size() > OPENSSL_RSA_MAX_MODULUS_BITS / 8 + 1 || e->size() > n->size()) {
      return refuse(error, "RSA modulus or exponent too large");
    }
    impl->pkey = rsa_from_jwk(*n, *e);
    if (!impl->pkey) return refuse(error, "RSA key rejected by OpenSSL");
    if (!rsa_key_ok(impl->pkey.get(), error)) return refuse(error, *error);
    impl->type = KeyType::kRsa;
  } else if (kty == "EC") {
    std::string_view crv = string_member(jwk, "crv");
    const char* group = nullptr;
    size_t size = 0;
    if (crv == "P-256") {
      group = "prime256v1";
      size = 32;
      impl->type = KeyType::kP256;
    } else if (crv == "P-384") {
      group = "secp384r1";
      size = 48;
      impl->type = KeyType::kP384;
    } else {
      return refuse(error, "unsupported EC curve " + quoted(crv));
    }
    auto x = jwk_bytes(jwk, "x", error);
    if (!x) return refuse(error, *error);
    auto y = jwk_bytes(jwk, "y", error);
    if (!y) return refuse(error, *error);
    // RFC 7518 section 6.2.1.2/6.2.1.3: each coordinate is exactly the field size in octets.
    if (x->size() != size || y->size() != size) {
      return refuse(error, "EC coordinates are not " + std::to_string(size) + " bytes");
    }
    impl->pkey = ec_from_jwk(group, *x, *y);
    if (!impl->pkey || !ec_point_ok(impl->pkey.get())) {
      return refuse(error, "EC point is not on curve " + quoted(crv));
    }
  } else if (kty == "OKP") {
    // RFC 8037 section 2: Ed25519 public key "x" is 32 bytes. Ed448 and X25519/X448 are not
    // supported (the last two are key agreement, not signature, curves anyway).
    std::string_view crv = string_member(jwk, "crv");
    if (crv != "Ed25519") {
      return refuse(error, "unsupported OKP curve " + quoted(crv));
    }
    auto x = jwk_bytes(jwk, "x", error);
    if (!x) return refuse(error, *error);
    if (x->size() != 32) return refuse(error, "Ed25519 key is not 32 bytes");
    impl->pkey.reset(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes(*x), x->size()));
    if (!impl->pkey) return refuse(error, "Ed25519 key rejected by OpenSSL");
    impl->type = KeyType::kEd25519;
  } else {
    return refuse(error, "unsupported \"kty\" " + quoted(kty));
  }
  if (!key) key = std::shared_ptr<const Key>(new Key(std::move(impl), std::move(kid)));
  // A key whose own "alg" does not fit its type (RS256 on an EC key, ES384 on P-256) could
  // never verify anything: say so now rather than fail every token later.
  if (alg && !key->accepts(*alg)) {
    return refuse(error, "\"alg\" " + std::string(alg_name(*alg)) + " does not fit this key");
  }
  ERR_clear_error();
  return key;
}

bool Key::accepts(Alg alg) const {
  if (impl_->alg && *impl_->alg != alg) return false;
  switch (family(alg)) {
    case Family::kHmac:
      return impl_->type == KeyType::kOct && impl_->secret.size() >= hash_bytes(alg);
    case Family::kRsaPkcs1:
    case Family::kRsaPss:
      return impl_->type == KeyType::kRsa;
    case Family::kEcdsa:
      return impl_->type == (alg == Alg::kES256 ? KeyType::kP256 : KeyType::kP384);
    case Family::kEdDsa:
      return impl_->type == KeyType::kEd25519;
  }
  return false;
}

std::optional<KeySet> parse_jwks(std::string_view text, std::string* error,
                                 std::vector<std::string>* skipped) {
  std::string ignored;
  if (!error) error = &ignored;
  try {
    std::optional<json::value> doc = parse_strict(text);
    if (!doc) {
      *error = "JWKS is not valid JSON (or repeats a member name)";
      return std::nullopt;
    }
    const json::object* root = doc->if_object();
    if (!root) {
      *error = "JWKS is not a JSON object";
      return std::nullopt;
    }
    const json::value* keys = root->if_contains("keys");
    if (!keys || !keys->is_array()) {
      *error = "JWKS has no \"keys\" array";
      return std::nullopt;
    }
    KeySet set;
    const json::array& list = keys->get_array();
    for (size_t i = 0; i < list.size(); ++i) {
      std::string where = "keys[" + std::to_string(i) + "]";
      const json::object* jwk = list[i].if_object();
      std::string why;
      std::shared_ptr<const Key> key = jwk ? Key::from_jwk(*jwk, &why) : nullptr;
      if (!jwk) why = "not a JSON object";
      if (key) {
        set.keys.push_back(std::move(key));
        continue;
      }
      if (jwk) {
        if (std::string_view kid = string_member(*jwk, "kid"); !kid.empty()) {
          where += " (kid " + quoted(kid) + ")";
        }
      }
      if (skipped) skipped->push_back(where + ": " + why);
    }
    return set;
  } catch (const std::exception& e) {
    *error = std::string("JWKS unreadable: ") + e.what();
    return std::nullopt;
  }
}

}  // namespace gatehouse::jwt
