// Test certificates for the TLS unit tests: one self-signed certificate, made with OpenSSL.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <string>

namespace gatehouse::tls {

// Writes to `path` a PEM certificate for `key`, signed by itself, with subject CN `cn` and, unless
// `sans` is empty, those subjectAltNames in OpenSSL's syntax ("DNS:a.example,IP:10.0.0.1"). Valid
// from a minute ago (no clock-skew surprise) for an hour. False when `sans` or the file is bad.
inline bool write_self_signed(const std::string& path, EVP_PKEY* key, const std::string& cn,
                              const std::string& sans = "") {
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* subject = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, subject);
  bool ok = true;
  if (!sans.empty()) {
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, sans.c_str());
    ok = ext != nullptr;
    if (ext) X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, key, EVP_sha256());
  FILE* f = std::fopen(path.c_str(), "w");
  if (f) {
    ok = PEM_write_X509(f, x) == 1 && ok;
    std::fclose(f);
  }
  X509_free(x);
  return ok && f;
}

}  // namespace gatehouse::tls
