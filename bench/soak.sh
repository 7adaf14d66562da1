#!/usr/bin/env bash
# Soak test: one gatehouse under mixed traffic for DURATION while its world misbehaves on a
# schedule, watching for leaks, crashes and answers it should not give.
#
#   bench/soak.sh 30m        (or 90s, 5m, 1h; DURATION env works too)
#
# Traffic (bench/soak/load.mjs, all classes at once): keep-alive and new-connection GETs over HTTP
# and HTTPS, 1-5 MiB uploads (POST and PUT) and downloads, 404s, 401s (API key, JWT), and two
# rate-limited routes (local, and cluster-scope in Redis) that answer 429 part of the time.
# Upstream: two node targets (tests/integration/upstream.mjs); one of them is killed every
# FLAP_PERIOD and started again on the same port FLAP_DOWN later. Retries, health checks and a
# circuit breaker are configured, so requests must not see it. Every RELOAD_PERIOD the config is
# swapped between two variants and gatehouse gets SIGHUP. Redis is killed once, at REDIS_KILL_AT
# of the run, and started again REDIS_DOWN later (redis.on_error: local: the same limits decided
# per instance meanwhile, documented as no 5xx). Gatehouse's VmRSS and open fds are sampled every
# second.
#
# At the end: requests by class and outcome, every unexpected answer (classified), RSS and fds at
# the end of warm-up and at the end, and whether gatehouse crashed. Exit 1 on a crash, any
# unexpected answer, or RSS/fd growth after warm-up over MAX_GROWTH_PCT. See bench/README.md.
# Everything started is killed on exit, by PID; temp files live in one mktemp -d directory.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

# ---- knobs (environment) -------------------------------------------------------------------
DURATION=${1:-${DURATION:-5m}}
GATEHOUSE_BIN=${GATEHOUSE_BIN:-$ROOT/build/gatehouse}
WORKERS=${WORKERS:-2}                # gatehouse server.workers
RATE_SCALE=${RATE_SCALE:-1}          # multiplies every class's rate (the default mix: ~250 req/s)
RATES=${RATES:-}                     # per-class overrides, e.g. "ka-get=100 download=0"
FLAP_PERIOD=${FLAP_PERIOD:-20}       # seconds between kills of the flapping target
FLAP_DOWN=${FLAP_DOWN:-8}            # seconds it stays down
RELOAD_PERIOD=${RELOAD_PERIOD:-30}   # seconds between SIGHUPs (configs a, b, a, ...)
REDIS_KILL_AT=${REDIS_KILL_AT:-50}   # percent of DURATION at which Redis is killed ("" or 0: never)
REDIS_DOWN=${REDIS_DOWN:-10}         # seconds Redis stays down
WARMUP=${WARMUP:-}                   # seconds; default: 120, or 20% of DURATION if shorter
WINDOW=${WINDOW:-}                   # seconds of samples whose median is compared; default: one whole
                                     # cycle of flaps and reloads (60 s), at most WARMUP
MAX_GROWTH_PCT=${MAX_GROWTH_PCT:-5}  # RSS / fd growth after warm-up that fails the run
FD_SLACK=${FD_SLACK:-5}              # fds: growth within this many descriptors never fails (0: strict %)
REQUEST_TIMEOUT=${REQUEST_TIMEOUT:-30} # seconds, per request of the load generator
BASE_PORT=${BASE_PORT:-}             # first of 7 consecutive ports; empty: pick free ones
ACCESS_LOG=${ACCESS_LOG:-0}          # 1: gatehouse writes its access log into the temp dir
KEEP_TMP=${KEEP_TMP:-0}              # 1: keep configs, logs, samples and stats (always kept on failure)
NODE_BIN=${NODE_BIN:-node}
REDIS_BIN=${REDIS_BIN:-redis-server}

die() { echo "soak: error: $*" >&2; exit 2; }
log() { printf 'soak: [%5ss] %s\n' "$((SECONDS - T0))" "$*" >&2; }
T0=$SECONDS

