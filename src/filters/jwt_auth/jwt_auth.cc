#include "filters/jwt_auth/jwt_auth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <optional>

#include "filters/jwt_auth/claims.h"
#include "filters/registry.h"
#include "http/cookie.h"
#include "router/router.h"

namespace gatehouse::filters {
namespace {

std::atomic<uint64_t> next_filter_id{1};

}  // namespace

JwtAuth::JwtAuth(std::shared_ptr<const JwtProvider> provider, std::vector<std::string> scopes,
                 std::vector<std::string> claims, const std::vector<config::Consumer>& consumers)
    : p_(std::move(provider)), rules_(p_->rules), id_(next_filter_id.fetch_add(1)) {
  now = [] {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  rules_.required_scopes.insert(rules_.required_scopes.end(), scopes.begin(), scopes.end());
  rules_.required_claims.insert(rules_.required_claims.end(), claims.begin(), claims.end());
  for (const auto& c : consumers) known_.push_back(identity_of(c));
}

std::string_view JwtAuth::find_token(const RequestContext& ctx, const TokenSource** from) const {
  const auto& req = *ctx.request;
  for (const auto& s : p_->token_from) {
    std::string_view token;
    switch (s.kind) {
      case TokenSource::Kind::kHeader:
        token = req.get(s.name);
        if (s.bearer) {
          // RFC 6750 2.1: "Bearer" is case-insensitive; anything else is not our credential.
          if (token.size() < 7 || !http::iequals(token.substr(0, 7), "bearer "))
            token = {};
          else
            token.remove_prefix(7);
          while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
        }
        break;
      case TokenSource::Kind::kCookie:
        token = http::cookie_value(req, s.name);
        break;
      case TokenSource::Kind::kQuery: {
        // Tokens are base64url and dots: nothing in them needs percent-decoding.
        bool found = false;
        token = router::query_param(req.query, s.name, &found);
        break;
      }
    }
    if (!token.empty()) {
      *from = &s;
      return token;
    }
  }
  return {};
}

FilterStatus JwtAuth::refuse(RequestContext& ctx, int status,
                             std::string_view challenge_error) const {
  ctx.reply.status = status;
  std::string challenge = "Bearer realm=\"gatehouse\"";
  if (!challenge_error.empty()) challenge += ", error=\"" + std::string(challenge_error) + "\"";
  ctx.reply.headers.emplace_back("WWW-Authenticate", std::move(challenge));
  if (status == 403) {
    ctx.reply.code = "forbidden";
    ctx.reply.message = "the token does not grant the scopes this route requires";
  } else {
    ctx.reply.code = "unauthorized";
    ctx.reply.message = "a valid bearer token is required";
  }
  return FilterStatus::kRespond;
}

// What a verified token lets through, worked out once and kept in the worker's token cache.
struct JwtAuth::Admission {
  uint64_t filter_id = 0;
  std::string token;
  std::shared_ptr<const jwt::KeySet> keys;                  // the set that verified it
  int64_t valid_from = INT64_MIN, valid_until = INT64_MAX;  // from nbf/iat and exp, with leeway
  const Identity* known = nullptr;  // a configured consumer (in the filter's known_)
  std::string other;                // or a consumer named by the token only
  http::HeaderList headers;         // forwarded claims
  std::shared_ptr<const boost::json::object> claims;  // for later filters (rate_limit keys)
};

namespace {

std::optional<int64_t> number_claim(const boost::json::object& claims, const char* name) {
  auto it = claims.find(name);
  if (it == claims.end()) return std::nullopt;
  if (it->value().is_int64()) return it->value().as_int64();
  if (it->value().is_uint64())
    return static_cast<int64_t>(std::min<uint64_t>(it->value().as_uint64(), INT64_MAX));
  if (it->value().is_double()) return static_cast<int64_t>(it->value().as_double());
  return std::nullopt;
}

// Tokens verified recently, per worker (no locks), so that a client presenting the same token
// again costs a hash and a compare instead of a signature check (as Envoy's JWT cache).
// Direct-mapped: a collision just evicts. An entry is used only by the filter that made it (ids
// are never reused), only while the provider's key set is the one that verified it (a rotation
// that drops a key drops its tokens), and only inside the token's own validity window.
constexpr size_t kCacheSlots = 1024;
struct TokenCache {
  std::vector<JwtAuth::Admission> slots{kCacheSlots};
};
const SlotKey<TokenCache> kTokenCache{"jwt_auth.token_cache"};

}  // namespace

void JwtAuth::admit(const Admission& a, const TokenSource& from, RequestContext& ctx) const {
  ctx.slots.set(kJwtClaims, a.claims);
  if (a.known) {
    ctx.identify(a.known);
  } else if (!a.other.empty()) {
    ctx.owned = Identity{a.other, {}, {}};
    ctx.identify(&ctx.owned);
  }
  for (const auto& [claim, header] : p_->forward_claims) ctx.upstream_remove.push_back(header);
  ctx.upstream_add.insert(ctx.upstream_add.end(), a.headers.begin(), a.headers.end());
  if (!p_->forward_token) {
    if (from.kind == TokenSource::Kind::kHeader) ctx.upstream_remove.push_back(from.name);
    if (from.kind == TokenSource::Kind::kQuery) ctx.upstream_remove_query.push_back(from.name);
  }
}

FilterStatus JwtAuth::on_request(RequestContext& ctx) const {
  const TokenSource* from = nullptr;
  std::string_view token = find_token(ctx, &from);
  if (token.empty()) return refuse(ctx, 401, "");

  auto keys = p_->keys->keys();
  if (!keys) {
    p_->keys->want_refresh();
    ctx.reply.status = 503;
    ctx.reply.code = "auth_unavailable";
    ctx.reply.message = "the signing keys of provider " + p_->name + " are not available yet";
    ctx.reply.headers.emplace_back("Retry-After", "1");
    return FilterStatus::kRespond;
  }
  const int64_t t = now();
  // Without a worker (a unit test), nothing is cached.
  Admission* slot =
      ctx.worker
          ? &ctx.worker->get(kTokenCache).slots[std::hash<std::string_view>{}(token) % kCacheSlots]
          : nullptr;
  if (slot && slot->filter_id == id_ && slot->keys == keys && slot->token == token &&
      t >= slot->valid_from && t < slot->valid_until) {
    admit(*slot, *from, ctx);
    return FilterStatus::kContinue;
  }

  jwt::Verified v;
  if (auto failure = jwt::verify(token, *keys, rules_, t, &v)) {
    if (*failure == jwt::Failure::kUnknownKey && !p_->keys->url().empty()) p_->keys->want_refresh();
    if (*failure == jwt::Failure::kScope) return refuse(ctx, 403, "insufficient_scope");
    return refuse(ctx, 401, "invalid_token");
  }

  Admission a;
  a.filter_id = id_;
  a.token = token;
  a.keys = std::move(keys);
  const int64_t leeway = rules_.leeway.count();
  if (auto exp = number_claim(v.claims, "exp")) a.valid_until = *exp + leeway;
  for (const char* claim : {"nbf", "iat"}) {
    if (auto when = number_claim(v.claims, claim))
      a.valid_from = std::max(a.valid_from, *when - leeway);
  }
  // Identity: a configured consumer of that name brings its groups.
  if (!p_->consumer_claim.empty()) {
    std::string who = jwt::claim_text(v.claims, p_->consumer_claim);
    auto it = std::find_if(known_.begin(), known_.end(), [&](auto& c) { return c.name == who; });
    if (it != known_.end()) {
      a.known = &*it;
    } else {
      a.other = std::move(who);
    }
  }
  for (const auto& [claim, header] : p_->forward_claims) {
    std::string value = jwt::claim_text(v.claims, claim);
    // Claim text comes from the issuer, but it must still be a valid header value (RFC 9110
    // 5.5): no control characters, or a claim could inject a header line.
    bool clean = std::none_of(value.begin(), value.end(),
                              [](unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; });
    if (!value.empty() && clean) a.headers.emplace_back(header, std::move(value));
  }
  a.claims = std::make_shared<const boost::json::object>(std::move(v.claims));
  if (!slot) {
    admit(a, *from, ctx);
    return FilterStatus::kContinue;
  }
  *slot = std::move(a);
  admit(*slot, *from, ctx);
  return FilterStatus::kContinue;
}

std::shared_ptr<const Filter> build_jwt_auth(const BuildContext& ctx) {
  if (!ctx.reader.check_map(ctx.settings, ctx.path,
                            {"provider", "require_scopes", "require_claims"}))
    return nullptr;
  auto pn = ctx.settings["provider"];
  if (!pn) {
    ctx.reader.error(ctx.settings, ctx.path, "'provider' is required (a name from jwt_providers)");
    return nullptr;
  }
  auto name = ctx.reader.str(pn, config::child(ctx.path, "provider"));
  if (!name) return nullptr;
  auto it = ctx.config.jwt_providers.find(*name);
  if (it == ctx.config.jwt_providers.end()) {
    ctx.reader.error(pn, config::child(ctx.path, "provider"),
                     "unknown JWT provider '" + *name + "'");
    return nullptr;
  }
  if (!it->second) return nullptr;  // the provider had errors, reported where it is defined
  std::vector<std::string> scopes, claims;
  if (auto s = ctx.settings["require_scopes"])
    scopes = ctx.reader.str_list(s, config::child(ctx.path, "require_scopes"));
  if (auto c = ctx.settings["require_claims"])
    claims = ctx.reader.str_list(c, config::child(ctx.path, "require_claims"));
  return std::make_shared<JwtAuth>(it->second, std::move(scopes), std::move(claims),
                                   ctx.config.consumers);
}

}  // namespace gatehouse::filters
