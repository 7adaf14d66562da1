#include "filters/grpc_transcode/descriptor_set.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/stubs/strutil.h>
#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/type_resolver.h>
#include <google/protobuf/util/type_resolver_util.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "http/error_response.h"

namespace gatehouse::filters::transcode {
namespace pb = google::protobuf;
namespace {

constexpr std::string_view kTypeUrlPrefix = "type.googleapis.com";
constexpr int kHttpRuleExtension = 72295728;  // google.api.http on google.protobuf.MethodOptions

std::string type_url(std::string_view type) {
  return std::string(kTypeUrlPrefix) + "/" + std::string(type);
}

// The length-delimited fields numbered `number` of a message read as unknown fields.
std::vector<std::string> bytes_fields(const pb::UnknownFieldSet& set, int number) {
  std::vector<std::string> out;
  for (int i = 0; i < set.field_count(); ++i) {
    const auto& f = set.field(i);
    if (f.number() == number && f.type() == pb::UnknownField::TYPE_LENGTH_DELIMITED)
      out.push_back(f.length_delimited());
  }
  return out;
}

std::string bytes_field(const pb::UnknownFieldSet& set, int number) {
  auto all = bytes_fields(set, number);
  return all.empty() ? std::string() : std::move(all.back());
}

// google.api.HttpRule's fields (google/api/http.proto), read off the wire.
enum HttpRuleField {
  kGet = 2,
  kPut = 3,
  kPost = 4,
  kDelete = 5,
  kPatch = 6,
  kBody = 7,
  kCustom = 8,
  kAdditionalBindings = 11,
  kResponseBody = 12,
};

// The well-known types whose JSON form is a string (or a number or bool) rather than an object:
// a path or query parameter can fill them.
bool is_scalar_message(const pb::Descriptor* d) {
  static const std::set<std::string_view> kScalars = {
      "google.protobuf.Timestamp",   "google.protobuf.Duration",    "google.protobuf.FieldMask",
      "google.protobuf.DoubleValue", "google.protobuf.FloatValue",  "google.protobuf.Int64Value",
      "google.protobuf.UInt64Value", "google.protobuf.Int32Value",  "google.protobuf.UInt32Value",
      "google.protobuf.BoolValue",   "google.protobuf.StringValue", "google.protobuf.BytesValue"};
  return kScalars.contains(d->full_name());
}

// A parameter's value as JSON for the field it fills: the JSON parser then checks it (a bad
// number fails there, naming the field).
void append_value(std::string* out, const pb::FieldDescriptor* f, const std::string& v) {
  const bool is_bool = f->cpp_type() == pb::FieldDescriptor::CPPTYPE_BOOL ||
                       (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE &&
                        f->message_type()->full_name() == "google.protobuf.BoolValue");
  const bool is_number =
      f->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM && !v.empty() &&
      v.find_first_not_of("0123456789") == std::string::npos;  // an enum by its number
  if ((is_bool && (v == "true" || v == "false")) || is_number)
    out->append(v);
  else
    http::append_json_string(out, v);  // numbers too: proto3 JSON takes them quoted
}

// The bound fields as a tree of JSON objects, by proto field name.
struct Node {
  const pb::FieldDescriptor* field = nullptr;
  std::vector<std::string> values;
  std::map<std::string, Node> children;

