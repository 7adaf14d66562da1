// The Redis client against a real redis-server, started per test on a free loopback port. Without
// redis-server on PATH every test here fails, naming it: a missing test tool never passes as a
// skip. The server persists nothing and runs in the system's temporary folder.
#include "redis/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace gatehouse::redis {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string find_redis_server() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    auto candidate = std::filesystem::path(dirs.substr(start, end - start)) / "redis-server";
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = end + 1;
  }
  return "";
}

// A port nobody listens on now: bind port 0, read it, close.
uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

bool can_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// redis-server as a child process; killed (SIGKILL) with the object.
class RedisServer {
 public:
  RedisServer(std::string binary, uint16_t port, std::vector<std::string> extra)
      : binary_(std::move(binary)), port_(port), extra_(std::move(extra)) {}
  ~RedisServer() { kill(); }

  bool start() {
    std::vector<std::string> args{binary_,
                                  "--port",
                                  std::to_string(port_),
                                  "--bind",
                                  "127.0.0.1",
                                  "--save",
                                  "",
                                  "--appendonly",
                                  "no",
                                  "--dir",
                                  std::filesystem::temp_directory_path().string(),
                                  "--enable-debug-command",
                                  "local"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      int null = open("/dev/null", O_WRONLY);  // async-signal-safe calls only after fork
      dup2(null, STDOUT_FILENO);
      execv(binary_.c_str(), argv.data());
      _exit(127);
    }
    for (auto end = Clock::now() + 5s; Clock::now() < end;) {
      if (can_connect(port_)) return true;
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  uint16_t port() const { return port_; }

 private:
  std::string binary_;
  uint16_t port_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
};

// Runs the io_context until `done` holds or `limit` passed; returns `done()`.
bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds limit = 5s) {
  auto end = Clock::now() + limit;
  while (!done() && Clock::now() < end) {
    io.restart();
    if (io.run_for(5ms) == 0) std::this_thread::sleep_for(1ms);
  }
  return done();
}

// The result of one command, once it came.
struct Outcome {
  std::optional<Result> result;
  int calls = 0;
  Clock::time_point at;
  Callback callback() {
    return [this](Result r) {
      ++calls;
      at = Clock::now();
      result = std::move(r);
    };
  }
  bool done() const { return calls > 0; }
  const Reply* reply() const { return result ? std::get_if<Reply>(&*result) : nullptr; }
  std::optional<Failure> failure() const {
    if (!result || !std::holds_alternative<Failure>(*result)) return std::nullopt;
    return std::get<Failure>(*result);
  }
};

class RedisClient : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = find_redis_server();
    ASSERT_FALSE(binary_.empty())
        << "redis-server is not installed (not found on PATH); these tests need it "
           "(scripts/install-deps.sh installs it)";
  }

  // Starts a server on a free port (retried: another process may take the port meanwhile).
  std::unique_ptr<RedisServer> start_server(std::vector<std::string> extra = {}) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto s = std::make_unique<RedisServer>(binary_, free_port(), extra);
      if (s->start()) return s;
    }
    ADD_FAILURE() << "cannot start redis-server";
    return nullptr;
  }

  Endpoint endpoint(const RedisServer& s) {
    Endpoint ep;
    ep.port = s.port();
    return ep;
  }

  // Sends one command and waits for its outcome.
  Outcome call(Client& c, std::initializer_list<std::string_view> args,
               std::chrono::milliseconds timeout = 2s) {
    Outcome o;
    c.command(args, timeout, o.callback());
    EXPECT_TRUE(run_until(
        io_, [&] { return o.done(); }, timeout + 1s));
    return o;
  }

  boost::asio::io_context io_;
  std::string binary_;
};

TEST_F(RedisClient, FailsFastBeforeTheFirstConnection) {
  auto server = start_server();
  ASSERT_TRUE(server);
  Client client(io_, endpoint(*server));
  EXPECT_FALSE(client.connected());
  Outcome o;
  client.command({"PING"}, 1s, o.callback());
  EXPECT_FALSE(o.done());  // never called inline
  io_.restart();
  io_.poll();
  ASSERT_TRUE(o.done());
  EXPECT_EQ(o.failure(), Failure::kDisconnected);
  ASSERT_TRUE(run_until(io_, [&] { return client.connected(); }));
}

