#include "filters/grpc_transcode/grpc_transcode.h"

#include "filters/registry.h"
#include "grpc/status.h"
#include "http/url.h"

namespace gatehouse::filters {
namespace {

using transcode::FieldValue;

// A response message larger than this is refused when the route sets no grpc.max_message_bytes
// (gRPC's own default limit on a received message).
constexpr uint64_t kDefaultMaxMessage = 4 << 20;

// What the filter keeps for one transcoded call.
struct Call {
  const transcode::Method* method = nullptr;
  std::string body_field;  // "": the request's body is not read; "*": it is the whole message
  std::string bound;       // the wire bytes of the fields the path and query bind
  std::string json;        // the request body, as it arrives
  // The response, when the upstream answered with a gRPC body to turn into JSON.
  bool relayed = false;
  std::string pending;  // bytes not yet a whole message
  std::string result;   // a unary call's message, as JSON (its answer waits for the status)
  size_t messages = 0;
  int code = -1;  // the status the call ended with (-1: none seen)
  std::string message;
  std::string details;  // grpc-status-details-bin, as it came (base64)
  std::string broken;   // why the response cannot be turned into JSON, once it cannot
};
inline const SlotKey<Call> kCall{"grpc_transcode.call"};

std::string_view trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

http::ErrorResponse bad_request(std::string message) {
  return http::ErrorResponse{400, "bad_request", std::move(message), {}};
}

// The query's parameters as fields, after those the path bound (a parameter the path bound
// already is left out: the path's value stands). False, with *why, on a malformed escape.
bool bind_query(std::string_view query, std::vector<FieldValue>* fields, std::string* why) {
  const size_t path_bound = fields->size();
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    if (param.empty()) continue;
    const auto eq = param.find('=');
    FieldValue fv;
    if (!http::percent_decode(param.substr(0, eq), &fv.field) ||
        (eq != std::string_view::npos && !http::percent_decode(param.substr(eq + 1), &fv.value))) {
      *why = "query parameter '" + std::string(param) + "' has a malformed %-escape";
      return false;
    }
    const bool by_path = std::any_of(fields->begin(), fields->begin() + path_bound,
                                     [&](const FieldValue& f) { return f.field == fv.field; });
    if (!by_path) fields->push_back(std::move(fv));
  }
  return true;
}

}  // namespace

const transcode::HttpBinding* GrpcTranscode::find_binding(const http::RequestHead& req,
                                                          std::vector<FieldValue>* fields) const {
  const transcode::HttpBinding* best = nullptr;
  std::vector<FieldValue> mine;
  for (const auto& b : bindings_) {
    if (b.verb != req.method || (best && b.path.literals() <= best->path.literals())) continue;
    mine.clear();
    if (!b.path.match(req.path, &mine)) continue;
    best = &b;
    *fields = mine;
  }
  return best;
}

FilterStatus GrpcTranscode::on_request(RequestContext& ctx) const {
  const http::RequestHead& req = *ctx.request;
  Call call;
  std::vector<FieldValue> fields;
  if (method_) {
    call.method = method_;
    call.body_field = "*";
    for (const auto& [name, value] : ctx.captures) {
      FieldValue fv{std::string(name), {}};
      if (!http::percent_decode(value, &fv.value)) {
        ctx.reply = bad_request("path parameter '" + fv.field + "' has a malformed %-escape");
        return FilterStatus::kRespond;
      }
      fields.push_back(std::move(fv));
    }
  } else {
    const transcode::HttpBinding* b = find_binding(req, &fields);
    if (!b) {
      ctx.reply = http::ErrorResponse{404,
                                      "no_grpc_method",
                                      "no gRPC method of the route's descriptor set is mapped to " +
                                          std::string(req.method) + " " + std::string(req.path),
                                      {}};
      return FilterStatus::kRespond;
    }
    call.method = b->method;
    call.body_field = b->body;
  }
  std::string why, json;
  if (!bind_query(req.query, &fields, &why) ||
      !set_->fields_to_json(call.method->input_type, fields, &json, &why) ||
      !set_->json_to_binary(call.method->input_type, json, &call.bound, &why)) {
    ctx.reply = bad_request("the request's path and query do not fit " + call.method->input_type +
                            ": " + why);
    return FilterStatus::kRespond;
  }
  // The upstream gets the gRPC call: the request's other fields go along as its metadata.
  ctx.upstream_target = call.method->path;
  ctx.upstream_method = "POST";
  ctx.upstream_grpc = true;
  ctx.upstream_remove.emplace_back("content-type");
  ctx.upstream_add.emplace_back("content-type", "application/grpc");
  ctx.make_request_body();  // the message, whether the request has a body or not ...
  ctx.hold_request_head();  // ... made whole before the call: JSON that does not fit calls nobody
  ctx.slots.set(kCall, std::move(call));
  return FilterStatus::kContinue;
}

