#include "filters/jwt_auth/provider.h"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "filters/registry.h"
#include "http/url.h"

namespace gatehouse::filters {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::optional<std::string> read_file(const config::YamlReader& r, const YAML::Node& at,
                                     const std::string& path, const std::string& name) {
  std::string p = r.resolve_path(name);
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    r.error(at, path, "cannot read '" + p + "'");
    return std::nullopt;
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::optional<TokenSource> parse_source(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos || colon + 1 == text.size()) return std::nullopt;
  std::string kind(text.substr(0, colon)), name(text.substr(colon + 1));
  if (kind == "header") {
    name = lower(name);
    return TokenSource{TokenSource::Kind::kHeader, name, name == "authorization"};
  }
  if (kind == "cookie") return TokenSource{TokenSource::Kind::kCookie, name, false};
  if (kind == "query") return TokenSource{TokenSource::Kind::kQuery, name, false};
  return std::nullopt;
}

// One item of `keys`: { jwk: {...} } | { pem: TEXT } | { pem_file: PATH } | { secret_env: VAR },
// with an optional kid (and alg, for a secret).
std::shared_ptr<const jwt::Key> parse_inline_key(const YAML::Node& n, const std::string& path,
                                                 const config::YamlReader& r) {
  if (!r.check_map(n, path, {"jwk", "pem", "pem_file", "secret_env", "kid", "alg"})) return nullptr;
  int sources =
      (n["jwk"] ? 1 : 0) + (n["pem"] ? 1 : 0) + (n["pem_file"] ? 1 : 0) + (n["secret_env"] ? 1 : 0);
  if (sources != 1) {
    r.error(n, path, "give exactly one of jwk, pem, pem_file and secret_env");
    return nullptr;
  }
  std::string kid, error;
  if (auto k = n["kid"]) kid = r.str(k, config::child(path, "kid")).value_or("");
  std::shared_ptr<const jwt::Key> key;
  if (auto j = n["jwk"]) {
    if (!j.IsMap()) {
      r.error(j, config::child(path, "jwk"), "expected a JWK as a mapping of its members");
      return nullptr;
    }
    boost::json::object obj;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!it->second.IsScalar()) continue;  // e.g. key_ops lists: not needed to verify
      obj[it->first.Scalar()] = it->second.Scalar();
    }
    if (!kid.empty()) obj["kid"] = kid;
    key = jwt::Key::from_jwk(obj, &error);
  } else if (auto p = n["pem"]) {
    if (auto text = r.str(p, config::child(path, "pem")))
      key = jwt::Key::from_pem(*text, kid, &error);
  } else if (auto f = n["pem_file"]) {
    auto name = r.str(f, config::child(path, "pem_file"));
    if (!name) return nullptr;
    auto text = read_file(r, f, config::child(path, "pem_file"), *name);
    if (!text) return nullptr;
    key = jwt::Key::from_pem(*text, kid, &error);
  } else if (auto e = n["secret_env"]) {
    auto var = r.str(e, config::child(path, "secret_env"));
    if (!var) return nullptr;
    const char* value = std::getenv(var->c_str());
    if (!value || !*value) {
      r.error(e, config::child(path, "secret_env"), "environment variable " + *var + " is not set");
      return nullptr;
    }
    std::optional<jwt::Alg> alg;
    if (auto a = n["alg"]) {
      auto s = r.str(a, config::child(path, "alg")).value_or("");
      alg = jwt::alg_from_name(s);
      if (!alg || *alg > jwt::Alg::kHS512) {
        r.error(a, config::child(path, "alg"), "a secret verifies HS256, HS384 or HS512");
        return nullptr;
      }
    }
    key = jwt::Key::hmac(value, kid, alg, &error);
  }
  if (!key && error.empty()) return nullptr;  // the reader has the error already
  if (!key) r.error(n, path, error);
  return key;
}

}  // namespace

