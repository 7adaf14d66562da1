// Active health checks against real loopback HTTP servers: the unhealthy_after / healthy_after
// thresholds, expected_statuses, the timeout, initial_state unhealthy with its first passing
// check, and the state shared by upstream and address across configs (reloads).
#include "upstream/health.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "config/snapshot.h"
#include "loopback.h"

namespace gatehouse::upstream {
namespace {

using namespace std::chrono_literals;
using test::HttpServer;

// A server whose answer to every check is `status` (changed by the test as it goes).
struct StatusServer {
  std::atomic<int> status{200};
  HttpServer server{[this](const HttpServer::Request&) { return HttpServer::respond(status); }};
};

config::Target target_at(uint16_t port) {
  config::Target t;
  t.address.ip = "127.0.0.1";
  t.address.port = port;
  t.host = "127.0.0.1";
  return t;
}

// Checks every 20ms (the scheduler looks again at least every 250ms, so this drives the pace).
config::HealthCheck fast_checks() {
  config::HealthCheck hc;
  hc.path = "/healthz";
  hc.interval = 20ms;
  hc.timeout = 1000ms;
  hc.unhealthy_after = 3;
  hc.healthy_after = 2;
  return hc;
}

class HealthTest : public ::testing::Test {
 protected:
  ~HealthTest() override {
    // Stop the checker and let the checks in flight end (their fetches are cancelled), so that no
    // coroutine outlives the checker or the io_context.
    if (checker_) {
      checker_->stop();
      io_.restart();
      io_.run_for(2s);
      checker_.reset();
    }
  }

  // A name no other test uses: the registry is process-wide.
  static std::string upstream_name() {
    return std::string("health-") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
  std::shared_ptr<Health> watch(uint16_t port, const config::HealthCheck& hc) {
    return Health::shared(upstream_name(), target_at(port), hc, nullptr);
  }
  void start() { checker_ = start_health_checks(io_); }
  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds limit = 5000ms) {
    return test::run_until(io_, pred, limit);
  }