TEST_F(RedisClient, SetGetIncr) {
  auto server = start_server();
  ASSERT_TRUE(server);
  Client client(io_, endpoint(*server));
  ASSERT_TRUE(run_until(io_, [&] { return client.connected(); }));

  auto set = call(client, {"SET", "greeting", "hello world"});
  ASSERT_TRUE(set.reply());
  EXPECT_EQ(set.reply()->type, Reply::Type::kStatus);
  EXPECT_EQ(set.reply()->str, "OK");
  auto get = call(client, {"GET", "greeting"});
  ASSERT_TRUE(get.reply());
  EXPECT_EQ(get.reply()->type, Reply::Type::kString);
  EXPECT_EQ(get.reply()->str, "hello world");
  for (int i = 1; i <= 3; ++i) {
    auto incr = call(client, {"INCR", "counter"});
    ASSERT_TRUE(incr.reply());
    EXPECT_EQ(incr.reply()->type, Reply::Type::kInteger);
    EXPECT_EQ(incr.reply()->integer, i);
  }
  auto missing = call(client, {"GET", "missing"});
  ASSERT_TRUE(missing.reply());
  EXPECT_EQ(missing.reply()->type, Reply::Type::kNil);
  auto wrong = call(client, {"INCR", "greeting"});
  ASSERT_TRUE(wrong.reply());
  EXPECT_TRUE(wrong.reply()->is_error());
  EXPECT_TRUE(wrong.reply()->str.starts_with("ERR")) << wrong.reply()->str;
  // A binary value survives the round trip.
  std::string binary("a\r\n\0\xff", 5);
  call(client, {"SET", "bin", binary});
  auto bin = call(client, {"GET", "bin"});
  ASSERT_TRUE(bin.reply());
  EXPECT_EQ(bin.reply()->str, binary);
  // The connection still works after an error reply.
  auto ping = call(client, {"PING"});
  ASSERT_TRUE(ping.reply());
  EXPECT_EQ(ping.reply()->str, "PONG");
}

TEST_F(RedisClient, PipelinesThousandCommandsInOrderOnTwoConnections) {
  auto server = start_server();
  ASSERT_TRUE(server);
  Client client(io_, endpoint(*server), 2);
  // Both connections up, so the commands are spread over both.
  Client probe(io_, endpoint(*server), 1);
  ASSERT_TRUE(run_until(io_, [&] { return client.connected() && probe.connected(); }));
  ASSERT_TRUE(run_until(io_, [&] {
    auto list = call(probe, {"CLIENT", "LIST"});
    return list.reply() &&
           std::count(list.reply()->str.begin(), list.reply()->str.end(), '\n') == 3;
  }));

  constexpr int kCount = 1000;
  std::vector<std::string> got(kCount);
  std::vector<int> calls(kCount);
  int answered = 0;
  for (int i = 0; i < kCount; ++i) {
    std::string value = "v" + std::to_string(i);
    // All issued in one event-loop turn: written back to back, answered in order.
    client.command({"ECHO", value}, 5s, [&, i](Result r) {
      ++calls[i];
      ++answered;
      if (auto* reply = std::get_if<Reply>(&r)) got[i] = reply->str;
    });
    client.command({"INCR", "n"}, 5s, [](Result) {});
  }
  ASSERT_TRUE(run_until(
      io_, [&] { return answered == kCount; }, 10s));
  for (int i = 0; i < kCount; ++i) {
    EXPECT_EQ(calls[i], 1) << i;
    EXPECT_EQ(got[i], "v" + std::to_string(i)) << i;
  }
  auto n = call(probe, {"GET", "n"});
  ASSERT_TRUE(n.reply());
  EXPECT_EQ(n.reply()->str, std::to_string(kCount));
  // Both persistent connections carried commands, and no other connection was opened.
  auto list = call(probe, {"CLIENT", "LIST"});
  ASSERT_TRUE(list.reply());
  const std::string& text = list.reply()->str;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3) << text;
  size_t used = 0;
  for (size_t at = 0; (at = text.find("cmd=", at)) != std::string::npos; at += 4) {
    if (text.compare(at, 8, "cmd=echo") == 0 || text.compare(at, 8, "cmd=incr") == 0) ++used;
  }
  EXPECT_EQ(used, 2u) << text;
}

