// Parsing of the scalar units the config file uses: durations, sizes, percentages, addresses,
// CIDRs. Pure functions, no I/O except resolve_host (getaddrinfo, main thread only, at config
// load).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gatehouse::config {

using Duration = std::chrono::milliseconds;

// "250ms", "2s", "5m", "1h". A bare number is rejected: a unit is always required.
std::optional<Duration> parse_duration(std::string_view text);
// "512", "32KiB", "10MiB", "1GiB" (binary) and "32KB", "10MB" (decimal).
std::optional<uint64_t> parse_size(std::string_view text);
// "20%" -> 20. Accepts 0..100.
std::optional<double> parse_percent(std::string_view text);

// Human readable "2s", "250ms" for error messages.
std::string format_duration(Duration d);

// An IP literal and port: "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0".
struct SocketAddress {
  std::string ip;  // numeric form, no brackets
  uint16_t port = 0;
  bool v6 = false;
  std::string to_string() const;  // "1.2.3.4:80" or "[::1]:80"
};
// Accepts an IP literal or a host name (resolved once with getaddrinfo; the first address wins).
// On failure returns nullopt and sets *error.
std::optional<SocketAddress> parse_socket_address(std::string_view text, bool allow_hostname,
                                                  std::string* error);

// An IPv4 or IPv6 network: "10.0.0.0/8", "::1/128", or a bare address (a /32 or /128).
struct Cidr {
  std::array<uint8_t, 16> net{};  // IPv4 stored as v4-mapped IPv6
  int prefix = 0;                 // in bits, of the 128-bit form
  bool contains(const std::array<uint8_t, 16>& addr) const;
};
std::optional<Cidr> parse_cidr(std::string_view text);
// Parses an IPv4 or IPv6 literal into the 128-bit (v4-mapped) form.
std::optional<std::array<uint8_t, 16>> parse_ip(std::string_view text);

}  // namespace gatehouse::config
