// What the server and client contexts share. Included by src/tls/*.cc only (OpenSSL headers stay
// out of everything else).
#pragma once

#include <openssl/err.h>

#include <string>

namespace gatehouse::tls {

// Mozilla's intermediate profile (v5.7) for TLS 1.2: ECDHE with AEAD ciphers only. (TLS 1.3
// suites are all AEAD.)
inline constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// The oldest error on this thread's queue, as text; empties the queue.
inline std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

}  // namespace gatehouse::tls