// The `calls` count of one command in INFO commandstats.
long command_calls(const std::string& info, const char* name) {
  std::string key = std::string("cmdstat_") + name + ":calls=";
  size_t at = info.find(key);
  if (at == std::string::npos) return 0;
  return std::stol(info.substr(at + key.size()));
}

TEST_F(RedisClient, EvalUsesEvalshaAndFallsBackOnNoscript) {
  auto server = start_server();
  ASSERT_TRUE(server);
  Client client(io_, endpoint(*server));
  ASSERT_TRUE(run_until(io_, [&] { return client.connected(); }));
  Script script("return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}");

  auto eval = [&] {
    Outcome o;
    client.eval(script, {"hits"}, {"arg"}, 2s, o.callback());
    EXPECT_TRUE(run_until(io_, [&] { return o.done(); }));
    return o;
  };
  auto stats = [&] {
    auto info = call(client, {"INFO", "commandstats"});
    EXPECT_TRUE(info.reply());
    std::string text = info.reply() ? info.reply()->str : "";
    return std::pair{command_calls(text, "evalsha"), command_calls(text, "eval")};
  };

  // First call: the server does not know the script, EVAL loads it.
  auto first = eval();
  ASSERT_TRUE(first.reply());
  ASSERT_EQ(first.reply()->type, Reply::Type::kArray) << first.reply()->str;
  ASSERT_EQ(first.reply()->elements.size(), 3u);
  EXPECT_EQ(first.reply()->elements[0].str, "hits");
  EXPECT_EQ(first.reply()->elements[1].str, "arg");
  EXPECT_EQ(first.reply()->elements[2].integer, 1);
  auto [evalsha1, eval1] = stats();
  EXPECT_EQ(evalsha1, 1);
  EXPECT_EQ(eval1, 1);

  // Second: EVALSHA alone.
  auto second = eval();
  ASSERT_TRUE(second.reply());
  EXPECT_EQ(second.reply()->elements[2].integer, 2);
  auto [evalsha2, eval2] = stats();
  EXPECT_EQ(evalsha2, 2);
  EXPECT_EQ(eval2, 1);

  auto exists = call(client, {"SCRIPT", "EXISTS", script.sha1()});
  ASSERT_TRUE(exists.reply());
  ASSERT_EQ(exists.reply()->elements.size(), 1u);
  EXPECT_EQ(exists.reply()->elements[0].integer, 1);

  // After SCRIPT FLUSH: NOSCRIPT, then EVAL, transparently.
  call(client, {"SCRIPT", "FLUSH"});
  auto third = eval();
  ASSERT_TRUE(third.reply());
  ASSERT_EQ(third.reply()->type, Reply::Type::kArray) << third.reply()->str;
  EXPECT_EQ(third.reply()->elements[2].integer, 3);
  auto [evalsha3, eval3] = stats();
  EXPECT_EQ(evalsha3, 3);
  EXPECT_EQ(eval3, 2);

  // A script error is a reply, not a failure.
  Script broken("return redis.call('NOSUCHCOMMAND')");
  Outcome o;
  client.eval(broken, {}, {}, 2s, o.callback());
  ASSERT_TRUE(run_until(io_, [&] { return o.done(); }));
  ASSERT_TRUE(o.reply());
  EXPECT_TRUE(o.reply()->is_error());
  EXPECT_EQ(o.calls, 1);
}

