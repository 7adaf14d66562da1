#include "filters/acl/acl.h"

#include <algorithm>

#include "filters/registry.h"

namespace gatehouse::filters {
namespace {

bool contains(const std::vector<std::string>& list, std::string_view s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

bool any_group_in(const std::vector<std::string>& list, const Identity& who) {
  return std::any_of(who.groups.begin(), who.groups.end(),
                     [&](const std::string& g) { return contains(list, g); });
}

}  // namespace

bool Acl::admits(const Identity& who) const {
  if (contains(l_.deny_consumers, who.name) || any_group_in(l_.deny_groups, who)) return false;
  if (l_.allow_consumers.empty() && l_.allow_groups.empty()) return true;
  return contains(l_.allow_consumers, who.name) || any_group_in(l_.allow_groups, who);
}

FilterStatus Acl::on_request(RequestContext& ctx) const {
  if (ctx.consumer && admits(*ctx.consumer)) return FilterStatus::kContinue;
  ctx.reply.status = 403;
  ctx.reply.code = "forbidden";
  ctx.reply.message = "the consumer is not allowed on this route";
  return FilterStatus::kRespond;
}

std::shared_ptr<const Filter> build_acl(const BuildContext& ctx) {
  if (!ctx.reader.check_map(ctx.settings, ctx.path,
                            {"allow_consumers", "allow_groups", "deny_consumers", "deny_groups"}))
    return nullptr;
  Acl::Lists l;
  auto read = [&](const char* key, std::vector<std::string>* out) {
    if (auto n = ctx.settings[key]) *out = ctx.reader.str_list(n, config::child(ctx.path, key));
  };
  read("allow_consumers", &l.allow_consumers);
  read("allow_groups", &l.allow_groups);
  read("deny_consumers", &l.deny_consumers);
  read("deny_groups", &l.deny_groups);
  if (l.allow_consumers.empty() && l.allow_groups.empty() && l.deny_consumers.empty() &&
      l.deny_groups.empty()) {
    ctx.reader.error(ctx.settings, ctx.path, "give at least one allow_* or deny_* list");
    return nullptr;
  }
  return std::make_shared<Acl>(std::move(l));
}

}  // namespace gatehouse::filters