to_seconds() {
  case $1 in
    *s) echo "${1%s}" ;;
    *m) echo $((${1%m} * 60)) ;;
    *h) echo $((${1%h} * 3600)) ;;
    *) echo "$1" ;;
  esac
}
DUR_S=$(to_seconds "$DURATION")
[[ $DUR_S =~ ^[0-9]+$ ]] && ((DUR_S >= 10)) || die "DURATION '$DURATION': use e.g. 90s, 5m, 30m (at least 10s)"
for v in WORKERS FLAP_PERIOD FLAP_DOWN RELOAD_PERIOD REDIS_DOWN REQUEST_TIMEOUT ${WARMUP:+WARMUP} ${WINDOW:+WINDOW}; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive whole number (seconds, or workers)"
done
[[ $FD_SLACK =~ ^[0-9]+$ && $MAX_GROWTH_PCT =~ ^[0-9]+([.][0-9]+)?$ ]] || die "FD_SLACK and MAX_GROWTH_PCT must be numbers"
if [[ -z $WARMUP ]]; then WARMUP=$((DUR_S / 5 < 120 ? DUR_S / 5 : 120)); fi
# The fd count moves with the flapping target (its pooled connections die with it) and with the
# configs (b has one more listener): by default a window spans whole cycles of both, when the
# warm-up is that long, so that both ends of the run are measured alike.
gcd() { local a=$1 b=$2 t; while ((b)); do t=$((a % b)); a=$b; b=$t; done; echo "$a"; }
if [[ -z $WINDOW ]]; then
  cycle=$((FLAP_PERIOD * 2 * RELOAD_PERIOD / $(gcd "$FLAP_PERIOD" $((2 * RELOAD_PERIOD)))))
  WINDOW=$((WARMUP < cycle ? WARMUP : cycle))
fi
((WINDOW >= 1)) || WINDOW=1
((FLAP_DOWN < FLAP_PERIOD)) || die "FLAP_DOWN must be shorter than FLAP_PERIOD"
[[ -x $GATEHOUSE_BIN ]] || die "gatehouse binary not found at $GATEHOUSE_BIN (build it, or set GATEHOUSE_BIN)"
for tool in "$NODE_BIN" "$REDIS_BIN" openssl curl ss sha256sum; do command -v "$tool" >/dev/null || die "'$tool' not found"; done