TEST_F(RedisClient, TimeoutFiresInTimeAndTheClientRecovers) {
  auto server = start_server();
  ASSERT_TRUE(server);
  Client client(io_, endpoint(*server));
  Client sleeper(io_, endpoint(*server), 1);
  ASSERT_TRUE(run_until(io_, [&] { return client.connected() && sleeper.connected(); }));

  // DEBUG SLEEP blocks the whole (single-threaded) server for a second.
  Outcome slept;
  sleeper.command({"DEBUG", "SLEEP", "1"}, 5s, slept.callback());
  run_until(
      io_, [] { return false; }, 50ms);  // let it reach the server

  Outcome late;
  auto sent = Clock::now();
  client.command({"GET", "k"}, 200ms, late.callback());
  ASSERT_TRUE(run_until(
      io_, [&] { return late.done(); }, 2s));
  EXPECT_EQ(late.failure(), Failure::kTimeout);
  auto took = late.at - sent;
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 400ms) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
  EXPECT_EQ(late.calls, 1);

  // The server wakes up; the client serves again on its own.
  ASSERT_TRUE(run_until(
      io_, [&] { return slept.done(); }, 3s));
  ASSERT_TRUE(slept.reply());
  EXPECT_EQ(slept.reply()->str, "OK");
  ASSERT_TRUE(run_until(io_, [&] {
    auto ping = call(client, {"PING"}, 500ms);
    return ping.reply() && ping.reply()->str == "PONG";
  }));
  // Both connections come back (the timed-out one is reconnected).
  ASSERT_TRUE(run_until(io_, [&] {
    auto list = call(sleeper, {"CLIENT", "LIST"});
    return list.reply() &&
           std::count(list.reply()->str.begin(), list.reply()->str.end(), '\n') == 3;
  }));
  run_until(
      io_, [] { return false; }, 100ms);
  EXPECT_EQ(late.calls, 1);  // never called twice, even when the late reply arrives
}

TEST_F(RedisClient, ServerDeathFailsFastAndTheClientReconnectsByItself) {
  auto server = start_server();
  ASSERT_TRUE(server);
  Client client(io_, endpoint(*server));
  ASSERT_TRUE(run_until(io_, [&] { return client.connected(); }));
  call(client, {"SET", "k", "before"});

  // Commands in flight when the server dies: a stopped server holds them, then is killed.
  server->signal(SIGSTOP);
  std::vector<Outcome> pending(10);
  for (auto& o : pending) client.command({"GET", "k"}, 10s, o.callback());
  run_until(
      io_, [] { return false; }, 50ms);
  auto killed = Clock::now();
  server->kill();
  ASSERT_TRUE(run_until(
      io_,
      [&] {
        return std::all_of(pending.begin(), pending.end(),
                           [](const Outcome& o) { return o.done(); });
      },
      2s));
  for (auto& o : pending) {
    EXPECT_EQ(o.failure(), Failure::kDisconnected);
    EXPECT_EQ(o.calls, 1);
    EXPECT_LT(o.at - killed, 500ms);  // not the 10 s timeout
  }
  EXPECT_FALSE(client.connected());

  // New commands fail at once, without waiting for their timeout.
  Outcome fast;
  auto sent = Clock::now();
  client.command({"GET", "k"}, 10s, fast.callback());
  ASSERT_TRUE(run_until(
      io_, [&] { return fast.done(); }, 1s));
  EXPECT_EQ(fast.failure(), Failure::kDisconnected);
  EXPECT_LT(fast.at - sent, 50ms);

  // Let the backoff grow a little, then bring the server back on the same port.
  run_until(
      io_, [] { return false; }, 300ms);
  RedisServer again(binary_, server->port(), {});
  ASSERT_TRUE(again.start());
  ASSERT_TRUE(run_until(
      io_, [&] { return client.connected(); }, 5s));
  auto set = call(client, {"SET", "k", "after"});
  ASSERT_TRUE(set.reply());
  EXPECT_EQ(set.reply()->str, "OK");
  auto get = call(client, {"GET", "k"});
  ASSERT_TRUE(get.reply());
  EXPECT_EQ(get.reply()->str, "after");
}

