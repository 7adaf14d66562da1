// Digests and constant-time comparison (OpenSSL). Used for API keys and, later, JWT checks.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gatehouse::crypto {

using Sha256 = std::array<uint8_t, 32>;

Sha256 sha256(std::string_view data);

// The value of one hexadecimal digit (either case), or -1.
int hex_value(char c);

// Lower-case hexadecimal of `n` bytes (a digest, or its first bytes).
std::string hex(const uint8_t* data, size_t n);

// Parses 64 hexadecimal digits (either case).
std::optional<Sha256> parse_sha256_hex(std::string_view hex);

// Compares in time that depends only on the length (CRYPTO_memcmp).
bool equal_constant_time(const Sha256& a, const Sha256& b);

}  // namespace gatehouse::crypto
