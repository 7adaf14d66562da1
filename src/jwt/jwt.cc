// JWS compact serialisation (RFC 7515) and JWT (RFC 7519) verification with keys from JWK / JWKS
// (RFC 7517, 7518, 8037) or PEM, on OpenSSL 3 (non-deprecated EVP APIs only) and Boost.JSON.
// See jwt.h for the contract; the comments here say why each rule is the way it is.
#include "jwt/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <boost/json/array.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_stack.hpp>
#include <climits>
#include <exception>
#include <utility>

namespace gatehouse::jwt {
namespace {

namespace json = boost::json;

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

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// ---------------------------------------------------------------------------------------------
// Algorithms (RFC 7518 section 3.1, RFC 8037 section 3.1).

constexpr std::array<std::pair<Alg, std::string_view>, 12> kAlgNames{{
    {Alg::kHS256, "HS256"},
    {Alg::kHS384, "HS384"},
    {Alg::kHS512, "HS512"},
    {Alg::kRS256, "RS256"},
    {Alg::kRS384, "RS384"},
    {Alg::kRS512, "RS512"},
    {Alg::kPS256, "PS256"},
    {Alg::kPS384, "PS384"},
    {Alg::kPS512, "PS512"},
    {Alg::kES256, "ES256"},
    {Alg::kES384, "ES384"},
    {Alg::kEdDSA, "EdDSA"},
}};

enum class Family : uint8_t { kHmac, kRsaPkcs1, kRsaPss, kEcdsa, kEdDsa };

Family family(Alg alg) {
  switch (alg) {
    case Alg::kHS256:
    case Alg::kHS384:
    case Alg::kHS512:
      return Family::kHmac;
    case Alg::kRS256:
    case Alg::kRS384:
    case Alg::kRS512:
      return Family::kRsaPkcs1;
    case Alg::kPS256:
    case Alg::kPS384:
    case Alg::kPS512:
      return Family::kRsaPss;
    case Alg::kES256:
    case Alg::kES384:
      return Family::kEcdsa;
    case Alg::kEdDSA:
      return Family::kEdDsa;
  }
  return Family::kEdDsa;
}

// The SHA-2 digest of an algorithm; nullptr for EdDSA, which hashes internally (RFC 8032).
const EVP_MD* digest(Alg alg) {
  switch (alg) {
    case Alg::kHS256:
    case Alg::kRS256:
    case Alg::kPS256:
    case Alg::kES256:
      return EVP_sha256();
    case Alg::kHS384:
    case Alg::kRS384:
    case Alg::kPS384:
    case Alg::kES384:
      return EVP_sha384();
    case Alg::kHS512:
    case Alg::kRS512:
    case Alg::kPS512:
      return EVP_sha512();
    case Alg::kEdDSA:
      return nullptr;
  }
  return nullptr;
}

size_t hash_bytes(Alg alg) {
  const EVP_MD* md = digest(alg);
  return md ? static_cast<size_t>(EVP_MD_get_size(md)) : 0;
}

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

// ---------------------------------------------------------------------------------------------
// Keys.

enum class KeyType : uint8_t { kOct, kRsa, kP256, kP384, kEd25519 };

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

}  // namespace

// ---------------------------------------------------------------------------------------------

std::optional<Alg> alg_from_name(std::string_view name) {
  // Names are case-sensitive (RFC 7515 section 4.1.1), so "NONE" or "hs256" are unknown too.
  for (const auto& [alg, n] : kAlgNames) {
    if (n == name) return alg;
  }
  return std::nullopt;
}

std::string_view alg_name(Alg alg) {
  for (const auto& [a, n] : kAlgNames) {
    if (a == alg) return n;
  }
  return "?";
}

struct Key::Impl {
  KeyType type = KeyType::kOct;
  std::optional<Alg> alg;  // the JWK's own "alg": then the only algorithm this key verifies
  std::string secret;      // kOct
  PkeyPtr pkey;            // everything else

  ~Impl() { OPENSSL_cleanse(secret.data(), secret.size()); }
};

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

namespace {

bool verify_hmac(const std::string& secret, Alg alg, std::string_view input,
                 std::string_view signature) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  if (!HMAC(digest(alg), secret.data(), static_cast<int>(secret.size()), bytes(input), input.size(),
            mac.data(), &len)) {
    return false;
  }
  // Constant time, so that the time taken does not reveal how much of a forged MAC was right.
  return signature.size() == len && CRYPTO_memcmp(mac.data(), signature.data(), len) == 0;
}

// RFC 7518 section 3.4: the JWS signature is R || S, each exactly the group order's size; OpenSSL
// wants the DER ECDSA-Sig-Value. Any other length is refused, never reinterpreted.
std::optional<std::string> ecdsa_der(std::string_view raw, size_t half) {
  if (raw.size() != 2 * half) return std::nullopt;
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(bytes(raw), static_cast<int>(half), nullptr);
  BIGNUM* s = BN_bin2bn(bytes(raw.substr(half)), static_cast<int>(half), nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return std::nullopt;
  std::string der(static_cast<size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &p) != len) return std::nullopt;
  return der;
}

bool verify_pkey(EVP_PKEY* pkey, Alg alg, std::string_view input, std::string_view signature) {
  std::optional<std::string> der;
  if (alg == Alg::kES256 || alg == Alg::kES384) {
    der = ecdsa_der(signature, alg == Alg::kES256 ? 32 : 48);
    if (!der) return false;
    signature = *der;
  } else if (alg == Alg::kEdDSA && signature.size() != 64) {
    return false;
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, digest(alg), nullptr, pkey) != 1) {
    return false;
  }
  if (family(alg) == Family::kRsaPkcs1) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0) return false;
  } else if (family(alg) == Family::kRsaPss) {
    // RFC 7518 section 3.5: MGF1 with the same hash, salt as long as the hash. Fixing the salt
    // length (rather than auto-detecting it) refuses signatures made with other parameters.
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, digest(alg)) <= 0) {
      return false;
    }
  }
  return EVP_DigestVerify(ctx.get(), bytes(signature), signature.size(), bytes(input),
                          input.size()) == 1;
}

}  // namespace

bool Key::verify(Alg alg, std::string_view signing_input, std::string_view signature) const {
  if (!accepts(alg)) return false;
  bool ok = impl_->type == KeyType::kOct
                ? verify_hmac(impl_->secret, alg, signing_input, signature)
                : verify_pkey(impl_->pkey.get(), alg, signing_input, signature);
  if (!ok) ERR_clear_error();  // a bad signature is an answer, not an error to leave queued
  return ok;
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
