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

// One line's JSON object, a field at a time: the first without a comma before it.
class Line {
 public:
  Line(std::string* out, uint32_t fields) : out_(out), fields_(fields) { out_->push_back('{'); }
  ~Line() { out_->append("}\n"sv); }
  bool wants(config::AccessLog::Field f) const { return fields_ >> f & 1; }
  void text(std::string_view name, std::string_view value) {
    key(name).push_back('"');
    http::append_json_escaped(out_, value);
    out_->push_back('"');
  }
  void integer(std::string_view name, uint64_t v) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    key(name).append(buf, end);
  }
  // Milliseconds with three decimals, without printf (this runs once per request).
  void millis(std::string_view name, double ms) {
    uint64_t us = ms <= 0 ? 0 : static_cast<uint64_t>(ms * 1000 + 0.5);
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, us / 1000);
    *end++ = '.';
    for (uint64_t frac = us % 1000, div = 100; div; div /= 10)
      *end++ = static_cast<char>('0' + frac / div % 10);
    key(name).append(buf, end);
  }
  void json(std::string_view name, std::string_view value) { key(name).append(value); }
  std::string& key(std::string_view name) {
    if (!first_) out_->push_back(',');
    first_ = false;
    out_->push_back('"');
    return out_->append(name).append("\":"sv);
  }

 private:
  std::string* out_;
  uint32_t fields_;
  bool first_ = true;
};

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

void format_access_record(const AccessRecord& r, uint32_t fields, std::string* out) {
  using F = config::AccessLog::Field;
  Line line(out, fields);
  if (line.wants(F::kTime)) {
    line.key("time").push_back('"');
    append_timestamp(r.start, out);
    out->push_back('"');
  }
  if (line.wants(F::kRequestId)) line.text("request_id", r.request_id);
  if (!r.trace_id.empty()) {
    if (line.wants(F::kTraceId)) line.text("trace_id", r.trace_id);
    if (line.wants(F::kSpanId)) line.text("span_id", r.span_id);
  }
  if (line.wants(F::kClient)) line.text("client", r.client);
  if (line.wants(F::kMethod)) line.text("method", r.method);
  if (line.wants(F::kProtocol)) line.text("protocol", r.protocol);
  if (line.wants(F::kTlsVersion) && !r.tls_version.empty()) line.text("tls_version", r.tls_version);
  if (line.wants(F::kPath)) line.text("path", r.path);
  if (line.wants(F::kRoute)) line.text("route", r.route);
  if (line.wants(F::kUpstream)) line.text("upstream", r.upstream);
  if (line.wants(F::kTarget)) line.text("target", r.target);
  if (line.wants(F::kStatus)) line.integer("status", static_cast<uint64_t>(r.status));
  if (line.wants(F::kBytesIn)) line.integer("bytes_in", r.bytes_in);
  if (line.wants(F::kBytesOut)) line.integer("bytes_out", r.bytes_out);
  if (line.wants(F::kDurationMs)) line.millis("duration_ms", r.total_ms);
  if (line.wants(F::kUpstreamConnectMs) && r.upstream_connect_ms >= 0)
    line.millis("upstream_connect_ms", r.upstream_connect_ms);
  if (line.wants(F::kUpstreamMs) && r.upstream_ms >= 0) line.millis("upstream_ms", r.upstream_ms);
  if (line.wants(F::kUpstreamTotalMs) && r.upstream_total_ms >= 0)
    line.millis("upstream_total_ms", r.upstream_total_ms);
  if (line.wants(F::kRetries) && r.retries) line.integer("retries", r.retries);
  if (line.wants(F::kConsumer) && !r.consumer.empty()) line.text("consumer", r.consumer);
  if (line.wants(F::kError) && !r.error.empty()) line.text("error", r.error);
  if (line.wants(F::kCache) && !r.cache.empty()) line.text("cache", r.cache);
  if (line.wants(F::kGrpc) && !r.grpc_method.empty()) {
    line.text("grpc_service", r.grpc_service);
    line.text("grpc_method", r.grpc_method);
    if (r.grpc_status >= 0) line.integer("grpc_status", static_cast<uint64_t>(r.grpc_status));
  }
  if (line.wants(F::kLegs) && !r.legs.empty()) line.json("legs", r.legs);
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
