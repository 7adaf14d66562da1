// ip_rules: admit or refuse a request by the client's address (IPv4 and IPv6 CIDRs).
//   plugins: { ip_rules: { allow: [10.0.0.0/8, "fd00::/8"], deny: [10.6.6.0/24] } }
// The address is the real client's: the TCP peer, or, when the peer is one of
// server.trusted_proxies, the last address in X-Forwarded-For that is not a trusted proxy.
// deny wins over allow; with an allow list, an address outside it is refused. Refusal: 403.
#pragma once

#include <memory>
#include <vector>

#include "config/units.h"
#include "filters/filter.h"

namespace gatehouse::filters {

class IpRules final : public Filter {
 public:
  IpRules(std::vector<config::Cidr> allow, std::vector<config::Cidr> deny)
      : allow_(std::move(allow)), deny_(std::move(deny)) {}
  std::string_view name() const override { return "ip_rules"; }
  FilterStatus on_request(RequestContext& ctx) const override;
  bool admits(std::string_view ip) const;

 private:
  std::vector<config::Cidr> allow_, deny_;
};

struct BuildContext;
std::shared_ptr<const Filter> build_ip_rules(const BuildContext& ctx);

}  // namespace gatehouse::filters
