// JWT verification (jwt::verify): JWS compact serialisation, base64url, strict JSON, the key
// chosen by kid and algorithm, signatures and claims. Input: one byte of settings, then
//   bit 0 clear: a token, verified as received;
//   bit 0 set:   "header JSON\npayload JSON", which the target encodes and signs with the HMAC
//                key (the algorithm the header names), so the claims checks are reached too.
// Bits 1-3 choose the rules. Keys: RFC 7515 A.1-A.3 and RFC 8037's Ed25519 key, whose example
// tokens are in the seed corpus. Invariants: base64url is canonical (decode then encode gives
// the input back); a token we signed ourselves never fails on its signature, key or algorithm;
// a verified token meets the rules.
#include "jwt/jwt.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <boost/json/object.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz/fuzz.h"
#include "jwt/internal.h"

namespace {

using namespace gatehouse;

// Public keys of RFC 7515 A.1 (oct), A.2 (RSA), A.3 (EC P-256) and RFC 8037 A (Ed25519).
constexpr std::string_view kJwks =
    "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-"
    "1qS0gZH75aKtMN3Yj0"
    "iPS4hcgUuTwjAzZr1Z9CAow\"},{\"kty\":\"RSA\",\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_"
    "wWJcyQoTbji9"
    "k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b3269"
    "0r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665"
    "xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91"
    "kzk2PAcDTW9gb54h4FRWyuXpoQ\",\"e\":\"AQAB\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":"
    "\"f83OJ3D2xF1Bg8vub9t"
    "Le1gHMzV76e8Tus9uPHvRVEU\",\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"},{\"kty\":"
    "\"OKP\","
    "\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}";
// RFC 7515 A.1's HMAC key, raw.
constexpr std::string_view kHmacKeyB64 =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
// Just before the RFC 7515 examples' "exp" (1300819380), so their tokens verify completely.
constexpr int64_t kNow = 1300819000;

const jwt::KeySet& keys() {
  static const jwt::KeySet set = [] {
    std::string error;
    auto s = jwt::parse_jwks(kJwks, &error);
    FUZZ_CHECK(s && s->keys.size() == 4);
    return *s;
  }();
  return set;
}

jwt::Rules rules(uint8_t variant) {
  jwt::Rules r;
  for (int a = 0; a <= static_cast<int>(jwt::Alg::kEdDSA); ++a)
    r.algorithms.push_back(static_cast<jwt::Alg>(a));
  if (variant & 1) r.issuer = "joe";
  if (variant & 2) r.audiences = {"gatehouse", "other"};
  if (variant & 4) {
    r.leeway = std::chrono::seconds(30);
    r.required_claims = {"sub"};
    r.required_scopes = {"read"};
  }
  return r;
}

std::string base64url(std::string_view in) {
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
      out += kAlphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 63];
  return out;
}

// Strict base64url has one spelling per byte string.
void check_base64url(std::string_view part) {
  auto decoded = jwt::base64url_decode(part);
  if (decoded) FUZZ_CHECK(base64url(*decoded) == part);
}

void check_verified(const jwt::Verified& v, const jwt::Rules& r) {
  FUZZ_CHECK(std::find(r.algorithms.begin(), r.algorithms.end(), v.alg) != r.algorithms.end());
  if (!r.issuer.empty()) FUZZ_CHECK(jwt::claim_text(v.claims, "iss") == r.issuer);
  for (const auto& c : r.required_claims) FUZZ_CHECK(v.claims.contains(c));
  for (const auto& [name, value] : v.claims) jwt::claim_text(v.claims, name);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t settings = data[0];
  std::string_view in = fuzz::as_text(data + 1, size - 1);
  const jwt::Rules r = rules(settings >> 1);

  if (!(settings & 1)) {
    size_t start = 0;
    while (start <= in.size()) {
      size_t dot = in.find('.', start);
      check_base64url(in.substr(start, dot - start));
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
    jwt::Verified v;
    if (!jwt::verify(in, keys(), r, kNow, &v)) check_verified(v, r);
    return 0;
  }

  size_t nl = in.find('\n');
  if (nl == std::string_view::npos) return 0;
  std::string_view header = in.substr(0, nl), payload = in.substr(nl + 1);
  // The HMAC algorithm the header names, if it is one.
  std::optional<jwt::Alg> alg;
  bool crit = false, kid_ok = true;
  if (auto h = jwt::parse_strict(header); h && h->is_object()) {
    const auto& o = h->get_object();
    if (auto a = jwt::alg_from_name(jwt::string_member(o, "alg"));
        a && jwt::family(*a) == jwt::Family::kHmac)
      alg = a;
    crit = o.contains("crit");
    // The test keys have no kid, which only an empty kid matches.
    if (const auto* kid = o.if_contains("kid"))
      kid_ok = kid->is_string() && kid->get_string().empty();
  }
  const EVP_MD* md = alg ? jwt::digest(*alg) : EVP_sha256();
  std::string token = base64url(header) + "." + base64url(payload);
  std::string key = *jwt::base64url_decode(kHmacKeyB64);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  FUZZ_CHECK(HMAC(md, key.data(), static_cast<int>(key.size()),
                  reinterpret_cast<const unsigned char*>(token.data()), token.size(), mac,
                  &mac_len));
  token.append(".").append(
      base64url(std::string_view(reinterpret_cast<const char*>(mac), mac_len)));

  jwt::Verified v;
  auto failure = jwt::verify(token, keys(), r, kNow, &v);
  if (!failure) {
    check_verified(v, r);
    FUZZ_CHECK(alg && v.alg == *alg && !crit);
    return 0;
  }
  if (alg && !crit && kid_ok && token.size() <= r.max_token_bytes) {
    // Signed by a key of the set with the algorithm the header names: only the claims may fail.
    FUZZ_CHECK(*failure != jwt::Failure::kSignature && *failure != jwt::Failure::kUnknownKey &&
               *failure != jwt::Failure::kAlgorithm && *failure != jwt::Failure::kCritical);
    auto p = jwt::parse_strict(payload);
    if (*failure == jwt::Failure::kMalformed) {
      // Only a payload that is not a JSON object, or NumericDates that are not numbers.
      FUZZ_CHECK(!p || !p->is_object() || p->get_object().contains("exp") ||
                 p->get_object().contains("nbf") || p->get_object().contains("iat"));
    }
  }
  return 0;
}
