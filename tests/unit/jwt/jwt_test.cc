// JWT verification against public vectors (tests/vectors) and freshly signed tokens. Written with
// src/jwt/jwt.cc. The vectors are read at test time from the repository's tests/vectors, whose
// path CMake passes as GATEHOUSE_VECTORS_DIR (override with the environment variable
// GATEHOUSE_VECTORS); a missing vector fails its test. Tokens for the claim rules are signed here
// with OpenSSL.
#include "jwt/jwt.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace gatehouse::jwt {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// Helpers.

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG_free>>;

const std::vector<Alg> kAllAlgs{Alg::kHS256, Alg::kHS384, Alg::kHS512, Alg::kRS256,
                                Alg::kRS384, Alg::kRS512, Alg::kPS256, Alg::kPS384,
                                Alg::kPS512, Alg::kES256, Alg::kES384, Alg::kEdDSA};

Rules all_algorithms() {
  Rules r;
  r.algorithms = kAllAlgs;
  return r;
}

#ifndef GATEHOUSE_VECTORS_DIR
#error "GATEHOUSE_VECTORS_DIR (the repository's tests/vectors) is set by tests/CMakeLists.txt"
#endif

std::string vectors_dir() {
  const char* env = std::getenv("GATEHOUSE_VECTORS");
  return env && *env ? env : GATEHOUSE_VECTORS_DIR;
}

json::value load_vector(const std::string& relative) {
  std::string path = vectors_dir() + "/" + relative;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot read test vector " << path;
    return nullptr;
  }
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str());
}

std::string b64url(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 0x3F]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 0x3F]);
  return out;
}

std::string str(const json::value& v) { return std::string(v.as_string()); }

const EVP_MD* md_of(Alg alg) {
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

bool is_hmac(Alg a) { return a == Alg::kHS256 || a == Alg::kHS384 || a == Alg::kHS512; }
bool is_pss(Alg a) { return a == Alg::kPS256 || a == Alg::kPS384 || a == Alg::kPS512; }

// What signs a test token: an HMAC secret or a private key.
struct Signer {
  std::string secret;
  EVP_PKEY* pkey = nullptr;
};

std::string sign(const Signer& s, Alg alg, std::string_view input) {
  if (is_hmac(alg)) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(md_of(alg), s.secret.data(), static_cast<int>(s.secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    return std::string(reinterpret_cast<char*>(mac), len);
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  EXPECT_EQ(EVP_DigestSignInit(ctx.get(), &pctx, md_of(alg), nullptr, s.pkey), 1);
  if (is_pss(alg)) {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md_of(alg));
  }
  auto in = reinterpret_cast<const unsigned char*>(input.data());
  size_t len = 0;
  EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len, in, input.size()), 1);
  std::string sig(len, '\0');
  EXPECT_EQ(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                           input.size()),
            1);
  sig.resize(len);
  if (alg == Alg::kES256 || alg == Alg::kES384) {
    // OpenSSL signs in DER; JWS wants fixed-size R || S (RFC 7518 section 3.4).
    int half = alg == Alg::kES256 ? 32 : 48;
    auto p = reinterpret_cast<const unsigned char*>(sig.data());
    EcdsaSigPtr der(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size())));
    std::string raw(2 * half, '\0');
    auto out = reinterpret_cast<unsigned char*>(raw.data());
    BN_bn2binpad(ECDSA_SIG_get0_r(der.get()), out, half);
    BN_bn2binpad(ECDSA_SIG_get0_s(der.get()), out + half, half);
    return raw;
  }
  return sig;
}

std::string header_for(Alg alg, std::string_view kid = {}) {
  json::object h;
  h["alg"] = alg_name(alg);
  if (!kid.empty()) h["kid"] = kid;
  return json::serialize(h);
}

// header and payload are JSON text (or anything, for malformed cases), signed as given.
std::string make_token(const Signer& s, Alg alg, std::string_view header,
                       std::string_view payload) {
  std::string input = b64url(header) + "." + b64url(payload);
  return input + "." + b64url(sign(s, alg, input));
}

// The signature check alone, as RFC 7515 section 5.2 describes it (no JWT claims): used for the
// vectors whose payloads are not JSON objects, which verify() then refuses as kMalformed.
bool signature_ok(std::string_view token, const KeySet& keys) {
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return false;
  }
  auto header = base64url_decode(token.substr(0, dot1));
  auto payload = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!header || !payload || !signature) return false;
  json::error_code ec;
  json::value h = json::parse(*header, ec);
  if (ec || !h.is_object()) return false;
  const json::value* alg_v = h.as_object().if_contains("alg");
  if (!alg_v || !alg_v->is_string()) return false;
  auto alg = alg_from_name(alg_v->as_string());
  if (!alg) return false;
  const json::value* kid = h.as_object().if_contains("kid");
  for (const auto& key : keys.keys) {
    if (kid && (!kid->is_string() || key->kid() != kid->as_string())) continue;
    if (key->verify(*alg, token.substr(0, dot2), *signature)) return true;
  }
  return false;
}

std::shared_ptr<const Key> jwk_key(const json::value& jwk) {
  std::string error;
  auto key = Key::from_jwk(jwk.as_object(), &error);
  EXPECT_TRUE(key) << error << " in " << json::serialize(jwk);
  return key;
}

// Generated once: RSA key generation takes a noticeable fraction of a second.
struct TestKeys {
  PkeyPtr rsa, p256, p384, ed25519;
};

const TestKeys& test_keys() {
  static const TestKeys keys{
      PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})),
      PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")),
      PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384")),
      PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")),
  };
  return keys;
}

std::string public_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PUBKEY(bio.get(), key), 1);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string public_der(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(key, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string bn_bytes(EVP_PKEY* key, const char* name, int pad = 0) {
  BIGNUM* raw = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(key, name, &raw), 1);
  BnPtr bn(raw);
  std::string out(pad ? pad : BN_num_bytes(bn.get()), '\0');
  BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(out.data()),
               static_cast<int>(out.size()));
  return out;
}

// The public JWK of a generated key.
json::object public_jwk(EVP_PKEY* key, std::string_view kid) {
  json::object jwk;
  if (EVP_PKEY_is_a(key, "RSA")) {
    jwk["kty"] = "RSA";
    jwk["n"] = b64url(bn_bytes(key, OSSL_PKEY_PARAM_RSA_N));
    jwk["e"] = b64url(bn_bytes(key, OSSL_PKEY_PARAM_RSA_E));
  } else if (EVP_PKEY_is_a(key, "EC")) {
    int size = EVP_PKEY_get_bits(key) == 256 ? 32 : 48;
    jwk["kty"] = "EC";
    jwk["crv"] = size == 32 ? "P-256" : "P-384";
    jwk["x"] = b64url(bn_bytes(key, OSSL_PKEY_PARAM_EC_PUB_X, size));
    jwk["y"] = b64url(bn_bytes(key, OSSL_PKEY_PARAM_EC_PUB_Y, size));
  } else {
    std::string x(32, '\0');
    size_t len = x.size();
    EXPECT_EQ(EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(x.data()), &len),
              1);
    jwk["kty"] = "OKP";
    jwk["crv"] = "Ed25519";
    jwk["x"] = b64url(x);
  }
  if (!kid.empty()) jwk["kid"] = kid;
  return jwk;
}

std::string self_signed_certificate(EVP_PKEY* key) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("gatehouse-test"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  EXPECT_GT(X509_sign(cert.get(), key, EVP_sha256()), 0);
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert.get());
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// RFC 7515 appendix A claims carry "exp": 1300819380 (2011-03-22T18:43:00Z).
constexpr int64_t kRfc7515Now = 1300819000;

// ---------------------------------------------------------------------------------------------
// Primitives.

TEST(Jwt, NoneIsNeverAnAlgorithm) { EXPECT_FALSE(alg_from_name("none")); }

TEST(Jwt, AlgorithmNamesRoundTripAndAreCaseSensitive) {
  for (Alg a : kAllAlgs) EXPECT_EQ(alg_from_name(alg_name(a)), a) << alg_name(a);
  EXPECT_EQ(alg_name(Alg::kEdDSA), "EdDSA");
  EXPECT_EQ(alg_name(Alg::kPS384), "PS384");
  for (std::string_view bad : {"none", "NONE", "None", "hs256", "HS256 ", "", "ES512", "ES256K",
                               "Ed25519", "RS1", "HS1024", "EDDSA"}) {
    EXPECT_FALSE(alg_from_name(bad)) << bad;
  }
}

