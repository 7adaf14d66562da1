#include "filters/compress/compress.h"

#include <algorithm>
#include <optional>

#include "filters/registry.h"
#include "http/cache_control.h"

namespace gatehouse::filters {
namespace {

// What the filter keeps per request: the coding chosen from Accept-Encoding, then the encoder.
struct State {
  std::optional<compress::Coding> coding;
  std::unique_ptr<compress::Encoder> encoder;
  std::string out;  // scratch for encoded bytes
};
inline const SlotKey<std::shared_ptr<State>> kState{"compress.state"};

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

bool Compress::applies_to(std::string_view content_type) const {
  const std::string media = lower(http::trim_ows(content_type.substr(0, content_type.find(';'))));
  return std::any_of(s_.types.begin(), s_.types.end(), [&](const std::string& t) {
    if (t == "*") return true;
    if (t.ends_with("/*")) return media.starts_with(std::string_view(t).substr(0, t.size() - 1));
    return t == media;
  });
}

int Compress::level_of(compress::Coding c) const {
  switch (c) {
    case compress::Coding::kGzip:
      return s_.gzip_level;
    case compress::Coding::kBrotli:
      return s_.br_level;
    case compress::Coding::kZstd:
      return s_.zstd_level;
  }
  return 0;
}

FilterStatus Compress::on_request(RequestContext& ctx) const {
  std::vector<std::string_view> lines;
  for (const auto& h : ctx.request->headers) {
    if (http::iequals(h.name, "accept-encoding")) lines.push_back(h.value);
  }
  auto state = std::make_shared<State>();
  state->coding = compress::choose(lines, s_.codings);
  ctx.slots.set(kState, std::move(state));
  return FilterStatus::kContinue;
}

FilterStatus Compress::on_response(RequestContext& ctx) const {
  const http::ResponseHead* r = ctx.response;
  auto* slot = ctx.slots.get(kState);
  if (!r || !slot || r->status != 200) return FilterStatus::kContinue;
  std::string_view type, etag;
  std::vector<std::string_view> cache_control;
  for (const auto& h : r->headers) {
    if (http::iequals(h.name, "content-encoding") && !http::iequals(h.value, "identity"))
      return FilterStatus::kContinue;  // never twice
    if (http::iequals(h.name, "content-type")) type = h.value;
    if (http::iequals(h.name, "etag")) etag = h.value;
    if (http::iequals(h.name, "cache-control")) cache_control.push_back(h.value);
  }
  // A Content-Type an inner filter gave the answer is the one the client gets (a transcoder's
  // JSON for a gRPC answer).
  for (const auto& [name, value] : ctx.response_add)
    if (http::iequals(name, "content-type")) type = value;
  if (!applies_to(type) || http::parse_cache_control(cache_control).no_transform)
    return FilterStatus::kContinue;
  if (r->framing == http::Framing::kContentLength && r->content_length < s_.min_size)
    return FilterStatus::kContinue;
  // From here the representation depends on Accept-Encoding, whether this one is coded or not.
  ctx.response_add.emplace_back("Vary", "Accept-Encoding");
  State& st = **slot;
  if (!st.coding) return FilterStatus::kContinue;
  ctx.response_add.emplace_back("Content-Encoding", std::string(compress::name_of(*st.coding)));
  ctx.response_remove.emplace_back("accept-ranges");
  if (!etag.empty() && etag.front() == '"') {
    ctx.response_remove.emplace_back("etag");
    std::string weak = "W/";
    weak += etag;
    ctx.response_add.emplace_back("ETag", std::move(weak));
  }
  st.encoder = compress::make_encoder(*st.coding, level_of(*st.coding));
  ctx.watch_response_body();
  return FilterStatus::kContinue;
}

void Compress::on_response_body(RequestContext& ctx, std::string& data, bool end) const {
  auto* slot = ctx.slots.get(kState);
  if (!slot || !(*slot)->encoder) return;
  State& st = **slot;
  st.out.clear();
  if (!st.encoder->write(data, end, &st.out)) {
    // The encoder failed (out of memory): nothing valid can follow in this coding.
    st.out.clear();
  }
  data.swap(st.out);
}

std::shared_ptr<const Filter> build_compress(const BuildContext& ctx) {
  const auto& r = ctx.reader;
  const auto& n = ctx.settings;
  Compress::Settings s;
  s.types = {"text/html",
             "text/plain",
             "text/css",
             "text/javascript",
             "text/xml",
             "application/json",
             "application/javascript",
             "application/xml",
             "image/svg+xml"};
  s.codings = {compress::Coding::kZstd, compress::Coding::kBrotli, compress::Coding::kGzip};
  if (n.IsNull()) return std::make_shared<Compress>(std::move(s));
  if (!r.check_map(n, ctx.path, {"types", "min_size", "encodings", "level"})) return nullptr;
  bool ok = true;
  if (auto v = n["types"]) {
    s.types = r.str_list(v, config::child(ctx.path, "types"));
    for (auto& t : s.types) t = lower(t);
    if (s.types.empty()) {
      r.error(v, config::child(ctx.path, "types"), "expected at least one media type");
      ok = false;
    }
  }
  if (auto v = n["min_size"]) {
    if (auto size = r.size(v, config::child(ctx.path, "min_size")))
      s.min_size = *size;
    else
      ok = false;
  }
  if (auto v = n["encodings"]) {
    std::string path = config::child(ctx.path, "encodings");
    s.codings.clear();
    for (const auto& name : r.str_list(v, path)) {
      auto c = compress::coding_named(name);
      if (!c) {
        r.error(v, path, "unknown encoding '" + name + "' (expected gzip, br or zstd)");
        ok = false;
      } else if (std::find(s.codings.begin(), s.codings.end(), *c) == s.codings.end()) {
        s.codings.push_back(*c);
      }
    }
    if (s.codings.empty() && ok) {
      r.error(v, path, "expected at least one of gzip, br, zstd");
      ok = false;
    }
  }
  if (auto v = n["level"]) {
    std::string path = config::child(ctx.path, "level");
    if (r.check_map(v, path, {"gzip", "br", "zstd"})) {
      auto level = [&](const char* key, int lo, int hi, int* out) {
        if (auto l = v[key]) {
          if (auto i = r.integer(l, config::child(path, key), lo, hi))
            *out = static_cast<int>(*i);
          else
            ok = false;
        }
      };
      level("gzip", 1, 9, &s.gzip_level);
      level("br", 0, 11, &s.br_level);
      level("zstd", 1, 19, &s.zstd_level);
    } else {
      ok = false;
    }
  }
  if (!ok) return nullptr;
  return std::make_shared<Compress>(std::move(s));
}

}  // namespace gatehouse::filters
