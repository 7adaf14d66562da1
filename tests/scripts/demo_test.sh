#!/usr/bin/env bash
# scripts/demo.sh twice: the second run says in one line that the demo is already running (with
# its PID) and exits non-zero, and the first keeps serving; stopped by its PID, the first takes its
# services and gatehouse down with it. A run that finds a port taken by another program fails the
# same way without starting anything.
# Usage: demo_test.sh GATEHOUSE_BINARY. The demo's ports are fixed: if one is taken before the
# test starts, it fails saying so (a skip would pass with nothing checked).
set -uo pipefail
bin=${1:?usage: demo_test.sh GATEHOUSE_BINARY}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
demo=$repo/scripts/demo.sh
ports=(8080 9901 9001 9002 9003 9010 9020 9030 9040)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/demo-test.XXXXXX")
export XDG_RUNTIME_DIR=$tmp  # the demo's PID file: this test's own
started=()                   # PIDs this test started, stopped at the end
cleanup() {
  for pid in "${started[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  wait
  rm -rf "$tmp"
}
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
any_port_open() { for p in "${ports[@]}"; do port_open "$p" && return 0; done; return 1; }
# until CHECK... passes, every 50 ms, at most 15 s
poll() { for _ in $(seq 300); do "$@" && return 0; sleep 0.05; done; return 1; }

failures=0
check() {  # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "ok - $1"; else echo "not ok - $1"; failures=$((failures + 1)); fi
}
one_line() { [ "$(printf '%s\n' "$1" | wc -l)" -eq 1 ]; }
contains() { [[ $1 == *"$2"* ]]; }
answers() { curl -s -o /dev/null --max-time 2 -w '%{http_code}' http://127.0.0.1:8080/api/products/1 | grep -qx 200; }
alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! kill -0 "$1" 2>/dev/null; }
ports_closed() { ! any_port_open; }

if any_port_open; then
  echo "not ok - a port of the demo (${ports[*]}) is in use on 127.0.0.1: stop what holds it (a running demo?) and run again"
  exit 1
fi

