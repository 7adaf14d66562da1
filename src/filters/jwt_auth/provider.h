// A JWT provider (the jwt_providers section): who issues tokens, where its keys are, how tokens
// arrive and what of them goes upstream. Built once per config; shared by the routes' jwt_auth.
//
//   jwt_providers:
//     main:
//       issuer: https://id.example.com/
//       audiences: [api]
//       jwks_url: https://id.example.com/.well-known/jwks.json   # or jwks_file, or keys
//       refresh: 10m
//       algorithms: [RS256, ES256, EdDSA]
//       leeway: 30s
//       token_from: [ "header:authorization", "cookie:session" ]
//       consumer_claim: sub
//       forward_claims: { sub: x-user-id, scope: x-user-scopes }
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "filters/jwt_auth/key_store.h"
#include "jwt/jwt.h"

namespace gatehouse::filters {

struct TokenSource {
  enum class Kind { kHeader, kCookie, kQuery } kind;
  std::string name;     // lower case for headers
  bool bearer = false;  // the Authorization header: "Bearer <token>"
};

class JwtProvider {
 public:
  std::string name;
  jwt::Rules rules;  // provider-wide; jwt_auth adds its route's scopes and claims
  std::shared_ptr<KeyStore> keys;
  std::vector<TokenSource> token_from;
  std::string consumer_claim;  // empty: the token names no consumer
  std::vector<std::pair<std::string, std::string>> forward_claims;  // claim -> header (lower case)
  bool forward_token = true;  // false: the token is removed (header or query) before forwarding
};

}  // namespace gatehouse::filters
