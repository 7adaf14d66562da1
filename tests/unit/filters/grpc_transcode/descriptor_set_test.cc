// filters/grpc_transcode/descriptor_set: a descriptor set protoc made from the integration
// tests' proto (tests/integration/fixtures/transcode_test.proto, compiled at build time):
// its methods, the google.api.http bindings read off the method options, the JSON mapping both
// ways, path and query values typed by their fields, the merge of bound fields into a body, and
// google.rpc.Status details.
#include "filters/grpc_transcode/descriptor_set.h"

#include <gtest/gtest.h>

#include <fstream>

namespace gatehouse::filters::transcode {
namespace {

std::shared_ptr<const DescriptorSet> load() {
  std::string why;
  auto set = DescriptorSet::load(GATEHOUSE_TRANSCODE_TEST_PB, &why);
  EXPECT_TRUE(set) << why;
  return set;
}

// A round trip through the wire format: JSON in, JSON as the printer writes it out.
std::string round_trip(const DescriptorSet& set, const std::string& type, std::string_view json) {
  std::string bytes, out, why;
  if (!set.json_to_binary(type, json, &bytes, &why)) return "error: " + why;
  if (!set.binary_to_json(type, bytes, &out, &why)) return "error: " + why;
  return out;
}

TEST(DescriptorSet, MethodsByName) {
  auto set = load();
  const Method* m = set->find("lib.Library/StreamBooks");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->path, "/lib.Library/StreamBooks");
  EXPECT_EQ(m->input_type, "lib.StreamBooksRequest");
  EXPECT_EQ(m->output_type, "lib.Book");
  EXPECT_TRUE(m->server_streaming);
  EXPECT_EQ(set->find("lib.Library.GetBook"), set->find("lib.Library/GetBook"));
  EXPECT_FALSE(set->find("lib.Library/Nope"));
}

TEST(DescriptorSet, HttpBindingsFromAnnotations) {
  auto set = load();
  std::vector<std::string> skipped;
  auto bindings = set->http_bindings(&skipped);
  EXPECT_TRUE(skipped.empty());
  std::string all;
  for (const auto& b : bindings)
    all += b.verb + " " + b.path.text() + " " + b.method->name + " body=" + b.body + "\n";
  EXPECT_EQ(all,
            "GET /v1/shelves/{shelf}/books/{id} lib.Library/GetBook body=\n"
            "GET /v1/shelves/{shelf}/books lib.Library/ListBooks body=\n"
            "POST /v1/shelves/{shelf}/books lib.Library/CreateBook body=book\n"
            "PATCH /v1/books/{book.id} lib.Library/UpdateBook body=*\n"
            "PUT /v1/books/{book.id} lib.Library/UpdateBook body=book\n"
            "DELETE /v1/books/{id} lib.Library/DeleteBook body=\n"
            "GET /v2/{name=shelves/*/books/*} lib.Library/Lookup body=\n"
            "GET /v1/shelves/{shelf}/books:stream lib.Library/StreamBooks body=\n");
}

TEST(DescriptorSet, Proto3JsonBothWays) {
  auto set = load();
  EXPECT_EQ(round_trip(*set, "lib.Book",
                       R"({"id":"5","title":"T","author":{"name":"A"},"tags":["x","y"],)"
                       R"("genre":"SCIENCE","published":"2024-01-02T03:04:05Z",)"
                       R"("read_time":"90s","rating":7,"subtitle":"s"})"),
            R"({"id":"5","title":"T","author":{"name":"A"},"tags":["x","y"],"genre":"SCIENCE",)"
            R"("published":"2024-01-02T03:04:05Z","readTime":"90s","rating":7,"subtitle":"s"})");
}

// An encoder may write fields that hold their default values (protobuf.js does): proto3 JSON
// leaves them out all the same.
TEST(DescriptorSet, DefaultValuesOnTheWireAreLeftOut) {
  auto set = load();
  // id 5, title "" (field 2, empty), genre 0 (field 5), author {name "X", country ""}.
  const std::string bytes("\x08\x05\x12\x00\x28\x00\x1a\x05\x0a\x01X\x12\x00", 13);
  std::string json, why;
  ASSERT_TRUE(set->binary_to_json("lib.Book", bytes, &json, &why)) << why;
  EXPECT_EQ(json, R"({"id":"5","author":{"name":"X"}})");
  EXPECT_FALSE(set->binary_to_json("lib.Book", "\x0a\x09short", &json, &why));
}

TEST(DescriptorSet, UnknownFieldsAreNamed) {
  auto set = load();
  std::string bytes, why;
  EXPECT_FALSE(set->json_to_binary("lib.Book", R"({"titel":"x"})", &bytes, &why));
  EXPECT_NE(why.find("titel"), std::string::npos) << why;
  EXPECT_FALSE(set->json_to_binary("lib.Book", R"({"id":true})", &bytes, &why));
  EXPECT_NE(why.find("id"), std::string::npos) << why;
  EXPECT_FALSE(set->json_to_binary("lib.Book", "{not json", &bytes, &why));
}

std::string fields(const DescriptorSet& set, const std::string& type,
                   std::vector<FieldValue> values) {
  std::string json, why;
  if (!set.fields_to_json(type, values, &json, &why)) return "error: " + why;
  return json;
}

TEST(DescriptorSet, PathAndQueryValuesAreTypedByTheirFields) {
  auto set = load();
  EXPECT_EQ(fields(*set, "lib.ListBooksRequest",
                   {{"shelf", "s1"},
                    {"tags", "a"},
                    {"tags", "b\"c"},
                    {"genre", "SCIENCE"},
                    {"page_size", "3"},
                    {"author.name", "Ann"},
                    {"min_rating", "4"}}),
            R"({"author":{"name":"Ann"},"genre":"SCIENCE","min_rating":"4","page_size":"3",)"
            R"("shelf":"s1","tags":["a","b\"c"]})");
  EXPECT_EQ(fields(*set, "lib.GetBookRequest", {{"with_reviews", "true"}, {"id", "7"}}),
            R"({"id":"7","with_reviews":true})");
  EXPECT_EQ(fields(*set, "lib.ListBooksRequest", {{"genre", "2"}}), R"({"genre":2})");
  // The JSON names work too (pageSize for page_size).
  EXPECT_EQ(fields(*set, "lib.ListBooksRequest", {{"pageSize", "3"}}), R"({"page_size":"3"})");
  // ... and the values parse as their fields do.
  std::string bytes, why, json;
  ASSERT_TRUE(set->json_to_binary(
      "lib.ListBooksRequest",
      fields(*set, "lib.ListBooksRequest", {{"page_size", "3"}, {"min_rating", "4"}}), &bytes,
      &why))
      << why;
  ASSERT_TRUE(set->binary_to_json("lib.ListBooksRequest", bytes, &json, &why));
  EXPECT_EQ(json, R"({"pageSize":3,"minRating":4})");
}

