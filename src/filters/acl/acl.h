// acl: which consumers may use a route, by name or group (the consumer comes from key_auth or
// jwt_auth on the same route, which the config requires).
//   plugins: { acl: { allow_groups: [clients], deny_consumers: [old-app] } }
// deny_* wins over allow_*; with any allow_* list, a consumer on none of them is refused. 403.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "filters/filter.h"

namespace gatehouse::filters {

class Acl final : public Filter {
 public:
  struct Lists {
    std::vector<std::string> allow_consumers, allow_groups, deny_consumers, deny_groups;
  };
  explicit Acl(Lists lists) : l_(std::move(lists)) {}
  std::string_view name() const override { return "acl"; }
  FilterStatus on_request(RequestContext& ctx) const override;
  bool admits(const Identity& who) const;

 private:
  Lists l_;
};

struct BuildContext;
std::shared_ptr<const Filter> build_acl(const BuildContext& ctx);

}  // namespace gatehouse::filters
