#include "exchange/composite_answer.h"

#include <boost/json.hpp>

#include "crypto/digest.h"
#include "http/cache_control.h"
#include "http/error_response.h"
#include "http/url.h"
#include "router/router.h"

namespace gatehouse::exchange {

namespace json = boost::json;

FillError fill_template(std::span<const config::TemplatePart> parts, const TemplateValues& values,
                        std::string* out, std::string* what) {
  using Kind = config::TemplatePart::Kind;
  for (size_t i = 0; i < parts.size(); ++i) {
    const config::TemplatePart& part = parts[i];
    if (part.kind == Kind::kText) {
      *out += part.text;
      continue;
    }
    std::string value;
    switch (part.kind) {
      case Kind::kCapture:
        for (const auto& [name, v] : values.captures)
          if (name == part.text) value = v;
        break;
      case Kind::kQuery: {
        bool found = false;
        const std::string_view raw = router::query_param(values.query, part.text, &found);
        if (!http::percent_decode(raw, &value)) value = raw;
        break;
      }
      case Kind::kHeader:
        for (const auto& [name, v] : values.headers) {
          if (name != part.text) continue;
          value = v;
          break;
        }
        break;
      case Kind::kLeg:
        if (part.leg >= values.answers.size() ||
            !scalar_at(values.answers[part.leg], part.text, &value)) {
          *what = part.text;
          return FillError::kDependencyValue;
        }
        break;
      case Kind::kText:
        break;
    }
    // A whole segment of the path: after a '/', before a '/', the query or the end.
    const bool whole_segment =
        out->ends_with('/') && out->find('?') == std::string::npos &&
        (i + 1 == parts.size() ||
         (parts[i + 1].kind == Kind::kText &&
          (parts[i + 1].text.starts_with('/') || parts[i + 1].text.starts_with('?'))));
    if ((value == "." || value == "..") && whole_segment) {
      *what = value;
      return FillError::kDotSegment;
    }
    http::append_percent_encoded(out, value);
  }
  return FillError::kNone;
}

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

namespace {

// Keeps of `from` (an object) the value at `path`, into `to`.
void keep_field(const json::object& from, std::span<const std::string> path, json::object* to) {
  const auto it = from.find(path.front());
  if (it == from.end()) return;
  if (path.size() == 1) {
    (*to)[path.front()] = it->value();
    return;
  }
  const auto* inner = it->value().if_object();
  if (!inner) return;
  json::value& slot = (*to)[path.front()];
  if (!slot.is_object()) slot = json::object();
  keep_field(*inner, path.subspan(1), &slot.get_object());
}

bool shape_object(const json::object& in, std::span<const std::vector<std::string>> fields,
                  std::span<const std::pair<std::string, std::string>> rename, json::object* out) {
  if (fields.empty()) {
    *out = in;
  } else {
    for (const auto& path : fields) keep_field(in, path, out);
  }
  if (rename.empty()) return true;
  json::object renamed;  // in the same order, the keys renamed where they are
  for (auto& member : *out) {
    std::string_view key = member.key();
    for (const auto& [from, to] : rename)
      if (key == from) key = to;
    renamed[key] = std::move(member.value());
  }
  *out = std::move(renamed);
  return true;
}

// The document as it is built: an object's members in order, or a value's JSON text.
struct Node {
  std::string text;  // a leaf's JSON
  std::vector<std::pair<std::string, Node>> members;
  bool leaf = false;

  Node& at(std::string_view key) {
    for (auto& [k, n] : members)
      if (k == key) return n;
    members.emplace_back(std::string(key), Node{});
    return members.back().second;
  }
  void set(std::string text_) {
    leaf = true;
    members.clear();
    text = std::move(text_);
  }
  void write(std::string* out) const {
    if (leaf) {
      *out += text;
      return;
    }
    *out += '{';
    for (size_t i = 0; i < members.size(); ++i) {
      if (i) *out += ',';
      http::append_json_string(out, members[i].first);
      *out += ':';
      members[i].second.write(out);
    }
    *out += '}';
  }
};

}  // namespace

bool shape_answer(const json::value& answer, std::span<const std::vector<std::string>> fields,
                  std::span<const std::pair<std::string, std::string>> rename, json::value* out) {
  if (fields.empty() && rename.empty()) {
    *out = answer;
    return true;
  }
  if (const auto* o = answer.if_object()) {
    json::object shaped;
    shape_object(*o, fields, rename, &shaped);
    *out = std::move(shaped);
    return true;
  }
  const auto* a = answer.if_array();
  if (!a) return false;
  json::array shaped;
  for (const auto& element : *a) {
    const auto* o = element.if_object();
    if (!o) return false;
    json::object one;
    shape_object(*o, fields, rename, &one);
    shaped.push_back(std::move(one));
  }
  *out = std::move(shaped);
  return true;
}

std::string compose_document(const std::vector<LegResult>& legs) {
  Node root;
  std::string errors;
  for (const LegResult& l : legs) {
    // Where its answer goes: under its name, at its path, or (merged) into the root's keys.
    auto place = [&]() -> Node& {
      if (l.at.empty()) return root.at(l.name);
      Node* n = &root;
      for (const auto& key : l.at) {
        if (n->leaf) n->leaf = false;  // a later path through an earlier leaf replaces it
        n = &n->at(key);
      }
      return *n;
    };
    if (!l.ok) {
      if (!l.merge) place().set("null");
      if (!errors.empty()) errors += ',';
      http::append_json_string(&errors, l.name);
      errors += ":{\"status\":" + std::to_string(l.status) + ",\"error\":";
      http::append_json_string(&errors, l.error);
      errors += ",\"message\":";
      http::append_json_string(&errors, l.message);
      errors += '}';
    } else if (l.raw) {
      std::string s;
      http::append_json_string(&s, l.text);
      place().set(std::move(s));
    } else if (l.merge && l.shaped && l.shaped->is_object()) {
      for (const auto& member : l.shaped->get_object())
        root.at(member.key()).set(json::serialize(member.value()));
    } else if (l.shaped) {
      place().set(json::serialize(*l.shaped));
    } else {
      place().set(std::string(l.text));
    }
  }
  std::string doc;
  root.write(&doc);
  if (!errors.empty()) {
    doc.pop_back();  // the root's '}'
    doc += (root.members.empty() ? "" : ",") + std::string("\"errors\":{") + errors + "}}";
  }
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