FilterStatus GrpcTranscode::on_request_body(RequestContext& ctx, std::string& data,
                                            bool end) const {
  Call* call = ctx.slots.get(kCall);
  if (!call) return FilterStatus::kContinue;
  if (!call->body_field.empty()) call->json += data;  // (held to max_body_bytes by the exchange)
  data.clear();
  if (!end) return FilterStatus::kContinue;
  std::string message, why;
  if (!trim(call->json).empty()) {
    const std::string json = call->body_field == "*"
                                 ? std::move(call->json)
                                 : "{\"" + call->body_field + "\":" + call->json + "}";
    if (!set_->json_to_binary(call->method->input_type, json, &message, &why)) {
      ctx.reply =
          bad_request("the JSON body does not fit " + call->method->input_type + ": " + why);
      return FilterStatus::kRespond;
    }
  }
  // The path's and query's fields win over the body's.
  set_->merge(call->method->input_type, &message, call->bound);
  grpc::append_message_prefix(&data, 0, static_cast<uint32_t>(message.size()));
  data += message;
  call->json.clear();
  return FilterStatus::kContinue;
}

std::string GrpcTranscode::error_json(int code, std::string_view message,
                                      std::string_view details) const {
  std::string out = "{\"code\":" + std::to_string(code) + ",\"message\":";
  http::append_json_string(&out, message);
  out += ",\"details\":" + set_->details_json(details) + "}";
  return out;
}

FilterStatus GrpcTranscode::on_response(RequestContext& ctx) const {
  Call* call = ctx.slots.get(kCall);
  if (!call || !ctx.response) return FilterStatus::kContinue;  // the gateway's own: JSON already
  const http::ResponseHead& head = *ctx.response;
  const bool stream = call->method->server_streaming;
  const std::string_view type = stream && !array_ ? "application/x-ndjson" : "application/json";
  if (auto code = grpc::trailers_only_status(head)) {
    // The call ended before any message: its status, in the head, is the whole answer.
    call->code = static_cast<int>(*code);
    http::percent_decode(head.get("grpc-message"), &call->message);
    call->details = std::string(head.get("grpc-status-details-bin"));
    http::ErrorResponse& reply = ctx.reply;
    reply.status = 200;
    reply.body = std::string();
    reply.content_type = std::string(type);
    if (*code == grpc::Code::kOk) {
      if (!stream) {
        reply.status = 502;
        *reply.body = error_json(static_cast<int>(grpc::Code::kInternal),
                                 "the upstream ended a unary call without its message", "");
      } else if (array_) {
        *reply.body = "[]";
      }
    } else {
      reply.status = grpc::http_status_for(*code);
      reply.code = "grpc_" + std::string(grpc::code_name(*code));
      std::transform(reply.code.begin(), reply.code.end(), reply.code.begin(),
                     [](char c) { return static_cast<char>(std::tolower(c)); });
      reply.content_type = "application/json";
      *reply.body = error_json(call->code, call->message, call->details);
    }
    return FilterStatus::kRespond;
  }
  // Not a gRPC answer (an HTTP error from a proxy on the way): it goes as it came.
  if (!grpc::is_grpc_content_type(head.get("content-type"))) return FilterStatus::kContinue;
  call->relayed = true;
  ctx.watch_response_body();
  ctx.hold_response_head();  // its status comes with the call's end, or its first message
  for (const char* name : {"content-type", "grpc-encoding", "grpc-accept-encoding"})
    ctx.response_remove.emplace_back(name);
  ctx.response_add.emplace_back("content-type", std::string(type));
  return FilterStatus::kContinue;
}

void GrpcTranscode::on_response_trailers(RequestContext& ctx, http::HeaderList& trailers) const {
  Call* call = ctx.slots.get(kCall);
  if (!call || !call->relayed) return;
  for (auto& [name, value] : trailers) {
    if (http::iequals(name, "grpc-status")) {
      if (auto code = grpc::parse_code(value)) call->code = static_cast<int>(*code);
    } else if (http::iequals(name, "grpc-message")) {
      http::percent_decode(value, &call->message);
    } else if (http::iequals(name, "grpc-status-details-bin")) {
      call->details = std::move(value);
    } else if (!call->method->server_streaming) {
      // A unary call's head waits for its end: its trailing metadata goes with it.
      ctx.response_add.emplace_back(std::move(name), std::move(value));
    }
  }
  trailers.clear();  // a JSON client reads the status from the HTTP status, or the body
}

