#include "filters/key_auth/key_auth.h"

#include <algorithm>

#include "crypto/digest.h"
#include "filters/registry.h"
#include "router/router.h"

namespace gatehouse::filters {
namespace {

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && crypto::hex_value(s[i + 1]) >= 0 &&
               crypto::hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(crypto::hex_value(s[i + 1]) * 16 + crypto::hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::string query_param(std::string_view query, std::string_view name) {
  bool found = false;
  return percent_decode(router::query_param(query, name, &found));
}

KeyAuth::KeyAuth(std::string header, std::string query,
                 const std::vector<config::Consumer>& consumers)
    : header_(std::move(header)), query_(std::move(query)) {
  for (const auto& c : consumers) {
    consumers_.push_back(identity_of(c));
    for (const auto& d : c.api_key_sha256) by_digest_.emplace(d, consumers_.size() - 1);
  }
}

const Identity* KeyAuth::find(std::string_view key) const {
  if (key.empty()) return nullptr;
  crypto::Sha256 digest = crypto::sha256(key);
  auto it = by_digest_.find(digest);
  if (it == by_digest_.end() || !crypto::equal_constant_time(it->first, digest)) return nullptr;
  return &consumers_[it->second];
}

FilterStatus KeyAuth::on_request(RequestContext& ctx) const {
  std::string from_query;
  std::string_view key;
  if (!header_.empty()) key = ctx.request->get(header_);
  if (key.empty() && !query_.empty()) key = from_query = query_param(ctx.request->query, query_);
  const Identity* who = find(key);
  if (!who) {
    ctx.reply.status = 401;
    ctx.reply.code = "unauthorized";
    ctx.reply.message = "a valid API key is required";
    ctx.reply.headers.emplace_back("WWW-Authenticate", "ApiKey realm=\"gatehouse\"");
    return FilterStatus::kRespond;
  }
  ctx.identify(who);
  if (!header_.empty()) ctx.upstream_remove.push_back(header_);
  if (!query_.empty()) ctx.upstream_remove_query.push_back(query_);
  return FilterStatus::kContinue;
}

std::shared_ptr<const Filter> build_key_auth(const BuildContext& ctx) {
  if (!ctx.reader.check_map(ctx.settings, ctx.path, {"header", "query"})) return nullptr;
  std::string header, query;
  if (auto h = ctx.settings["header"]) {
    auto s = ctx.reader.str(h, config::child(ctx.path, "header"));
    if (!s) return nullptr;
    header = *s;
    std::transform(header.begin(), header.end(), header.begin(),
                   [](unsigned char c) { return std::tolower(c); });
  }
  if (auto q = ctx.settings["query"]) {
    auto s = ctx.reader.str(q, config::child(ctx.path, "query"));
    if (!s) return nullptr;
    query = *s;
  }
  if (header.empty() && query.empty()) header = "x-api-key";
  bool any_key = std::any_of(ctx.config.consumers.begin(), ctx.config.consumers.end(),
                             [](auto& c) { return !c.api_key_sha256.empty(); });
  if (!any_key) {
    ctx.reader.error(ctx.settings, ctx.path,
                     "no consumer has an API key (see consumers[].api_keys)");
    return nullptr;
  }
  return std::make_shared<KeyAuth>(std::move(header), std::move(query), ctx.config.consumers);
}

}  // namespace gatehouse::filters
