// gatehouse: command line (see docs/cli-contract.md).
#include <fmt/core.h>
#include <openssl/opensslv.h>
#include <re2/re2.h>
#include <spdlog/version.h>
#include <yaml-cpp/yaml.h>

#include <boost/version.hpp>
#ifdef GATEHOUSE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "config/config.h"
#include "observe/log.h"
#include "server/server.h"

namespace {

constexpr const char* kUsage = R"(gatehouse - an API gateway

Usage:
  gatehouse run -c FILE        serve with the config FILE (also: gatehouse -c FILE)
      --watch                  also reload when FILE changes
  gatehouse validate -c FILE   check FILE without serving; exit 1 and list every error if invalid
  gatehouse version            version, build type and library versions
  gatehouse --help             this text

Signals: SIGHUP reloads the config; SIGTERM/SIGINT drain and exit.
)";

constexpr const char* kRunUsage = R"(Usage: gatehouse run -c FILE [--watch]

Serves HTTP with the configuration in FILE (YAML). Logs go to stderr; access logs where
observability.access_log says. SIGHUP (or POST /reload on the admin API, or --watch when
FILE changes) reloads FILE; an invalid file is rejected and the running config kept.
SIGTERM/SIGINT drain in-flight requests and exit. Exit status: 0 after a clean drain, 1 on a
start-up error, 2 when the drain budget ran out.
)";

int validate(const std::string& file) {
  std::vector<gatehouse::config::ConfigError> errors;
  auto cfg = gatehouse::config::load_config(file, &errors);
  if (!cfg) {
    for (const auto& e : errors) std::cerr << e.to_string() << "\n";
    std::cerr << file << ": " << errors.size() << " error(s)\n";
    return 1;
  }
  std::cout << file << ": ok (" << cfg->server.listen.size() << " listener(s), "
            << cfg->upstreams.size() << " upstream(s), " << cfg->routes.size() << " route(s))\n";
  return 0;
}

// The malloc the process runs on: jemalloc's own version when it is linked (asking it also keeps
// the link from being dropped as unused).
std::string allocator() {
#ifdef GATEHOUSE_JEMALLOC
  const char* v = nullptr;
  size_t len = sizeof(v);
  if (mallctl("version", &v, &len, nullptr, 0) == 0 && v) return std::string("jemalloc ") + v;
  return "jemalloc";
#else
  return "glibc malloc";
#endif
}

int version() {
  std::cout << "gatehouse " << GATEHOUSE_VERSION << " (" << GATEHOUSE_BUILD_TYPE << ")\n"
            << "  boost " << BOOST_VERSION / 100000 << "." << BOOST_VERSION / 100 % 1000 << "."
            << BOOST_VERSION % 100 << "\n"
            << "  " << OPENSSL_VERSION_TEXT << "\n"
            << "  spdlog " << SPDLOG_VER_MAJOR << "." << SPDLOG_VER_MINOR << "." << SPDLOG_VER_PATCH
            << "\n"
            << "  fmt " << FMT_VERSION / 10000 << "." << FMT_VERSION / 100 % 100 << "."
            << FMT_VERSION % 100 << "\n"
            << "  yaml-cpp " << GATEHOUSE_YAML_CPP_VERSION << "\n"
            << "  re2 " << GATEHOUSE_RE2_VERSION << "\n"
            << "  allocator " << allocator() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string command = "run";
  size_t i = 0;
  if (!args.empty() && args[0].rfind("-", 0) != 0) {
    command = args[0];
    i = 1;
  }
  std::string config;
  bool help = false;
  gatehouse::server::RunOptions options;
  for (; i < args.size(); ++i) {
    if ((args[i] == "-c" || args[i] == "--config") && i + 1 < args.size()) {
      config = args[++i];
    } else if (args[i] == "--watch" && command == "run") {
      options.watch = true;
    } else if (args[i] == "-h" || args[i] == "--help") {
      help = true;
    } else {
      std::cerr << "gatehouse: unexpected argument '" << args[i] << "'\n" << kUsage;
      return 64;
    }
  }
  if (command == "help" || (help && command != "run")) {
    std::cout << kUsage;
    return 0;
  }
  if (command == "version") return version();
  if (command != "run" && command != "validate") {
    std::cerr << "gatehouse: unknown command '" << command << "'\n" << kUsage;
    return 64;
  }
  if (help) {
    std::cout << (args.empty() || args[0].rfind("-", 0) == 0 ? kUsage : kRunUsage);
    return 0;
  }
  if (config.empty()) {
    std::cerr << "gatehouse: " << command << " needs -c FILE\n" << kUsage;
    return 64;
  }
  // Before validate too: warnings found while loading (e.g. upstream TLS without verification)
  // go to stderr like everything else that is not the result.
  gatehouse::observe::init_logging();
  if (command == "validate") return validate(config);
  return gatehouse::server::run(config, options);
}