TEST(Jwt, FailureNamesAreShortSnakeCase) {
  EXPECT_EQ(failure_name(Failure::kMalformed), "malformed");
  EXPECT_EQ(failure_name(Failure::kTooLarge), "too_large");
  EXPECT_EQ(failure_name(Failure::kAlgorithm), "algorithm");
  EXPECT_EQ(failure_name(Failure::kCritical), "critical");
  EXPECT_EQ(failure_name(Failure::kUnknownKey), "unknown_key");
  EXPECT_EQ(failure_name(Failure::kSignature), "signature");
  EXPECT_EQ(failure_name(Failure::kExpired), "expired");
  EXPECT_EQ(failure_name(Failure::kNotYetValid), "not_yet_valid");
  EXPECT_EQ(failure_name(Failure::kIssuer), "issuer");
  EXPECT_EQ(failure_name(Failure::kAudience), "audience");
  EXPECT_EQ(failure_name(Failure::kMissingClaim), "missing_claim");
  EXPECT_EQ(failure_name(Failure::kScope), "scope");
}

TEST(Jwt, Base64urlDecodesStrictly) {
  EXPECT_EQ(base64url_decode(""), "");
  EXPECT_EQ(base64url_decode("Zg"), "f");
  EXPECT_EQ(base64url_decode("Zm8"), "fo");
  EXPECT_EQ(base64url_decode("Zm9v"), "foo");
  EXPECT_EQ(base64url_decode("Zm9vYg"), "foob");
  EXPECT_EQ(base64url_decode("-_8"), "\xfb\xff");
  EXPECT_EQ(base64url_decode("AA"), std::string(1, '\0'));
  // Padding, the standard alphabet's '+' and '/', whitespace and other characters.
  for (std::string_view bad :
       {"Zg==", "Zm8=", "Zm9v=", "Zg=", "+w", "/w", "Zm9v\n", " Zm9v", "Zm 9v", "Zm9v.", "Zm9v?"}) {
    EXPECT_FALSE(base64url_decode(bad)) << bad;
  }
  EXPECT_FALSE(base64url_decode(std::string_view("Zm\0v", 4)));
  // A length of 1 mod 4 cannot hold whole bytes.
  EXPECT_FALSE(base64url_decode("Z"));
  EXPECT_FALSE(base64url_decode("Zm9vY"));
  // Non-zero unused bits: "AB" would also decode to one zero byte (Wycheproof JWS tcId 374).
  EXPECT_FALSE(base64url_decode("AB"));
  EXPECT_FALSE(base64url_decode("Zh"));
  EXPECT_FALSE(base64url_decode("Zm9"));
  // Every byte value round-trips.
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t len = 0; len <= all.size(); len += 37) {
    EXPECT_EQ(base64url_decode(b64url(all.substr(0, len))), all.substr(0, len));
  }
}

TEST(Jwt, ClaimTextForHeaders) {
  json::object c = json::parse(R"({"sub":"alice","groups":["a","b c","d"],"empty":[],
      "mixed":["a",1],"n":42,"neg":-7,"big":18446744073709551615,"f":1.5,"t":true,"no":false,
      "nil":null,"obj":{"a":1},"e":""})")
                       .as_object();
  EXPECT_EQ(claim_text(c, "sub"), "alice");
  EXPECT_EQ(claim_text(c, "groups"), "a b c d");
  EXPECT_EQ(claim_text(c, "empty"), "");
  EXPECT_EQ(claim_text(c, "mixed"), "");
  EXPECT_EQ(claim_text(c, "n"), "42");
  EXPECT_EQ(claim_text(c, "neg"), "-7");
  EXPECT_EQ(claim_text(c, "big"), "18446744073709551615");
  EXPECT_EQ(json::parse(claim_text(c, "f")).as_double(), 1.5);  // JSON form
  EXPECT_EQ(claim_text(c, "t"), "true");
  EXPECT_EQ(claim_text(c, "no"), "false");
  EXPECT_EQ(claim_text(c, "nil"), "");
  EXPECT_EQ(claim_text(c, "obj"), "");
  EXPECT_EQ(claim_text(c, "e"), "");
  EXPECT_EQ(claim_text(c, "absent"), "");
}

// ---------------------------------------------------------------------------------------------
// Keys.

TEST(JwtKeys, HmacSecretsMustBeLongEnough) {
  std::string error;
  EXPECT_FALSE(Key::hmac(std::string(31, 'k'), "a", std::nullopt, &error));
  EXPECT_NE(error, "");
  auto k = Key::hmac(std::string(32, 'k'), "a", std::nullopt, &error);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->kid(), "a");
  // RFC 7518 section 3.2: a key at least as long as the hash.
  EXPECT_TRUE(k->accepts(Alg::kHS256));
  EXPECT_FALSE(k->accepts(Alg::kHS384));
  EXPECT_FALSE(k->accepts(Alg::kHS512));
  EXPECT_FALSE(Key::hmac(std::string(40, 'k'), "a", Alg::kHS384, &error));
  EXPECT_FALSE(Key::hmac(std::string(63, 'k'), "a", Alg::kHS512, &error));
  auto k512 = Key::hmac(std::string(64, 'k'), "", Alg::kHS512, &error);
  ASSERT_TRUE(k512);
  EXPECT_TRUE(k512->accepts(Alg::kHS512));
  EXPECT_FALSE(k512->accepts(Alg::kHS256));  // restricted to its own alg
  EXPECT_FALSE(Key::hmac(std::string(64, 'k'), "a", Alg::kRS256, &error));
}

TEST(JwtKeys, EachKeyAcceptsOnlyItsOwnFamilyAndCurve) {
  const TestKeys& t = test_keys();
  std::string error;
  auto oct = Key::hmac(std::string(64, 's'), "", std::nullopt, &error);
  auto rsa = Key::from_pem(public_pem(t.rsa.get()), "", &error);
  auto p256 = Key::from_pem(public_pem(t.p256.get()), "", &error);
  auto p384 = Key::from_pem(public_pem(t.p384.get()), "", &error);
  auto ed = Key::from_pem(public_pem(t.ed25519.get()), "", &error);
  ASSERT_TRUE(oct && rsa && p256 && p384 && ed) << error;
  for (Alg a : kAllAlgs) {
    std::string_view n = alg_name(a);
    EXPECT_EQ(oct->accepts(a), is_hmac(a)) << n;
    EXPECT_EQ(rsa->accepts(a), n[0] == 'R' || n[0] == 'P') << n;
    EXPECT_EQ(p256->accepts(a), a == Alg::kES256) << n;
    EXPECT_EQ(p384->accepts(a), a == Alg::kES384) << n;
    EXPECT_EQ(ed->accepts(a), a == Alg::kEdDSA) << n;
  }
  // A JWK "alg" restricts the key to that one algorithm.
  json::object jwk = public_jwk(t.rsa.get(), "r");
  jwk["alg"] = "PS256";
  auto restricted = jwk_key(jwk);
  ASSERT_TRUE(restricted);
  for (Alg a : kAllAlgs) EXPECT_EQ(restricted->accepts(a), a == Alg::kPS256) << alg_name(a);
}

TEST(JwtKeys, FromJwkTakesOnlyThePublicPartAndHonoursUseKeyOpsAndAlg) {
  const TestKeys& t = test_keys();
  std::string error;
  json::object good = public_jwk(t.p256.get(), "ec");
  ASSERT_TRUE(jwk_key(good));

  auto refused = [&](json::object jwk, std::string_view why) {
    std::string e;
    EXPECT_FALSE(Key::from_jwk(jwk, &e)) << why << ": " << json::serialize(jwk);
    EXPECT_NE(e, "") << why;
  };
  json::object j = good;
  j["use"] = "enc";
  refused(j, "use enc");
  j["use"] = 1;
  refused(j, "use not a string");
  j = good;
  j["use"] = "sig";
  j["key_ops"] = json::array{"verify", "sign"};
  EXPECT_TRUE(Key::from_jwk(j, &error)) << error;
  j["key_ops"] = json::array{"encrypt"};
  refused(j, "key_ops without verify");
  j["key_ops"] = "verify";
  refused(j, "key_ops not an array");
  j = good;
  j["alg"] = "none";
  refused(j, "alg none");
  j["alg"] = "ES512";
  refused(j, "unsupported alg");
  j["alg"] = "RS256";
  refused(j, "alg of another key type");
  j["alg"] = "ES384";
  refused(j, "alg of another curve");
  j["alg"] = "ES256";
  EXPECT_TRUE(Key::from_jwk(j, &error)) << error;
  j = good;
  j["kid"] = 7;
  refused(j, "kid not a string");
  j = good;
  j.erase("kty");
  refused(j, "no kty");
  j = good;
  j["kty"] = "oct";
  refused(j, "kty/member mismatch");
  j = good;
  j["crv"] = "P-384";
  refused(j, "coordinates of the wrong size for the curve");
  j = good;
  j["crv"] = "P-521";
  refused(j, "P-521");
  j = good;
  j["crv"] = "secp256k1";
  refused(j, "secp256k1");
  j = good;
  j["x"] = str(good["x"]) + "=";
  refused(j, "padded coordinate");
  j = good;
  j["x"] = b64url(base64url_decode(str(good["x"]))->substr(1));
  refused(j, "31-byte coordinate");
  j = good;
  std::string y = *base64url_decode(str(good["y"]));
  y[31] ^= 1;
  j["y"] = b64url(y);
  refused(j, "point not on the curve");
  j = good;
  j["d"] = b64url(std::string(32, '\x01'));  // private members are ignored, even if wrong
  EXPECT_TRUE(Key::from_jwk(j, &error)) << error;

  json::object ed = public_jwk(t.ed25519.get(), "");
  ASSERT_TRUE(jwk_key(ed));
  j = ed;
  j["crv"] = "X25519";
  refused(j, "X25519 is not a signature curve");
  j["crv"] = "Ed448";
  refused(j, "Ed448");
  j = ed;
  j["x"] = b64url(std::string(31, 'x'));
  refused(j, "short Ed25519 key");

  json::object oct{{"kty", "oct"}, {"k", b64url(std::string(32, 'k'))}};
  ASSERT_TRUE(jwk_key(oct));
  j = oct;
  j["k"] = b64url(std::string(16, 'k'));
  refused(j, "short oct key");
  j = oct;
  j.erase("k");
  refused(j, "oct without k");
  j = oct;
  j["alg"] = "A256GCM";
  refused(j, "encryption alg");
  j = oct;
  j["alg"] = "HS384";
  refused(j, "32-byte key for HS384");
  refused(json::object{{"kty", "foo"}}, "unknown kty");
}