TEST_F(RedisClient, AuthAndSelect) {
  auto server = start_server({"--requirepass", "s3cret"});
  ASSERT_TRUE(server);
  auto ep = endpoint(*server);
  ep.password = "s3cret";
  ep.db = 3;
  Client client(io_, ep);
  ASSERT_TRUE(run_until(io_, [&] { return client.connected(); }));
  call(client, {"SET", "where", "db3"});
  auto get = call(client, {"GET", "where"});
  ASSERT_TRUE(get.reply());
  EXPECT_EQ(get.reply()->str, "db3");

  ep.db = 0;
  Client db0(io_, ep);
  ASSERT_TRUE(run_until(io_, [&] { return db0.connected(); }));
  auto other = call(db0, {"GET", "where"});
  ASSERT_TRUE(other.reply());
  EXPECT_EQ(other.reply()->type, Reply::Type::kNil);
  auto url =
      parse_url("redis://:s3cret@127.0.0.1:" + std::to_string(server->port()) + "/3", nullptr);
  ASSERT_TRUE(url);
  Client from_url(io_, *url);
  ASSERT_TRUE(run_until(io_, [&] { return from_url.connected(); }));
  auto again = call(from_url, {"GET", "where"});
  ASSERT_TRUE(again.reply());
  EXPECT_EQ(again.reply()->str, "db3");

  // A Redis 6 ACL user, from the URL.
  call(client, {"ACL", "SETUSER", "limiter", "on", ">pw-of-limiter", "~*", "+@all"});
  auto acl = parse_url(
      "redis://limiter:pw-of-limiter@127.0.0.1:" + std::to_string(server->port()) + "/3", nullptr);
  ASSERT_TRUE(acl);
  Client as_user(io_, *acl);
  ASSERT_TRUE(run_until(io_, [&] { return as_user.connected(); }));
  auto whoami = call(as_user, {"ACL", "WHOAMI"});
  ASSERT_TRUE(whoami.reply());
  EXPECT_EQ(whoami.reply()->str, "limiter");

  // A wrong password never counts as connected: commands fail fast.
  ep.password = "wrong";
  Client refused(io_, ep);
  run_until(
      io_, [] { return false; }, 300ms);
  EXPECT_FALSE(refused.connected());
  auto failed = call(refused, {"PING"});
  EXPECT_EQ(failed.failure(), Failure::kDisconnected);
}

TEST_F(RedisClient, DestructionCallsEveryPendingCallbackOnceWithDisconnected) {
  auto server = start_server();
  ASSERT_TRUE(server);
  auto client = std::make_unique<Client>(io_, endpoint(*server));
  ASSERT_TRUE(run_until(io_, [&] { return client->connected(); }));
  server->signal(SIGSTOP);
  std::vector<Outcome> pending(5);
  for (auto& o : pending) client->command({"PING"}, 5s, o.callback());
  run_until(
      io_, [] { return false; }, 30ms);
  client.reset();
  for (auto& o : pending) EXPECT_FALSE(o.done());  // posted, not called inside the destructor
  run_until(
      io_,
      [&] {
        return std::all_of(pending.begin(), pending.end(),
                           [](const Outcome& o) { return o.done(); });
      },
      1s);
  for (auto& o : pending) {
    EXPECT_EQ(o.calls, 1);
    EXPECT_EQ(o.failure(), Failure::kDisconnected);
  }
  server->signal(SIGCONT);
  run_until(
      io_, [] { return false; }, 50ms);
  for (auto& o : pending) EXPECT_EQ(o.calls, 1);
}

