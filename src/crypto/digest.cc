#include "crypto/digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace gatehouse::crypto {

// EVP_Digest with EVP_sha256() looks the algorithm up in the provider registry on every call
// (OpenSSL 3's implicit fetch, several thousand instructions); fetch it once, and keep one context
// per thread, so that hashing an API key costs the hash.
Sha256 sha256(std::string_view data) {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local struct Context {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Context() { EVP_MD_CTX_free(ctx); }
  } local;
  Sha256 out{};
  unsigned int len = 0;
  EVP_DigestInit_ex2(local.ctx, md, nullptr);
  EVP_DigestUpdate(local.ctx, data.data(), data.size());
  EVP_DigestFinal_ex(local.ctx, out.data(), &len);
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string hex(const uint8_t* data, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) (out += kHex[data[i] >> 4]) += kHex[data[i] & 15];
  return out;
}

std::optional<Sha256> parse_sha256_hex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  Sha256 out{};
  for (size_t i = 0; i < 32; ++i) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return out;
}

bool equal_constant_time(const Sha256& a, const Sha256& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace gatehouse::crypto
