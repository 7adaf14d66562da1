// jwt_auth: a JWT from one of the provider's token sources must verify (see jwt/jwt.h for the
// checks and their order). On success the consumer (from consumer_claim) and the chosen claims
// go upstream as headers; headers of those names sent by the client are dropped first.
//   plugins: { jwt_auth: { provider: main, require_scopes: [read], require_claims: [email] } }
// No token, or one that fails any check: 401 with one message, and a WWW-Authenticate challenge
// (RFC 6750 section 3: error="invalid_token" when a token was sent). A good token without the
// route's scopes: 403 with error="insufficient_scope". A token naming a key id we do not have
// asks the provider's key store for a fresh JWKS (at most once per few seconds). Keys not yet
// fetched (a jwks_url that has not answered since start): 503 with Retry-After. A token verified
// once is remembered per worker until it expires (see the token cache in jwt_auth.cc).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "filters/filter.h"
#include "filters/jwt_auth/provider.h"

namespace gatehouse::filters {

class JwtAuth final : public Filter {
 public:
  JwtAuth(std::shared_ptr<const JwtProvider> provider, std::vector<std::string> scopes,
          std::vector<std::string> claims, const std::vector<config::Consumer>& consumers);
  std::string_view name() const override { return "jwt_auth"; }
  FilterStatus on_request(RequestContext& ctx) const override;
  // Unix seconds; replaceable in tests.
  std::function<int64_t()> now;
  struct Admission;

 private:
  void admit(const Admission& a, const TokenSource& from, RequestContext& ctx) const;
  // The token and where it was found; empty when none of the sources has one.
  std::string_view find_token(const RequestContext& ctx, const TokenSource** from) const;
  FilterStatus refuse(RequestContext& ctx, int status, std::string_view challenge_error) const;

  std::shared_ptr<const JwtProvider> p_;
  jwt::Rules rules_;             // the provider's, plus this route's scopes and claims
  std::vector<Identity> known_;  // configured consumers, for their groups
  uint64_t id_;                  // never reused: keys this filter's entries in the token cache
};

struct BuildContext;
std::shared_ptr<const Filter> build_jwt_auth(const BuildContext& ctx);

}  // namespace gatehouse::filters
