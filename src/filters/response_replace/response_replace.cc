#include "filters/response_replace/response_replace.h"

#include <algorithm>
#include <cctype>

#include "filters/registry.h"

namespace gatehouse::filters {
namespace {

// What the filter keeps per response: the bytes held back because they may begin a match.
struct Held {
  std::string bytes;
  std::string text;  // scratch: held bytes and the new piece together
};
inline const SlotKey<Held> kHeld{"response_replace.held"};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

ResponseReplace::ResponseReplace(Pairs pairs, std::vector<std::string> types)
    : pairs_(std::move(pairs)), types_(std::move(types)) {
  for (const auto& [from, to] : pairs_) longest_ = std::max(longest_, from.size());
}

bool ResponseReplace::applies_to(std::string_view content_type) const {
  // The media type: before any parameter, without whitespace, case-insensitive (RFC 9110 8.3.1).
  std::string_view media = http::trim_ows(content_type.substr(0, content_type.find(';')));
  return std::any_of(types_.begin(), types_.end(),
                     [&](const std::string& t) { return t == "*" || http::iequals(t, media); });
}

FilterStatus ResponseReplace::on_response(RequestContext& ctx) const {
  if (!ctx.response) return FilterStatus::kContinue;  // the gateway's own answer
  std::string_view type;
  for (const auto& h : ctx.response->headers) {
    if (http::iequals(h.name, "content-encoding") && !http::iequals(h.value, "identity"))
      return FilterStatus::kContinue;
    if (http::iequals(h.name, "content-type")) type = h.value;
  }
  if (!applies_to(type)) return FilterStatus::kContinue;
  ctx.watch_response_body();
  ctx.response_remove.emplace_back("etag");
  ctx.response_remove.emplace_back("last-modified");
  ctx.slots.set(kHeld, Held{});
  return FilterStatus::kContinue;
}

void ResponseReplace::on_response_body(RequestContext& ctx, std::string& data, bool end) const {
  Held* held = ctx.slots.get(kHeld);
  held->text.assign(held->bytes).append(data);
  data.clear();
  rewrite(held->text, end, &data, &held->bytes);
}

void ResponseReplace::rewrite(std::string_view text, bool end, std::string* out,
                              std::string* held) const {
  // Matches may start before `limit`; one starting at or after it may run past the text's end.
  const size_t limit = end ? text.size() : text.size() - std::min(text.size(), longest_ - 1);
  size_t pos = 0;
  while (pos < limit) {
    size_t best = std::string_view::npos;
    const std::pair<std::string, std::string>* which = nullptr;
    for (const auto& p : pairs_) {
      size_t at = text.find(p.first, pos);
      if (at < best) {
        best = at;
        which = &p;
      }
    }
    if (best >= limit) break;
    out->append(text.substr(pos, best - pos)).append(which->second);
    pos = best + which->first.size();
  }
  const size_t keep_from = std::max(pos, limit);
  if (keep_from > pos) out->append(text.substr(pos, keep_from - pos));
  held->assign(text.substr(keep_from));
}

std::shared_ptr<const Filter> build_response_replace(const BuildContext& ctx) {
  const auto& r = ctx.reader;
  if (!r.check_map(ctx.settings, ctx.path, {"replace", "types"})) return nullptr;
  auto replace = ctx.settings["replace"];
  std::string path = config::child(ctx.path, "replace");
  if (!replace || !replace.IsMap() || replace.size() == 0) {
    r.error(replace ? replace : ctx.settings, path,
            "expected a mapping of strings to find to their replacements");
    return nullptr;
  }
  ResponseReplace::Pairs pairs;
  bool ok = true;
  for (auto it = replace.begin(); it != replace.end(); ++it) {
    std::string from = it->first.as<std::string>();
    std::string at = config::child(path, from);
    auto to = r.str(it->second, at);
    if (from.empty()) {
      r.error(it->first, at, "the string to find cannot be empty");
      ok = false;
    } else if (from.size() > 4096) {
      r.error(it->first, at, "the string to find is longer than 4096 bytes");
      ok = false;
    } else if (!to) {
      ok = false;
    } else {
      pairs.emplace_back(std::move(from), std::move(*to));
    }
  }
  std::vector<std::string> types{"text/html"};
  if (auto t = ctx.settings["types"]) {
    types = r.str_list(t, config::child(ctx.path, "types"));
    for (auto& type : types) type = lower(type);
  }
  if (!ok) return nullptr;
  return std::make_shared<ResponseReplace>(std::move(pairs), std::move(types));
}

}  // namespace gatehouse::filters