  net::asio::io_context io_;
  std::unique_ptr<HealthChecker> checker_;
};

TEST_F(HealthTest, UnhealthyAfterFailuresInARowAndHealthyAgainAfterSuccesses) {
  StatusServer s;
  auto h = watch(s.server.port(), fast_checks());
  ASSERT_TRUE(h->healthy()) << "initial_state healthy by default";
  start();

  ASSERT_TRUE(run_until([&] { return s.server.requests() >= 1 && !h->checking; }));
  EXPECT_TRUE(h->healthy());
  EXPECT_EQ(h->transitions.load(), 0u);
  auto first = s.server.received().at(0).head;
  EXPECT_EQ(first.substr(0, first.find("\r\n")), "GET /healthz HTTP/1.1");

  s.status = 503;
  ASSERT_TRUE(run_until([&] { return h->failures == 1; }));
  EXPECT_TRUE(h->healthy()) << "one failure is not enough";
  ASSERT_TRUE(run_until([&] { return h->failures == 2; }));
  EXPECT_TRUE(h->healthy()) << "two failures are not enough";
  ASSERT_TRUE(run_until([&] { return !h->healthy(); }));
  EXPECT_EQ(h->failures, 3u) << "unhealthy after exactly unhealthy_after failures";
  EXPECT_EQ(h->transitions.load(), 1u);

  s.status = 200;
  ASSERT_TRUE(run_until([&] { return h->successes == 1; }));
  EXPECT_FALSE(h->healthy()) << "one success is not enough";
  ASSERT_TRUE(run_until([&] { return h->healthy(); }));
  EXPECT_EQ(h->successes, 2u) << "healthy after exactly healthy_after successes";
  EXPECT_EQ(h->failures, 0u);
  EXPECT_EQ(h->transitions.load(), 2u);
}

TEST_F(HealthTest, SuccessInBetweenResetsTheFailureCount) {
  StatusServer s;
  auto hc = fast_checks();
  hc.unhealthy_after = 2;
  auto h = watch(s.server.port(), hc);
  s.status = 503;
  start();
  ASSERT_TRUE(run_until([&] { return h->failures == 1; }));
  s.status = 200;
  ASSERT_TRUE(run_until([&] { return h->failures == 0; }));
  s.status = 503;
  ASSERT_TRUE(run_until([&] { return h->failures == 1; }));
  EXPECT_TRUE(h->healthy()) << "the failures were not in a row";
  ASSERT_TRUE(run_until([&] { return !h->healthy(); }));
  EXPECT_EQ(h->failures, 2u);
}

TEST_F(HealthTest, StatusOutsideExpectedStatusesIsAFailure) {
  StatusServer s;
  s.status = 302;  // a success under the default [2xx, 3xx]
  auto hc = fast_checks();
  hc.unhealthy_after = 1;
  hc.expected_statuses = {{200, 200}};
  auto h = watch(s.server.port(), hc);
  start();
  ASSERT_TRUE(run_until([&] { return h->checked && !h->checking; }));
  EXPECT_GE(s.server.requests(), 1) << "the server answered";
  EXPECT_FALSE(h->healthy()) << "302 is not in [200]";
  EXPECT_EQ(h->transitions.load(), 1u);
}

TEST_F(HealthTest, DefaultExpectedStatusesTake3xx) {
  StatusServer s;
  s.status = 302;
  auto hc = fast_checks();
  hc.unhealthy_after = 1;
  auto h = watch(s.server.port(), hc);
  start();
  ASSERT_TRUE(run_until([&] { return s.server.requests() >= 2 && !h->checking; }));
  EXPECT_TRUE(h->healthy());
  EXPECT_EQ(h->failures, 0u);
}

TEST_F(HealthTest, TimeoutIsAFailure) {
  HttpServer silent([](const HttpServer::Request&) { return HttpServer::hang(); });
  auto hc = fast_checks();
  hc.unhealthy_after = 1;
  hc.timeout = 100ms;
  auto h = watch(silent.port(), hc);
  auto started = std::chrono::steady_clock::now();
  start();
  ASSERT_TRUE(run_until([&] { return h->checked; }));
  EXPECT_FALSE(h->healthy());
  EXPECT_GE(silent.requests(), 1) << "the request was sent: this is the timeout, not a refusal";
  EXPECT_GE(std::chrono::steady_clock::now() - started, hc.timeout)
      << "the check waited for its timeout";
}

TEST_F(HealthTest, RefusedConnectionIsAFailure) {
  auto hc = fast_checks();
  hc.unhealthy_after = 1;
  auto h = watch(test::closed_port(), hc);
  start();
  ASSERT_TRUE(run_until([&] { return h->checked; }));
  EXPECT_FALSE(h->healthy());
}

TEST_F(HealthTest, InitiallyUnhealthyTargetIsHealthyAfterItsFirstPassingCheck) {
  StatusServer s;
  auto hc = fast_checks();
  hc.initially_healthy = false;
  hc.healthy_after = 3;
  auto h = watch(s.server.port(), hc);
  EXPECT_FALSE(h->healthy()) << "initial_state: unhealthy";
  start();
  ASSERT_TRUE(run_until([&] { return h->checked && !h->checking; }));
  EXPECT_TRUE(h->healthy()) << "the first check passed: no need for healthy_after successes";
  EXPECT_EQ(h->transitions.load(), 1u);
}

TEST_F(HealthTest, InitiallyUnhealthyTargetStaysOutWhileItFails) {
  StatusServer s;
  s.status = 503;
  auto hc = fast_checks();
  hc.initially_healthy = false;
  auto h = watch(s.server.port(), hc);
  start();
  ASSERT_TRUE(run_until([&] { return s.server.requests() >= 2 && !h->checking; }));
  EXPECT_FALSE(h->healthy());
  EXPECT_EQ(h->transitions.load(), 0u);
}

TEST_F(HealthTest, SharedStateIsOnePerUpstreamAndAddress) {
  auto hc = fast_checks();
  auto a = Health::shared("health-shared-a", target_at(1001), hc, nullptr);
  auto again = Health::shared("health-shared-a", target_at(1001), hc, nullptr);
  EXPECT_EQ(a.get(), again.get());
  auto other_upstream = Health::shared("health-shared-b", target_at(1001), hc, nullptr);
  auto other_address = Health::shared("health-shared-a", target_at(1002), hc, nullptr);
  EXPECT_NE(a.get(), other_upstream.get());
  EXPECT_NE(a.get(), other_address.get());
  EXPECT_EQ(a->address, "127.0.0.1:1001");
  EXPECT_EQ(a->upstream, "health-shared-a");
}

TEST_F(HealthTest, ReloadKeepsTheStateAndTakesTheNewSettings) {
  auto hc = fast_checks();
  auto before = Health::shared("health-reload", target_at(1001), hc, nullptr);
  before->set_healthy(false);
  before->failures = 3;
  auto reloaded = fast_checks();
  reloaded.interval = 40ms;
  reloaded.initially_healthy = true;
  auto after = Health::shared("health-reload", target_at(1001), reloaded, nullptr);
  ASSERT_EQ(before.get(), after.get());
  EXPECT_FALSE(after->healthy()) << "a target that stays keeps its verdict";
  EXPECT_EQ(after->failures, 3u);
  EXPECT_EQ(after->settings.interval, 40ms) << "with the settings of the config being loaded";
}

TEST_F(HealthTest, TargetNoConfigHoldsStartsAfreshInItsInitialState) {
  auto hc = fast_checks();
  auto h = Health::shared("health-gone", target_at(1001), hc, nullptr);
  h->set_healthy(false);
  h.reset();
  auto fresh = Health::shared("health-gone", target_at(1001), hc, nullptr);
  EXPECT_TRUE(fresh->healthy());
  EXPECT_FALSE(fresh->checked);
}

std::shared_ptr<const config::Snapshot> snapshot_of(const std::string& yaml) {
  std::vector<config::ConfigError> errors;
  auto cfg = config::parse_config(yaml, "test.yaml", &errors);
  EXPECT_TRUE(cfg) << (errors.empty() ? "" : errors[0].to_string());
  if (!cfg) return nullptr;
  return config::make_snapshot(std::move(*cfg), 1);
}

TEST_F(HealthTest, SnapshotsOfOneConfigShareTheTargetsState) {
  const std::string yaml = R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
upstreams:
  health-snap:
    targets: [ { address: 127.0.0.1:1001 }, { address: 127.0.0.1:1002 } ]
    health_check: { path: /ready, interval: 20ms, unhealthy_after: 1, initial_state: unhealthy }
routes:
  - { name: r, match: { path: /* }, to: health-snap }
)";
  auto first = snapshot_of(yaml);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->upstreams.at(0).health.size(), 2u);
  const auto& h0 = first->upstreams[0].health[0];
  EXPECT_FALSE(h0->healthy()) << "initial_state: unhealthy";
  EXPECT_EQ(h0->settings.path, "/ready");
  EXPECT_EQ(h0->settings.unhealthy_after, 1u);
  h0->set_healthy(true);

  auto second = snapshot_of(yaml);  // a reload of the same file
  ASSERT_TRUE(second);
  EXPECT_EQ(second->upstreams.at(0).health.at(0).get(), h0.get());
  EXPECT_TRUE(second->upstreams[0].health[0]->healthy()) << "the reload keeps the verdict";
  EXPECT_NE(second->upstreams[0].health[1].get(), h0.get());
}

}  // namespace
}  // namespace gatehouse::upstream