  void write(std::string* out) const {
    out->push_back('{');
    bool first = true;
    for (const auto& [name, child] : children) {
      if (!first) out->push_back(',');
      first = false;
      http::append_json_string(out, name);
      out->push_back(':');
      if (!child.children.empty()) {
        child.write(out);
      } else if (child.field->is_repeated()) {
        out->push_back('[');
        for (size_t i = 0; i < child.values.size(); ++i) {
          if (i) out->push_back(',');
          append_value(out, child.field, child.values[i]);
        }
        out->push_back(']');
      } else {
        append_value(out, child.field, child.values.front());
      }
    }
    out->push_back('}');
  }
};

}  // namespace

struct DescriptorSet::Impl {
  pb::DescriptorPool pool;
  std::unique_ptr<pb::util::TypeResolver> resolver;
  pb::DynamicMessageFactory factory{&pool};  // GetPrototype() is thread-safe
};

DescriptorSet::DescriptorSet() : impl_(std::make_unique<Impl>()) {}
DescriptorSet::~DescriptorSet() = default;

std::shared_ptr<const DescriptorSet> DescriptorSet::load(const std::string& file,
                                                         std::string* why) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    *why = "cannot read descriptor set " + file;
    return nullptr;
  }
  std::stringstream bytes;
  bytes << in.rdbuf();
  pb::FileDescriptorSet set;
  if (!set.ParseFromString(bytes.str()) || set.file_size() == 0) {
    *why = file +
           " is not a descriptor set (make one with protoc --include_imports "
           "--descriptor_set_out=FILE)";
    return nullptr;
  }
  std::shared_ptr<DescriptorSet> out(new DescriptorSet());
  // Files in the order protoc writes them, imports first: each builds on those before it.
  for (const auto& f : set.file()) {
    if (out->impl_->pool.BuildFile(f)) continue;
    *why = file + ": " + f.name() +
           " does not build from the set (its imports missing? protoc needs --include_imports)";
    return nullptr;
  }
  out->impl_->resolver.reset(
      pb::util::NewTypeResolverForDescriptorPool(std::string(kTypeUrlPrefix), &out->impl_->pool));
  for (const auto& f : set.file()) {
    const pb::FileDescriptor* fd = out->impl_->pool.FindFileByName(f.name());
    for (int s = 0; s < fd->service_count(); ++s) {
      const pb::ServiceDescriptor* service = fd->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        const pb::MethodDescriptor* md = service->method(m);
        Method method;
        method.name = service->full_name() + "/" + md->name();
        method.path = "/" + method.name;
        method.input_type = md->input_type()->full_name();
        method.output_type = md->output_type()->full_name();
        method.client_streaming = md->client_streaming();
        method.server_streaming = md->server_streaming();
        out->methods_.push_back(std::move(method));
      }
    }
  }
  return out;
}

const Method* DescriptorSet::find(std::string_view name) const {
  std::string wanted(name);
  if (wanted.find('/') == std::string::npos) {
    const auto dot = wanted.rfind('.');
    if (dot != std::string::npos) wanted[dot] = '/';
  }
  for (const auto& m : methods_)
    if (m.name == wanted) return &m;
  return nullptr;
}

std::vector<HttpBinding> DescriptorSet::http_bindings(std::vector<std::string>* skipped) const {
  std::vector<HttpBinding> out;
  for (const Method& m : methods_) {
    const auto slash = m.name.find('/');
    const pb::MethodDescriptor* md = impl_->pool.FindServiceByName(m.name.substr(0, slash))
                                         ->FindMethodByName(m.name.substr(slash + 1));
    const pb::MethodOptions& options = md->options();
    const auto& unknown = options.GetReflection()->GetUnknownFields(options);
    const std::string rule_bytes = bytes_field(unknown, kHttpRuleExtension);
    if (rule_bytes.empty()) continue;
    pb::UnknownFieldSet rule;
    if (!rule.ParseFromString(rule_bytes)) {
      skipped->push_back(m.name + ": its google.api.http option does not parse");
      continue;
    }
    auto add = [&](const pb::UnknownFieldSet& r) {
      HttpBinding b;
      b.method = &m;
      std::string path;
      static constexpr std::pair<int, std::string_view> kVerbs[] = {
          {kGet, "GET"}, {kPut, "PUT"}, {kPost, "POST"}, {kDelete, "DELETE"}, {kPatch, "PATCH"}};
      for (const auto& [field, verb] : kVerbs) {
        if (auto p = bytes_field(r, field); !p.empty()) {
          b.verb = verb;
          path = std::move(p);
        }
      }
      if (auto custom = bytes_field(r, kCustom); !custom.empty()) {
        pb::UnknownFieldSet c;
        if (c.ParseFromString(custom)) {
          b.verb = bytes_field(c, 1);
          path = bytes_field(c, 2);
        }
      }
      b.body = bytes_field(r, kBody);
      if (b.verb.empty() || path.empty()) {
        skipped->push_back(m.name + ": an HTTP rule without a method and path");
        return;
      }
      if (!bytes_field(r, kResponseBody).empty()) {
        skipped->push_back(m.name + ": " + b.verb + " " + path +
                           ": response_body is not supported (the whole message is the answer)");
        return;
      }
      if (m.client_streaming) {
        skipped->push_back(m.name + ": a client-streaming method cannot be called from JSON");
        return;
      }
      std::string why;
      auto t = PathTemplate::parse(path, &why);
      if (!t) {
        skipped->push_back(m.name + ": " + b.verb + " " + path + ": " + why);
        return;
      }
      b.path = std::move(*t);
      out.push_back(std::move(b));
    };
    add(rule);
    for (const auto& extra : bytes_fields(rule, kAdditionalBindings)) {
      pb::UnknownFieldSet r;
      if (r.ParseFromString(extra)) add(r);
    }
  }
  return out;
}

bool DescriptorSet::json_to_binary(const std::string& type, std::string_view json, std::string* out,
                                   std::string* why) const {
  pb::util::JsonParseOptions options;  // unknown fields are errors
  const auto status =
      pb::util::JsonToBinaryString(impl_->resolver.get(), type_url(type),
                                   pb::StringPiece(json.data(), json.size()), out, options);
  if (status.ok()) return true;
  *why = std::string(status.message());
  return false;
}

