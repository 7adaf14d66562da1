#include "filters/ip_rules/ip_rules.h"

#include <algorithm>

#include "filters/registry.h"

namespace gatehouse::filters {

bool IpRules::admits(std::string_view ip) const {
  auto addr = config::parse_ip(ip);
  if (!addr) return false;
  auto in = [&](const config::Cidr& c) { return c.contains(*addr); };
  if (std::any_of(deny_.begin(), deny_.end(), in)) return false;
  return allow_.empty() || std::any_of(allow_.begin(), allow_.end(), in);
}

FilterStatus IpRules::on_request(RequestContext& ctx) const {
  if (admits(ctx.client_ip)) return FilterStatus::kContinue;
  ctx.reply.status = 403;
  ctx.reply.code = "forbidden";
  ctx.reply.message = "the client address is not allowed on this route";
  return FilterStatus::kRespond;
}

std::shared_ptr<const Filter> build_ip_rules(const BuildContext& ctx) {
  if (!ctx.reader.check_map(ctx.settings, ctx.path, {"allow", "deny"})) return nullptr;
  bool ok = true;
  auto list = [&](const char* key) {
    std::vector<config::Cidr> out;
    auto n = ctx.settings[key];
    if (!n) return out;
    std::string path = config::child(ctx.path, key);
    auto items = ctx.reader.str_list(n, path);
    for (size_t i = 0; i < items.size(); ++i) {
      if (auto c = config::parse_cidr(items[i])) {
        out.push_back(*c);
      } else {
        ctx.reader.error(n.IsSequence() ? n[i] : n, config::index(path, i),
                         "invalid CIDR '" + items[i] + "'");
        ok = false;
      }
    }
    return out;
  };
  auto allow = list("allow");
  auto deny = list("deny");
  if (!ok) return nullptr;
  if (allow.empty() && deny.empty()) {
    ctx.reader.error(ctx.settings, ctx.path, "give 'allow', 'deny' or both");
    return nullptr;
  }
  return std::make_shared<IpRules>(std::move(allow), std::move(deny));
}

}  // namespace gatehouse::filters
