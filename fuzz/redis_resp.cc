// Redis replies (redis::ReplyReader over hiredis's protocol reader) and what the client reads from
// them: MOVED/ASK redirections, CLUSTER SLOTS maps, Sentinel's master address; and Redis URLs.
// Invariants: the input fed in one piece and in random pieces gives the same replies and the same
// verdict; every reply re-encoded as RESP reads back as the same reply; a slot map that loads
// covers every slot with a node that exists; redirections name a slot and a port in range.
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz.h"
#include "redis/cluster.h"
#include "redis/endpoint.h"
#include "redis/resp.h"
#include "redis/sentinel.h"

namespace {

using namespace gatehouse;
using redis::Reply;

struct Stream {
  std::vector<Reply> replies;
  bool error = false;
};

// Reads replies until the reader wants more or fails.
bool drain(redis::ReplyReader& reader, Stream* out) {
  while (true) {
    Reply r;
    switch (reader.next(&r)) {
      case redis::ReplyReader::Status::kReply:
        out->replies.push_back(std::move(r));
        break;
      case redis::ReplyReader::Status::kNeedMore:
        return true;
      case redis::ReplyReader::Status::kError:
        out->error = true;
        return false;
    }
  }
}

bool same(const Reply& a, const Reply& b) {
  if (a.type != b.type || a.str != b.str || a.integer != b.integer ||
      a.elements.size() != b.elements.size())
    return false;
  for (size_t i = 0; i < a.elements.size(); ++i) {
    if (!same(a.elements[i], b.elements[i])) return false;
  }
  return true;
}

void encode(const Reply& r, std::string* out) {
  switch (r.type) {
    case Reply::Type::kString:
      redis::append_bulk(*out, r.str);
      break;
    case Reply::Type::kStatus:
      out->append("+").append(r.str).append("\r\n");
      break;
    case Reply::Type::kError:
      out->append("-").append(r.str).append("\r\n");
      break;
    case Reply::Type::kInteger:
      out->append(":").append(std::to_string(r.integer)).append("\r\n");
      break;
    case Reply::Type::kNil:
      out->append("$-1\r\n");
      break;
    case Reply::Type::kArray:
      redis::append_length(*out, '*', r.elements.size());
      for (const auto& e : r.elements) encode(e, out);
      break;
  }
}

void check_reply(const Reply& r) {
  if (r.is_error()) {
    if (auto to = redis::redirect_target(r.str)) {
      FUZZ_CHECK(to->slot < redis::kHashSlots && to->port != 0 && !to->host.empty());
    }
  }
  if (auto master = redis::parse_master_address(r)) {
    FUZZ_CHECK(!master->host.empty() && master->port != 0);
  }
  std::vector<std::string> nodes;
  std::vector<uint16_t> owner;
  bool loaded = redis::load_slot_map(
      r, "default.example",
      [&](std::string_view host, uint16_t port) {
        FUZZ_CHECK(!host.empty() && port != 0);
        nodes.push_back(std::string(host) + ":" + std::to_string(port));
        return nodes.size() - 1;
      },
      &owner);
  if (loaded) {
    FUZZ_CHECK(owner.size() == redis::kHashSlots);
    for (uint16_t node : owner) FUZZ_CHECK(node < nodes.size());
  }
  if (r.type == Reply::Type::kString || r.type == Reply::Type::kStatus) {
    FUZZ_CHECK(redis::hash_slot(r.str) < redis::kHashSlots);
    std::string error;
    auto ep = redis::parse_url(r.str, &error);
    if (!ep) FUZZ_CHECK(!error.empty());
  }
  for (const auto& e : r.elements) check_reply(e);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = fuzz::as_text(data, size);

  Stream whole;
  {
    redis::ReplyReader reader;
    FUZZ_CHECK(reader.feed(in));
    drain(reader, &whole);
  }
  Stream pieces;
  {
    redis::ReplyReader reader;
    fuzz::Splitter split(in);
    for (size_t at = 0; at < in.size();) {
      size_t n = split.piece(in.size() - at);
      FUZZ_CHECK(reader.feed(in.substr(at, n)));
      at += n;
      if (!drain(reader, &pieces)) break;
    }
  }
  FUZZ_CHECK(whole.error == pieces.error);
  FUZZ_CHECK(whole.replies.size() == pieces.replies.size());
  for (size_t i = 0; i < whole.replies.size(); ++i)
    FUZZ_CHECK(same(whole.replies[i], pieces.replies[i]));

  for (const Reply& r : whole.replies) {
    std::string encoded;
    encode(r, &encoded);
    redis::ReplyReader reader;
    FUZZ_CHECK(reader.feed(encoded));
    Stream back;
    FUZZ_CHECK(drain(reader, &back));
    FUZZ_CHECK(back.replies.size() == 1 && same(back.replies[0], r));
    check_reply(r);
  }
  return 0;
}
