#include "exchange/composite_answer.h"

#include <boost/json.hpp>

#include "crypto/digest.h"
#include "http/cache_control.h"
#include "http/error_response.h"

namespace gatehouse::exchange {

namespace json = boost::json;

bool parse_answer(std::string_view text, json::value* out, std::string* why) {
  json::parse_options options;
  options.max_depth = kMaxAnswerDepth;
  boost::system::error_code ec;
  *out = json::parse(text, ec, {}, options);
  if (!ec) return true;
  *why = ec.message();
  return false;
}

bool scalar_at(const json::value& root, std::string_view path, std::string* out) {
  const json::value* v = &root;
  while (!path.empty()) {
    const auto dot = path.find('.');
    const std::string_view key = path.substr(0, dot);
    path.remove_prefix(dot == std::string_view::npos ? path.size() : dot + 1);
    if (const auto* o = v->if_object()) {
      const auto it = o->find(key);
      if (it == o->end()) return false;
      v = &it->value();
    } else if (const auto* a = v->if_array()) {
      if (key.empty() || key.size() > 9 ||
          key.find_first_not_of("0123456789") != std::string_view::npos)
        return false;
      const size_t index = std::stoul(std::string(key));
      if (index >= a->size()) return false;
      v = &(*a)[index];
    } else {
      return false;
    }
  }
  if (const auto* s = v->if_string()) {
    out->assign(s->data(), s->size());
  } else if (v->is_bool()) {
    *out = v->get_bool() ? "true" : "false";
  } else if (v->is_number()) {
    *out = json::serialize(*v);
  } else {
    return false;
  }
  return true;
}

std::string compose_document(const std::vector<LegResult>& legs) {
  std::string doc = "{";
  std::string errors;
  for (const LegResult& l : legs) {
    if (doc.size() > 1) doc += ',';
    http::append_json_string(&doc, l.name);
    doc += ':';
    if (!l.ok) {
      doc += "null";
      if (!errors.empty()) errors += ',';
      http::append_json_string(&errors, l.name);
      errors += ":{\"status\":" + std::to_string(l.status) + ",\"error\":";
      http::append_json_string(&errors, l.error);
      errors += ",\"message\":";
      http::append_json_string(&errors, l.message);
      errors += '}';
    } else if (l.raw) {
      http::append_json_string(&doc, l.text);
    } else {
      doc += l.text;
    }
  }
  if (!errors.empty()) doc += ",\"errors\":{" + errors + "}";
  doc += '}';
  return doc;
}

std::string merged_cache_control(const std::vector<LegCaching>& legs, bool partial) {
  if (partial) return "no-store";
  int64_t max_age = http::CacheControl::kMaxDelta;
  bool private_ = false, no_cache = false, must_revalidate = false;
  for (const LegCaching& l : legs) {
    const http::CacheControl cc = http::parse_cache_control(l.cache_control);
    if (cc.no_store) return "no-store";
    max_age = std::min(max_age, cc.max_age == http::CacheControl::kAbsent ? 0 : cc.max_age);
    private_ = private_ || cc.private_;
    no_cache = no_cache || cc.no_cache;
    must_revalidate = must_revalidate || cc.must_revalidate;
  }
  std::string out = private_ ? "private, " : "";
  out += "max-age=" + std::to_string(max_age);
  if (no_cache) out += ", no-cache";
  if (must_revalidate) out += ", must-revalidate";
  return out;
}

std::string merged_etag(const std::vector<LegCaching>& legs, bool partial) {
  if (partial) return {};
  std::string all;
  for (const LegCaching& l : legs) {
    if (l.etag.empty()) return {};
    all.append(l.etag).push_back('\n');
  }
  const auto digest = crypto::sha256(all);
  return "W/\"" + crypto::hex(digest.data(), 16) + "\"";
}

}  // namespace gatehouse::exchange