bool DescriptorSet::binary_to_json(const std::string& type, std::string_view bytes,
                                   std::string* out, std::string* why) const {
  // The printer writes every field on the wire, but a proto3 field holding its default value is
  // left out of the JSON (and some encoders, protobuf.js among them, write defaults): the message
  // is parsed and written again first, which drops them.
  const pb::Descriptor* d = impl_->pool.FindMessageTypeByName(type);
  std::unique_ptr<pb::Message> m(impl_->factory.GetPrototype(d)->New());
  if (!m->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    *why = "not a well-formed " + type;
    return false;
  }
  const auto status = pb::util::BinaryToJsonString(impl_->resolver.get(), type_url(type),
                                                   m->SerializeAsString(), out);
  if (status.ok()) return true;
  *why = std::string(status.message());
  return false;
}

void DescriptorSet::merge(const std::string& type, std::string* into, std::string_view more) const {
  if (more.empty()) return;
  if (into->empty()) {
    into->assign(more);
    return;
  }
  const pb::Descriptor* d = impl_->pool.FindMessageTypeByName(type);
  std::unique_ptr<pb::Message> m(impl_->factory.GetPrototype(d)->New());
  // Both are the gateway's own output of the JSON parser: they parse.
  m->ParseFromString(*into);
  m->MergeFromString(std::string(more));
  into->clear();
  m->SerializeToString(into);
}

bool DescriptorSet::fields_to_json(const std::string& type, const std::vector<FieldValue>& fields,
                                   std::string* out, std::string* why) const {
  const pb::Descriptor* root = impl_->pool.FindMessageTypeByName(type);
  Node tree;
  for (const FieldValue& fv : fields) {
    const pb::Descriptor* message = root;
    Node* node = &tree;
    std::string_view rest = fv.field;
    while (true) {
      const auto dot = rest.find('.');
      const std::string name(rest.substr(0, dot));
      const pb::FieldDescriptor* f = message->FindFieldByName(name);
      if (!f) f = message->FindFieldByCamelcaseName(name);
      if (!f) {
        *why = "'" + fv.field + "': " + message->full_name() + " has no field '" + name + "'";
        return false;
      }
      node = &node->children[f->name()];
      node->field = f;
      const bool leaf = f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE ||
                        is_scalar_message(f->message_type());
      if (dot == std::string_view::npos) {
        if (!leaf || f->is_map()) {
          *why = "'" + fv.field + "' is a message: bind its fields ('" + fv.field + ".NAME')";
          return false;
        }
        if (!f->is_repeated() && !node->values.empty()) {
          *why = "'" + fv.field + "' is given twice, and is not a repeated field";
          return false;
        }
        node->values.push_back(fv.value);
        break;
      }
      if (leaf || f->is_repeated()) {
        *why = "'" + fv.field + "': '" + name + "' has no fields to bind";
        return false;
      }
      message = f->message_type();
      rest.remove_prefix(dot + 1);
    }
  }
  tree.write(out);
  return true;
}

std::string DescriptorSet::details_json(std::string_view status_details_bin) const {
  std::string out = "[";
  std::string status;
  pb::UnknownFieldSet fields;  // google.rpc.Status: code 1, message 2, details 3
  if (pb::Base64Unescape(pb::StringPiece(status_details_bin.data(), status_details_bin.size()),
                         &status) &&
      fields.ParseFromString(status)) {
    for (const auto& any_bytes : bytes_fields(fields, 3)) {
      pb::UnknownFieldSet any;  // google.protobuf.Any: type_url 1, value 2
      if (!any.ParseFromString(any_bytes)) continue;
      const std::string url = bytes_field(any, 1);
      const std::string value = bytes_field(any, 2);
      if (out.size() > 1) out.push_back(',');
      out += "{\"@type\":";
      http::append_json_string(&out, url);
      std::string json, why;
      const auto slash = url.rfind('/');
      const std::string type = slash == std::string::npos ? url : url.substr(slash + 1);
      if (impl_->pool.FindMessageTypeByName(type) && binary_to_json(type, value, &json, &why) &&
          json.size() > 2) {
        out += ',';
        out.append(json, 1);  // the object's fields after "@type"
      } else {
        if (json != "{}") {
          std::string encoded;
          pb::Base64Escape(value, &encoded);
          out += ",\"value\":";
          http::append_json_string(&out, encoded);
        }
        out += '}';
      }
    }
  }
  out += ']';
  return out;
}

}  // namespace gatehouse::filters::transcode
