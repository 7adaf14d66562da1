// The YAML config loader (config::parse_config), then the snapshot a good config becomes.
// Invariants: a config is either good with no errors, or refused with at least one error, each
// with a YAML path and a message, in file order; a good config builds a snapshot. Never a crash,
// an uncaught exception or a hang, whatever the text.
//
// Two things keep a run hermetic. Host names are resolved by the stub getaddrinfo below (only
// "localhost"), never by DNS. Files named in the config (certificates, PEM keys, JWKS files) are
// relative to a directory that does not exist; an input that names /dev, /proc or /sys is
// skipped, so the loader never blocks reading a device.
#include "config/config.h"

#include <netdb.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "config/snapshot.h"
#include "fuzz/fuzz.h"

extern "C" int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints,
                           struct addrinfo** res) {
  (void)service;
  (void)hints;
  if (!node || std::strcmp(node, "localhost") != 0) return EAI_NONAME;
  auto* ai = static_cast<addrinfo*>(std::calloc(1, sizeof(addrinfo) + sizeof(sockaddr_in)));
  if (!ai) return EAI_MEMORY;
  auto* sin = reinterpret_cast<sockaddr_in*>(ai + 1);
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ai->ai_family = AF_INET;
  ai->ai_socktype = SOCK_STREAM;
  ai->ai_addrlen = sizeof(sockaddr_in);
  ai->ai_addr = reinterpret_cast<sockaddr*>(sin);
  *res = ai;
  return 0;
}

extern "C" void freeaddrinfo(struct addrinfo* ai) { std::free(ai); }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gatehouse;
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);  // warnings of accepted configs
    return true;
  }();
  (void)quiet;
  std::string_view text = fuzz::as_text(data, size);
  for (std::string_view device : {"/dev", "/proc", "/sys"}) {
    if (text.find(device) != std::string_view::npos) return 0;
  }
  const std::string file = "/nonexistent-gatehouse-fuzz/gatehouse.yaml";
  std::vector<config::ConfigError> errors;
  auto c = config::parse_config(std::string(text), file, &errors);
  if (!c) {
    FUZZ_CHECK(!errors.empty());
    for (size_t i = 0; i < errors.size(); ++i) {
      const auto& e = errors[i];
      FUZZ_CHECK(e.file == file && !e.path.empty() && !e.message.empty());
      FUZZ_CHECK(e.line >= 0 && e.column >= 0);
      if (i) {
        FUZZ_CHECK(std::tie(errors[i - 1].line, errors[i - 1].column) <=
                   std::tie(e.line, e.column));
      }
      FUZZ_CHECK(!e.to_string().empty());
    }
    return 0;
  }
  FUZZ_CHECK(errors.empty());
  FUZZ_CHECK(c->file == file);
  auto snapshot = config::make_snapshot(std::move(*c), 1);
  FUZZ_CHECK(snapshot && snapshot->upstreams.size() == snapshot->config.upstreams.size());
  return 0;
}
