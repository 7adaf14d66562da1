#include "observe/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <ctime>

#include "http/error_response.h"

namespace gatehouse::observe {

using namespace std::string_view_literals;
namespace {

void field(std::string* out, std::string_view name, std::string_view value) {
  out->append(",\""sv).append(name).append("\":\""sv);
  http::append_json_escaped(out, value);
  out->push_back('"');
}

void integer(std::string* out, std::string_view name, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out->append(",\""sv).append(name).append("\":"sv).append(buf, end);
}

// Milliseconds with three decimals, without printf (this runs once per request).
void millis(std::string* out, std::string_view name, double ms) {
  uint64_t us = ms <= 0 ? 0 : static_cast<uint64_t>(ms * 1000 + 0.5);
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, us / 1000);
  *end++ = '.';
  for (uint64_t frac = us % 1000, div = 100; div; div /= 10)
    *end++ = static_cast<char>('0' + frac / div % 10);
  out->append(",\""sv).append(name).append("\":"sv).append(buf, end);
}

// "2026-11-28T00:26:09" for a second, cached per thread: gmtime once per second, not per request.
std::string_view second_text(std::time_t t) {
  thread_local std::time_t cached = -1;
  thread_local char text[64];  // room for any int GCC cannot prove to be a date field
  if (t != cached) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached = t;
  }
  return {text, 19};
}

}  // namespace

void append_timestamp(std::chrono::system_clock::time_point t, std::string* out) {
  auto since_epoch =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  int ms = static_cast<int>(since_epoch % 1000);
  out->append(second_text(static_cast<std::time_t>(since_epoch / 1000)));
  const char frac[] = {'.', static_cast<char>('0' + ms / 100),
                       static_cast<char>('0' + ms / 10 % 10), static_cast<char>('0' + ms % 10),
                       'Z'};
  out->append(frac, sizeof frac);
}

void format_access_record(const AccessRecord& r, std::string* out) {
  out->append("{\"time\":\""sv);
  append_timestamp(r.start, out);
  out->push_back('"');
  field(out, "request_id", r.request_id);
  if (!r.trace_id.empty()) {
    field(out, "trace_id", r.trace_id);
    field(out, "span_id", r.span_id);
  }
  field(out, "client", r.client);
  field(out, "method", r.method);
  field(out, "protocol", r.protocol);
  field(out, "path", r.path);
  field(out, "route", r.route);
  field(out, "upstream", r.upstream);
  field(out, "target", r.target);
  integer(out, "status", static_cast<uint64_t>(r.status));
  integer(out, "bytes_in", r.bytes_in);
  integer(out, "bytes_out", r.bytes_out);
  millis(out, "duration_ms", r.total_ms);
  if (r.upstream_ms >= 0) millis(out, "upstream_ms", r.upstream_ms);
  if (!r.error.empty()) field(out, "error", r.error);
  if (!r.cache.empty()) field(out, "cache", r.cache);
  if (!r.grpc_method.empty()) {
    field(out, "grpc_service", r.grpc_service);
    field(out, "grpc_method", r.grpc_method);
    if (r.grpc_status >= 0) integer(out, "grpc_status", static_cast<uint64_t>(r.grpc_status));
  }
  if (!r.legs.empty()) out->append(",\"legs\":"sv).append(r.legs);
  out->append("}\n"sv);
}

int open_access_log(const config::AccessLog& cfg, std::string* error) {
  switch (cfg.sink) {
    case config::AccessLog::Sink::kOff:
      return -1;
    case config::AccessLog::Sink::kStdout:
      return STDOUT_FILENO;
    case config::AccessLog::Sink::kStderr:
      return STDERR_FILENO;
    case config::AccessLog::Sink::kFile: {
      int fd = ::open(cfg.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd < 0) *error = "cannot open access log " + cfg.path + ": " + std::strerror(errno);
      return fd;
    }
  }
  return -1;
}

void write_lines(int fd, std::string_view buf) {
  while (!buf.empty()) {
    size_t n = buf.size();
    if (n > PIPE_BUF) {
      auto nl = buf.substr(0, PIPE_BUF).rfind('\n');
      n = nl == std::string_view::npos ? PIPE_BUF : nl + 1;
    }
    ssize_t w = ::write(fd, buf.data(), n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;  // a full disk or closed pipe must not stop the proxy
    buf.remove_prefix(static_cast<size_t>(w));
  }
}

}  // namespace gatehouse::observe