TEST(DescriptorSet, FieldsThatCannotBeBound) {
  auto set = load();
  EXPECT_NE(fields(*set, "lib.ListBooksRequest", {{"colour", "red"}}).find("'colour'"),
            std::string::npos);
  EXPECT_NE(fields(*set, "lib.ListBooksRequest", {{"author", "x"}}).find("error"),
            std::string::npos);
  EXPECT_NE(fields(*set, "lib.ListBooksRequest", {{"shelf.x", "x"}}).find("error"),
            std::string::npos);
  EXPECT_NE(fields(*set, "lib.ListBooksRequest", {{"shelf", "a"}, {"shelf", "b"}}).find("twice"),
            std::string::npos);
}

TEST(DescriptorSet, BoundFieldsMergeIntoTheBody) {
  auto set = load();
  std::string body, bound, why, json;
  ASSERT_TRUE(set->json_to_binary("lib.UpdateBookRequest",
                                  R"({"book":{"id":"1","title":"T","tags":["a"]}})", &body, &why));
  ASSERT_TRUE(
      set->json_to_binary("lib.UpdateBookRequest", R"({"book":{"id":"42"}})", &bound, &why));
  set->merge("lib.UpdateBookRequest", &body, bound);
  ASSERT_TRUE(set->binary_to_json("lib.UpdateBookRequest", body, &json, &why));
  EXPECT_EQ(json, R"({"book":{"id":"42","title":"T","tags":["a"]}})");
}

// A google.rpc.Status with one detail of a type the set has, and one it has not.
TEST(DescriptorSet, StatusDetails) {
  auto set = load();
  auto field = [](int number, std::string_view bytes) {
    std::string out(1, static_cast<char>(number << 3 | 2));
    out += static_cast<char>(bytes.size());
    out += bytes;
    return out;
  };
  const std::string author = field(1, "Ann") + field(2, "NZ");
  const std::string known = field(1, "type.googleapis.com/lib.Author") + field(2, author);
  const std::string unknown = field(1, "type.googleapis.com/x.Secret") + field(2, "\x08\x01");
  const std::string status = std::string("\x08\x05", 2) + field(3, known) + field(3, unknown);
  // grpc-status-details-bin is base64, unpadded as gRPC sends it.
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string b64;
  for (size_t i = 0; i < status.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(status[i]) << 16;
    if (i + 1 < status.size()) v |= static_cast<uint8_t>(status[i + 1]) << 8;
    if (i + 2 < status.size()) v |= static_cast<uint8_t>(status[i + 2]);
    const size_t chars = std::min<size_t>(4, (status.size() - i) * 4 / 3 + 1);
    for (size_t k = 0; k < chars; ++k) b64 += kAlphabet[v >> (18 - 6 * k) & 63];
  }
  EXPECT_EQ(set->details_json(b64),
            R"([{"@type":"type.googleapis.com/lib.Author","name":"Ann","country":"NZ"},)"
            R"({"@type":"type.googleapis.com/x.Secret","value":"CAE="}])");
  EXPECT_EQ(set->details_json(""), "[]");
  EXPECT_EQ(set->details_json("!!!"), "[]");
}

TEST(DescriptorSet, BadFilesAreRefusedWithTheirPath) {
  std::string why;
  EXPECT_FALSE(DescriptorSet::load("/nonexistent/x.pb", &why));
  EXPECT_NE(why.find("/nonexistent/x.pb"), std::string::npos);
  const std::string text = ::testing::TempDir() + "/not-a-set.pb";
  std::ofstream(text) << "this is not a descriptor set";
  EXPECT_FALSE(DescriptorSet::load(text, &why));
  EXPECT_NE(why.find("not a descriptor set"), std::string::npos) << why;
}

}  // namespace
}  // namespace gatehouse::filters::transcode
