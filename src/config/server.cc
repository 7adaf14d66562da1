// The server section: workers, listeners and their TLS, limits, timeouts, trusted proxies, path
// normalisation; and the TLS settings both sides share (the client side is used by upstreams.tls
// and redis.tls). Part of the Loader (config/loader.h).
#include "config/loader.h"
#include "tls/client_context.h"
#include "tls/server_context.h"

namespace gatehouse::config {

void Loader::server(const YAML::Node& n, Server* s) {
  if (!r_.check_map(n, "server",
                    {"workers", "listen", "limits", "timeouts", "trusted_proxies",
                     "path_normalization", "http2"}))
    return;
  if (auto w = n["workers"]) {
    if (w.IsScalar() && w.Scalar() == "auto") {
      s->workers = 0;
    } else if (auto v = r_.integer(w, "server.workers", 1, 1024)) {
      s->workers = static_cast<int>(*v);
    }
  }
  if (auto l = n["listen"]) {
    if (!l.IsSequence()) {
      r_.error(l, "server.listen", "expected a list of listeners");
    } else {
      for (size_t i = 0; i < l.size(); ++i) {
        std::string path = index("server.listen", i);
        if (!r_.check_map(l[i], path, {"address", "tls", "protocols"})) continue;
        if (!l[i]["address"]) {
          r_.error(l[i], path, "'address' is required");
          continue;
        }
        if (auto a = address(l[i]["address"], child(path, "address"), false)) {
          Listener listener{*a, nullptr};
          if (auto t = l[i]["tls"]) listener.tls = tls(t, child(path, "tls"));
          if (auto p = l[i]["protocols"]) {
            protocols(p, child(path, "protocols"), &listener);
            if (listener.h2c && l[i]["tls"])
              r_.error(p, child(path, "protocols"),
                       "h2c is cleartext HTTP/2: on a TLS listener, offer h2 in tls.alpn");
          }
          s->listen.push_back(std::move(listener));
        }
      }
    }
  }
  if (auto l = n["limits"]) {
    if (r_.check_map(l, "server.limits",
                     {"max_header_bytes", "max_body_bytes", "max_connections", "max_uri_bytes",
                      "max_headers"})) {
      auto sz = [&](const char* key, uint64_t* out, uint64_t min) {
        if (auto v = l[key]) {
          if (auto b = r_.size(v, child("server.limits", key))) {
            if (*b < min) {
              r_.error(v, child("server.limits", key), "must be at least " + std::to_string(min));
            } else {
              *out = *b;
            }
          }
        }
      };
      sz("max_header_bytes", &s->limits.max_header_bytes, 1024);
      sz("max_body_bytes", &s->limits.max_body_bytes, 0);
      sz("max_uri_bytes", &s->limits.max_uri_bytes, 64);
      if (s->limits.max_uri_bytes > s->limits.max_header_bytes)
        s->limits.max_uri_bytes = s->limits.max_header_bytes;
      if (auto v = l["max_connections"]) {
        if (auto x = r_.integer(v, "server.limits.max_connections", 1, 10'000'000))
          s->limits.max_connections = static_cast<uint64_t>(*x);
      }
      if (auto v = l["max_headers"]) {
        if (auto x = r_.integer(v, "server.limits.max_headers", 1, 10'000))
          s->limits.max_headers = static_cast<uint32_t>(*x);
      }
    }
  }
  if (auto t = n["timeouts"]) {
    if (r_.check_map(t, "server.timeouts", {"header_read", "idle", "body_read", "send", "drain"})) {
      // `positive`: a deadline every connection or request meets at once would refuse them all.
      auto d = [&](const char* key, Duration* out, bool positive) {
        if (auto v = t[key]) {
          if (auto x = r_.duration(v, child("server.timeouts", key))) {
            if (positive && x->count() < 1)
              r_.error(v, child("server.timeouts", key), "must be at least 1ms");
            else
              *out = *x;
          }
        }
      };
      d("header_read", &s->timeouts.header_read, true);
      d("idle", &s->timeouts.idle, true);
      d("body_read", &s->timeouts.body_read, true);
      d("send", &s->timeouts.send, true);
      d("drain", &s->timeouts.drain, false);
    }
  }
  if (auto h = n["http2"]) http2(h, &s->http2);
  if (auto p = n["path_normalization"]) {
    const std::string path = "server.path_normalization";
    if (r_.check_map(p, path, {"merge_slashes", "encoded_slashes"})) {
      if (auto v = p["merge_slashes"]) {
        if (auto b = r_.boolean(v, child(path, "merge_slashes")))
          s->path_normalization.merge_slashes = *b;
      }
      if (auto v = p["encoded_slashes"]) {
        if (auto e = r_.str(v, child(path, "encoded_slashes"))) {
          if (*e == "reject" || *e == "keep") {
            s->path_normalization.reject_encoded_slashes = *e == "reject";
          } else {
            r_.error(v, child(path, "encoded_slashes"),
                     "expected reject or keep, got '" + *e + "'");
          }
        }
      }
    }
  }
  if (auto t = n["trusted_proxies"]) {
    auto list = r_.str_list(t, "server.trusted_proxies");
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto c = parse_cidr(list[i])) {
        s->trusted_proxies.push_back(*c);
      } else {
        r_.error(t.IsSequence() ? t[i] : t, index("server.trusted_proxies", i),
                 "invalid CIDR '" + list[i] + "'");
      }
    }
  }
}

// server.http2: what the gateway tells HTTP/2 clients in SETTINGS (RFC 9113 6.5.2), each
// within the RFC's range.
void Loader::http2(const YAML::Node& n, Http2* out) const {
  const std::string path = "server.http2";
  if (!r_.check_map(
          n, path,
          {"max_concurrent_streams", "stream_window", "connection_window", "max_frame_size"}))
    return;
  if (auto v = n["max_concurrent_streams"]) {
    if (auto x = r_.integer(v, child(path, "max_concurrent_streams"), 1, 10'000))
      out->max_concurrent_streams = static_cast<uint32_t>(*x);
  }
  auto sz = [&](const char* key, uint32_t* field, uint64_t min, uint64_t max) {
    if (auto v = n[key]) {
      if (auto b = r_.size(v, child(path, key))) {
        if (*b < min || *b > max) {
          r_.error(
              v, child(path, key),
              "must be within " + std::to_string(min) + " and " + std::to_string(max) + " bytes");
        } else {
          *field = static_cast<uint32_t>(*b);
        }
      }
    }
  };
  constexpr uint64_t kMaxWindow = (uint64_t{1} << 31) - 1;  // RFC 9113 6.9.1
  sz("stream_window", &out->stream_window, 1024, kMaxWindow);
  sz("connection_window", &out->connection_window, 65535, kMaxWindow);
  sz("max_frame_size", &out->max_frame_size, 16384, (1 << 24) - 1);  // RFC 9113 6.5.2
}

// listen[].protocols: what a cleartext listener speaks, http1 and h2c (HTTP/2 with prior
// knowledge, RFC 9113 3.3). A TLS listener's protocols are its ALPN list (tls.alpn).
void Loader::protocols(const YAML::Node& n, const std::string& path, Listener* out) const {
  auto list = r_.str_list(n, path);
  if (list.empty()) return;
  out->http1 = out->h2c = false;
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node& at = n.IsSequence() ? n[i] : n;
    if (list[i] == "http1") {
      out->http1 = true;
    } else if (list[i] == "h2c") {
      out->h2c = true;
    } else if (list[i] == "h2") {
      r_.error(at, index(path, i), "'h2' is chosen by ALPN: list it in tls.alpn, not here");
    } else {
      r_.error(at, index(path, i), "unknown protocol '" + list[i] + "' (known: http1, h2c)");
    }
  }
}

// listen[].tls: certificates chosen by SNI, a protocol floor, ALPN (docs/configuration.md).
std::shared_ptr<const tls::ServerContext> Loader::tls(const YAML::Node& n,
                                                      const std::string& path) {
  if (!r_.check_map(n, path, {"certificates", "min_version", "alpn"})) return nullptr;
  tls::ServerSettings settings;
  auto certs = n["certificates"];
  if (!certs || !certs.IsSequence() || certs.size() == 0) {
    r_.error(certs ? certs : n, child(path, "certificates"),
             "expected a list of { cert: FILE, key: FILE } (the first is the default)");
    return nullptr;
  }
  bool ok = true;
  for (size_t i = 0; i < certs.size(); ++i) {
    std::string cp = index(child(path, "certificates"), i);
    if (!r_.check_map(certs[i], cp, {"cert", "key"})) {
      ok = false;
      continue;
    }
    auto cert = certs[i]["cert"] ? r_.str(certs[i]["cert"], child(cp, "cert")) : std::nullopt;
    auto key = certs[i]["key"] ? r_.str(certs[i]["key"], child(cp, "key")) : std::nullopt;
    if (!cert || !key) {
      if (!certs[i]["cert"] || !certs[i]["key"])
        r_.error(certs[i], cp, "'cert' and 'key' are required");
      ok = false;
      continue;
    }
    settings.certificates.push_back({r_.resolve_path(*cert), r_.resolve_path(*key)});
  }
  if (auto v = n["min_version"]) {
    if (!tls_version(v, child(path, "min_version"), &settings.min_version)) ok = false;
  }
  if (auto v = n["alpn"]) {
    settings.alpn = r_.str_list(v, child(path, "alpn"));
    for (size_t i = 0; i < settings.alpn.size(); ++i) {
      const auto& proto = settings.alpn[i];
      const YAML::Node& at = v.IsSequence() ? v[i] : v;
      if (proto != "h2" && proto != "http/1.1") {
        r_.error(at, index(child(path, "alpn"), i),
                 "unknown protocol '" + proto + "' (known: http/1.1, h2)");
        ok = false;
      }
    }
  }
  if (!ok) return nullptr;
  std::string error;
  auto ctx = tls::ServerContext::create(settings, &error);
  if (!ctx) r_.error(n, path, error);
  return ctx;
}

// upstreams.*.tls (HTTPS to the targets) and redis.tls (rediss://): the client side of TLS,
// verified (docs/configuration.md, docs/security.md).
std::shared_ptr<const tls::ClientContext> Loader::client_tls(const YAML::Node& n,
                                                             const std::string& path, bool http2) {
  tls::ClientSettings settings;
  settings.http2 = http2;
  // `tls:` with nothing after it, like `tls: {}`: every default.
  if (n.IsNull()) return client_context(settings, n, path);
  if (!r_.check_map(n, path, {"ca_file", "server_name", "verify", "min_version"})) return nullptr;
  bool ok = true;
  auto ca = n["ca_file"];
  if (ca) {
    auto f = r_.str(ca, child(path, "ca_file"));
    if (f && !f->empty()) {
      settings.ca_file = r_.resolve_path(*f);
    } else {
      if (f)
        r_.error(ca, child(path, "ca_file"),
                 "must not be empty (leave it out for the system CA store)");
      ok = false;
    }
  }
  if (auto v = n["server_name"]) {
    auto name = r_.str(v, child(path, "server_name"));
    if (name && tls::valid_server_name(*name)) {
      settings.server_name = lower(*name);
    } else {
      if (name)
        r_.error(v, child(path, "server_name"),
                 "'" + *name + "' is not a DNS name or an IP address");
      ok = false;
    }
  }
  if (auto v = n["verify"]) {
    if (auto b = r_.boolean(v, child(path, "verify"))) {
      settings.verify = *b;
      if (!*b)
        r_.warning(v, child(path, "verify"),
                   "certificate verification is off: any certificate is accepted, so anyone on "
                   "the path can read and change this traffic (for tests and labs only)");
    } else {
      ok = false;
    }
  }
  if (auto v = n["min_version"]) {
    if (!tls_version(v, child(path, "min_version"), &settings.min_version)) ok = false;
  }
  if (!ok) return nullptr;
  return ca ? client_context(settings, ca, child(path, "ca_file"))
            : client_context(settings, n, path);
}

// Builds the context; its failures are about the CA file (`at`), or the system store.
std::shared_ptr<const tls::ClientContext> Loader::client_context(
    const tls::ClientSettings& settings, const YAML::Node& at, const std::string& path) {
  std::string error;
  auto ctx = tls::ClientContext::create(settings, &error);
  if (!ctx) r_.error(at, path, error);
  return ctx;
}

// "1.2" -> 12, "1.3" -> 13; anything else is an error.
bool Loader::tls_version(const YAML::Node& v, const std::string& path, int* out) {
  auto s = r_.str(v, path).value_or("");
  if (s == "1.2" || s == "1.3") {
    *out = s == "1.2" ? 12 : 13;
    return true;
  }
  r_.error(v, path, "expected \"1.2\" or \"1.3\" (TLS 1.0 and 1.1 are broken and refused)");
  return false;
}

}  // namespace gatehouse::config
