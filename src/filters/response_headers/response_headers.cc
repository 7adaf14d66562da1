#include "filters/response_headers/response_headers.h"

#include <algorithm>
#include <cctype>

#include "filters/registry.h"

namespace gatehouse::filters {
namespace {

// RFC 9110 5.1: a field name is a token.
bool is_token(std::string_view s) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || kSpecials.find(static_cast<char>(c)) != std::string_view::npos;
  });
}

// RFC 9110 5.5: no control characters (but tab) in a field value, so no header can be injected.
bool is_field_value(std::string_view s) {
  return std::none_of(s.begin(), s.end(),
                      [](unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; });
}

}  // namespace

FilterStatus ResponseHeaders::on_response(RequestContext& ctx) const {
  ctx.response_remove.insert(ctx.response_remove.end(), remove_.begin(), remove_.end());
  ctx.response_add.insert(ctx.response_add.end(), add_.begin(), add_.end());
  return FilterStatus::kContinue;
}

std::shared_ptr<const Filter> build_response_headers(const BuildContext& ctx) {
  const auto& r = ctx.reader;
  if (!r.check_map(ctx.settings, ctx.path, {"add", "remove"})) return nullptr;
  bool ok = true;
  http::HeaderList add;
  if (auto a = ctx.settings["add"]) {
    std::string path = config::child(ctx.path, "add");
    if (!a.IsMap()) {
      r.error(a, path, "expected a mapping of header names to values");
      return nullptr;
    }
    for (auto it = a.begin(); it != a.end(); ++it) {
      std::string name = it->first.as<std::string>();
      std::string at = config::child(path, name);
      auto value = r.str(it->second, at);
      if (!is_token(name)) {
        r.error(it->first, at, "'" + name + "' is not a valid header name");
        ok = false;
      } else if (!value || !is_field_value(*value)) {
        if (value) r.error(it->second, at, "a header value cannot hold control characters");
        ok = false;
      } else {
        add.emplace_back(name, *value);
      }
    }
  }
  std::vector<std::string> remove;
  if (auto n = ctx.settings["remove"]) {
    std::string path = config::child(ctx.path, "remove");
    remove = r.str_list(n, path);
    for (size_t i = 0; i < remove.size(); ++i) {
      if (!is_token(remove[i])) {
        r.error(n.IsSequence() ? n[i] : n, config::index(path, i),
                "'" + remove[i] + "' is not a valid header name");
        ok = false;
      }
      std::transform(remove[i].begin(), remove[i].end(), remove[i].begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    }
  }
  if (!ok) return nullptr;
  if (add.empty() && remove.empty()) {
    r.error(ctx.settings, ctx.path, "'add' or 'remove' is required");
    return nullptr;
  }
  return std::make_shared<ResponseHeaders>(std::move(add), std::move(remove));
}

}  // namespace gatehouse::filters
