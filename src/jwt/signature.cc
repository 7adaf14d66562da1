// JWS algorithms (RFC 7518 section 3.1, RFC 8037 section 3.1) and signature verification: HMAC
// in constant time, RSA PKCS#1 v1.5 and PSS, ECDSA (R||S to DER), Ed25519, on OpenSSL 3's EVP
// APIs. The choice of key, and which algorithms a key accepts, are in keys.cc.
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include <array>

#include "jwt/internal.h"

namespace gatehouse::jwt {
namespace {

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

bool Key::verify(Alg alg, std::string_view signing_input, std::string_view signature) const {
  if (!accepts(alg)) return false;
  bool ok = impl_->type == KeyType::kOct
                ? verify_hmac(impl_->secret, alg, signing_input, signature)
                : verify_pkey(impl_->pkey.get(), alg, signing_input, signature);
  if (!ok) ERR_clear_error();  // a bad signature is an answer, not an error to leave queued
  return ok;
}

}  // namespace gatehouse::jwt
