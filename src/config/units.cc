#include "config/units.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace gatehouse::config {
namespace {

// Splits "123unit" into a number and its unit; the number may have a fraction.
bool split_number(std::string_view text, double* number, std::string_view* unit) {
  size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  if (i == 0) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, *number);
  if (ec != std::errc() || ptr != text.data() + i) return false;
  *unit = text.substr(i);
  return true;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  double n = 0;
  std::string_view unit;
  if (!split_number(text, &n, &unit)) return std::nullopt;
  double ms;
  if (unit == "ms")
    ms = n;
  else if (unit == "s")
    ms = n * 1000;
  else if (unit == "m")
    ms = n * 60'000;
  else if (unit == "h")
    ms = n * 3'600'000;
  else
    return std::nullopt;
  if (ms > 1e12) return std::nullopt;
  return Duration(static_cast<int64_t>(ms));
}

std::optional<uint64_t> parse_size(std::string_view text) {
  double n = 0;
  std::string_view unit;
  if (!split_number(text, &n, &unit)) return std::nullopt;
  double mult;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "KiB")
    mult = 1024.0;
  else if (unit == "MiB")
    mult = 1024.0 * 1024;
  else if (unit == "GiB")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "KB")
    mult = 1e3;
  else if (unit == "MB")
    mult = 1e6;
  else if (unit == "GB")
    mult = 1e9;
  else
    return std::nullopt;
  double bytes = n * mult;
  if (bytes > 1e18) return std::nullopt;
  return static_cast<uint64_t>(bytes);
}

std::optional<double> parse_percent(std::string_view text) {
  if (text.empty() || text.back() != '%') return std::nullopt;
  double n = 0;
  std::string_view unit;
  if (!split_number(text.substr(0, text.size() - 1), &n, &unit) || !unit.empty())
    return std::nullopt;
  if (n < 0 || n > 100) return std::nullopt;
  return n;
}

std::string format_duration(Duration d) {
  auto ms = d.count();
  if (ms % 3'600'000 == 0 && ms) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0 && ms) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0 && ms) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string SocketAddress::to_string() const {
  return v6 ? "[" + ip + "]:" + std::to_string(port) : ip + ":" + std::to_string(port);
}

std::optional<SocketAddress> parse_socket_address(std::string_view text, bool allow_hostname,
                                                  std::string* error) {
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      *error = "expected [IPv6]:port";
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      *error = "expected host:port (IPv6 in brackets)";
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || p > 65535) {
    *error = "invalid port '" + std::string(port) + "'";
    return std::nullopt;
  }
  SocketAddress out;
  out.port = static_cast<uint16_t>(p);
  std::string h(host);
  unsigned char buf[16];
  if (inet_pton(AF_INET, h.c_str(), buf) == 1) {
    out.ip = h;
    return out;
  }
  if (inet_pton(AF_INET6, h.c_str(), buf) == 1) {
    out.ip = h;
    out.v6 = true;
    return out;
  }
  if (!allow_hostname || h.empty()) {
    *error = "'" + h + "' is not an IP address";
    return std::nullopt;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(h.c_str(), nullptr, &hints, &res) != 0 || !res) {
    *error = "cannot resolve host '" + h + "'";
    return std::nullopt;
  }
  char name[INET6_ADDRSTRLEN] = {};
  if (res->ai_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr, name, sizeof name);
  } else {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr, name,
              sizeof name);
    out.v6 = true;
  }
  freeaddrinfo(res);
  out.ip = name;
  return out;
}

std::optional<std::array<uint8_t, 16>> parse_ip(std::string_view text) {
  std::string s(text);
  std::array<uint8_t, 16> out{};
  unsigned char v4[4];
  if (inet_pton(AF_INET, s.c_str(), v4) == 1) {
    out[10] = out[11] = 0xff;
    std::memcpy(&out[12], v4, 4);
    return out;
  }
  if (inet_pton(AF_INET6, s.c_str(), out.data()) == 1) return out;
  return std::nullopt;
}

std::optional<Cidr> parse_cidr(std::string_view text) {
  auto slash = text.find('/');
  auto addr = parse_ip(text.substr(0, slash));
  if (!addr) return std::nullopt;
  bool v4 = text.substr(0, slash).find(':') == std::string_view::npos;
  int max_bits = v4 ? 32 : 128;
  int bits = max_bits;
  if (slash != std::string_view::npos) {
    auto p = text.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), bits);
    if (p.empty() || ec != std::errc() || ptr != p.data() + p.size() || bits < 0 || bits > max_bits)
      return std::nullopt;
  }
  Cidr c;
  c.prefix = v4 ? bits + 96 : bits;
  c.net = *addr;
  for (int i = 0; i < 16; ++i) {  // zero the host bits so contains() can compare bytes
    int keep = std::clamp(c.prefix - i * 8, 0, 8);
    c.net[i] &= static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
  }
  return c;
}

bool Cidr::contains(const std::array<uint8_t, 16>& addr) const {
  for (int i = 0; i < 16; ++i) {
    int keep = std::clamp(prefix - i * 8, 0, 8);
    if (keep == 0) return true;
    uint8_t mask = static_cast<uint8_t>(0xff << (8 - keep));
    if ((addr[i] & mask) != net[i]) return false;
  }
  return true;
}

}  // namespace gatehouse::config
