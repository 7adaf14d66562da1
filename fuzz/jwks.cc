// JWK / JWKS documents (jwt::parse_jwks, Key::from_jwk) and PEM keys (Key::from_pem, when the
// input starts with "-----BEGIN"). Invariants: a refused document says why; every key in a set
// is usable for some algorithm, and a wrong signature never verifies; the reasons for skipped keys,
// which end up in logs, hold no control characters; the RFC 7515 example tokens verify against
// the parsed set without crashing, and only with an algorithm the key accepts.
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz.h"
#include "jwt/jwt.h"

namespace {

using namespace gatehouse;

// RFC 7515 A.1 (HS256), A.2 (RS256), A.3 (ES256) and RFC 8037 A.4 (EdDSA).
constexpr std::string_view kTokens[] = {
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0"
    "dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv"
    "bS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__"
    "dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4B"
    "h-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBA"
    "rLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1p"
    "hCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw",
    "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv"
    "bS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-"
    "F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKT"
    "UJqPP3-Kg6NU1Q",
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-"
    "09PGcvMg3AI"
    "bQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
};
constexpr int64_t kNow = 1300819000;  // before the examples' "exp"

constexpr jwt::Alg kAlgs[] = {jwt::Alg::kHS256, jwt::Alg::kHS384, jwt::Alg::kHS512,
                              jwt::Alg::kRS256, jwt::Alg::kRS384, jwt::Alg::kRS512,
                              jwt::Alg::kPS256, jwt::Alg::kPS384, jwt::Alg::kPS512,
                              jwt::Alg::kES256, jwt::Alg::kES384, jwt::Alg::kEdDSA};

bool printable(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20) return false;
  }
  return true;
}

void check_key(const jwt::Key& key) {
  bool any = false;
  for (jwt::Alg alg : kAlgs) {
    bool accepts = key.accepts(alg);
    any = any || accepts;
    // Wrong signatures of a few lengths, including empty and the lengths real ones have.
    for (size_t n : {0, 1, 64, 256}) {
      std::string sig(n, '\x5a');
      FUZZ_CHECK(!key.verify(alg, "e30.e30", sig));
    }
  }
  FUZZ_CHECK(any);
}

void check_set(const jwt::KeySet& set) {
  for (const auto& key : set.keys) {
    FUZZ_CHECK(key);
    check_key(*key);
  }
  jwt::Rules rules;
  rules.algorithms.assign(std::begin(kAlgs), std::end(kAlgs));
  for (std::string_view token : kTokens) {
    jwt::Verified v;
    if (jwt::verify(token, set, rules, kNow, &v)) continue;
    bool accepted = false;
    for (const auto& key : set.keys) accepted = accepted || key->accepts(v.alg);
    FUZZ_CHECK(accepted);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = fuzz::as_text(data, size);
  std::string error;
  if (in.starts_with("-----BEGIN")) {
    auto key = jwt::Key::from_pem(in, "pem", &error);
    if (!key) {
      FUZZ_CHECK(!error.empty());
      return 0;
    }
    FUZZ_CHECK(key->kid() == "pem");
    check_set(jwt::KeySet{{key}});
    return 0;
  }
  std::vector<std::string> skipped;
  auto set = jwt::parse_jwks(in, &error, &skipped);
  if (!set) {
    FUZZ_CHECK(!error.empty() && printable(error));
    return 0;
  }
  for (const auto& why : skipped) FUZZ_CHECK(!why.empty() && printable(why));
  check_set(*set);
  return 0;
}