# 1. The first demo, until its banner says it is serving (printed once gatehouse answers).
bash "$demo" "$bin" >"$tmp/first.log" 2>&1 &
first=$!
started+=("$first")
banner() { grep -q "Gatehouse is serving" "$tmp/first.log" || { alive "$first" || return 0; return 1; }; }
poll banner
check "first demo: started and serving" answers
# The commands the demo prints work: HTTP/2, a WebSocket echo, an HTTP/2-only service.
h2() { curl -s -o /dev/null --http2-prior-knowledge -w '%{http_version} %{http_code}' http://127.0.0.1:8080/api/products/1 | grep -qx '2 200'; }
check "first demo: answers HTTP/2 (h2c)" h2
ws_echo() { [ "$(cd "$repo" && timeout 10 node examples/ws-echo.mjs ws://127.0.0.1:8080/ws/echo hi)" = "echo: hi" ]; }
check "first demo: a WebSocket echo through the gateway" ws_echo
h2_upstream() { curl -s http://127.0.0.1:8080/stock/42 | grep -q '"protocol":"HTTP/2","method":"GET","path":"/stock/42"'; }
check "first demo: an HTTP/2-only service through the gateway" h2_upstream
grpc_call() { (cd "$repo" && timeout 10 node examples/grpc-call.mjs 127.0.0.1:8080 get 7) | grep -q '"id":"7"'; }
check "first demo: a gRPC call through the gateway" grpc_call
dashboard() {  # the banner's dashboard address, served from the binary
  grep -q "Its live dashboard: http://127.0.0.1:9901/dashboard" "$tmp/first.log" &&
    curl -s http://127.0.0.1:9901/dashboard | grep -q '<script src="/dashboard/app.js">'
}
check "first demo: the banner names the dashboard, which answers" dashboard
grpc_status() {  # the call fails (exit 1), saying why
  local out
  out=$(cd "$repo" && timeout 10 node examples/grpc-call.mjs 127.0.0.1:8080 get 404 2>&1)
  [[ $out == *'NOT_FOUND (5): no review 404'* ]]
}
check "first demo: a gRPC status from the service through the gateway" grpc_status
grpc_web() {  # the README's gRPC-Web call: the review, then the trailer frame with grpc-status 0
  local out
  out=$(curl -s -H 'content-type: application/grpc-web-text' -d AAAAAAMKATc= http://127.0.0.1:8080/shop.Reviews/GetReview | base64 -d | strings)
  [[ $out == *'review 1 of 7'* && $out == *'grpc-status:0'* ]]
}
check "first demo: a gRPC-Web call from curl" grpc_web
review_json() {  # the README's JSON call, transcoded to gRPC
  local out
  out=$(curl -s http://127.0.0.1:8080/api/reviews/7)
  [[ $out == '{"id":"7","text":"review 1 of 7: works as described","stars":4}' ]]
}
check "first demo: the gRPC service as HTTP/JSON" review_json
review_json_status() {  # NOT_FOUND from the service: HTTP 404 with google.rpc.Status's JSON
  local out
  out=$(curl -s -w ' %{http_code}' http://127.0.0.1:8080/api/reviews/404)
  [[ $out == '{"code":5,"message":"no review 404","details":[]} 404' ]]
}
check "first demo: a gRPC status as an HTTP status and a JSON error" review_json_status
review_stream() {  # a server stream as newline-delimited JSON, the query's limit bound
  local out
  out=$(curl -s 'http://127.0.0.1:8080/api/products/42/reviews?limit=2')
  [[ $(wc -l <<<"$out") == 2 && $out == *'"text":"review 2 of 42'* ]]
}
check "first demo: a server stream as NDJSON" review_stream
product_page() {  # the README's composite call: the legs' answers, the failed optional one named
  local out
  out=$(curl -s -w ' %{http_code}' http://127.0.0.1:8080/api/product-page/7)
  [[ $out == '{"product":{"upstream":"products-'* && $out == *'"url":"/sellers/of/products-'* &&
    $out == *'"reviews":[{"id":"7","text":"review 1 of 7'*'review 2 of 7'*']'* &&
    $out == *'"recommendations":null,"errors":{"recommendations":{"status":502'*' 200' ]]
}
check "first demo: a composite call (aggregation)" product_page
if ((failures)); then
  echo "first demo's output:"; cat "$tmp/first.log"; exit 1
fi

# 2. The second: one line naming the running demo's PID, exit non-zero, the first unharmed.
out=$(timeout 30 bash "$demo" "$bin" 2>&1)
status=$?
echo "second run: exit $status: $out"
check "second run: exits non-zero" [ "$status" -ne 0 ]
check "second run: one line" one_line "$out"
check "second run: says the demo is already running" contains "$out" "already running"
check "second run: names the first's PID" contains "$out" "pid $first"
check "first demo: still answers" answers
check "first demo: still running" alive "$first"

# 3. The first, stopped by its PID, stops its services and gatehouse.
kill -TERM "$first"
check "first demo: exits on SIGTERM" poll dead "$first"
check "first demo: its ports are free again" poll ports_closed

# 4. A port taken by another program: one line naming it, exit non-zero, nothing started.
node -e "require('net').createServer().listen(9010, '127.0.0.1')" &
other=$!
started+=("$other")
poll port_open 9010
out=$(timeout 30 bash "$demo" "$bin" 2>&1)
status=$?
echo "port taken: exit $status: $out"
check "port taken: exits non-zero" [ "$status" -ne 0 ]
check "port taken: one line" one_line "$out"
check "port taken: names the port" contains "$out" "127.0.0.1:9010"
check "port taken: nothing started" [ "$(for p in 8080 9901 9001 9002 9003; do port_open "$p" && echo "$p"; done)" = "" ]

if ((failures)); then
  echo "demo_test: $failures failed; the first demo's output:"; cat "$tmp/first.log"
  exit 1
fi
echo "demo_test: all passed"
