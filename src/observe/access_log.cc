#include "observe/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>

#include "http/error_response.h"

namespace gatehouse::observe {
namespace {

void field(std::string* out, std::string_view name, std::string_view value) {
  out->append(",\"").append(name).append("\":\"");
  http::append_json_escaped(out, value);
  out->push_back('"');
}

void number(std::string* out, std::string_view name, double v, int decimals) {
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  out->append(",\"").append(name).append("\":").append(buf, static_cast<size_t>(n));
}

}  // namespace

void format_access_record(const AccessRecord& r, std::string* out) {
  auto t = std::chrono::system_clock::to_time_t(r.start);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.start.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[40];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  out->append("{\"time\":\"").append(ts).append("\"");
  field(out, "request_id", r.request_id);
  field(out, "client", r.client);
  field(out, "method", r.method);
  field(out, "path", r.path);
  field(out, "route", r.route);
  field(out, "upstream", r.upstream);
  field(out, "target", r.target);
  number(out, "status", r.status, 0);
  number(out, "bytes_in", static_cast<double>(r.bytes_in), 0);
  number(out, "bytes_out", static_cast<double>(r.bytes_out), 0);
  number(out, "duration_ms", r.total_ms, 3);
  if (r.upstream_ms >= 0) number(out, "upstream_ms", r.upstream_ms, 3);
  if (!r.error.empty()) field(out, "error", r.error);
  out->append("}\n");
}

int open_access_log(const config::AccessLog& cfg, std::string* error) {
  switch (cfg.sink) {
    case config::AccessLog::Sink::kOff: return -1;
    case config::AccessLog::Sink::kStdout: return STDOUT_FILENO;
    case config::AccessLog::Sink::kStderr: return STDERR_FILENO;
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
