#!/usr/bin/env bash
# Starts the demo upstream services and gatehouse with examples/demo.yaml, prints curl commands
# that work against it, and stops everything on Ctrl-C or `kill PID` (PID: this script's, printed).
# Usage: scripts/demo.sh [GATEHOUSE_BINARY]   (default build/gatehouse; `make demo` builds it)
#
# One demo at a time: its ports are fixed (those of examples/demo.yaml and demo-services.mjs). The
# running demo holds a lock on its PID file (in $XDG_RUNTIME_DIR, else /tmp) for as long as it
# runs, so a second run says in one line that it is already running, with its PID, and exits 1
# without starting anything; so does a run that finds the ports taken by anything else. Nothing
# is ever stopped but what this script started.
set -euo pipefail
bin=${1:-}
[[ -z $bin || $bin == /* ]] || bin=$PWD/$bin  # relative to the caller's directory
cd "$(dirname "$0")/.."
bin=${bin:-$PWD/build/gatehouse}

address=127.0.0.1:8080 admin=127.0.0.1:9901
service_ports=(9001 9002 9003 9010 9020 9030 9040)  # examples/demo-services.mjs
ports=(8080 9901 "${service_ports[@]}")

die() { echo "demo: $*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

[ -x "$bin" ] || die "no gatehouse binary at $bin (make demo builds one)"

# The lock is released when this script exits, however it ends; the children do not inherit it.
if [ -n "${XDG_RUNTIME_DIR:-}" ]; then
  pidfile=$XDG_RUNTIME_DIR/gatehouse-demo.pid
else
  pidfile=/tmp/gatehouse-demo-$(id -u).pid
fi
exec 9<>"$pidfile" || die "cannot open $pidfile"
if ! flock -n 9; then
  read -r pid <&9 || pid=""
  die "already running (pid ${pid:-unknown}, http://$address, admin http://$admin); stop it with Ctrl-C in its terminal or: kill ${pid:-PID}"
fi
busy=()
for port in "${ports[@]}"; do port_open "$port" && busy+=("127.0.0.1:$port"); done
((${#busy[@]} == 0)) ||
  die "cannot start: ${busy[*]} already in use by another program; stop it or free the port"
# The gRPC service's descriptor set, which the JSON routes transcode with (examples/demo.yaml).
command -v protoc >/dev/null || die "protoc is missing (make deps installs protobuf-compiler)"
protoc -I examples/protos --include_imports --descriptor_set_out=examples/protos/reviews.pb \
  examples/protos/reviews.proto
"$bin" validate -c examples/demo.yaml

services="" gh=""
stop() {
  # Gatehouse first, while its upstreams still answer: it drains within server.timeouts.drain (5 s);
  # one still there after 10 s is killed, so that the demo always ends. Then the services.
  if [ -n "$gh" ] && kill -TERM "$gh" 2>/dev/null; then
    for _ in $(seq 200); do kill -0 "$gh" 2>/dev/null || break; sleep 0.05; done
    ! kill -KILL "$gh" 2>/dev/null || echo "demo: gatehouse (pid $gh) still draining after 10 s: killed" >&2
  fi
  [ -z "$services" ] || kill -TERM "$services" 2>/dev/null || true
  wait
  : >"$pidfile"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
printf '%s\n' "$$" >"$pidfile"

# until CHECK... passes (checked every 50 ms); fails if process PID exits first or after 10 s
wait_until() {
  local pid=$1 what=$2
  shift 2
  for _ in $(seq 200); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || die "$what stopped before answering"
    sleep 0.05
  done
  die "$what not answering after 10 s"
}
services_up() { for port in "${service_ports[@]}"; do port_open "$port" || return 1; done; }
gateway_up() { curl -s -o /dev/null --max-time 1 "http://$address/"; }

node examples/demo-services.mjs 9>&- &
services=$!
wait_until "$services" "the demo services" services_up
"$bin" run -c examples/demo.yaml 9>&- &
gh=$!
wait_until "$gh" gatehouse gateway_up

printf '\nGatehouse is serving http://%s (demo pid %s; access log below).\n' "$address" "$$"
printf 'Its live dashboard: http://127.0.0.1:9901/dashboard (open it, then send traffic). Try:\n'
sed "s|<pid>|$gh|" <<'TXT'  # gatehouse's PID for SIGHUP

  # load-balanced over products-1 and products-2, 10% to the products-v2 canary; /api stripped
  for i in $(seq 10); do curl -s localhost:8080/api/products/42 | grep -o '"upstream":"[^"]*"'; done

  # the same over HTTP/2 (cleartext, prior knowledge): many requests, one connection
  curl -s --http2-prior-knowledge -w ' (HTTP/%{http_version})\n' localhost:8080/api/products/42 localhost:8080/items/7

  # an HTTP/1.1 client, an HTTP/2-only service: the gateway speaks HTTP/2 upstream
  curl -s localhost:8080/stock/42

  # WebSocket: the upgrade routed like any request, then a tunnel to the echo service
  node examples/ws-echo.mjs ws://localhost:8080/ws/echo 'hello through the gateway'

  # gRPC: a unary call, a server stream, and a status from the service (NOT_FOUND)
  node examples/grpc-call.mjs localhost:8080 get 7
  node examples/grpc-call.mjs localhost:8080 list 42
  node examples/grpc-call.mjs localhost:8080 get 404
  # the same service from curl, as gRPC-Web text (base64 of a GetReviewRequest for id 7)
  curl -s -H 'content-type: application/grpc-web-text' -d AAAAAAMKATc= localhost:8080/shop.Reviews/GetReview | base64 -d | strings

  # the same service as HTTP/JSON (transcoded to gRPC): a review, a status as HTTP, a stream
  curl -s localhost:8080/api/reviews/7
  curl -si localhost:8080/api/reviews/404
  curl -s 'localhost:8080/api/products/42/reviews?limit=2'

  # aggregation: one call, five legs (one waits for another's answer, one is the gRPC service,
  # one fails: null + errors)
  curl -s localhost:8080/api/product-page/7

  # BFF routing: the x-client header picks the backend
  curl -s -H 'x-client: mobile' localhost:8080/m/home

  # template rewrite: /items/{id} -> /catalog/items/{id}
  curl -s localhost:8080/items/7

  # API keys: 401 without one, the consumer's name sent upstream with one
  curl -si localhost:8080/partners/1
  curl -s -H 'x-api-key: demo-key-123' localhost:8080/partners/1
  # a CORS preflight answered by the gateway; paths are normalised before routing
  curl -si -X OPTIONS -H 'Origin: https://partners.example.com' -H 'Access-Control-Request-Method: GET' localhost:8080/partners/1
  curl -s --path-as-is -H 'x-api-key: demo-key-123' 'localhost:8080/partners/a/%2e%2e/1'

  # the gateway's own errors, as JSON with the request id
  curl -si localhost:8080/nowhere            # 404 no_route
  curl -si -X POST localhost:8080/api/products/1   # 405 with Allow
  curl -si localhost:8080/offline/x          # 502 upstream_connect_failed
  curl -si localhost:8080/slow               # 504 upstream_timeout after 1s

  # resilience: one of two targets is down; retries hide it until its health check takes it out
  # (curl -s localhost:9901/status shows it unhealthy)
  for i in $(seq 6); do curl -s -o /dev/null -w '%{http_code} ' localhost:8080/resilient/echo; done; echo
  # rate limiting: 5 a minute per client, with RateLimit headers; the 6th gets 429 + Retry-After
  for i in $(seq 6); do curl -s -o /dev/null -w '%{http_code} ' localhost:8080/limited/products/1; done; echo
  curl -si localhost:8080/limited/products/1 | grep -i -E '^(HTTP|ratelimit|retry-after)'

  # the response cache: a miss, then a hit from the gateway (Cache-Status, Age), then a purge
  curl -si localhost:8080/cached/products/7 | grep -i -E '^(HTTP|cache-status|age)'
  curl -si localhost:8080/cached/products/7 | grep -i -E '^(HTTP|cache-status|age)'
  curl -s -X POST -d '{"prefix": "/cached/"}' localhost:9901/cache/purge

  # operations: status, metrics, and a reload (edit examples/demo.yaml first, or not)
  curl -s localhost:9901/status
  curl -s localhost:9901/metrics | grep gatehouse_requests_total
  curl -s -X POST localhost:9901/reload      # or: kill -HUP <pid>
TXT
printf '\nCtrl-C (or: kill %s) stops everything.\n' "$$"
wait $gh
