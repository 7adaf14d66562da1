// A descriptor set, as `protoc --include_imports --descriptor_set_out` writes it, loaded for
// transcoding: its methods, their google.api.http bindings, and the proto3 JSON mapping
// (https://protobuf.dev/programming-guides/proto3/#json) of their messages both ways, through
// libprotobuf's JSON utilities on the wire format. No generated code: the gateway knows a service
// only from its descriptors. libprotobuf's headers stay in descriptor_set.cc.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "filters/grpc_transcode/path_template.h"

namespace gatehouse::filters::transcode {

struct Method {
  std::string name;  // "lib.Library/GetBook", as a route's grpc_transcode.method names it
  std::string path;  // "/lib.Library/GetBook": the gRPC call's :path
  std::string input_type, output_type;  // full names: "lib.GetBookRequest"
  bool client_streaming = false;
  bool server_streaming = false;
};

// One HTTP mapping of a method (an HttpRule, or one of its additional_bindings).
struct HttpBinding {
  std::string verb;  // GET, PUT, POST, DELETE, PATCH, or a custom rule's kind
  PathTemplate path;
  std::string body;  // "": no body; "*": the whole request message; else one of its fields
  const Method* method = nullptr;
};

class DescriptorSet {
 public:
  // Null, with *why, when `file` cannot be read or is not a descriptor set whose files build.
  static std::shared_ptr<const DescriptorSet> load(const std::string& file, std::string* why);
  ~DescriptorSet();

  // "pkg.Service/Method" (or "pkg.Service.Method"); null if the set has no such method.
  const Method* find(std::string_view name) const;
  const std::vector<Method>& methods() const { return methods_; }
  // Every method's google.api.http bindings (MethodOptions extension 72295728), in the set's
  // order. A rule that cannot be served is left out, and why is added to *skipped.
  std::vector<HttpBinding> http_bindings(std::vector<std::string>* skipped) const;

  // The message `type` (a full name) from proto3 JSON to the wire format, and back. False, with
  // *why naming the field, on JSON that does not fit (an unknown field, a wrong type).
  bool json_to_binary(const std::string& type, std::string_view json, std::string* out,
                      std::string* why) const;
  bool binary_to_json(const std::string& type, std::string_view bytes, std::string* out,
                      std::string* why) const;
  // The wire bytes of message `type` in *into, with `more` merged into them (protobuf's merge: a
  // singular field of `more` replaces one of *into, messages merge, repeated fields append), as
  // one message. Two serialized messages one after the other mean the same to a conforming
  // parser, but protobuf.js (grpc-js's) replaces a message field instead of merging it.
  void merge(const std::string& type, std::string* into, std::string_view more) const;
  // Fields bound from a request's path and query (dotted field paths into `type`) as one JSON
  // object, each value typed as its field is (a bool as a literal, an enum by name or number, a
  // well-known type such as Timestamp as its string form); a repeated field takes every value
  // given. False, with *why, for a field `type` does not have or that cannot be bound (a message,
  // a map), or a second value for a field that is not repeated.
  bool fields_to_json(const std::string& type, const std::vector<FieldValue>& fields,
                      std::string* out, std::string* why) const;
  // The details of the google.rpc.Status a call's grpc-status-details-bin carries (base64) as a
  // JSON array: each google.protobuf.Any in its JSON form ("@type" and the fields) when the set
  // has its type, else "@type" and the base64 "value". "[]" when there are none.
  std::string details_json(std::string_view status_details_bin) const;

 private:
  struct Impl;
  DescriptorSet();
  std::unique_ptr<Impl> impl_;
  std::vector<Method> methods_;  // not changed after load: HttpBinding points into it
};

}  // namespace gatehouse::filters::transcode
