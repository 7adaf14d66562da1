#include "exchange/composite_json.h"

#include <boost/json.hpp>

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

}  // namespace gatehouse::exchange
