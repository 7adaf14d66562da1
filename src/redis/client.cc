// The Redis client's public face (redis/client.h): one Client per worker, over a few connections
// to one server, the nodes of a Redis Cluster, or the master the sentinels name. The parts live
// beside it: RESP (resp.cc), one connection (connection.cc), the Cluster slot map (cluster.cc),
// Sentinel lookups (sentinel.cc).
#include "redis/client.h"

#include <openssl/evp.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <charconv>

#include "crypto/digest.h"
#include "net/asio.h"
#include "observe/log.h"
#include "redis/connection.h"
#include "redis/sentinel.h"

namespace gatehouse::redis {

using net::Clock;

Script::Script(std::string body) : body_(std::move(body)) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(body_.data(), body_.size(), md, &len, EVP_sha1(), nullptr);
  sha1_ = crypto::hex(md, len);
}

class Client::Impl {
 public:
  Impl(asio::io_context& io, Endpoint endpoint, int connections)
      : io_(io),
        endpoint_(std::make_shared<const Endpoint>(std::move(endpoint))),
        connections_(std::max(connections, 1)),
        refresh_timer_(io.get_executor()) {
    if (sentinel()) {
      // One connection to each sentinel (no AUTH, database 0: a sentinel has neither); the master
      // is whatever they name.
      for (const auto& [host, port] : endpoint_->sentinels) {
        sentinels_.push_back(
            make_node(std::make_shared<Endpoint>(sentinel_endpoint(*endpoint_, host, port)), 1));
      }
      refresh();
      return;
    }
    nodes_.push_back(make_node(endpoint_, connections_));
    if (cluster()) {
      owner_.assign(kHashSlots, 0);  // everything to the seed until the map is known
      refresh();
    }
  }
  ~Impl() { stop(); }

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    *alive_ = nullptr;  // callbacks that outlive the client (failures, timer) see it is gone
    refresh_timer_.cancel();
    for (auto* nodes : {&nodes_, &sentinels_}) {
      for (auto& node : *nodes) stop_node(node);
    }
  }

  // Cluster mode: only once the map of hash slots is known; sentinel mode: the master's address.
  bool connected() const {
    if ((cluster() || sentinel()) && !topology_known_) return false;
    for (const auto& node : nodes_) {
      for (const auto& s : node.slots) {
        if (s->up_link()) return true;
      }
    }
    return false;
  }

  // Posted, never called inline, so a caller never sees its callback run inside its own call.
  void fail_fast(Callback done, Failure why = Failure::kDisconnected) {
    asio::post(io_, [done = std::move(done), why] { done(why); });
  }

  // On a Cluster: to the node serving the slot of the key (routing_key()), or to `node` when one
  // is named.
  void command(std::span<const std::string_view> args, std::optional<size_t> node,
               Clock::time_point deadline, Callback done) {
    if (deadline <= Clock::now()) return fail_fast(std::move(done), Failure::kTimeout);
    auto call =
        std::make_shared<Call>(Call{nullptr, {}, 0, args.size(), deadline, std::move(done)});
    append_command(call->encoded, args);
    if (!node) node = cluster() ? owner_[hash_slot(routing_key(args))] : 0;
    if (!send(call, *node, /*sha=*/false, /*asking=*/false, kMaxRedirects))
      fail_fast(std::move(call->done));
  }

  bool masters_up() const {
    if ((cluster() || sentinel()) && !topology_known_) return false;
    if (nodes_.empty()) return false;
    for (size_t m : masters()) {
      const auto& slots = nodes_[m].slots;
      if (std::none_of(slots.begin(), slots.end(), [](const auto& s) { return s->up_link(); }))
        return false;
    }
    return true;
  }

  // The nodes that serve hash slots (one, but on a Cluster), as indexes command() takes.
  std::vector<size_t> masters() const {
    if (!cluster()) return {0};
    std::vector<bool> serves(nodes_.size());
    for (uint16_t n : owner_) serves[n] = true;
    std::vector<size_t> out;
    for (size_t i = 0; i < serves.size(); ++i) {
      if (serves[i]) out.push_back(i);
    }
    return out;
  }

  void eval(const Script& script, std::span<const std::string_view> keys,
            std::span<const std::string_view> args, Clock::time_point deadline, Callback done) {
    if (deadline <= Clock::now()) return fail_fast(std::move(done), Failure::kTimeout);
    // EVALSHA sha numkeys keys... args...; the tail after the SHA is kept for a NOSCRIPT retry.
    auto call = std::make_shared<Call>(
        Call{&script, {}, 0, 3 + keys.size() + args.size(), deadline, std::move(done)});
    append_length(call->encoded, '*', call->count);
    append_bulk(call->encoded, "EVALSHA");
    append_bulk(call->encoded, script.sha1());
    call->tail = call->encoded.size();
    char num[24];
    auto end = std::to_chars(num, num + sizeof(num), keys.size()).ptr;
    append_bulk(call->encoded, std::string_view(num, end - num));
    for (auto k : keys) append_bulk(call->encoded, k);
    for (auto a : args) append_bulk(call->encoded, a);
    size_t node = cluster() && !keys.empty() ? owner_[hash_slot(keys[0])] : 0;
    if (!send(call, node, /*sha=*/true, /*asking=*/false, kMaxRedirects))
      fail_fast(std::move(call->done));
  }

 private:
  static constexpr int kMaxRedirects = 2;

  // The connections to one Redis server: `connections` persistent links, used round robin.
  struct Node {
    std::shared_ptr<const Endpoint> endpoint;
    std::vector<std::shared_ptr<Slot>> slots;
    size_t cursor = 0;
  };

  // One command on its way, kept for cluster redirections; an EVALSHA also for NOSCRIPT.
  struct Call {
    const Script* script;  // null: a plain command
    std::string encoded;   // the command, or EVALSHA ...
    size_t tail;           // where numkeys starts in `encoded`
    size_t count;          // array length
    Clock::time_point deadline;
    Callback done;
  };

  bool cluster() const { return endpoint_->cluster; }
  bool sentinel() const { return !endpoint_->sentinels.empty(); }

  Node make_node(std::shared_ptr<const Endpoint> endpoint, int connections) {
    Node node{std::move(endpoint), {}, 0};
    for (int i = 0; i < connections; ++i) {
      node.slots.push_back(std::make_shared<Slot>(io_, node.endpoint));
      node.slots.back()->connect();
    }
    return node;
  }

  static void stop_node(Node& node) {
    for (auto& s : node.slots) s->stop();
  }

  // The node at host:port, connected to on first use (with the seed's password, database and TLS).
  size_t node_at(std::string_view host, uint16_t port) {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].endpoint->host == host && nodes_[i].endpoint->port == port) return i;
    }
    auto ep = std::make_shared<Endpoint>(*endpoint_);
    ep->host = std::string(host);
    ep->port = port;
    nodes_.push_back(make_node(std::move(ep), connections_));
    return nodes_.size() - 1;
  }

  // The next connection of `node` that is up, round robin; null when none is.
  Link* pick(Node& node) {
    if (stopped_) return nullptr;
    size_t n = node.slots.size();
    for (size_t i = 0; i < n; ++i) {
      size_t k = node.cursor + i < n ? node.cursor + i : node.cursor + i - n;
      if (Link* link = node.slots[k]->up_link()) {
        node.cursor = k + 1 == n ? 0 : k + 1;
        return link;
      }
    }
    return nullptr;
  }

  // Sends `call` to `node`: a plain command as it is; a script as EVALSHA, or EVAL after
  // NOSCRIPT; preceded by ASKING on the same connection when a slot is being migrated there
  // (Redis Cluster spec, "ASK redirection"). False, with nothing sent, when no connection to the
  // node is up.
  bool send(const std::shared_ptr<Call>& call, size_t node, bool sha, bool asking,
            int redirects_left) {
    Link* link = node < nodes_.size() ? pick(nodes_[node]) : nullptr;
    if (!link) {
      // A node down may have been replaced by a promoted replica: the map (or the sentinels)
      // will say.
      if (cluster() || sentinel()) refresh();
      return false;
    }
    std::string& out = link->out();
    if (asking) {
      append_command(out, std::initializer_list<std::string_view>{"ASKING"});
      link->enqueue(call->deadline, [](Result) {});
    }
    if (sha || !call->script) {
      out.append(call->encoded);
    } else {
      append_length(out, '*', call->count);
      append_bulk(out, "EVAL");
      append_bulk(out, call->script->body());
      out.append(std::string_view(call->encoded).substr(call->tail));
    }
    // Safe to capture `this`: a reply (rather than a failure) is delivered only while the client
    // is alive, since stopping it closes every link before returning.
    link->enqueue(call->deadline, [this, call, node, sha, asking, redirects_left](Result r) {
      auto* reply = std::get_if<Reply>(&r);
      if (!reply || !reply->is_error()) return call->done(std::move(r));
      std::string_view error = reply->str;
      // The server does not have the script (restarted, SCRIPT FLUSH): EVAL loads it, and every
      // later EVALSHA finds it again.
      if (call->script && sha && error.starts_with("NOSCRIPT"))
        return resend(call, node, false, asking, redirects_left);
      // A master demoted to a replica by a failover: the sentinels know the new one.
      if (sentinel() && error.starts_with("READONLY")) refresh();
      // MOVED / ASK <slot> <host>:<port>: the slot lives (for good / for now) on another node.
      bool moved = error.starts_with("MOVED ");
      if ((moved || error.starts_with("ASK ")) && redirects_left > 0 && cluster()) {
        if (auto target = redirect_target(error)) {
          size_t to = node_at(target->host, target->port);
          if (moved) {
            owner_[target->slot] = static_cast<uint16_t>(to);
            refresh();  // more slots than this one have probably moved
          }
          return resend(call, to, sha, !moved, redirects_left - 1);
        }
      }
      call->done(std::move(r));
    });
    return true;
  }

  // Sends again from a reply's handler, where the callback may run at once.
  void resend(const std::shared_ptr<Call>& call, size_t node, bool sha, bool asking,
              int redirects_left) {
    if (Clock::now() >= call->deadline) return call->done(Failure::kTimeout);
    if (!send(call, node, sha, asking, redirects_left)) call->done(Failure::kDisconnected);
  }

  // Learns where the data is: the map of hash slots (CLUSTER SLOTS, from any node that is up), or
  // the master's address (SENTINEL get-master-addr-by-name, from any sentinel that is up). Until
  // the first answer, tries every 100 ms; later, at most once a second, when a MOVED, a READONLY
  // or an unreachable node says the picture is stale.
  void refresh() {
    if (refreshing_ || stopped_) return;
    auto now = Clock::now();
    if (topology_known_ && now < last_refresh_ + std::chrono::seconds(1)) return;
    Link* link = nullptr;
    for (auto& node : sentinel() ? sentinels_ : nodes_) {
      if ((link = pick(node))) break;
    }
    if (!link) return retry_refresh();
    refreshing_ = true;
    last_refresh_ = now;
    if (sentinel()) {
      append_command(link->out(), std::initializer_list<std::string_view>{
                                      "SENTINEL", "get-master-addr-by-name", endpoint_->host});
    } else {
      append_command(link->out(), std::initializer_list<std::string_view>{"CLUSTER", "SLOTS"});
    }
    link->enqueue(now + std::chrono::seconds(1), [alive = alive_](Result r) {
      Impl* self = *alive;
      if (!self) return;
      self->refreshing_ = false;
      auto* reply = std::get_if<Reply>(&r);
      if (reply && (self->sentinel() ? self->load_master(*reply) : self->load_map(*reply))) {
        self->topology_known_ = true;
      } else if (!self->topology_known_) {
        self->retry_refresh();
      }
    });
  }

  void retry_refresh() {
    if (topology_known_ || stopped_) return;
    refresh_timer_.expires_after(std::chrono::milliseconds(100));
    refresh_timer_.async_wait([alive = alive_](boost::system::error_code ec) {
      if (!ec && *alive) (*alive)->refresh();
    });
  }

  // The master the sentinels name now. A new address replaces the connections to the old one.
  bool load_master(const Reply& reply) {
    auto master = parse_master_address(reply);
    if (!master) return false;
    const std::string& host = master->host;
    uint16_t port = master->port;
    if (!nodes_.empty() && nodes_[0].endpoint->host == host && nodes_[0].endpoint->port == port)
      return true;
    if (!nodes_.empty()) {
      spdlog::warn("redis: sentinels name {}:{} as master {} now", host, port, endpoint_->host);
      stop_node(nodes_[0]);
      nodes_.clear();
    }
    node_at(host, port);
    return true;
  }

  // The map of hash slots, each to the node serving it (connected to on first use).
  bool load_map(const Reply& reply) {
    return load_slot_map(
        reply, endpoint_->host,
        [this](std::string_view host, uint16_t port) { return node_at(host, port); }, &owner_);
  }

  asio::io_context& io_;
  std::shared_ptr<const Endpoint> endpoint_;  // the URL's
  int connections_;
  // [0]: the URL's server (the seed, in cluster mode; the master the sentinels name, in sentinel
  // mode, none until they named it).
  std::vector<Node> nodes_;
  std::vector<Node> sentinels_;  // sentinel mode
  std::vector<uint16_t> owner_;  // cluster mode: hash slot -> index in nodes_
  bool topology_known_ = false;  // cluster: the slot map; sentinel: the master's address
  bool refreshing_ = false;
  Clock::time_point last_refresh_{};
  net::Timer refresh_timer_;
  bool stopped_ = false;
  std::shared_ptr<Impl*> alive_ = std::make_shared<Impl*>(this);  // null once stopped
};

Client::Client(boost::asio::io_context& io, Endpoint endpoint, int connections)
    : impl_(std::make_unique<Impl>(io, std::move(endpoint), connections)) {}

Client::~Client() = default;

void Client::command(std::span<const std::string_view> args, std::chrono::milliseconds timeout,
                     Callback done) {
  impl_->command(args, std::nullopt, Clock::now() + timeout, std::move(done));
}

std::vector<size_t> Client::masters() const { return impl_->masters(); }

void Client::command_on(size_t master, std::span<const std::string_view> args,
                        std::chrono::milliseconds timeout, Callback done) {
  impl_->command(args, master, Clock::now() + timeout, std::move(done));
}

void Client::eval(const Script& script, std::span<const std::string_view> keys,
                  std::span<const std::string_view> args, std::chrono::milliseconds timeout,
                  Callback done) {
  impl_->eval(script, keys, args, Clock::now() + timeout, std::move(done));
}

bool Client::connected() const { return impl_->connected(); }

bool Client::masters_up() const { return impl_->masters_up(); }

void Client::stop() { impl_->stop(); }

}  // namespace gatehouse::redis