TEST(JwtKeys, RsaKeysNeed2048BitsAndASaneExponent) {
  std::string error;
  PkeyPtr small(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
  EXPECT_FALSE(Key::from_pem(public_pem(small.get()), "", &error));
  EXPECT_NE(error.find("1024"), std::string::npos) << error;
  EXPECT_FALSE(Key::from_jwk(public_jwk(small.get(), ""), &error));

  json::object good = public_jwk(test_keys().rsa.get(), "r");
  ASSERT_TRUE(jwk_key(good));
  json::object j = good;
  j["e"] = "AQ";  // e = 1: every padded message would be its own signature
  EXPECT_FALSE(Key::from_jwk(j, &error));
  j["e"] = "AAEAAA";  // even
  EXPECT_FALSE(Key::from_jwk(j, &error));
  j["e"] = "";
  EXPECT_FALSE(Key::from_jwk(j, &error));
  j = good;
  j.erase("n");
  EXPECT_FALSE(Key::from_jwk(j, &error));
}

TEST(JwtKeys, FromPemTakesSubjectPublicKeyInfoAndCertificates) {
  const TestKeys& t = test_keys();
  std::string error;
  for (EVP_PKEY* k : {t.rsa.get(), t.p256.get(), t.p384.get(), t.ed25519.get()}) {
    EXPECT_TRUE(Key::from_pem(public_pem(k), "pem", &error)) << error;
  }
  auto from_cert = Key::from_pem(self_signed_certificate(t.p256.get()), "cert", &error);
  ASSERT_TRUE(from_cert) << error;
  EXPECT_EQ(from_cert->kid(), "cert");
  EXPECT_TRUE(from_cert->accepts(Alg::kES256));
  Signer s{"", t.p256.get()};
  std::string tok = make_token(s, Alg::kES256, header_for(Alg::kES256), R"({"sub":"x"})");
  KeySet set{{from_cert}};
  EXPECT_EQ(verify(tok, set, all_algorithms(), 0, nullptr), std::nullopt);
  auto rsa_cert = Key::from_pem(self_signed_certificate(t.rsa.get()), "", &error);
  EXPECT_TRUE(rsa_cert && rsa_cert->accepts(Alg::kRS256)) << error;

  EXPECT_FALSE(Key::from_pem("", "", &error));
  EXPECT_FALSE(
      Key::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "", &error));
  EXPECT_FALSE(
      Key::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "", &error));
  PkeyPtr p521(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-521"));
  EXPECT_FALSE(Key::from_pem(public_pem(p521.get()), "", &error));
  PkeyPtr ed448(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED448"));
  EXPECT_FALSE(Key::from_pem(public_pem(ed448.get()), "", &error));
  PkeyPtr x25519(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
  EXPECT_FALSE(Key::from_pem(public_pem(x25519.get()), "", &error));
}

TEST(JwtKeys, ParseJwksKeepsUsableKeysAndSaysWhyOthersWereSkipped) {
  const TestKeys& t = test_keys();
  json::array keys{public_jwk(t.rsa.get(), "rsa"),
                   public_jwk(t.p256.get(), "ec"),
                   json::object{{"kty", "EC"}, {"crv", "P-521"}, {"kid", "big"}},
                   json::object{{"kty", "RSA"}, {"use", "enc"}},
                   "not a key",
                   public_jwk(t.ed25519.get(), "ed")};
  std::string error;
  std::vector<std::string> skipped;
  auto set = parse_jwks(json::serialize(json::object{{"keys", keys}}), &error, &skipped);
  ASSERT_TRUE(set) << error;
  ASSERT_EQ(set->keys.size(), 3u);
  EXPECT_EQ(set->keys[0]->kid(), "rsa");
  EXPECT_EQ(set->keys[1]->kid(), "ec");
  EXPECT_EQ(set->keys[2]->kid(), "ed");
  ASSERT_EQ(skipped.size(), 3u);
  EXPECT_NE(skipped[0].find("keys[2]"), std::string::npos) << skipped[0];
  EXPECT_NE(skipped[0].find("big"), std::string::npos) << skipped[0];
  EXPECT_NE(skipped[1].find("keys[3]"), std::string::npos) << skipped[1];
  EXPECT_NE(skipped[2].find("keys[4]"), std::string::npos) << skipped[2];
  // Strings from the document are escaped in the reasons (they end up in logs).
  skipped.clear();
  ASSERT_TRUE(parse_jwks(R"({"keys":[{"kty":"x\r\ny","kid":"a\nb"}]})", &error, &skipped));
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_EQ(skipped[0].find_first_of("\r\n"), std::string::npos) << skipped[0];
  EXPECT_TRUE(parse_jwks(R"({"keys":[]})", &error));
  EXPECT_TRUE(parse_jwks(R"({"keys":[{"kty":"nope"}]})", &error, nullptr));

  for (std::string_view bad :
       {"", "[]", R"("keys")", "{}", R"({"keys":{}})", R"({"keys":null})", R"({"keys":[]} x)",
        R"({"keys":[],})", R"({"keys":[],"keys":[]})", "{\"keys\":[] /* c */}"}) {
    error.clear();
    EXPECT_FALSE(parse_jwks(bad, &error)) << bad;
    EXPECT_NE(error, "") << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// Public vectors.

TEST(JwtVectors, Rfc7515AppendixA) {
  json::value doc = load_vector("rfc7515-appendix-a/rfc7515-appendix-a.json");
  ASSERT_TRUE(doc.is_object());
  std::map<std::string, json::object> by_id;
  for (const auto& e : doc.at("examples").as_array()) by_id[str(e.at("id"))] = e.as_object();

  KeySet all;
  for (const char* id : {"A.1", "A.2", "A.3"}) {
    const json::object& ex = by_id.at(id);
    auto key = jwk_key(ex.at("jwk"));  // A.2 and A.3 carry private members: ignored
    ASSERT_TRUE(key) << id;
    all.keys.push_back(key);
    KeySet one{{key}};
    Verified out;
    std::string compact = str(ex.at("compact"));
    EXPECT_EQ(verify(compact, one, all_algorithms(), kRfc7515Now, &out), std::nullopt) << id;
    EXPECT_EQ(alg_name(out.alg), str(ex.at("alg"))) << id;
    EXPECT_EQ(claim_text(out.claims, "iss"), "joe");
    EXPECT_EQ(out.claims.at("http://example.com/is_root"), true);
    // "exp": 1300819380 is the first second the token is no longer valid.
    EXPECT_EQ(verify(compact, one, all_algorithms(), 1300819379, nullptr), std::nullopt) << id;
    EXPECT_EQ(verify(compact, one, all_algorithms(), 1300819380, nullptr), Failure::kExpired);
    Rules lenient = all_algorithms();
    lenient.leeway = 60s;
    EXPECT_EQ(verify(compact, one, lenient, 1300819380 + 59, nullptr), std::nullopt) << id;
    EXPECT_EQ(verify(compact, one, lenient, 1300819380 + 60, nullptr), Failure::kExpired) << id;
    // Each algorithm must be allowed by the rules.
    Rules others;
    for (Alg a : kAllAlgs) {
      if (alg_name(a) != str(ex.at("alg"))) others.algorithms.push_back(a);
    }
    EXPECT_EQ(verify(compact, one, others, kRfc7515Now, nullptr), Failure::kAlgorithm) << id;
  }
  // Without a kid, every key that accepts the algorithm is tried: the right one is found.
  for (const char* id : {"A.1", "A.2", "A.3"}) {
    EXPECT_EQ(verify(str(by_id.at(id).at("compact")), all, all_algorithms(), kRfc7515Now, nullptr),
              std::nullopt)
        << id;
  }
  // A.4 ES512 (P-521) is not supported: refused as an algorithm, and its key too.
  std::string error;
  EXPECT_FALSE(Key::from_jwk(by_id.at("A.4").at("jwk").as_object(), &error));
  EXPECT_EQ(verify(str(by_id.at("A.4").at("compact")), all, all_algorithms(), kRfc7515Now, nullptr),
            Failure::kAlgorithm);
  // A.5 alg "none": never, whatever the rules say.
  EXPECT_EQ(verify(str(by_id.at("A.5").at("compact")), all, all_algorithms(), kRfc7515Now, nullptr),
            Failure::kAlgorithm);
  // A.6 is the JSON serialisation: not a compact token.
  EXPECT_EQ(verify(json::serialize(by_id.at("A.6").at("json")), all, all_algorithms(), kRfc7515Now,
                   nullptr),
            Failure::kMalformed);
}

TEST(JwtVectors, Rfc8037Ed25519) {
  json::value doc = load_vector("rfc7515-appendix-a/rfc7515-appendix-a.json");
  ASSERT_TRUE(doc.is_object());
  const json::object& v = doc.at("rfc8037").as_object();
  auto key = jwk_key(v.at("jwk"));
  ASSERT_TRUE(key);
  EXPECT_TRUE(key->accepts(Alg::kEdDSA));
  KeySet set{{key}};
  std::string compact = str(v.at("compact"));
  EXPECT_TRUE(signature_ok(compact, set));
  // The payload is text, not a claims set: the signature is good but this is no JWT.
  EXPECT_EQ(verify(compact, set, all_algorithms(), 0, nullptr), Failure::kMalformed);
  std::string bad = compact;
  bad[bad.size() - 5] = bad[bad.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(verify(bad, set, all_algorithms(), 0, nullptr), Failure::kSignature);

  // A fresh JWT signed with the RFC 8037 A.1 private key verifies end to end.
  std::string d = *base64url_decode(str(v.at("jwk").at("d")));
  PkeyPtr priv(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(d.data()), d.size()));
  ASSERT_TRUE(priv);
  std::string tok = make_token({"", priv.get()}, Alg::kEdDSA, header_for(Alg::kEdDSA),
                               R"({"sub":"ed","exp":2000000000})");
  Verified out;
  EXPECT_EQ(verify(tok, set, all_algorithms(), 1700000000, &out), std::nullopt);
  EXPECT_EQ(out.alg, Alg::kEdDSA);
  EXPECT_EQ(claim_text(out.claims, "sub"), "ed");
}

TEST(JwtVectors, JoseCookbook) {
  // RFC 7520 section 3: the keys.
  std::string error;
  struct JwkCase {
    const char* file;
    bool usable;
  };
  for (const JwkCase& c :
       {JwkCase{"3_1.ec_public_key.json", false},  // P-521
        JwkCase{"3_2.ec_private_key.json", false}, JwkCase{"3_3.rsa_public_key.json", true},
        JwkCase{"3_4.rsa_private_key.json", true},
        JwkCase{"3_5.symmetric_key_mac_computation.json", true},
        JwkCase{"3_6.symmetric_key_encryption.json", false}}) {  // use enc
    json::value jwk = load_vector(std::string("jose-cookbook/jwk/") + c.file);
    ASSERT_TRUE(jwk.is_object());
    EXPECT_EQ(static_cast<bool>(Key::from_jwk(jwk.as_object(), &error)), c.usable) << c.file;
  }

  // RFC 7520 section 4 (and the Ed25519 example of RFC 8037): the compact serialisations. The
  // payload is a quotation, not a claims set, so the signature is checked on its own and
  // verify() must say kMalformed (signature good, no JWT); a flipped signature bit is kSignature.
  struct JwsCase {
    const char* file;
    bool supported;
  };
  int verified = 0;
  for (const JwsCase& c : {JwsCase{"jws/4_1.rsa_v15_signature.json", true},
                           JwsCase{"jws/4_2.rsa-pss_signature.json", true},
                           JwsCase{"jws/4_3.ecdsa_signature.json", false},  // ES512
                           JwsCase{"jws/4_4.hmac-sha2_integrity_protection.json", true},
                           JwsCase{"curve25519/jws.json", true}}) {
    json::value v = load_vector(std::string("jose-cookbook/") + c.file);
    ASSERT_TRUE(v.is_object());
    std::string compact = str(v.at("output").at("compact"));
    auto key = Key::from_jwk(v.at("input").at("key").as_object(), &error);
    KeySet set;
    if (key) set.keys.push_back(key);
    if (!c.supported) {
      EXPECT_FALSE(key) << c.file;
      EXPECT_EQ(verify(compact, set, all_algorithms(), 0, nullptr), Failure::kAlgorithm);
      continue;
    }
    ASSERT_TRUE(key) << c.file << ": " << error;
    EXPECT_TRUE(key->accepts(*alg_from_name(str(v.at("input").at("alg")))));
    EXPECT_TRUE(signature_ok(compact, set)) << c.file;
    EXPECT_EQ(verify(compact, set, all_algorithms(), 0, nullptr), Failure::kMalformed) << c.file;
    std::string sig = *base64url_decode(compact.substr(compact.rfind('.') + 1));
    sig[sig.size() / 2] ^= 0x01;
    std::string bad = compact.substr(0, compact.rfind('.') + 1) + b64url(sig);
    EXPECT_EQ(verify(bad, set, all_algorithms(), 0, nullptr), Failure::kSignature) << c.file;
    ++verified;
  }
  EXPECT_EQ(verified, 4);

  // 4.5 detached content: the compact form has an empty payload, and the signature covers the
  // real one, so against an empty payload it cannot verify.
  json::value detached = load_vector("jose-cookbook/jws/4_5.signature_with_detached_content.json");
  ASSERT_TRUE(detached.is_object());
  KeySet oct{{jwk_key(detached.at("input").at("key"))}};
  EXPECT_EQ(verify(str(detached.at("output").at("compact")), oct, all_algorithms(), 0, nullptr),
            Failure::kSignature);
}

// Wycheproof json_web_signature_test.json: 401 cases in groups, each with its key as a JWK
// ("public", or only "private" for HMAC). Every payload is a non-JSON byte string, so verify()
// refuses every case; what tells valid from invalid is the signature check on its own.
TEST(JwtVectors, WycheproofJsonWebSignature) {
  json::value doc = load_vector("wycheproof/json_web_signature_test.json");
  ASSERT_TRUE(doc.is_object());
  // These four contradict their own labels (see tests/vectors/README.md): 367 and 370 are byte for
  // byte the valid tcId 357, 372 and 373 carry a '?' that strict base64url must refuse.
  const std::set<int64_t> contradictory{367, 370, 372, 373};
  int total = 0, invalid = 0, invalid_refused = 0, valid_checked = 0, unsupported = 0;
  int alg_mismatch = 0;
  for (const auto& g : doc.at("testGroups").as_array()) {
    const json::object& group = g.as_object();
    const json::value& jwk = group.contains("public") ? group.at("public") : group.at("private");
    std::string error;
    KeySet keys;
    if (auto key = Key::from_jwk(jwk.as_object(), &error)) keys.keys.push_back(key);
    for (const auto& tv : group.at("tests").as_array()) {
      ++total;
      int64_t id = tv.at("tcId").as_int64();
      std::string token = str(tv.at("jws"));
      bool valid = str(tv.at("result")) == "valid";
      auto result = verify(token, keys, all_algorithms(), 1700000000, nullptr);
      EXPECT_NE(result, std::nullopt) << "tcId " << id << " (payload is not a claims set)";
      if (!valid) {
        ++invalid;
        if (result) ++invalid_refused;
      }
      if (contradictory.count(id)) continue;
      if (!valid) {
        EXPECT_FALSE(signature_ok(token, keys)) << "tcId " << id << " " << str(tv.at("comment"));
        continue;
      }
      // Valid: unless the algorithm is one we do not implement (ES512 in the RFC 7520 groups),
      // the signature verifies and only the non-JSON payload makes verify() refuse.
      std::string alg =
          str(json::parse(*base64url_decode(token.substr(0, token.find('.')))).at("alg"));
      if (!alg_from_name(alg)) {
        ++unsupported;
        EXPECT_EQ(result, Failure::kAlgorithm) << "tcId " << id;
        EXPECT_TRUE(keys.keys.empty()) << "tcId " << id;
        continue;
      }
      // tcIds 346 and 350 (RFC 7520 figure 20) are PS384 tokens, but the group's JWK says
      // "alg":"PS256": honouring the key's own "alg" (RFC 7517 section 4.4) refuses them.
      if (const json::value* key_alg = jwk.as_object().if_contains("alg");
          key_alg && str(*key_alg) != alg) {
        ++alg_mismatch;
        EXPECT_FALSE(signature_ok(token, keys)) << "tcId " << id;
        EXPECT_EQ(result, Failure::kSignature) << "tcId " << id;
        continue;
      }
      ++valid_checked;
      EXPECT_TRUE(signature_ok(token, keys)) << "tcId " << id << " " << str(tv.at("comment"));
      EXPECT_EQ(result, Failure::kMalformed) << "tcId " << id;
    }
  }
  EXPECT_EQ(total, 401);
  EXPECT_EQ(invalid, 355);
  EXPECT_EQ(invalid_refused, 355);
  EXPECT_EQ(valid_checked, 40);
  EXPECT_EQ(unsupported, 2);
  EXPECT_EQ(alg_mismatch, 2);
}

// Wycheproof json_web_key_test.json: key sets to load, then a token to verify against them.
TEST(JwtVectors, WycheproofJsonWebKey) {
  json::value doc = load_vector("wycheproof/json_web_key_test.json");
  ASSERT_TRUE(doc.is_object());
  // Cases whose key set must lose its only key when loaded: wrong "use", ROCA, 1024-bit RSA,
  // e = 1, HMAC keys shorter than their hash, empty keys, "alg" that does not fit (ES521,
  // ES224 on P-256), a point off the curve, coordinates of the wrong size, kty RSA with EC
  // members, AES keys.
  const std::set<int64_t> key_refused{6,  7,  8,  9,  10, 11, 12, 16, 17,
                                      18, 19, 20, 21, 22, 23, 24, 25, 26};
  // Ambiguous per Wycheproof, accepted by design: a key set mixing HMAC and EC keys (1) is how
  // configured secrets and fetched JWKS combine; two keys sharing a kid (4) are both tried, as
  // during a key rotation. The payload "foo" is not a claims set, so verify() refuses anyway.
  const std::set<int64_t> accepted_by_design{1, 4};
  int cases = 0;
  for (const auto& g : doc.at("testGroups").as_array()) {
    const json::object& group = g.as_object();
    const json::value& jwks = group.contains("public") ? group.at("public") : group.at("private");
    std::string error;
    std::vector<std::string> skipped;
    auto set = parse_jwks(json::serialize(jwks), &error, &skipped);
    ASSERT_TRUE(set) << error;
    for (const auto& tv : group.at("tests").as_array()) {
      ++cases;
      int64_t id = tv.at("tcId").as_int64();
      std::string token = str(tv.at("jws"));
      bool valid = str(tv.at("result")) == "valid";
      auto result = verify(token, *set, all_algorithms(), 1700000000, nullptr);
      EXPECT_NE(result, std::nullopt) << "tcId " << id;
      if (key_refused.count(id)) {
        EXPECT_TRUE(set->keys.empty()) << "tcId " << id << " " << str(tv.at("comment"));
        EXPECT_EQ(skipped.size(), 1u) << "tcId " << id;
        EXPECT_FALSE(valid);
      } else if (accepted_by_design.count(id) || valid) {
        EXPECT_TRUE(signature_ok(token, *set)) << "tcId " << id;
        EXPECT_EQ(result, Failure::kMalformed) << "tcId " << id;
      } else {
        EXPECT_FALSE(signature_ok(token, *set)) << "tcId " << id;  // a modified signature
        EXPECT_EQ(result, Failure::kSignature) << "tcId " << id;
      }
    }
  }
  EXPECT_EQ(cases, 26);
}

// ---------------------------------------------------------------------------------------------
// Verification with freshly signed tokens.

TEST(Jwt, EveryAlgorithmVerifiesWithJwkAndPemKeys) {
  const TestKeys& t = test_keys();
  std::string secret(64, '\x5a');
  std::string error;
  for (Alg a : kAllAlgs) {
    std::string_view n = alg_name(a);
    EVP_PKEY* pkey = is_hmac(a)                   ? nullptr
                     : n[0] == 'R' || n[0] == 'P' ? t.rsa.get()
                     : a == Alg::kES256           ? t.p256.get()
                     : a == Alg::kES384           ? t.p384.get()
                                                  : t.ed25519.get();
    Signer s{secret, pkey};
    std::string tok =
        make_token(s, a, header_for(a, "k1"), R"({"sub":"u","exp":2000000000,"nbf":1000})");
    std::shared_ptr<const Key> from_jwk, from_pem;
    if (pkey) {
      from_jwk = jwk_key(public_jwk(pkey, "k1"));
      from_pem = Key::from_pem(public_pem(pkey), "k1", &error);
    } else {
      from_jwk = jwk_key(json::object{{"kty", "oct"}, {"kid", "k1"}, {"k", b64url(secret)}});
      from_pem = Key::hmac(secret, "k1", a, &error);
    }
    ASSERT_TRUE(from_jwk && from_pem) << n << ": " << error;
    for (const auto& key : {from_jwk, from_pem}) {
      Verified out;
      EXPECT_EQ(verify(tok, KeySet{{key}}, all_algorithms(), 1700000000, &out), std::nullopt) << n;
      EXPECT_EQ(out.alg, a);
      EXPECT_EQ(out.kid, "k1");
      EXPECT_EQ(claim_text(out.claims, "sub"), "u");
    }
    // Only the algorithm's own rules entry lets it through.
    Rules only_this;
    only_this.algorithms = {a};
    EXPECT_EQ(verify(tok, KeySet{{from_jwk}}, only_this, 1700000000, nullptr), std::nullopt);
    Rules none_of_it;
    EXPECT_EQ(verify(tok, KeySet{{from_jwk}}, none_of_it, 1700000000, nullptr),
              Failure::kAlgorithm);
  }
}

TEST(Jwt, AlgorithmConfusionNeverVerifies) {
  // The classic attack: take the server's RSA public key, use its bytes as an HMAC secret and
  // sign an "HS256" token. A verifier that lets the token choose how to use the key accepts it.
  const TestKeys& t = test_keys();
  std::string pem = public_pem(t.rsa.get());
  std::string der = public_der(t.rsa.get());
  std::string n = bn_bytes(t.rsa.get(), OSSL_PKEY_PARAM_RSA_N);
  std::string jwk_text = json::serialize(public_jwk(t.rsa.get(), "rsa"));
  std::string error;
  auto rsa_pem = Key::from_pem(pem, "rsa", &error);
  auto rsa_jwk = jwk_key(public_jwk(t.rsa.get(), "rsa"));
  ASSERT_TRUE(rsa_pem && rsa_jwk) << error;
  for (const std::string& secret : {pem, der, n, jwk_text}) {
    for (Alg hs : {Alg::kHS256, Alg::kHS384, Alg::kHS512}) {
      Signer forger{secret, nullptr};
      std::string with_kid = make_token(forger, hs, header_for(hs, "rsa"), R"({"sub":"admin"})");
      std::string without = make_token(forger, hs, header_for(hs), R"({"sub":"admin"})");
      for (const auto& key : {rsa_pem, rsa_jwk}) {
        KeySet set{{key}};
        EXPECT_EQ(verify(with_kid, set, all_algorithms(), 0, nullptr), Failure::kSignature);
        EXPECT_EQ(verify(without, set, all_algorithms(), 0, nullptr), Failure::kUnknownKey);
        std::string input = with_kid.substr(0, with_kid.rfind('.'));
        EXPECT_FALSE(key->verify(hs, input, sign(forger, hs, input)));
      }
    }
  }
  // Same for the EC and Ed25519 keys, and across curves: an ES384 signature by a P-384 key
  // under a P-256 key's kid.
  for (EVP_PKEY* k : {t.p256.get(), t.ed25519.get()}) {
    KeySet set{{jwk_key(public_jwk(k, "k"))}};
    Signer forger{public_der(k), nullptr};
    EXPECT_EQ(verify(make_token(forger, Alg::kHS256, header_for(Alg::kHS256, "k"), "{}"), set,
                     all_algorithms(), 0, nullptr),
              Failure::kSignature);
  }
  KeySet p256{{jwk_key(public_jwk(t.p256.get(), "k"))}};
  Signer p384{"", t.p384.get()};
  EXPECT_EQ(verify(make_token(p384, Alg::kES384, header_for(Alg::kES384, "k"), "{}"), p256,
                   all_algorithms(), 0, nullptr),
            Failure::kSignature);
  // And an HMAC key never checks an RSA signature.
  KeySet oct{{Key::hmac(std::string(32, 'k'), "k", std::nullopt, &error)}};
  Signer rsa{"", t.rsa.get()};
  EXPECT_EQ(verify(make_token(rsa, Alg::kRS256, header_for(Alg::kRS256, "k"), "{}"), oct,
                   all_algorithms(), 0, nullptr),
            Failure::kSignature);
}

class JwtHs256 : public ::testing::Test {
 protected:
  JwtHs256() {
    std::string error;
    keys_.keys.push_back(Key::hmac(secret_, "main", Alg::kHS256, &error));
    rules_.algorithms = {Alg::kHS256};
  }
  std::string token(std::string_view payload, std::string_view header = {}) const {
    return make_token(signer_, Alg::kHS256,
                      header.empty() ? header_for(Alg::kHS256, "main") : header, payload);
  }
  std::optional<Failure> check(std::string_view payload, int64_t now = kNow) const {
    return verify(token(payload), keys_, rules_, now, nullptr);
  }

  static constexpr int64_t kNow = 1700000000;
  std::string secret_ = "0123456789abcdef0123456789abcdef";
  Signer signer_{secret_, nullptr};
  KeySet keys_;
  Rules rules_;
};

TEST_F(JwtHs256, ShapeAndEncodingAreStrict) {
  std::string good = token(R"({"sub":"x"})");
  ASSERT_EQ(verify(good, keys_, rules_, kNow, nullptr), std::nullopt);
  size_t dot1 = good.find('.'), dot2 = good.rfind('.');
  for (std::string_view bad : {"", ".", "..", "...", "a.b", "a.b.c.d", "a.b.c.d.e"}) {
    EXPECT_EQ(verify(bad, keys_, rules_, kNow, nullptr), Failure::kMalformed) << bad;
  }
  EXPECT_EQ(verify(good + ".", keys_, rules_, kNow, nullptr), Failure::kMalformed);
  EXPECT_EQ(verify(good.substr(0, dot2), keys_, rules_, kNow, nullptr), Failure::kMalformed);
  // Padding in any part, even where it would be correct base64.
  for (size_t at : {dot1, dot2, good.size()}) {
    for (std::string_view pad : {"=", "==", "%3D"}) {
      std::string t = good;
      t.insert(at, pad);
      EXPECT_EQ(verify(t, keys_, rules_, kNow, nullptr), Failure::kMalformed) << t;
    }
  }
  // The standard alphabet ('+', '/'), whitespace and anything else, in each part.
  for (size_t at : {size_t{3}, dot1 + 3, dot2 + 3}) {
    for (char c : {'+', '/', ' ', '\t', '\n', '?', '#', '\0', '\x80'}) {
      std::string t = good;
      t[at] = c;
      EXPECT_EQ(verify(t, keys_, rules_, kNow, nullptr), Failure::kMalformed)
          << "char " << int(c) << " at " << at;
    }
  }
  // Bearer tokens sometimes arrive with a stray prefix or suffix: never trimmed.
  EXPECT_EQ(verify(" " + good, keys_, rules_, kNow, nullptr), Failure::kMalformed);
  EXPECT_EQ(verify(good + "\r\n", keys_, rules_, kNow, nullptr), Failure::kMalformed);
}

TEST_F(JwtHs256, SizeIsCheckedFirst) {
  std::string good = token(R"({"sub":"x"})");
  Rules r = rules_;
  r.max_token_bytes = good.size();
  EXPECT_EQ(verify(good, keys_, r, kNow, nullptr), std::nullopt);
  r.max_token_bytes = good.size() - 1;
  EXPECT_EQ(verify(good, keys_, r, kNow, nullptr), Failure::kTooLarge);
  EXPECT_EQ(verify(std::string(8193, '!'), keys_, rules_, kNow, nullptr), Failure::kTooLarge);
  std::string big = token(R"({"pad":")" + std::string(8000, 'p') + R"("})");
  EXPECT_GT(big.size(), 8192u);
  EXPECT_EQ(verify(big, keys_, rules_, kNow, nullptr), Failure::kTooLarge);
}

TEST_F(JwtHs256, TamperingIsDetected) {
  std::string good = token(R"({"sub":"alice","role":"user"})");
  size_t dot1 = good.find('.'), dot2 = good.rfind('.');
  std::string other_payload = b64url(R"({"sub":"alice","role":"admin"})");
  EXPECT_EQ(verify(good.substr(0, dot1 + 1) + other_payload + good.substr(dot2), keys_, rules_,
                   kNow, nullptr),
            Failure::kSignature);
  std::string sig = *base64url_decode(good.substr(dot2 + 1));
  for (size_t i : {size_t{0}, sig.size() / 2, sig.size() - 1}) {
    std::string s = sig;
    s[i] ^= 0x80;
    EXPECT_EQ(verify(good.substr(0, dot2 + 1) + b64url(s), keys_, rules_, kNow, nullptr),
              Failure::kSignature);
  }
  EXPECT_EQ(verify(good.substr(0, dot2 + 1), keys_, rules_, kNow, nullptr), Failure::kSignature);
  EXPECT_EQ(
      verify(good.substr(0, dot2 + 1) + b64url(sig.substr(0, 31)), keys_, rules_, kNow, nullptr),
      Failure::kSignature);
  EXPECT_EQ(verify(good.substr(0, dot2 + 1) + b64url(sig + "x"), keys_, rules_, kNow, nullptr),
            Failure::kSignature);
  // A header re-encoded with the same meaning is a different signing input.
  std::string header2 = b64url(R"({"kid":"main","alg":"HS256"})");
  EXPECT_EQ(verify(header2 + good.substr(dot1), keys_, rules_, kNow, nullptr), Failure::kSignature);
  // Any single-character change anywhere is refused.
  const std::string alphabet = "Aa0-_";
  for (size_t i = 0; i < good.size(); ++i) {
    for (char c : alphabet) {
      if (good[i] == c) continue;
      std::string t = good;
      t[i] = c;
      EXPECT_NE(verify(t, keys_, rules_, kNow, nullptr), std::nullopt) << t;
    }
  }
}

TEST_F(JwtHs256, EcdsaSignaturesMustBeRawAndOfFixedLength) {
  const TestKeys& t = test_keys();
  KeySet set{{jwk_key(public_jwk(t.p256.get(), "ec"))}};
  Signer s{"", t.p256.get()};
  std::string input = b64url(header_for(Alg::kES256, "ec")) + "." + b64url(R"({"sub":"e"})");
  std::string raw = sign(s, Alg::kES256, input);
  ASSERT_EQ(raw.size(), 64u);
  EXPECT_EQ(verify(input + "." + b64url(raw), set, all_algorithms(), kNow, nullptr), std::nullopt);
  // The DER form OpenSSL produces, a zero prepended or appended, a byte missing.
  BnPtr r(BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr));
  BnPtr sv(BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  ECDSA_SIG_set0(sig.get(), r.release(), sv.release());
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(sig.get(), &der);
  std::string der_sig(reinterpret_cast<char*>(der), static_cast<size_t>(der_len));
  OPENSSL_free(der);
  for (const std::string& bad : {der_sig, std::string(1, '\0') + raw, raw + std::string(1, '\0'),
                                 raw.substr(1), raw.substr(0, 63), std::string(64, '\0')}) {
    EXPECT_EQ(verify(input + "." + b64url(bad), set, all_algorithms(), kNow, nullptr),
              Failure::kSignature);
  }
}

TEST_F(JwtHs256, HeaderRules) {
  auto with_header = [&](std::string_view header) {
    return verify(token(R"({"sub":"x"})", header), keys_, rules_, kNow, nullptr);
  };
  EXPECT_EQ(with_header(R"({"alg":"HS256","kid":"main","typ":"JWT"})"), std::nullopt);
  EXPECT_EQ(with_header("not json"), Failure::kMalformed);
  EXPECT_EQ(with_header(R"(["alg","HS256"])"), Failure::kMalformed);
  EXPECT_EQ(with_header(R"("HS256")"), Failure::kMalformed);
  EXPECT_EQ(verify(make_token(signer_, Alg::kHS256, "", "{}"), keys_, rules_, kNow, nullptr),
            Failure::kMalformed);
  EXPECT_EQ(with_header(R"({"alg":"HS256","kid":"main",})"), Failure::kMalformed);
  EXPECT_EQ(with_header(R"({"alg":"HS256","kid":"main"} )"), std::nullopt);
  EXPECT_EQ(with_header(R"({"alg":"HS256","kid":"main"}{})"), Failure::kMalformed);
  EXPECT_EQ(with_header("{\"alg\":\"HS256\",\"kid\":\"main\"/*c*/}"), Failure::kMalformed);
  EXPECT_EQ(with_header("{\"alg\":\"HS256\",\"kid\":\"\xff\"}"), Failure::kMalformed);
  EXPECT_EQ(with_header(R"({"kid":"main"})"), Failure::kAlgorithm);
  EXPECT_EQ(with_header(R"({"alg":null,"kid":"main"})"), Failure::kAlgorithm);
  EXPECT_EQ(with_header(R"({"alg":["HS256"],"kid":"main"})"), Failure::kAlgorithm);
  EXPECT_EQ(with_header(R"({"alg":"none","kid":"main"})"), Failure::kAlgorithm);
  EXPECT_EQ(with_header(R"({"alg":"hs256","kid":"main"})"), Failure::kAlgorithm);
  EXPECT_EQ(with_header(R"({"alg":"HS384","kid":"main"})"), Failure::kAlgorithm);  // not allowed
  // Duplicate member names: which "alg" would count? Refused outright (RFC 7515 section 4).
  EXPECT_EQ(with_header(R"({"alg":"HS256","alg":"none","kid":"main"})"), Failure::kMalformed);
  EXPECT_EQ(with_header(R"({"alg":"HS256","kid":"main","kid":"other"})"), Failure::kMalformed);
  EXPECT_EQ(with_header(R"({"alg":"HS256","kid":"main","x":{"a":1,"a":2}})"), Failure::kMalformed);
  // Any "crit", even empty or naming a parameter we might know, is refused.
  EXPECT_EQ(with_header(R"({"alg":"HS256","kid":"main","crit":["exp"],"exp":1})"),
            Failure::kCritical);
  EXPECT_EQ(with_header(R"({"alg":"HS256","kid":"main","crit":["b64"],"b64":false})"),
            Failure::kCritical);
  EXPECT_EQ(with_header(R"({"alg":"HS256","kid":"main","crit":[]})"), Failure::kCritical);
  EXPECT_EQ(with_header(R"({"alg":"HS256","kid":"main","crit":null})"), Failure::kCritical);
  // A kid that is present must be a string.
  EXPECT_EQ(with_header(R"({"alg":"HS256","kid":7})"), Failure::kMalformed);
  EXPECT_EQ(with_header(R"({"alg":"HS256","kid":null})"), Failure::kMalformed);
  // "none" is refused whatever else is in the token, signature or not.
  std::string none = b64url(R"({"alg":"none"})") + "." + b64url(R"({"sub":"x"})") + ".";
  EXPECT_EQ(verify(none, keys_, all_algorithms(), kNow, nullptr), Failure::kAlgorithm);
}

TEST_F(JwtHs256, KeysComeFromTheKeySetNeverFromTheToken) {
  // A token that embeds its own key (jwk, jku, x5c) gets nothing from it (Wycheproof tcId 32).
  std::string attacker(32, 'a');
  json::object header{{"alg", "HS256"},
                      {"kid", "main"},
                      {"jwk", {{"kty", "oct"}, {"k", b64url(attacker)}}},
                      {"jku", "https://evil.example/jwks"}};
  std::string tok =
      make_token({attacker, nullptr}, Alg::kHS256, json::serialize(header), R"({"sub":"x"})");
  EXPECT_EQ(verify(tok, keys_, rules_, kNow, nullptr), Failure::kSignature);
}

TEST_F(JwtHs256, KeySelectionByKid) {
  std::string error;
  std::string other_secret(48, 'o');
  KeySet set;
  set.keys.push_back(Key::hmac(other_secret, "other", std::nullopt, &error));
  set.keys.push_back(keys_.keys[0]);
  Verified out;
  EXPECT_EQ(verify(token(R"({"sub":"x"})"), set, rules_, kNow, &out), std::nullopt);
  EXPECT_EQ(out.kid, "main");
  // An unknown kid says the key set may be stale.
  EXPECT_EQ(verify(token("{}", header_for(Alg::kHS256, "rotated")), set, rules_, kNow, nullptr),
            Failure::kUnknownKey);
  EXPECT_EQ(verify(token("{}"), KeySet{}, rules_, kNow, nullptr), Failure::kUnknownKey);
  // An empty kid is a kid like any other: only keys without a kid match it.
  EXPECT_EQ(verify(token("{}", R"({"alg":"HS256","kid":""})"), set, rules_, kNow, nullptr),
            Failure::kUnknownKey);
  // A known kid whose key does not verify is a bad signature, even if another key would.
  std::string by_other =
      make_token({other_secret, nullptr}, Alg::kHS256, header_for(Alg::kHS256, "main"), "{}");
  EXPECT_EQ(verify(by_other, set, rules_, kNow, nullptr), Failure::kSignature);
  // Without a kid every key that accepts the algorithm is tried, and the verifying key's kid
  // is reported.
  std::string no_kid =
      make_token({other_secret, nullptr}, Alg::kHS256, header_for(Alg::kHS256), R"({"sub":"y"})");
  out = {};
  EXPECT_EQ(verify(no_kid, set, rules_, kNow, &out), std::nullopt);
  EXPECT_EQ(out.kid, "other");
  // ... but keys restricted to another algorithm, or of another type, are not candidates.
  KeySet restricted{{Key::hmac(other_secret, "r", Alg::kHS384, &error)}};
  EXPECT_EQ(verify(no_kid, restricted, rules_, kNow, nullptr), Failure::kUnknownKey);
  KeySet wrong_type{{jwk_key(public_jwk(test_keys().p256.get(), ""))}};
  EXPECT_EQ(verify(no_kid, wrong_type, rules_, kNow, nullptr), Failure::kUnknownKey);
  // Two keys with one kid (a rotation in progress): either may verify.
  KeySet rotating;
  rotating.keys.push_back(Key::hmac(std::string(32, 'n'), "main", std::nullopt, &error));
  rotating.keys.push_back(keys_.keys[0]);
  EXPECT_EQ(verify(token("{}"), rotating, rules_, kNow, nullptr), std::nullopt);
  // Null entries in a hand-built key set are skipped.
  KeySet with_null{{nullptr, keys_.keys[0]}};
  EXPECT_EQ(verify(token("{}"), with_null, rules_, kNow, nullptr), std::nullopt);
}

TEST_F(JwtHs256, PayloadMustBeAJsonObjectWithoutDuplicates) {
  EXPECT_EQ(check("{}"), std::nullopt);
  EXPECT_EQ(check(""), Failure::kMalformed);
  EXPECT_EQ(check("Test"), Failure::kMalformed);
  EXPECT_EQ(check("123400"), Failure::kMalformed);
  EXPECT_EQ(check(R"(["sub"])"), Failure::kMalformed);
  EXPECT_EQ(check("null"), Failure::kMalformed);
  EXPECT_EQ(check(R"({"sub":"a"} x)"), Failure::kMalformed);
  EXPECT_EQ(check(R"({"sub":"a",})"), Failure::kMalformed);
  EXPECT_EQ(check(R"({"sub":"a","sub":"b"})"), Failure::kMalformed);
  EXPECT_EQ(check(R"({"exp":1,"exp":9999999999})"), Failure::kMalformed);
  EXPECT_EQ(check(R"({"a":[{"b":1,"b":1}]})"), Failure::kMalformed);
  EXPECT_EQ(check(R"({"a":{"b":1},"c":{"b":1}})"), std::nullopt);   // same name, other objects
  EXPECT_EQ(check("{\"sub\":\"\xc3\x28\"}"), Failure::kMalformed);  // invalid UTF-8
  EXPECT_EQ(check(std::string(40, '[') + std::string(40, ']')), Failure::kMalformed);
}

TEST_F(JwtHs256, VerifiedOutputIsFilledOnlyOnSuccess) {
  Verified out;
  out.kid = "untouched";
  EXPECT_EQ(verify(token(R"({"exp":1})"), keys_, rules_, kNow, &out), Failure::kExpired);
  EXPECT_EQ(out.kid, "untouched");
  EXPECT_TRUE(out.claims.empty());
  EXPECT_EQ(verify(token(R"({"sub":"s","n":[1,2]})"), keys_, rules_, kNow, &out), std::nullopt);
  EXPECT_EQ(out.alg, Alg::kHS256);
  EXPECT_EQ(out.kid, "main");
  EXPECT_EQ(out.claims.size(), 2u);
  EXPECT_EQ(claim_text(out.claims, "sub"), "s");
  EXPECT_EQ(verify(token("{}"), keys_, rules_, kNow, nullptr), std::nullopt);
}

TEST_F(JwtHs256, TimeClaimsWithLeeway) {
  auto at = [&](std::string_view claim, int64_t value) {
    return check("{\"" + std::string(claim) + "\":" + std::to_string(value) + "}");
  };
  // RFC 7519 section 4.1.4: expired at exp itself.
  EXPECT_EQ(at("exp", kNow + 1), std::nullopt);
  EXPECT_EQ(at("exp", kNow), Failure::kExpired);
  EXPECT_EQ(at("exp", 0), Failure::kExpired);
  EXPECT_EQ(at("nbf", kNow), std::nullopt);
  EXPECT_EQ(at("nbf", kNow + 1), Failure::kNotYetValid);
  EXPECT_EQ(at("iat", kNow), std::nullopt);
  EXPECT_EQ(at("iat", kNow + 1), Failure::kNotYetValid);
  EXPECT_EQ(at("iat", 0), std::nullopt);
  rules_.leeway = 30s;
  EXPECT_EQ(at("exp", kNow - 29), std::nullopt);
  EXPECT_EQ(at("exp", kNow - 30), Failure::kExpired);
  EXPECT_EQ(at("nbf", kNow + 30), std::nullopt);
  EXPECT_EQ(at("nbf", kNow + 31), Failure::kNotYetValid);
  EXPECT_EQ(at("iat", kNow + 30), std::nullopt);
  EXPECT_EQ(at("iat", kNow + 31), Failure::kNotYetValid);
  rules_.leeway = 0s;
  // NumericDate may be fractional (RFC 7519 section 2) or large.
  EXPECT_EQ(check(R"({"exp":1700000000.5})"), std::nullopt);
  EXPECT_EQ(check(R"({"exp":1700000000.5})", kNow + 1), Failure::kExpired);
  EXPECT_EQ(check(R"({"exp":1.7e9})", kNow), Failure::kExpired);
  EXPECT_EQ(check(R"({"exp":18446744073709551615})"), std::nullopt);
  EXPECT_EQ(check(R"({"nbf":-1,"iat":-1})"), std::nullopt);
  // Not numbers: malformed, not merely "absent".
  for (std::string_view bad : {R"({"exp":"1800000000"})", R"({"exp":null})", R"({"nbf":true})",
                               R"({"iat":[1]})", R"({"nbf":{}})", R"({"iat":"0"})"}) {
    EXPECT_EQ(check(bad), Failure::kMalformed) << bad;
  }
  // Both wrong: expiry is reported.
  EXPECT_EQ(check(R"({"exp":1,"nbf":9999999999})"), Failure::kExpired);
}

TEST_F(JwtHs256, IssuerAndAudience) {
  rules_.issuer = "https://issuer.example";
  EXPECT_EQ(check(R"({"iss":"https://issuer.example"})"), std::nullopt);
  EXPECT_EQ(check(R"({"iss":"https://issuer.example/"})"), Failure::kIssuer);
  EXPECT_EQ(check(R"({"iss":"HTTPS://ISSUER.EXAMPLE"})"), Failure::kIssuer);
  EXPECT_EQ(check(R"({"iss":["https://issuer.example"]})"), Failure::kIssuer);
  EXPECT_EQ(check(R"({"sub":"x"})"), Failure::kIssuer);
  rules_.issuer.clear();
  EXPECT_EQ(check(R"({"iss":"anyone"})"), std::nullopt);

  rules_.audiences = {"api", "api2"};
  EXPECT_EQ(check(R"({"aud":"api"})"), std::nullopt);
  EXPECT_EQ(check(R"({"aud":"api2"})"), std::nullopt);
  EXPECT_EQ(check(R"({"aud":["other","api2"]})"), std::nullopt);
  EXPECT_EQ(check(R"({"aud":[1,"api"]})"), std::nullopt);
  EXPECT_EQ(check(R"({"aud":"API"})"), Failure::kAudience);
  EXPECT_EQ(check(R"({"aud":"api "})"), Failure::kAudience);
  EXPECT_EQ(check(R"({"aud":"api api2"})"), Failure::kAudience);
  EXPECT_EQ(check(R"({"aud":["other"]})"), Failure::kAudience);
  EXPECT_EQ(check(R"({"aud":[]})"), Failure::kAudience);
  EXPECT_EQ(check(R"({"aud":null})"), Failure::kAudience);
  EXPECT_EQ(check(R"({"aud":{"api":true}})"), Failure::kAudience);
  EXPECT_EQ(check(R"({"sub":"x"})"), Failure::kAudience);
  rules_.audiences.clear();
  EXPECT_EQ(check(R"({"aud":"whatever"})"), std::nullopt);
}

TEST_F(JwtHs256, RequiredClaims) {
  rules_.required_claims = {"sub", "tenant"};
  EXPECT_EQ(check(R"({"sub":"a","tenant":"t"})"), std::nullopt);
  EXPECT_EQ(check(R"({"sub":"","tenant":0})"), std::nullopt);  // present, even if falsy
  EXPECT_EQ(check(R"({"sub":false,"tenant":[]})"), std::nullopt);
  EXPECT_EQ(check(R"({"sub":"a"})"), Failure::kMissingClaim);
  EXPECT_EQ(check(R"({"sub":"a","tenant":null})"), Failure::kMissingClaim);
  EXPECT_EQ(check(R"({"Sub":"a","tenant":"t"})"), Failure::kMissingClaim);
}

TEST_F(JwtHs256, Scopes) {
  rules_.required_scopes = {"read", "write"};
  EXPECT_EQ(check(R"({"scope":"read write"})"), std::nullopt);
  EXPECT_EQ(check(R"({"scope":"write admin read"})"), std::nullopt);
  EXPECT_EQ(check(R"({"scope":"read  write"})"), std::nullopt);
  EXPECT_EQ(check(R"({"scope":"read"})"), Failure::kScope);
  EXPECT_EQ(check(R"({"scope":"readwrite"})"), Failure::kScope);
  EXPECT_EQ(check(R"({"scope":"read,write"})"), Failure::kScope);
  EXPECT_EQ(check(R"({"scope":"rea write"})"), Failure::kScope);
  EXPECT_EQ(check(R"({"scope":["read","write"]})"), Failure::kScope);  // "scope" is a string
  EXPECT_EQ(check(R"({"scp":["read","write"]})"), std::nullopt);
  EXPECT_EQ(check(R"({"scp":["write",7,"read"]})"), std::nullopt);
  EXPECT_EQ(check(R"({"scp":"write read"})"), std::nullopt);
  EXPECT_EQ(check(R"({"scp":["read write"]})"), Failure::kScope);
  EXPECT_EQ(check(R"({"scp":["read"]})"), Failure::kScope);
  EXPECT_EQ(check(R"({"scp":{"read":true,"write":true}})"), Failure::kScope);
  EXPECT_EQ(check(R"({"scope":"read","scp":["write"]})"), std::nullopt);  // between them
  EXPECT_EQ(check(R"({"sub":"x"})"), Failure::kScope);
  rules_.required_scopes.clear();
  EXPECT_EQ(check(R"({"sub":"x"})"), std::nullopt);
}

TEST_F(JwtHs256, RefusalOrder) {
  rules_.issuer = "iss";
  rules_.audiences = {"aud"};
  rules_.required_claims = {"sub"};
  rules_.required_scopes = {"s"};
  EXPECT_EQ(check(R"({"iss":"iss","aud":"aud","sub":"x","scope":"s"})"), std::nullopt);
  EXPECT_EQ(check(R"({"exp":1,"iss":"no"})"), Failure::kExpired);
  EXPECT_EQ(check(R"({"nbf":9999999999,"iss":"no"})"), Failure::kNotYetValid);
  EXPECT_EQ(check(R"({"iss":"no","aud":"no"})"), Failure::kIssuer);
  EXPECT_EQ(check(R"({"iss":"iss","aud":"no"})"), Failure::kAudience);
  EXPECT_EQ(check(R"({"iss":"iss","aud":"aud"})"), Failure::kMissingClaim);
  EXPECT_EQ(check(R"({"iss":"iss","aud":"aud","sub":"x"})"), Failure::kScope);
  // The signature comes before any claim: a forged token learns nothing about the rules.
  std::string forged = make_token({std::string(32, 'f'), nullptr}, Alg::kHS256,
                                  header_for(Alg::kHS256, "main"), R"({"exp":1})");
  EXPECT_EQ(verify(forged, keys_, rules_, kNow, nullptr), Failure::kSignature);
  // Even a forged signature over a non-JSON payload is a signature failure, not malformed.
  std::string forged_text = make_token({std::string(32, 'f'), nullptr}, Alg::kHS256,
                                       header_for(Alg::kHS256, "main"), "not json");
  EXPECT_EQ(verify(forged_text, keys_, rules_, kNow, nullptr), Failure::kSignature);
  // The algorithm before the key, "crit" before the key.
  EXPECT_EQ(verify(token("{}", header_for(Alg::kHS384, "nobody")), keys_, rules_, kNow, nullptr),
            Failure::kAlgorithm);
  EXPECT_EQ(verify(token("{}", R"({"alg":"HS256","kid":"nobody","crit":["x"]})"), keys_, rules_,
                   kNow, nullptr),
            Failure::kCritical);
}

TEST_F(JwtHs256, ClaimsAreReturnedForHeaders) {
  Verified out;
  ASSERT_EQ(verify(token(R"({"sub":"u1","groups":["a","b"],"admin":true,"level":3})"), keys_,
                   rules_, kNow, &out),
            std::nullopt);
  EXPECT_EQ(claim_text(out.claims, "sub"), "u1");
  EXPECT_EQ(claim_text(out.claims, "groups"), "a b");
  EXPECT_EQ(claim_text(out.claims, "admin"), "true");
  EXPECT_EQ(claim_text(out.claims, "level"), "3");
}

}  // namespace
}  // namespace gatehouse::jwt