void GrpcTranscode::on_response_body(RequestContext& ctx, std::string& data, bool end) const {
  Call* call = ctx.slots.get(kCall);
  if (!call || !call->relayed) return;
  const bool stream = call->method->server_streaming;
  const uint64_t limit = ctx.route && ctx.route->grpc_max_message_bytes
                             ? ctx.route->grpc_max_message_bytes
                             : kDefaultMaxMessage;
  if (call->broken.empty()) call->pending += data;
  data.clear();
  size_t at = 0;
  while (call->broken.empty() && call->pending.size() - at >= 5) {
    const auto* p = reinterpret_cast<const uint8_t*>(call->pending.data() + at);
    const uint32_t length =
        uint32_t{p[1]} << 24 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 8 | p[4];
    if (length > limit) {
      call->broken = "a response message of " + std::to_string(length) +
                     " bytes is larger than the limit of " + std::to_string(limit);
    } else if (call->pending.size() - at - 5 < length) {
      break;  // the rest of the message is still to come
    } else if (p[0] & 1) {
      call->broken = "a compressed response message (the gateway asks for none)";
    } else {
      std::string json, why;
      if (!set_->binary_to_json(call->method->output_type,
                                std::string_view(call->pending).substr(at + 5, length), &json,
                                &why)) {
        call->broken = "a response message is not a " + call->method->output_type + ": " + why;
        break;
      }
      at += 5 + length;
      ++call->messages;
      if (!stream) {
        call->result = std::move(json);
      } else {
        if (array_) data += call->messages == 1 ? '[' : ',';
        data += json;
        if (!array_) data += '\n';
      }
    }
  }
  call->pending.erase(0, at);
  if (!call->broken.empty()) call->pending.clear();
  if (!end) return;

  // The call's end: the status (and the unary answer) from its trailers.
  if (call->broken.empty() && !call->pending.empty())
    call->broken = "the response ended inside a message";
  if (call->broken.empty() && call->code < 0) call->broken = "the call ended without a grpc-status";
  if (call->broken.empty() && call->code == 0 && !stream && call->messages != 1)
    call->broken = "a unary call answered with " + std::to_string(call->messages) + " messages";
  int code = call->code;
  std::string_view message = call->message;
  if (!call->broken.empty()) {
    code = static_cast<int>(grpc::Code::kInternal);
    message = call->broken;
  }
  if (code == 0) {
    if (!stream)
      data = std::move(call->result);
    else if (array_)
      data += call->messages ? "]" : "[]";
  } else if (!stream || call->messages == 0) {
    // Nothing went yet: the HTTP status tells the failure (a broken answer is the upstream's).
    ctx.status = call->broken.empty() ? grpc::http_status_for(static_cast<grpc::Code>(code)) : 502;
    data = error_json(code, message, call->details);
  } else {
    // The stream is under way, its head sent: the failure is its last element.
    if (array_) data += ',';
    data += "{\"error\":" + error_json(code, message, call->details) + "}";
    data += array_ ? "]" : "\n";
  }
}

std::shared_ptr<const Filter> build_grpc_transcode(const BuildContext& ctx) {
  const auto& r = ctx.reader;
  if (!r.check_map(ctx.settings, ctx.path, {"descriptor_set", "method", "stream"})) return nullptr;
  const YAML::Node& file_node = ctx.settings["descriptor_set"];
  const std::string file_path = ctx.path + ".descriptor_set";
  if (!file_node) {
    r.error(ctx.settings, file_path, "'descriptor_set' is required");
    return nullptr;
  }
  auto file = r.str(file_node, file_path);
  if (!file) return nullptr;
  std::string why;
  auto set = transcode::DescriptorSet::load(r.resolve_path(*file), &why);
  if (!set) {
    r.error(file_node, file_path, why);
    return nullptr;
  }
  bool array = false;
  if (const YAML::Node& s = ctx.settings["stream"]) {
    auto v = r.str(s, ctx.path + ".stream");
    if (!v) return nullptr;
    if (*v != "ndjson" && *v != "array") {
      r.error(s, ctx.path + ".stream", "expected ndjson or array, got '" + *v + "'");
      return nullptr;
    }
    array = *v == "array";
  }
  if (const YAML::Node& m = ctx.settings["method"]) {
    auto name = r.str(m, ctx.path + ".method");
    if (!name) return nullptr;
    const transcode::Method* method = set->find(*name);
    if (!method) {
      std::string known;
      for (const auto& each : set->methods()) known += (known.empty() ? "" : ", ") + each.name;
      r.error(m, ctx.path + ".method",
              "no method '" + *name + "' in " + *file + " (it has: " + known + ")");
      return nullptr;
    }
    if (method->client_streaming) {
      r.error(m, ctx.path + ".method",
              "'" + *name + "' is client-streaming: a JSON request is one message");
      return nullptr;
    }
    return std::make_shared<GrpcTranscode>(std::move(set), method,
                                           std::vector<transcode::HttpBinding>{}, array);
  }
  std::vector<std::string> skipped;
  auto bindings = set->http_bindings(&skipped);
  for (const auto& s : skipped) r.warning(file_node, file_path, s);
  if (bindings.empty()) {
    r.error(file_node, file_path,
            *file + " has no method with a google.api.http annotation: name one with 'method'");
    return nullptr;
  }
  return std::make_shared<GrpcTranscode>(std::move(set), nullptr, std::move(bindings), array);
}

}  // namespace gatehouse::filters