now_ms() { local t=$EPOCHREALTIME; local f=${t#*.}; echo "${t%.*}${f:0:3}"; }

# ---- process bookkeeping and cleanup -------------------------------------------------------
TMP=$(mktemp -d -t gatehouse-soak.XXXXXX)
GH_PID="" REDIS_PID="" STABLE_PID="" FLAP_PID="" LOAD_PID=""
cleanup() {
  local rc=$? pid
  set +e
  trap - EXIT INT TERM
  for pid in "$LOAD_PID" "$GH_PID" "$FLAP_PID" "$STABLE_PID" "$REDIS_PID"; do
    [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null
  done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "$LOAD_PID" "$GH_PID" "$FLAP_PID" "$STABLE_PID" "$REDIS_PID"; do
      [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && alive=1
    done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "$LOAD_PID" "$GH_PID" "$FLAP_PID" "$STABLE_PID" "$REDIS_PID"; do
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
  done
  wait 2>/dev/null
  if [[ $KEEP_TMP == 1 || $rc != 0 ]]; then echo "soak: configs, logs and samples kept in $TMP" >&2; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- ports -----------------------------------------------------------------------------------
port_free() { [[ -z $(ss -Htln "sport = :$1" 2>/dev/null) ]]; }
pick_ports() {
  local base tries=0 i ok
  while ((tries < 50)); do
    base=${BASE_PORT:-$((20000 + RANDOM % 30000))}
    ok=1
    for ((i = 0; i < 7; i++)); do port_free $((base + i)) || ok=0; done
    if ((ok)); then
      GH_PORT=$base; GH_TLS_PORT=$((base + 1)); GH_EXTRA_PORT=$((base + 2)); ADMIN_PORT=$((base + 3))
      STABLE_PORT=$((base + 4)); FLAP_PORT=$((base + 5)); REDIS_PORT=$((base + 6))
      return 0
    fi
    [[ -n $BASE_PORT ]] && die "ports $BASE_PORT..$((BASE_PORT + 6)) are not all free"
    tries=$((tries + 1))
  done
  die "could not find 7 free ports"
}
pick_ports

# ---- material: certificate, JWKS and token, API key ------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/cert.key" \
  -out "$TMP/cert.pem" -days 2 -subj /CN=soak.test -addext "subjectAltName=DNS:soak.test,IP:127.0.0.1" \
  >/dev/null 2>&1 || die "cannot make a certificate"
tokens=$("$NODE_BIN" "$HERE/jwt-token.mjs" "$TMP/jwks.json") || die "cannot make a JWT"
JWT=$(echo "$tokens" | awk '$1 == "ES256" { print $2 }')
API_KEY=soak-api-key-$RANDOM$RANDOM
KEY_DIGEST=$(printf %s "$API_KEY" | sha256sum | awk '{ print $1 }')
ACCESS_LOG_PATH='"off"'
[[ $ACCESS_LOG == 1 ]] && ACCESS_LOG_PATH=$TMP/access.log

# ---- the two configs -------------------------------------------------------------------------
# a and b differ in a listener (b has one more: it opens on every worker, then closes again), the
# stable target's weight, a route (b has /extra/*) and the x-soak-config header every routed
# answer carries (so the load generator sees which config answered). Every reload also reads the
# certificate and the JWKS file again and builds routes, upstreams and plugins anew.
config() {  # $1 = a | b
  local v=$1 weight=1
  [[ $v == b ]] && weight=2
  cat <<EOF
# bench/soak.sh, config $v
server:
  workers: $WORKERS
  listen:
    - address: 127.0.0.1:$GH_PORT
    - address: 127.0.0.1:$GH_TLS_PORT
      tls: { certificates: [ { cert: $TMP/cert.pem, key: $TMP/cert.key } ] }
$([[ $v == b ]] && echo "    - address: 127.0.0.1:$GH_EXTRA_PORT")
  timeouts: { drain: 5s }
admin: { listen: 127.0.0.1:$ADMIN_PORT }
observability:
  access_log: { path: $ACCESS_LOG_PATH }
redis: { url: "redis://127.0.0.1:$REDIS_PORT/0", timeout: 50ms, on_error: local }
consumers:
  - { name: soak, api_keys: [ { sha256: $KEY_DIGEST } ] }
jwt_providers:
  soak:
    issuer: https://bench.test/
    audiences: [bench]
    algorithms: [ES256, RS256]
    jwks_file: $TMP/jwks.json
upstreams:
  pool:
    targets:
      - { address: 127.0.0.1:$STABLE_PORT, weight: $weight }
      - { address: 127.0.0.1:$FLAP_PORT }
    timeouts: { connect: 1s, response: 10s }
    # Connect failures and resets of idempotent requests go to the other target; PUT bodies (up to
    # 5 MiB) are kept for that. The budget covers every request: one target of two is down for
    # FLAP_DOWN of every FLAP_PERIOD, and until the checks or the breaker take it out, half of
    # the tries fail.
    retry: { attempts: 2, on: [connect_failure, reset], budget: 100%, max_replay_body: 6MiB }
    health_check: { path: /healthz, interval: 1s, timeout: 500ms, unhealthy_after: 2, healthy_after: 2 }
    circuit_breaker: { consecutive_failures: 3, open_for: 2s, max_open_for: 10s }
routes:
  - name: pool
    match: { path: /pool/* }
    rewrite: { strip_prefix: /pool }
    to: pool
    plugins: { response_headers: { add: { x-soak-config: $v } } }
  - name: key
    match: { path: /key/* }
    rewrite: { strip_prefix: /key }
    to: pool
    plugins: { key_auth: { header: x-api-key }, response_headers: { add: { x-soak-config: $v } } }
  - name: jwt
    match: { path: /jwt/* }
    rewrite: { strip_prefix: /jwt }
    to: pool
    plugins: { jwt_auth: { provider: soak }, response_headers: { add: { x-soak-config: $v } } }
  - name: limited
    match: { path: /limited/* }
    rewrite: { strip_prefix: /limited }
    to: pool
    plugins: { rate_limit: { limits: ["20/s"], key: ip }, response_headers: { add: { x-soak-config: $v } } }
  - name: climited
    match: { path: /climited/* }
    rewrite: { strip_prefix: /climited }
    to: pool
    plugins: { rate_limit: { limits: ["20/s"], key: ip, scope: cluster }, response_headers: { add: { x-soak-config: $v } } }
EOF
  if [[ $v == b ]]; then
    cat <<EOF
  - name: extra
    match: { path: /extra/* }
    to: pool
EOF
  fi
}
config a >"$TMP/config-a.yaml"
config b >"$TMP/config-b.yaml"
for v in a b; do
  "$GATEHOUSE_BIN" validate -c "$TMP/config-$v.yaml" >"$TMP/validate-$v.log" 2>&1 ||
    { cat "$TMP/validate-$v.log" >&2; die "config $v is invalid"; }
done
cp "$TMP/config-a.yaml" "$TMP/gatehouse.yaml"

# ---- start everything ------------------------------------------------------------------------
EVENTS=$TMP/events.log
: >"$EVENTS"
event() { echo "$(now_ms) $*" >>"$EVENTS"; }

wait_port() {  # $1 port, $2 pid, $3 name, $4 log
  local deadline=$((SECONDS + 15))
  while ((SECONDS < deadline)); do
    kill -0 "$2" 2>/dev/null || { sed 's/^/    /' "$4" >&2; die "$3 exited during start-up"; }
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  die "$3 did not listen on 127.0.0.1:$1 within 15 s"
}

start_redis() {
  "$REDIS_BIN" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
    --daemonize no >>"$TMP/redis.log" 2>&1 &
  REDIS_PID=$!
  wait_port "$REDIS_PORT" "$REDIS_PID" redis-server "$TMP/redis.log"
}
start_flap() {
  "$NODE_BIN" "$ROOT/tests/integration/upstream.mjs" --port "$FLAP_PORT" --name flap >>"$TMP/flap.log" 2>&1 &
  FLAP_PID=$!
  wait_port "$FLAP_PORT" "$FLAP_PID" "flapping target" "$TMP/flap.log"
}

start_redis
"$NODE_BIN" "$ROOT/tests/integration/upstream.mjs" --port "$STABLE_PORT" --name stable >"$TMP/stable.log" 2>&1 &
STABLE_PID=$!
wait_port "$STABLE_PORT" "$STABLE_PID" "stable target" "$TMP/stable.log"
start_flap

"$GATEHOUSE_BIN" run -c "$TMP/gatehouse.yaml" >"$TMP/gatehouse.log" 2>&1 &
GH_PID=$!
GH_PID_SHOWN=$GH_PID
wait_port "$GH_PORT" "$GH_PID" gatehouse "$TMP/gatehouse.log"
wait_port "$GH_TLS_PORT" "$GH_PID" gatehouse "$TMP/gatehouse.log"
got=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GH_PORT/pool/echo") || true
[[ $got == 200 ]] || { sed 's/^/    /' "$TMP/gatehouse.log" >&2; die "gatehouse does not answer 200 on /pool/echo (got '$got')"; }

# ---- the load --------------------------------------------------------------------------------
# Default requests/s per class (about 250 in all), scaled by RATE_SCALE, overridden by RATES.
declare -A RATE=(
  [ka-get]=70 [new-get]=25 [tls-ka-get]=35 [tls-new-get]=8
  [upload-post]=2 [upload-put]=2 [download]=3
  [unrouted]=10 [no-key]=6 [no-jwt]=6 [key-ok]=8 [jwt-ok]=8
  [rate-local]=30 [rate-redis]=30
)
for kv in $RATES; do
  [[ $kv =~ ^([a-z-]+)=([0-9.]+)$ && -n ${RATE[${BASH_REMATCH[1]}]+x} ]] || die "RATES: bad item '$kv' (classes: ${!RATE[*]})"
  RATE[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
done
rates_json=$(for k in "${!RATE[@]}"; do awk -v k="$k" -v r="${RATE[$k]}" -v s="$RATE_SCALE" 'BEGIN { printf "\"%s\": %g,", k, r * s }'; done)
cat >"$TMP/settings.json" <<EOF
{ "durationMs": $((DUR_S * 1000)), "http": "http://127.0.0.1:$GH_PORT", "https": "https://127.0.0.1:$GH_TLS_PORT",
  "ca": "$TMP/cert.pem", "apiKey": "$API_KEY", "jwt": "$JWT", "timeoutMs": $((REQUEST_TIMEOUT * 1000)),
  "rates": { ${rates_json%,} },
  "statsFile": "$TMP/stats.json", "anomaliesFile": "$TMP/anomalies.jsonl" }
EOF
: >"$TMP/anomalies.jsonl"

total_rate=$(for k in "${!RATE[@]}"; do echo "${RATE[$k]}"; done | awk -v s="$RATE_SCALE" '{ t += $1 * s } END { printf "%.0f", t }')
redis_kill_s=""
[[ -n $REDIS_KILL_AT && $REDIS_KILL_AT != 0 ]] && redis_kill_s=$((DUR_S * REDIS_KILL_AT / 100))
echo "gatehouse soak: ${DUR_S}s, ~${total_rate} req/s in 14 classes, $WORKERS workers, $GATEHOUSE_BIN ($("$GATEHOUSE_BIN" version 2>&1 | head -1))"
echo "  target 127.0.0.1:$FLAP_PORT killed every ${FLAP_PERIOD}s for ${FLAP_DOWN}s; reload every ${RELOAD_PERIOD}s;" \
  "Redis killed at ${redis_kill_s:-never}${redis_kill_s:+s} for ${REDIS_DOWN}s; warm-up ${WARMUP}s, windows ${WINDOW}s; temp $TMP"

"$NODE_BIN" "$HERE/soak/load.mjs" "$TMP/settings.json" >"$TMP/load.log" 2>&1 &
LOAD_PID=$!
START=$SECONDS
event start

# ---- the schedule: one loop, one tick a second -----------------------------------------------
SAMPLES=$TMP/samples.tsv
: >"$SAMPLES"
sample() {
  local line rss="" threads="" fds stat f
  while read -r line; do
    case $line in
      VmRSS:*) rss=${line#VmRSS:}; rss=${rss% kB}; rss=${rss// /} ;;
      Threads:*) threads=${line#Threads:}; threads=${threads//[[:space:]]/} ;;
    esac
  done <"/proc/$GH_PID/status" 2>/dev/null || return 0
  fds=(/proc/"$GH_PID"/fd/*)
  stat=$(<"/proc/$GH_PID/stat") || return 0
  read -r -a f <<<"${stat##*) }"  # f[11] utime, f[12] stime (clock ticks)
  [[ -n $rss ]] && echo "$(now_ms) $rss ${#fds[@]} $threads $((f[11] + f[12]))" >>"$SAMPLES"
}

# What gatehouse's fds are, at the end of warm-up and near the end: by kind (socket, anon_inode:
# eventpoll/eventfd/timerfd, pipe, file), and its TCP sockets by role and state (clients, the
# listeners, each upstream target (requests and health checks), Redis; anything else "other").
fd_snapshot() {  # $1 = label
  local kinds sockets
  kinds=$(for f in /proc/"$GH_PID"/fd/*; do readlink "$f"; done 2>/dev/null |
    sed -E 's/^socket:.*/socket/; s/^anon_inode:\[?([a-z_]+).*/\1/; s/^pipe:.*/pipe/; s|^/.*|file|' |
    sort | uniq -c | awk '{ printf "%s %s, ", $2, $1 }')
  sockets=$(ss -Htanp 2>/dev/null | grep "pid=$GH_PID," | awk -v l="$GH_PORT $GH_TLS_PORT $GH_EXTRA_PORT $ADMIN_PORT" \
    -v stable="$STABLE_PORT" -v flap="$FLAP_PORT" -v redis="$REDIS_PORT" '
    BEGIN { split(l, a, " "); for (i in a) mine[a[i]] = 1 }
    { lp = $4; sub(/.*:/, "", lp); pp = $5; sub(/.*:/, "", pp)
      role = (lp in mine) ? ($1 == "LISTEN" ? "listen" : "client") : pp == stable ? "stable" : pp == flap ? "flap" : pp == redis ? "redis" : "other"
      n[role " " $1]++ }
    END { for (k in n) printf "%s %d, ", k, n[k] }' | tr ',' '\n' | sed 's/^ //' | sort | tr '\n' ',' | sed 's/,,*/, /g; s/^, //; s/, $//')
  printf '%s\t%s\t%s\n' "$1" "${kinds%, }" "$sockets" >>"$TMP/fds.tsv"
}

CRASHED=""
next_flap=$FLAP_PERIOD flap_up_at="" next_reload=$RELOAD_PERIOD config_now=a redis_up_at="" reloads=0
next_tick=$SECONDS
while :; do
  t=$((SECONDS - START))
  if ! kill -0 "$GH_PID" 2>/dev/null; then
    rc=0; wait "$GH_PID" || rc=$?
    CRASHED="exited with status $rc at +${t}s (signal $((rc > 128 ? rc - 128 : 0)))"
    log "gatehouse died: $CRASHED"
    GH_PID=""
    break
  fi
  kill -0 "$LOAD_PID" 2>/dev/null || break   # the load generator ends itself after DURATION
  sample
  if ((t == WARMUP)); then fd_snapshot warm-up-end; fi
  if ((t == DUR_S - 2)); then fd_snapshot end; fi
  ((t % 30 == 0 && t > 0)) && log "running: $(tail -1 "$SAMPLES" | awk '{ printf "rss %d KiB, %d fds", $2, $3 }')"
  if [[ -n $flap_up_at ]] && ((t >= flap_up_at)); then
    start_flap; event flap-up "$FLAP_PID"; flap_up_at=""
  elif ((t >= next_flap && t + FLAP_DOWN < DUR_S)); then
    before=$(now_ms); kill -KILL "$FLAP_PID"; wait "$FLAP_PID" 2>/dev/null || true
    echo "$before flap-down $(now_ms)" >>"$EVENTS"
    FLAP_PID=""; flap_up_at=$((t + FLAP_DOWN)); next_flap=$((next_flap + FLAP_PERIOD))
  fi
  if ((t >= next_reload && t + 2 < DUR_S)); then
    config_now=$([[ $config_now == a ]] && echo b || echo a)
    cp "$TMP/config-$config_now.yaml" "$TMP/gatehouse.yaml.new" && mv "$TMP/gatehouse.yaml.new" "$TMP/gatehouse.yaml"
    kill -HUP "$GH_PID"; event reload "$config_now"; reloads=$((reloads + 1))
    next_reload=$((next_reload + RELOAD_PERIOD))
  fi
  if [[ -n $redis_kill_s ]] && ((t >= redis_kill_s)); then
    kill -KILL "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true; REDIS_PID=""
    event redis-down; log "Redis killed; back in ${REDIS_DOWN}s"
    redis_up_at=$((t + REDIS_DOWN)); redis_kill_s=""
  fi
  if [[ -n $redis_up_at ]] && ((t >= redis_up_at)); then
    start_redis; event redis-up; log "Redis started again"; redis_up_at=""
  fi
  next_tick=$((next_tick + 1))
  while ((SECONDS < next_tick)); do sleep 0.2; done
done

# ---- wind down -------------------------------------------------------------------------------
if [[ -n $LOAD_PID ]]; then
  if [[ -n $CRASHED ]]; then kill -TERM "$LOAD_PID" 2>/dev/null || true; fi
  wait "$LOAD_PID" 2>/dev/null || true
  LOAD_PID=""
fi
DRAIN_EXIT=null
if [[ -n $GH_PID ]]; then
  curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" >"$TMP/metrics.txt" || true
  kill -TERM "$GH_PID"
  DRAIN_EXIT=0; wait "$GH_PID" || DRAIN_EXIT=$?
  GH_PID=""
fi
# gatehouse's own log: lines by level, and the distinct error lines.
log_summary=$(awk '{ n[$2]++ } END { for (k in n) printf "%s %d, ", k, n[k] }' "$TMP/gatehouse.log" | sed 's/, $//')
cat >"$TMP/report.json" <<EOF
{ "warmupMs": $((WARMUP * 1000)), "clkTck": $(getconf CLK_TCK), "windowMs": $((WINDOW * 1000)), "maxGrowthPct": $MAX_GROWTH_PCT, "fdSlack": $FD_SLACK,
  "flapPort": $FLAP_PORT, "gatehousePid": ${GH_PID_SHOWN:-0}, "drainExit": $DRAIN_EXIT,
  "crashed": $([[ -n $CRASHED ]] && printf '"%s"' "$CRASHED" || echo null),
  "logSummary": "${log_summary:-nothing}" }
EOF
echo
RESULT=0
"$NODE_BIN" "$HERE/soak/report.mjs" "$TMP" || RESULT=$?
if ((RESULT != 0)); then
  echo "gatehouse log, error lines (last 20):"
  awk '$2 == "error" || $2 == "critical"' "$TMP/gatehouse.log" | tail -20 | sed 's/^/  /' || true
fi
exit "$RESULT"