TEST_F(RedisClient, CallbackMayDestroyTheClient) {
  auto server = start_server();
  ASSERT_TRUE(server);
  auto client = std::make_unique<Client>(io_, endpoint(*server), 1);
  ASSERT_TRUE(run_until(io_, [&] { return client->connected(); }));
  Script script("return 7");
  int first = 0;
  Outcome second, third;
  // Three replies likely in one read: the first callback destroys the client.
  client->command({"PING"}, 2s, [&](Result r) {
    ++first;
    client.reset();
  });
  client->eval(script, {}, {}, 2s, second.callback());
  client->command({"PING"}, 2s, third.callback());
  ASSERT_TRUE(run_until(io_, [&] { return first == 1 && second.done() && third.done(); }));
  EXPECT_EQ(second.failure(), Failure::kDisconnected);
  EXPECT_EQ(third.failure(), Failure::kDisconnected);
  run_until(
      io_, [] { return false; }, 50ms);
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second.calls, 1);
  EXPECT_EQ(third.calls, 1);
}

TEST_F(RedisClient, StopFailsPendingAndLaterCommands) {
  auto server = start_server();
  ASSERT_TRUE(server);
  Client client(io_, endpoint(*server));
  ASSERT_TRUE(run_until(io_, [&] { return client.connected(); }));
  server->signal(SIGSTOP);
  Outcome pending;
  client.command({"PING"}, 5s, pending.callback());
  client.stop();
  EXPECT_FALSE(client.connected());
  Outcome later;
  client.command({"PING"}, 5s, later.callback());
  ASSERT_TRUE(run_until(
      io_, [&] { return pending.done() && later.done(); }, 1s));
  EXPECT_EQ(pending.failure(), Failure::kDisconnected);
  EXPECT_EQ(later.failure(), Failure::kDisconnected);
  server->signal(SIGCONT);
}

// A loopback listener that is not Redis, served by a plain thread: it accepts one connection and
// answers whatever arrives with `answer` (nothing when empty).
class FakeServer {
 public:
  explicit FakeServer(std::string answer) : answer_(std::move(answer)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    listen(fd_, 16);
    if (answer_.empty()) return;  // never accepts: connections wait in the backlog
    thread_ = std::thread([this] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[512];
      if (read(c, buf, sizeof buf) > 0) (void)!write(c, answer_.data(), answer_.size());
      while (read(c, buf, sizeof buf) > 0) {
      }
      close(c);
    });
  }
  ~FakeServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    if (thread_.joinable()) thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  std::string answer_;
  int fd_;
  uint16_t port_;
  std::thread thread_;
};

TEST(RedisClientFake, NotRespIsAProtocolFailure) {
  FakeServer fake("HTTP/1.1 400 Bad Request\r\n\r\n");
  boost::asio::io_context io;
  Endpoint ep;
  ep.port = fake.port();
  Client client(io, ep, 1);
  ASSERT_TRUE(run_until(io, [&] { return client.connected(); }));
  Outcome o;
  client.command({"PING"}, 2s, o.callback());
  ASSERT_TRUE(run_until(io, [&] { return o.done(); }));
  EXPECT_EQ(o.failure(), Failure::kProtocol);
  EXPECT_FALSE(client.connected());
  client.stop();  // before the fake server goes: no reconnect into its backlog
}

TEST(RedisClientFake, HandshakeWithoutAnswerTimesOutAndNeverCountsAsUp) {
  FakeServer silent("");  // accepts in the kernel, never answers AUTH
  boost::asio::io_context io;
  Endpoint ep;
  ep.port = silent.port();
  ep.password = "x";
  ep.connect_timeout = 100ms;
  Client client(io, ep, 1);
  run_until(
      io, [] { return false; }, 400ms);  // several connect timeouts and retries
  EXPECT_FALSE(client.connected());
  Outcome o;
  client.command({"PING"}, 1s, o.callback());
  ASSERT_TRUE(run_until(
      io, [&] { return o.done(); }, 100ms));
  EXPECT_EQ(o.failure(), Failure::kDisconnected);
}

TEST(RedisClientFake, ZeroTimeoutFailsAtOnce) {
  boost::asio::io_context io;
  Client client(io, Endpoint{}, 1);
  Outcome o;
  client.command({"PING"}, 0ms, o.callback());
  io.poll();
  ASSERT_TRUE(o.done());
  EXPECT_EQ(o.failure(), Failure::kTimeout);
}

}  // namespace
}  // namespace gatehouse::redis
