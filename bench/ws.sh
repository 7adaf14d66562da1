#!/usr/bin/env bash
# WebSocket echo through gatehouse and nginx, side by side: the same echo backend (node `ws`), the
# same load (bench/ws-load.mjs: CONNECTIONS clients, each a message and its echo at a time), in
# interleaved rounds; per proxy, messages per second, round-trip p50 and p99, and the proxy's CPU
# per message (utime+stime from /proc). One worker each; proxies pinned to PROXY_CPU, the backend
# and the load to LOAD_CPU when PIN=1. Everything started is stopped by its PID on exit.
# Quick run:  ROUNDS=1 SECONDS_PER_ROUND=2 bench/ws.sh
set -euo pipefail
ROUNDS=${ROUNDS:-3}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-5}
CONNECTIONS=${CONNECTIONS:-50}
MESSAGE_BYTES=${MESSAGE_BYTES:-64}
PIN=${PIN:-1}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GATEHOUSE_BIN=${GATEHOUSE_BIN:-$here/../build/gatehouse}
NGINX_BIN=${NGINX_BIN:-nginx}

die() { echo "ws bench: error: $*" >&2; exit 1; }
for tool in node "$NGINX_BIN" "$GATEHOUSE_BIN" taskset; do command -v "$tool" >/dev/null || die "'$tool' not found"; done
[[ -f $here/../tests/integration/node_modules/ws/package.json ]] || die "the ws package is missing (make deps)"

TMP=$(mktemp -d -t gatehouse-ws-bench.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
# A command pinned to CPU $1 when PIN=1 (in PINNED, for `"${PINNED[@]}" &`: a function run in the
# background would be a subshell, and $! its PID rather than the program's).
pinned() { PINNED=("${@:2}"); [[ $PIN == 1 ]] && PINNED=(taskset -c "$1" "${@:2}"); return 0; }
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
BACKEND=$(free_port) GH=$(free_port) NGX=$(free_port)

cat >"$TMP/echo.mjs" <<JS
import { WebSocketServer } from '$here/../tests/integration/node_modules/ws/wrapper.mjs';
new WebSocketServer({ port: $BACKEND, host: '127.0.0.1', perMessageDeflate: false })
  .on('connection', (s) => s.on('message', (m, binary) => s.send(m, { binary })));
JS
pinned "$LOAD_CPU" node "$TMP/echo.mjs"
"${PINNED[@]}" >"$TMP/echo.log" 2>&1 &
PIDS+=($!)

cat >"$TMP/gatehouse.yaml" <<YAML
server:
  workers: 1
  listen: [ { address: 127.0.0.1:$GH } ]
observability: { access_log: { path: "off" } }
upstreams:
  echo: { targets: [ { address: 127.0.0.1:$BACKEND } ] }
routes:
  - { match: { path: /* }, to: echo, websocket: {} }
YAML
pinned "$PROXY_CPU" "$GATEHOUSE_BIN" run -c "$TMP/gatehouse.yaml"
"${PINNED[@]}" >"$TMP/gatehouse.log" 2>&1 &
PIDS+=($!)
declare -A PID_OF=([gatehouse]=$!)

mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
    server {
        listen 127.0.0.1:$NGX;
        location / {
            proxy_pass http://127.0.0.1:$BACKEND;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_read_timeout 60s;
        }
    }
}
NGINX
pinned "$PROXY_CPU" "$NGINX_BIN" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf"
"${PINNED[@]}" >"$TMP/nginx.log" 2>&1 &
PIDS+=($!)

# The proxies' worker processes: nginx's is the master's child.
for _ in $(seq 100); do
  NW=$(pgrep -P "${PIDS[2]}" 2>/dev/null | head -1 || true)
  [[ -n $NW ]] && node "$here/ws-load.mjs" "ws://127.0.0.1:$GH/" 1 0.2 8 >/dev/null 2>&1 &&
    node "$here/ws-load.mjs" "ws://127.0.0.1:$NGX/" 1 0.2 8 >/dev/null 2>&1 && break
  sleep 0.1
done
[[ -n ${NW:-} ]] || die "nginx did not start: $(cat "$TMP/nginx/error.log" "$TMP/nginx.log" 2>/dev/null)"
PID_OF[nginx]=$NW
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

echo "WebSocket echo: $CONNECTIONS connections, $MESSAGE_BYTES-byte messages, ${SECONDS_PER_ROUND}s per proxy per round, $ROUNDS round(s), pin=$PIN"
printf '%-6s %-10s %12s %9s %9s %14s\n' round proxy "msgs/s" "p50 ms" "p99 ms" "cpu us/msg"
declare -A RATE P99 CPU
for ((r = 1; r <= ROUNDS; r++)); do
  order=(gatehouse nginx); ((r % 2 == 0)) && order=(nginx gatehouse)
  for p in "${order[@]}"; do
    port=$GH; [[ $p == nginx ]] && port=$NGX
    t0=$(ticks "${PID_OF[$p]}")
    pinned "$LOAD_CPU" node "$here/ws-load.mjs" "ws://127.0.0.1:$port/" "$CONNECTIONS" "$SECONDS_PER_ROUND" "$MESSAGE_BYTES"
    out=$("${PINNED[@]}")
    t1=$(ticks "${PID_OF[$p]}")
    msgs=${out#*messages=}; msgs=${msgs%% *}
    secs=${out#*seconds=}; secs=${secs%% *}
    p50=${out#*p50_ms=}; p50=${p50%% *}
    p99=${out#*p99_ms=}; p99=${p99%% *}
    errs=${out#*errors=}
    [[ $errs == 0 ]] || die "$p: $errs connection errors"
    rate=$(awk -v n="$msgs" -v s="$secs" 'BEGIN { printf "%.1f", n / s }')
    cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" -v n="$msgs" 'BEGIN { printf "%.2f", (b - a) * 1e6 / hz / n }')
    printf '%-6s %-10s %12s %9s %9s %14s\n' "$r" "$p" "$rate" "$p50" "$p99" "$cpu"
    RATE[$p]+="$rate "; P99[$p]+="$p99 "; CPU[$p]+="$cpu "
  done
done
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "medians:"
for p in gatehouse nginx; do
  printf '  %-10s %12s msgs/s  p99 %s ms  %s us/msg\n' "$p" "$(median <<<"${RATE[$p]}")" "$(median <<<"${P99[$p]}")" "$(median <<<"${CPU[$p]}")"
done
awk -v gr="$(median <<<"${RATE[gatehouse]}")" -v nr="$(median <<<"${RATE[nginx]}")" \
  -v gp="$(median <<<"${P99[gatehouse]}")" -v np="$(median <<<"${P99[nginx]}")" \
  -v gc="$(median <<<"${CPU[gatehouse]}")" -v nc="$(median <<<"${CPU[nginx]}")" \
  'BEGIN { printf "gatehouse/nginx: msgs/s %.3f (>1 better), p99 %.3f (<1 better), cpu/msg %.3f (<1 better)\n", gr / nr, gp / np, gc / nc }'
