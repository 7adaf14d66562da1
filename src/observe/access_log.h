// JSON access log, one line per request. Each worker formats into its own buffer and writes it in
// one write(2) per batch (a flush is posted once per event-loop turn), so workers never share a
// lock; lines are cut at PIPE_BUF boundaries so concurrent workers' lines never interleave.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"

namespace gatehouse::observe {

struct AccessRecord {
  std::chrono::system_clock::time_point start;
  std::string_view request_id;
  std::string_view trace_id, span_id;  // a traced request's trace, and the gateway's span in it
  std::string_view client;
  std::string_view method;
  std::string_view protocol;     // what the client spoke: HTTP/1.0, HTTP/1.1, HTTP/2
  std::string_view tls_version;  // TLSv1.2, TLSv1.3; empty without TLS
  std::string_view path;         // the request target as the client sent it
  std::string_view route;        // empty when none matched
  std::string_view upstream;
  std::string_view target;
  int status = 0;
  uint64_t bytes_in = 0;   // request bytes received (head and body)
  uint64_t bytes_out = 0;  // response bytes sent (head and body)
  double total_ms = 0;
  // The upstream call: the last try's connect (-1: a pooled connection, or none), to its response
  // head (-1: none came), and to the response's end; the retries made.
  double upstream_connect_ms = -1;
  double upstream_ms = -1;
  double upstream_total_ms = -1;
  uint32_t retries = 0;
  std::string_view consumer;  // who key_auth or jwt_auth said the client is
  std::string_view error;     // the gateway's error code, when it answered by itself
  std::string_view cache;     // what the route's cache did (hit, miss, stale, ...), when it has one
  // A gRPC call: its service and method, and the status it ended with (-1: none came).
  std::string_view grpc_service, grpc_method;
  int grpc_status = -1;
  // A composite route's legs: a JSON array of {"leg", "status", "ms"[, "error"]}, as it is.
  std::string_view legs;
};

// Appends one JSON object of the `fields` (config::AccessLog's bits) and a newline.
void format_access_record(const AccessRecord& r, uint32_t fields, std::string* out);

// Appends t as "2026-11-28T00:26:09.350Z" (UTC, milliseconds).
void append_timestamp(std::chrono::system_clock::time_point t, std::string* out);

// Opens the configured sink; returns the fd (-1 for off). Logs an error and returns -1 on failure.
int open_access_log(const config::AccessLog& cfg, std::string* error);

// Writes whole lines from buf to fd, in pieces of at most PIPE_BUF bytes each cut after a newline.
void write_lines(int fd, std::string_view buf);

}  // namespace gatehouse::observe
