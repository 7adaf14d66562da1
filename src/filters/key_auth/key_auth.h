// key_auth: an API key identifies one of the configured consumers.
//   plugins: { key_auth: { header: x-api-key } }      # or { query: api_key }, or both
// The key is looked up by its SHA-256 (the config holds only digests) and the match confirmed with
// a constant-time comparison; timing can then at most reveal how a guess's digest compares to a
// stored digest, which says nothing about the key. On success the consumer's name and groups go
// upstream as X-Consumer-Name / X-Consumer-Groups (the gateway always drops any the client sent),
// and the credential is removed from the header and the query. A missing or unknown key: 401 with
// one message for both, and a WWW-Authenticate challenge.
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "crypto/digest.h"
#include "filters/filter.h"

namespace gatehouse::filters {

class KeyAuth final : public Filter {
 public:
  KeyAuth(std::string header, std::string query, const std::vector<config::Consumer>& consumers);
  std::string_view name() const override { return "key_auth"; }
  FilterStatus on_request(RequestContext& ctx) const override;
  // The consumer owning `key`, or null.
  const Identity* find(std::string_view key) const;

 private:
  struct DigestHash {
    size_t operator()(const crypto::Sha256& d) const {
      size_t h;
      std::memcpy(&h, d.data(), sizeof h);  // a digest's bytes are already uniform
      return h;
    }
  };
  std::string header_;  // lower case; empty: keys are not read from headers
  std::string query_;   // empty: keys are not read from the query
  std::vector<Identity> consumers_;
  std::unordered_map<crypto::Sha256, size_t, DigestHash> by_digest_;
};

struct BuildContext;
std::shared_ptr<const Filter> build_key_auth(const BuildContext& ctx);

// The value of query parameter `name` in `query` (without '?'), percent-decoded; empty if absent.
std::string query_param(std::string_view query, std::string_view name);

}  // namespace gatehouse::filters