std::shared_ptr<const JwtProvider> build_jwt_provider(const std::string& name, const YAML::Node& n,
                                                      const std::string& path,
                                                      const config::YamlReader& r) {
  if (!r.check_map(n, path,
                   {"issuer", "audiences", "jwks_url", "jwks_file", "keys", "refresh", "algorithms",
                    "leeway", "token_from", "consumer_claim", "forward_claims", "forward_token",
                    "required_claims", "max_token_bytes"}))
    return nullptr;
  auto p = std::make_shared<JwtProvider>();
  p->name = name;
  bool ok = true;
  auto child = [&](const char* key) { return config::child(path, key); };

  if (auto v = n["issuer"]) p->rules.issuer = r.str(v, child("issuer")).value_or("");
  if (auto v = n["audiences"]) p->rules.audiences = r.str_list(v, child("audiences"));
  if (auto v = n["required_claims"])
    p->rules.required_claims = r.str_list(v, child("required_claims"));
  if (auto v = n["leeway"]) {
    if (auto d = r.duration(v, child("leeway")))
      p->rules.leeway = std::chrono::duration_cast<std::chrono::seconds>(*d);
  }
  if (auto v = n["max_token_bytes"]) {
    if (auto s = r.size(v, child("max_token_bytes"))) p->rules.max_token_bytes = *s;
  }

  if (auto v = n["algorithms"]) {
    auto names = r.str_list(v, child("algorithms"));
    for (size_t i = 0; i < names.size(); ++i) {
      if (auto a = jwt::alg_from_name(names[i])) {
        p->rules.algorithms.push_back(*a);
      } else {
        r.error(v.IsSequence() ? v[i] : v, config::index(child("algorithms"), i),
                "unknown or refused algorithm '" + names[i] +
                    "' (known: HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, "
                    "ES256, ES384, EdDSA)");
        ok = false;
      }
    }
  } else {
    r.error(n, child("algorithms"), "'algorithms' is required: name the ones your issuer uses");
    ok = false;
  }

  p->token_from.push_back({TokenSource::Kind::kHeader, "authorization", true});
  if (auto v = n["token_from"]) {
    p->token_from.clear();
    auto items = r.str_list(v, child("token_from"));
    for (size_t i = 0; i < items.size(); ++i) {
      if (auto s = parse_source(items[i])) {
        p->token_from.push_back(*s);
      } else {
        r.error(v.IsSequence() ? v[i] : v, config::index(child("token_from"), i),
                "expected header:NAME, cookie:NAME or query:NAME");
        ok = false;
      }
    }
  }
  if (auto v = n["consumer_claim"])
    p->consumer_claim = r.str(v, child("consumer_claim")).value_or("");
  if (auto v = n["forward_claims"]) {
    if (!v.IsMap()) {
      r.error(v, child("forward_claims"), "expected a mapping of claim names to header names");
      ok = false;
    } else {
      for (auto it = v.begin(); it != v.end(); ++it)
        p->forward_claims.emplace_back(it->first.Scalar(), lower(it->second.Scalar()));
    }
  }
  if (auto v = n["forward_token"])
    p->forward_token = r.boolean(v, child("forward_token")).value_or(true);

  // Keys: exactly one source.
  int sources = (n["jwks_url"] ? 1 : 0) + (n["jwks_file"] ? 1 : 0) + (n["keys"] ? 1 : 0);
  if (sources != 1) {
    r.error(n, path, "give exactly one of jwks_url, jwks_file and keys");
    return nullptr;
  }
  std::chrono::milliseconds refresh = std::chrono::minutes(10);
  if (auto v = n["refresh"]) {
    if (auto d = r.duration(v, child("refresh"))) {
      if (*d < std::chrono::seconds(1)) {
        r.error(v, child("refresh"), "must be at least 1s");
        ok = false;
      }
      refresh = *d;
    }
  }
  if (auto v = n["jwks_url"]) {
    auto url = r.str(v, child("jwks_url")).value_or("");
    if (!url.starts_with("http://") && !url.starts_with("https://")) {
      r.error(v, child("jwks_url"), "expected an http:// or https:// URL");
      return nullptr;
    }
    // Read now as the fetcher will read it, so that a URL it cannot use fails the load.
    std::string why;
    auto parsed = http::parse_url(url, &why);
    if (!parsed || parsed->has_userinfo) {
      r.error(v, child("jwks_url"),
              "invalid URL: " + (parsed ? "user info (user:password@) is not supported" : why));
      return nullptr;
    }
    p->keys = KeyStore::for_url(url, refresh);
  } else if (auto v = n["jwks_file"]) {
    auto file = r.str(v, child("jwks_file"));
    if (!file) return nullptr;
    auto text = read_file(r, v, child("jwks_file"), *file);
    if (!text) return nullptr;
    std::string error;
    auto set = jwt::parse_jwks(*text, &error);
    if (!set) {
      r.error(v, child("jwks_file"), "not a usable JWKS: " + error);
      return nullptr;
    }
    p->keys = KeyStore::fixed(std::move(*set));
  } else if (auto v = n["keys"]) {
    if (!v.IsSequence() || v.size() == 0) {
      r.error(v, child("keys"), "expected a list of keys");
      return nullptr;
    }
    jwt::KeySet set;
    for (size_t i = 0; i < v.size(); ++i) {
      if (auto k = parse_inline_key(v[i], config::index(child("keys"), i), r)) {
        set.keys.push_back(std::move(k));
      } else {
        ok = false;
      }
    }
    p->keys = KeyStore::fixed(std::move(set));
  }
  if (!ok) return nullptr;
  return p;
}

}  // namespace gatehouse::filters
