#!/usr/bin/env bash
# Gatehouse vs nginx vs HAProxy: one worker/thread each, reverse-proxying the same nginx backend
# (small static body, keep-alive), loaded by the same wrk run in interleaved rounds.
#
# Prints per round and as medians: requests/s, p99 latency (wrk --latency) and proxy CPU
# microseconds per request (utime+stime from /proc/PID/stat, before/after each round), then the
# ratios gatehouse/nginx and gatehouse/haproxy.
#
# Everything runs on 127.0.0.1; every step is bounded in time; everything started is killed on exit.
# See bench/README.md. Quick smoke test:  DURATION=2s ROUNDS=1 WARMUP=0 bench/run.sh
set -euo pipefail

# ---- knobs (environment) -------------------------------------------------------------------
DURATION=${DURATION:-10s}          # wrk -d per proxy per round (wrk syntax: 10s, 1m, ...)
CONNECTIONS=${CONNECTIONS:-50}     # wrk -c (keep-alive connections)
THREADS=${THREADS:-1}              # wrk -t
ROUNDS=${ROUNDS:-3}                # interleaved rounds: gatehouse, nginx, haproxy, gatehouse, ...
WARMUP=${WARMUP:-1s}               # untimed wrk run per proxy before round 1 ("0" to skip)
BODY_BYTES=${BODY_BYTES:-100}      # size of the static body the backend serves
BODY_KIND=${BODY_KIND:-x}          # x: BODY_BYTES of 'x'; json: JSON records (compresses about 5:1)
URL_PATH=${URL_PATH:-$([[ ${GRPC:-0} == 1 ]] && echo /bench.Echo/Call || echo /body.txt)}  # path requested through the proxies
PROXIES=${PROXIES:-"gatehouse nginx haproxy"}   # subset/order of proxies to run
PIN=${PIN:-0}                      # 1: taskset proxies onto PROXY_CPU, wrk + backend onto LOAD_CPU
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BASE_PORT=${BASE_PORT:-}           # first of 4 consecutive ports; empty: pick free ports
READY_TIMEOUT=${READY_TIMEOUT:-15} # seconds to wait for each server to answer
GATEHOUSE_WAIT=${GATEHOUSE_WAIT:-0} # seconds to wait for a missing gatehouse binary to appear
CSV=${CSV:-}                       # optional file: per-round results as CSV
SCHEME=${SCHEME:-http}             # https: the proxies terminate TLS (one EC P-256 certificate)
PROTOCOL=${PROTOCOL:-http1}        # h2c: clients speak HTTP/2 with prior knowledge (h2load, not wrk)
STREAMS=${STREAMS:-25}             # h2c: concurrent streams per connection (h2load -m)
UPSTREAM_PROTOCOL=${UPSTREAM_PROTOCOL:-http1} # h2c: the backend speaks HTTP/2 (prior knowledge) to the proxies
GRPC=${GRPC:-0}                    # 1: unary gRPC calls (needs h2c both sides; nginx: grpc_pass)
NEW_CONNECTIONS=${NEW_CONNECTIONS:-0} # 1: a new connection per request (with https: full handshakes)
CPU_LIMIT=${CPU_LIMIT:-}           # e.g. 0.5: each proxy gets that share of a core (cgroup quota)
EQUAL_HEADERS=${EQUAL_HEADERS:-1} # 1: nginx/HAProxy add the forwarding headers gatehouse adds by default
INSTRUCTIONS=${INSTRUCTIONS:-0}    # 1: count user-space instructions per request (callgrind) instead
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-0} # N: measure RSS per idle keep-alive connection (N held) instead
UNIQUE_URLS=${UNIQUE_URLS:-0}      # 1: every request asks for another URL (a cache misses every time)
CACHE_MIB=${CACHE_MIB:-256}        # the caches' size, MiB (a small one is full, evicting, sooner)
KEEP_TMP=${KEEP_TMP:-0}            # 1: keep the generated configs and logs
GATEHOUSE_BIN=${GATEHOUSE_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/gatehouse}
BASELINE_BIN=${BASELINE_BIN:-}     # gatehouse-baseline: another gatehouse build (e.g. the previous main)
NGINX_BIN=${NGINX_BIN:-nginx}
HAPROXY_BIN=${HAPROXY_BIN:-haproxy}
WRK_BIN=${WRK_BIN:-wrk}

die() { echo "bench: error: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

for p in $PROXIES; do
  case $p in
    gatehouse | gatehouse-logged | gatehouse-key | gatehouse-jwt-es256 | gatehouse-jwt-rs256 | \
      gatehouse-rl-local | gatehouse-rl-cluster | gatehouse-resilient | gatehouse-baseline | nginx | haproxy | \
      gatehouse-cache | nginx-cache | varnish | gatehouse-gzip | gatehouse-br | nginx-gzip) ;;
    gatehouse-transcode) [[ ${GRPC:-0} == 1 ]] || die "gatehouse-transcode needs GRPC=1" ;;
    gatehouse-aggregate) [[ ${GRPC:-0} == 0 && ${BODY_KIND:-x} == x ]] ||
      die "gatehouse-aggregate takes the plain body (GRPC=0, BODY_KIND=x)" ;;
    gatehouse-traced | gatehouse-traced-1pct | gatehouse-dashboard) ;;
    *) die "unknown proxy '$p' in PROXIES" ;;
  esac
done
# Ratios are of REF (gatehouse, or gatehouse-cache when the run compares caches) to each peer.
REF=gatehouse
[[ " $PROXIES " != *" gatehouse "* && " $PROXIES " == *" gatehouse-cache "* ]] && REF=gatehouse-cache
[[ " $PROXIES " != *" gatehouse "* && " $PROXIES " == *" gatehouse-gzip "* ]] && REF=gatehouse-gzip
PEERS="nginx haproxy gatehouse-cache nginx-cache varnish nginx-gzip gatehouse-br gatehouse-logged gatehouse-key gatehouse-jwt-es256"
PEERS+=" gatehouse-jwt-rs256 gatehouse-rl-local gatehouse-rl-cluster gatehouse-resilient gatehouse-baseline"
PEERS+=" gatehouse-transcode gatehouse-aggregate gatehouse-traced gatehouse-traced-1pct gatehouse-dashboard"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer"
[[ $IDLE_CONNECTIONS =~ ^[0-9]+$ ]] || die "IDLE_CONNECTIONS must be a number"
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive integer"
[[ $SCHEME == http || $SCHEME == https ]] || die "SCHEME must be http or https"
[[ $PROTOCOL == http1 || $PROTOCOL == h2c ]] || die "PROTOCOL must be http1 or h2c"
[[ $PROTOCOL == http1 || $SCHEME == http ]] || die "PROTOCOL=h2c is cleartext: SCHEME=http"
[[ $UPSTREAM_PROTOCOL == http1 || $UPSTREAM_PROTOCOL == h2c ]] || die "UPSTREAM_PROTOCOL must be http1 or h2c"
# nginx's proxy_pass speaks HTTP/1.x only: it cannot do the same work against an HTTP/2 backend
# (but for gRPC: grpc_pass).
[[ $UPSTREAM_PROTOCOL == http1 || $GRPC == 1 || " $PROXIES " != *" nginx"* ]] ||
  die "UPSTREAM_PROTOCOL=h2c: nginx cannot proxy to an HTTP/2 backend; set PROXIES (e.g. \"gatehouse haproxy\")"
[[ $GRPC == 0 || ($PROTOCOL == h2c && $UPSTREAM_PROTOCOL == h2c) ]] ||
  die "GRPC=1 is gRPC over HTTP/2: PROTOCOL=h2c UPSTREAM_PROTOCOL=h2c"
[[ $BODY_KIND == x || $BODY_KIND == json ]] || die "BODY_KIND must be x or json"
[[ -z $CPU_LIMIT || $CPU_LIMIT =~ ^(0?\.[0-9]+|1(\.0*)?)$ ]] || die "CPU_LIMIT must be a share of one core, 0.05 to 1"
((CONNECTIONS >= THREADS)) || die "CONNECTIONS must be >= THREADS"

# Duration in whole seconds (for the timeout around wrk).
to_seconds() {
  local d=$1
  case $d in
    *ms) echo 1 ;;
    *s) echo "${d%s}" ;;
    *m) echo $((${d%m} * 60)) ;;
    *h) echo $((${d%h} * 3600)) ;;
    *) echo "$d" ;;
  esac
}
DUR_S=$(to_seconds "$DURATION")
[[ $DUR_S =~ ^[0-9]+$ ]] || die "cannot parse DURATION='$DURATION' (use e.g. 10s, 1m)"
WARMUP_S=0
if [[ $WARMUP != 0 && -n $WARMUP ]]; then
  WARMUP_S=$(to_seconds "$WARMUP")
  [[ $WARMUP_S =~ ^[0-9]+$ ]] || die "cannot parse WARMUP='$WARMUP'"
fi

for tool in "$WRK_BIN" curl ss awk; do command -v "$tool" >/dev/null || die "'$tool' not found"; done
[[ $PROTOCOL == h2c ]] && { command -v h2load >/dev/null || die "PROTOCOL=h2c needs h2load (nghttp2-client)"; }
# Idle upstream connections each proxy keeps: at least as many as requests in flight, so that no
# proxy opens new ones under a steady load (HTTP/2 puts STREAMS of them on each connection).
IN_FLIGHT=$CONNECTIONS
[[ $PROTOCOL == h2c ]] && IN_FLIGHT=$((CONNECTIONS * STREAMS))
UPSTREAM_IDLE=$((IN_FLIGHT > 64 ? IN_FLIGHT + IN_FLIGHT / 4 : 64))
command -v "$NGINX_BIN" >/dev/null || die "nginx not found (scripts/install-deps.sh installs it)"
[[ " $PROXIES " == *" haproxy "* ]] && { command -v "$HAPROXY_BIN" >/dev/null || die "haproxy not found"; }
[[ $PIN == 1 ]] && { command -v taskset >/dev/null || die "PIN=1 needs taskset"; }

if [[ " $PROXIES " == *" gatehouse"* ]]; then
  waited=0
  while [[ ! -x $GATEHOUSE_BIN ]]; do
    ((waited < GATEHOUSE_WAIT)) || die "gatehouse binary not found at $GATEHOUSE_BIN (set GATEHOUSE_BIN, or GATEHOUSE_WAIT=SECONDS to wait for a build)"
    ((waited % 10 == 0)) && log "waiting for $GATEHOUSE_BIN ..."
    sleep 1; waited=$((waited + 1))
  done
fi

CLK_TCK=$(getconf CLK_TCK)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The backend is always plain HTTP; the proxies speak SCHEME.
scheme_of() { [[ $1 == backend ]] && echo http || echo "$SCHEME"; }
declare -A WRK_HEADER=()  # per proxy: a header wrk sends with every request (credentials, a coding)
declare -A CODED_BYTES=()  # per compressing proxy: the size of its coded body

# ---- process bookkeeping and cleanup -------------------------------------------------------
TMP=$(mktemp -d -t gatehouse-bench.XXXXXX)  # under $TMPDIR, or /tmp
chmod 755 "$TMP"
PIDS=()   # everything we started (plus nginx workers once known)
CGROUPS=()  # cgroups made for CPU_LIMIT
declare -A CGROUP_OF  # proxy -> its cgroup
WRK_PID=""  # the running load generator, if any

cleanup() {
  local rc=$? pid
  set +e
  trap - EXIT INT TERM
  [[ -n $WRK_PID ]] && kill -TERM "$WRK_PID" 2>/dev/null
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 30); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for dir in "${CGROUPS[@]}"; do rmdir "$dir" 2>/dev/null; done
  if [[ $KEEP_TMP == 1 ]]; then log "configs and logs kept in $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Start "$@" in the background (pinned when asked), stdout+stderr to a log; sets STARTED_PID.
# In INSTRUCTIONS mode the proxies (not the backend) run under callgrind.
start() {
  local cpu=$1 logf=$2; shift 2
  if [[ $INSTRUCTIONS == 1 && $cpu == "$PROXY_CPU" ]]; then
    set -- valgrind --tool=callgrind --callgrind-out-file="$(dirname "$logf")/callgrind.%p" "$@"
  fi
  if [[ -n $CPU_LIMIT && $cpu == "$PROXY_CPU" ]]; then
    make_cgroup "$(basename "$(dirname "$logf")")"
    set -- sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG_DIR" "$@"
  fi
  if [[ $PIN == 1 ]]; then
    taskset -c "$cpu" "$@" >"$logf" 2>&1 &
  else
    "$@" >"$logf" 2>&1 &
  fi
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}

# CPU_LIMIT: a cgroup whose processes together get CPU_LIMIT of one core, as a container's CPU
# limit would give. The load generator's core is then no longer the bottleneck: the proxy is, and
# requests/s measures the proxy. A 2 ms period keeps the throttling pauses short. Sets CG_DIR to
# the cgroup's directory. Works with cgroup v2 (cpu.max) and v1 (the cpu controller's CFS quota).
make_cgroup() {
  local name=gatehouse-bench-$1-$$ quota dir
  quota=$(awk -v l="$CPU_LIMIT" 'BEGIN { printf "%d", l * 2000 }')
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    dir=/sys/fs/cgroup/$name
    echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    mkdir -p "$dir" && echo "$quota 2000" >"$dir/cpu.max" || die "cannot set up cgroup $dir (root needed)"
  elif [[ -d /sys/fs/cgroup/cpu ]]; then
    dir=/sys/fs/cgroup/cpu/$name
    mkdir -p "$dir" && echo 2000 >"$dir/cpu.cfs_period_us" && echo "$quota" >"$dir/cpu.cfs_quota_us" ||
      die "cannot set up cgroup $dir (root needed)"
  else
    die "CPU_LIMIT needs a cgroup cpu controller under /sys/fs/cgroup"
  fi
  CGROUPS+=("$dir")
  CG_DIR=$dir
  CGROUP_OF[$1]=$dir
}

# CPU_LIMIT: "periods throttled" of a proxy's cgroup (cpu.stat, cgroup v1 and v2 alike).
throttle_stat() { awk '$1 == "nr_periods" { p = $2 } $1 == "nr_throttled" { t = $2 } END { print p, t }' "$1/cpu.stat"; }

# Times the given processes' threads went to sleep on their own (waiting for work), summed.
idle_waits() {
  local pid
  for pid in "$@"; do cat /proc/"$pid"/task/*/status 2>/dev/null; done | awk '$1 == "voluntary_ctxt_switches:" { s += $2 } END { print s + 0 }'
}

port_free() { [[ -z $(ss -Htln "sport = :$1" 2>/dev/null) ]]; }

pick_ports() {
  local base tries=0
  while ((tries < 50)); do
    if [[ -n $BASE_PORT ]]; then base=$BASE_PORT; else base=$((20000 + RANDOM % 30000)); fi
    local all_free=1 i
    for ((i = 0; i < 28; i++)); do port_free $((base + i)) || all_free=0; done
    if ((all_free)); then
      BACKEND_PORT=$base; GH_PORT=$((base + 1)); NGX_PORT=$((base + 2)); HAP_PORT=$((base + 3))
      GHL_PORT=$((base + 4)); GHL_ADMIN_PORT=$((base + 5))
      GHK_PORT=$((base + 6)); GHJE_PORT=$((base + 7)); GHJR_PORT=$((base + 8))
      GHRL_PORT=$((base + 9)); GHRC_PORT=$((base + 10)); REDIS_PORT=$((base + 11))
      GHR_PORT=$((base + 12)); GHB_PORT=$((base + 13))
      GHC_PORT=$((base + 14)); NGC_PORT=$((base + 15)); VAR_PORT=$((base + 16))
      GHZ_PORT=$((base + 17)); GHBR_PORT=$((base + 18)); NGZ_PORT=$((base + 19))
      # The backend's HTTP/1.1 port for its status page (its main port may speak HTTP/2 only).
      BACKEND_STATUS_PORT=$((base + 20))
      GHT_PORT=$((base + 21)); GHA_PORT=$((base + 22))
      GHTR_PORT=$((base + 23)); GHTR1_PORT=$((base + 24)); OTLP_PORT=$((base + 25))
      GHD_PORT=$((base + 26)); GHD_ADMIN_PORT=$((base + 27))
      return 0
    fi
    [[ -n $BASE_PORT ]] && die "ports $BASE_PORT..$((BASE_PORT + 27)) are not all free"
    tries=$((tries + 1))
  done
  die "could not find 23 free ports"
}

# Wait until GET URL_PATH on PORT returns the backend body; fail if PID dies or time runs out.
wait_ready() {
  local name=$1 port=$2 pid=$3 logf=$4 deadline=$((SECONDS + READY_TIMEOUT)) got
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      sed 's/^/    /' "$logf" >&2
      die "$name exited during startup (log above)"
    fi
    if [[ ${WRK_HEADER[$name]:-} == Accept-Encoding:* ]]; then
      # A compressing proxy: the body comes in the coding asked for and decodes to the backend's.
      local coding=${WRK_HEADER[$name]#Accept-Encoding: }
      got=$(curl -s --max-time 1 --compressed -H "${WRK_HEADER[$name]}" -o "$TMP/$name/decoded" \
        -w '%{http_code} %{size_download} %header{content-encoding}' -k \
        "$(scheme_of "$name")://127.0.0.1:$port$URL_PATH" 2>/dev/null || true)
      if [[ $got == "200 "*" $coding" ]] && cmp -s "$TMP/$name/decoded" "$TMP/www${URL_PATH}"; then
        CODED_BYTES[$name]=$(awk '{ print $2 }' <<<"$got")
        return 0
      fi
      sleep 0.1
      continue
    fi
    local h2=()
    [[ $PROTOCOL == h2c && $name != backend ]] && h2=(--http2-prior-knowledge)
    [[ $UPSTREAM_PROTOCOL == h2c && $name == backend ]] && h2=(--http2-prior-knowledge)
    got=$(curl -s --max-time 1 -o /dev/null -w '%{http_code} %{size_download}' "${h2[@]}" \
      -k ${WRK_HEADER[$name]:+-H "${WRK_HEADER[$name]}"} "$(scheme_of "$name")://127.0.0.1:$port$URL_PATH" 2>/dev/null || true)
    if [[ $got == "200 ${SERVED[$name]:-$SERVED_BYTES}" ]]; then return 0; fi
    sleep 0.1
  done
  sed 's/^/    /' "$logf" >&2
  die "$name did not answer 200 with a ${SERVED[$name]:-$SERVED_BYTES}-byte body on 127.0.0.1:$port within ${READY_TIMEOUT}s (last: '${got:-none}')"
}

# utime+stime, then stime alone (clock ticks), summed over the given PIDs; /proc/PID/stat covers
# all threads.
cpu_ticks() {
  local total=0 sys=0 pid rest f
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || die "process $pid is gone"
    rest=$(</proc/"$pid"/stat)
    rest=${rest##*) }           # drop "pid (comm) "; comm may contain spaces
    read -r -a f <<<"$rest"     # f[0]=state ... f[11]=utime f[12]=stime
    total=$((total + f[11] + f[12]))
    sys=$((sys + f[12]))
  done
  echo "$total $sys"
}

# Connections the backend has accepted so far (nginx stub_status), minus this query's own.
backend_accepts() {
  local n
  n=$(curl -s --max-time 2 "http://127.0.0.1:$BACKEND_STATUS_PORT/_bench_status" | awk 'NR == 3 { print $1 }')
  [[ $n =~ ^[0-9]+$ ]] && echo $((n - 1)) || echo "?"
}

# ---- configs -------------------------------------------------------------------------------
pick_ports
mkdir -p "$TMP"/www "$TMP"/backend "$TMP"/nginx "$TMP"/haproxy "$TMP"/gatehouse "$TMP"/gatehouse-logged \
  "$TMP"/gatehouse-key "$TMP"/gatehouse-jwt-es256 "$TMP"/gatehouse-jwt-rs256 \
  "$TMP"/gatehouse-rl-local "$TMP"/gatehouse-rl-cluster "$TMP"/redis "$TMP"/gatehouse-resilient \
  "$TMP"/gatehouse-baseline "$TMP"/gatehouse-cache "$TMP"/nginx-cache/cache "$TMP"/varnish \
  "$TMP"/gatehouse-gzip "$TMP"/gatehouse-br "$TMP"/nginx-gzip "$TMP"/gatehouse-transcode \
  "$TMP"/gatehouse-aggregate "$TMP"/gatehouse-traced "$TMP"/gatehouse-traced-1pct "$TMP"/otlp \
  "$TMP"/gatehouse-dashboard

# One certificate for every proxy under SCHEME=https (EC P-256, as most sites serve today).
if [[ $SCHEME == https ]]; then
  command -v openssl >/dev/null || die "SCHEME=https needs openssl"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/cert.key" \
    -out "$TMP/cert.pem" -days 2 -subj /CN=bench.test -addext subjectAltName=DNS:bench.test \
    >/dev/null 2>&1 || die "cannot make a certificate"
  cat "$TMP/cert.pem" "$TMP/cert.key" >"$TMP/cert-and-key.pem"  # HAProxy's crt format
fi
if [[ $BODY_KIND == json ]]; then
  # Records like an API's list response, varied enough that they compress about 5:1 (as JSON
  # does), from a fixed seed so every run and every proxy compress the same bytes.
  awk -v n="$BODY_BYTES" 'BEGIN {
    srand(7); split("alpha beta gamma delta omega sigma kappa lambda", w, " ")
    out = "["
    for (i = 1; length(out) < n; i++)
      out = out sprintf("{\"id\":%d,\"name\":\"%s-%s\",\"price\":%.2f,\"stock\":%d,\"tags\":[\"%s\",\"%s\"],\"updated\":\"2026-%02d-%02dT%02d:%02d:00Z\"},",
        i, w[int(rand() * 8) + 1], w[int(rand() * 8) + 1], rand() * 1000, int(rand() * 500),
        w[int(rand() * 8) + 1], w[int(rand() * 8) + 1], int(rand() * 12) + 1, int(rand() * 28) + 1,
        int(rand() * 24), int(rand() * 60))
    printf "%s", substr(out, 1, n) }' >"$TMP/www${URL_PATH}"
elif [[ " $PROXIES " == *" gatehouse-aggregate "* ]]; then
  # The composite's legs answer JSON: the body is one JSON string of BODY_BYTES in all.
  mkdir -p "$(dirname "$TMP/www${URL_PATH}")"
  printf '"%s"' "$(head -c "$((BODY_BYTES - 2))" /dev/zero | tr '\0' 'x')" >"$TMP/www${URL_PATH}"
else
  mkdir -p "$(dirname "$TMP/www${URL_PATH}")"
  head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x' >"$TMP/www${URL_PATH}"
fi
SERVED_BYTES=$BODY_BYTES
declare -A SERVED  # a proxy's answer's size, where it is not the backend's (SERVED_BYTES)
if [[ $GRPC == 1 ]]; then
  # One gRPC message each way (gRPC's length prefix: a flag byte, 4 bytes of length): the
  # backend's answer is the body as a message; h2load sends a message of the same size. The
  # message is a bench.Msg (bench/protos/echo.proto): field 1, a string of BODY_BYTES - 2 'x's.
  ((BODY_BYTES >= 3 && BODY_BYTES <= 129)) || die "GRPC=1 takes BODY_BYTES from 3 to 129"
  TEXT_BYTES=$((BODY_BYTES - 2))
  grpc_message() {
    local n=$BODY_BYTES
    # shellcheck disable=SC2059  # the format is the four length bytes, as octal escapes
    printf "\\0$(printf '\\%03o' $((n >> 24 & 255)) $((n >> 16 & 255)) $((n >> 8 & 255)) $((n & 255)))"
    # shellcheck disable=SC2059  # field 1, length-delimited (0x0a), its length in one byte
    printf "\\012$(printf '\\%03o' "$TEXT_BYTES")"
    head -c "$TEXT_BYTES" /dev/zero | tr '\0' 'x'
  }
  grpc_message >"$TMP/www${URL_PATH}"
  grpc_message >"$TMP/grpc-request"
  SERVED_BYTES=$((BODY_BYTES + 5))
  # gatehouse-transcode: the same call from JSON, {"text": "xx..."} both ways.
  printf '{"text":"%s"}' "$(head -c "$TEXT_BYTES" /dev/zero | tr '\0' 'x')" >"$TMP/json-request"
  SERVED[gatehouse-transcode]=$((TEXT_BYTES + 11))
  protoc -I "$(dirname "${BASH_SOURCE[0]}")/protos" --include_imports \
    --descriptor_set_out="$TMP/echo.pb" echo.proto || die "protoc failed (scripts/install-deps.sh installs it)"
fi
USER_LINE=""
# Client connections each proxy accepts (nginx counts its upstream connections too: doubled there).
PROXY_CONNECTIONS=$((2 * IDLE_CONNECTIONS + 4096))
[[ $(id -u) == 0 ]] && USER_LINE="user root;"

nginx_common_http() {  # $1 = prefix dir
  cat <<EOF
    access_log off;
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
EOF
}

cat >"$TMP/backend/nginx.conf" <<EOF
# Backend: one nginx process serving a small static file over keep-alive.
daemon off;
master_process off;
worker_processes 1;
pid $TMP/backend/nginx.pid;
error_log $TMP/backend/error.log warn;
events { worker_connections 4096; }
http {
$(nginx_common_http "$TMP/backend")
    default_type text/plain;
    etag off;
    open_file_cache max=16;
    server {
        listen 127.0.0.1:$BACKEND_PORT reuseport backlog=4096$([[ $UPSTREAM_PROTOCOL == h2c ]] && echo " http2");
        listen 127.0.0.1:$BACKEND_STATUS_PORT;
        root $TMP/www;
        location / { }
        location = /_bench_status { stub_status; }
$([[ $GRPC == 1 ]] && cat <<'GRPC'
        # A gRPC answer: the file is one message, grpc-status in the trailers. nginx serves no
        # file to a POST (405): the error page, the same file, is the answer. The mirror makes
        # nginx read the whole request first, as a gRPC server does: a static answer sent before
        # the request's end leaves frames for a closed stream, on which nginx's grpc_pass drops
        # the connection.
        location /bench.Echo/ {
            default_type application/grpc;
            add_trailer grpc-status 0;
            error_page 405 =200 $uri;
            mirror /_bench_read_body;
        }
        location = /_bench_read_body { internal; return 204; }
GRPC
)
    }
}
EOF

# Equal work (EQUAL_HEADERS=1): gatehouse always sends X-Forwarded-For/-Proto/-Host, Via and a
# request id upstream and returns Via and the request id to the client; the backend parses and
# wrk reads those bytes too. The peers are configured to do the same, as a user needing those
# headers would; EQUAL_HEADERS=0 runs the peers bare.
nginx_forwarding_headers() {
  [[ $EQUAL_HEADERS == 1 ]] || return 0
  cat <<'EOF'
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header Via "1.1 nginx";
            proxy_set_header X-Request-Id $request_id;
            add_header Via "1.1 nginx";
            add_header X-Request-Id $request_id;
EOF
}
haproxy_forwarding_headers() {
  [[ $EQUAL_HEADERS == 1 ]] || return 0
  cat <<'EOF'
    unique-id-format %[uuid()]
    unique-id-header X-Request-Id
    option forwardfor
    http-request set-header X-Forwarded-Proto %[ssl_fc,iif(https,http)]
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request add-header Via "1.1 haproxy"
    http-response add-header Via "1.1 haproxy"
    http-response set-header X-Request-Id %[unique-id]
EOF
}

cat >"$TMP/nginx/nginx.conf" <<EOF
# nginx as reverse proxy: one worker, upstream keep-alive.
$USER_LINE
daemon off;
$([[ $INSTRUCTIONS == 1 ]] && echo "master_process off;  # callgrind_control cannot reach a forked worker")
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections $((2 * PROXY_CONNECTIONS)); }
http {
$(nginx_common_http "$TMP/nginx")
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive $UPSTREAM_IDLE;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGX_PORT backlog=4096$([[ $SCHEME == https ]] && echo " ssl")$([[ $PROTOCOL == h2c ]] && echo " http2");
$([[ $SCHEME == https ]] && printf '        ssl_certificate %s;\n        ssl_certificate_key %s;\n        ssl_protocols TLSv1.2 TLSv1.3;\n' "$TMP/cert.pem" "$TMP/cert.key")
        location / {
$(if [[ $GRPC == 1 ]]; then
  echo "            grpc_pass grpc://backend;"
  nginx_forwarding_headers | sed 's/proxy_set_header/grpc_set_header/'
else
  printf '            proxy_pass http://backend;\n            proxy_http_version 1.1;\n            proxy_set_header Connection "";\n'
  nginx_forwarding_headers
fi)
        }
    }
}
EOF

cat >"$TMP/haproxy/haproxy.cfg" <<EOF
# HAProxy as reverse proxy: one thread, upstream connection reuse, no logging.
global
    nbthread 1
    maxconn $PROXY_CONNECTIONS
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend fe
    bind 127.0.0.1:$HAP_PORT$([[ $SCHEME == https ]] && echo " ssl crt $TMP/cert-and-key.pem ssl-min-ver TLSv1.2")$([[ $PROTOCOL == h2c ]] && echo " proto h2")
$(haproxy_forwarding_headers)
    default_backend be
backend be
    server s1 127.0.0.1:$BACKEND_PORT$([[ $UPSTREAM_PROTOCOL == h2c ]] && echo " proto h2")
EOF

cat >"$TMP/gatehouse/gatehouse.yaml" <<EOF
# Gatehouse as reverse proxy: one worker, upstream keep-alive pool, no access log.
server:
  workers: 1
  limits: { max_connections: $PROXY_CONNECTIONS }
  listen:
    - address: 127.0.0.1:$GH_PORT
$([[ $SCHEME == https ]] && printf '      tls: { certificates: [ { cert: %s, key: %s } ] }\n' "$TMP/cert.pem" "$TMP/cert.key")
$([[ $PROTOCOL == h2c ]] && printf '      protocols: [h2c]\n')
observability:
  access_log: { path: "off" }
upstreams:
  backend:
    targets: [ { address: 127.0.0.1:$BACKEND_PORT } ]
$([[ $UPSTREAM_PROTOCOL == h2c ]] && printf '    protocol: %s\n' "$([[ $GRPC == 1 ]] && echo grpc || echo http2)")
    max_idle_per_target: $UPSTREAM_IDLE
routes:
  - name: all
    match: { path: /* }
    to: backend
EOF

# The same call from HTTP/JSON clients (GRPC=1): the route transcodes, the backend is the same.
{
  sed -e "s/127.0.0.1:$GH_PORT/127.0.0.1:$GHT_PORT/" "$TMP/gatehouse/gatehouse.yaml"
  printf '    grpc_transcode: { descriptor_set: %s, method: bench.Echo/Call }\n' "$TMP/echo.pb"
} >"$TMP/gatehouse-transcode/gatehouse.yaml"

# One call composed of three legs, each the plain proxy's request (aggregation, docs/aggregation.md):
# the composite's cost beside three requests proxied one by one.
{
  # Three legs per client request in flight: three times the idle upstream connections.
  sed -e "s/127.0.0.1:$GH_PORT/127.0.0.1:$GHA_PORT/" -e '/^routes:/q' \
    -e "s/max_idle_per_target: $UPSTREAM_IDLE/max_idle_per_target: $((3 * UPSTREAM_IDLE))/" \
    "$TMP/gatehouse/gatehouse.yaml"
  printf '  - name: page\n    match: { path: "%s" }\n    aggregate:\n      calls:\n' "$URL_PATH"
  for leg in a b c; do
    printf '        %s: { upstream: backend, path: "%s?leg=%s" }\n' "$leg" "$URL_PATH" "$leg"
  done
} >"$TMP/gatehouse-aggregate/gatehouse.yaml"
SERVED[gatehouse-aggregate]=$((3 * BODY_BYTES + 16))

# The plain proxy with tracing on (docs/observability.md), its spans exported to a collector that
# takes them and answers at once (bench/otlp-sink.mjs): every request sampled, and 1 in 100.
for traced in gatehouse-traced:1.0:$GHTR_PORT gatehouse-traced-1pct:0.01:$GHTR1_PORT; do
  IFS=: read -r name ratio port <<<"$traced"
  sed -e "s/127.0.0.1:$GH_PORT/127.0.0.1:$port/" \
    -e "s|^  access_log: { path: \"off\" }|&\n  tracing: { otlp_endpoint: \"http://127.0.0.1:$OTLP_PORT/v1/traces\", sample_ratio: $ratio }|" \
    "$TMP/gatehouse/gatehouse.yaml" >"$TMP/$name/gatehouse.yaml"
done

# The plain proxy with its admin API polled as an open dashboard polls it (bench/dashboard-poll.mjs:
# /status and /metrics once a second).
sed -e "s/127.0.0.1:$GH_PORT/127.0.0.1:$GHD_PORT/" \
  -e "s|^observability:|admin: { listen: 127.0.0.1:$GHD_ADMIN_PORT }\nobservability:|" \
  "$TMP/gatehouse/gatehouse.yaml" >"$TMP/gatehouse-dashboard/gatehouse.yaml"

# The plain config, for another gatehouse binary (BASELINE_BIN): two builds side by side in one run.
sed -e "s/127.0.0.1:$GH_PORT/127.0.0.1:$GHB_PORT/" "$TMP/gatehouse/gatehouse.yaml" \
  >"$TMP/gatehouse-baseline/gatehouse.yaml"

# The same with the resilience settings on (a circuit breaker, a retry policy, active health
# checks, a bulkhead and its queue that are never reached, a route timeout) and no failures: what
# they cost when all is well.
sed -e "s/127.0.0.1:$GH_PORT/127.0.0.1:$GHR_PORT/" \
  -e "s|^    max_idle_per_target: $UPSTREAM_IDLE|    max_idle_per_target: $UPSTREAM_IDLE\n    max_concurrent_requests: 100000\n    max_pending: 1000\n    circuit_breaker: { failure_rate: 50%, min_requests: 20, window: 10s, open_for: 30s }\n    retry: { attempts: 2, on: [connect_failure, reset, 502, 503, 504] }\n    health_check: { path: /body.txt, interval: 1s }|" \
  -e "s|^    to: backend|    to: backend\n    timeout: 30s|" \
  "$TMP/gatehouse/gatehouse.yaml" >"$TMP/gatehouse-resilient/gatehouse.yaml"

# The same with the access log written to a file and the admin API on (its /metrics is scraped
# once per round): the cost of observability, side by side with the plain proxy.
sed -e "s/127.0.0.1:$GH_PORT/127.0.0.1:$GHL_PORT/" \
  -e "s|access_log: { path: \"off\" }|access_log: { path: $TMP/gatehouse-logged/access.log }|" \
  -e "s|^observability:|admin: { listen: 127.0.0.1:$GHL_ADMIN_PORT }\nobservability:|" \
  "$TMP/gatehouse/gatehouse.yaml" >"$TMP/gatehouse-logged/gatehouse.yaml"

# Caches serving the same hit (PROXIES="gatehouse-cache nginx-cache varnish"): gatehouse's cache
# plugin, nginx's proxy_cache and Varnish, each keeping the backend's 200 for an hour (the backend
# sends no freshness of its own) and answering every request but the first from it. Each adds its
# own hit header (Cache-Status, X-Cache-Status, X-Varnish) and a request id.
{
  # An entry lives in one of 16 shards: at most a sixteenth of the store, and 8 MiB.
  printf 'cache: { max_size: %sMiB, max_object_size: %sKiB }\n' "$CACHE_MIB" \
    "$((CACHE_MIB * 64 < 8192 ? CACHE_MIB * 64 : 8192))"
  sed -e "s/127.0.0.1:$GH_PORT/127.0.0.1:$GHC_PORT/" "$TMP/gatehouse/gatehouse.yaml"
  printf '    plugins: { cache: { ttl: 1h } }\n'
} >"$TMP/gatehouse-cache/gatehouse.yaml"
sed -e "s|$TMP/nginx/|$TMP/nginx-cache/|g" -e "s|127.0.0.1:$NGX_PORT|127.0.0.1:$NGC_PORT|" \
  -e "s|^http {|http {\n    proxy_cache_path $TMP/nginx-cache/cache levels=1:2 keys_zone=hits:10m max_size=${CACHE_MIB}m inactive=1h use_temp_path=off;|" \
  -e "s|            proxy_pass http://backend;|            proxy_pass http://backend;\n            proxy_cache hits;\n            proxy_cache_valid 200 1h;\n            add_header X-Cache-Status \$upstream_cache_status;|" \
  "$TMP/nginx/nginx.conf" >"$TMP/nginx-cache/nginx.conf"
# Compression of the same response, coded per request (PROXIES="gatehouse-gzip gatehouse-br
# nginx-gzip", BODY_KIND=json): gatehouse's compress plugin with gzip at level 6 or brotli at
# level 4 (its defaults), nginx's gzip module at level 6, all on text/plain above 256 bytes with
# Vary: Accept-Encoding. wrk asks for the one coding each offers.
for coding in gzip br; do
  port=$GHZ_PORT
  [[ $coding == br ]] && port=$GHBR_PORT
  {
    sed -e "s/127.0.0.1:$GH_PORT/127.0.0.1:$port/" "$TMP/gatehouse/gatehouse.yaml"
    printf '    plugins: { compress: { types: [text/plain], encodings: [%s], min_size: 256 } }\n' "$coding"
  } >"$TMP/gatehouse-$coding/gatehouse.yaml"
  WRK_HEADER[gatehouse-$coding]="Accept-Encoding: $coding"
done
WRK_HEADER[nginx-gzip]="Accept-Encoding: gzip"
sed -e "s|$TMP/nginx/|$TMP/nginx-gzip/|g" -e "s|127.0.0.1:$NGX_PORT|127.0.0.1:$NGZ_PORT|" \
  -e "s|^http {|http {\n    gzip on;\n    gzip_comp_level 6;\n    gzip_types text/plain;\n    gzip_min_length 256;\n    gzip_proxied any;\n    gzip_vary on;|" \
  "$TMP/nginx/nginx.conf" >"$TMP/nginx-gzip/nginx.conf"
cat >"$TMP/varnish/default.vcl" <<VCL
vcl 4.1;
backend default { .host = "127.0.0.1"; .port = "$BACKEND_PORT"; }
sub vcl_backend_response { set beresp.ttl = 1h; }
sub vcl_deliver { set resp.http.X-Request-Id = req.xid; }
VCL

# Gatehouse with a plugin on the route: the cost of checking a credential or a rate limit per
# request. gatehouse-key: an API key (key_auth); gatehouse-jwt-es256 / -rs256: a JWT (jwt_auth,
# keys from a JWKS file) signed with ES256 / RS256, made by bench/jwt-token.mjs with Node's
# crypto; gatehouse-rl-local / -cluster: a rate limit by client address that never refuses,
# decided in the process or by a Lua script in a local redis-server (one per run, on LOAD_CPU).
if [[ " $PROXIES " == *" gatehouse-key "* || " $PROXIES " == *" gatehouse-jwt-"* ||
  " $PROXIES " == *" gatehouse-rl-"* ]]; then
  BENCH_KEY=bench-api-key-0123456789abcdef
  key_digest=$(printf %s "$BENCH_KEY" | sha256sum | awk '{ print $1 }')
  # Top-level sections first, then the base config, whose last line ends the one route: the
  # route's plugins follow it.
  plugin_config() {  # $1 = proxy name, $2 = port
    case $1 in
      gatehouse-key)
        printf 'consumers:\n  - { name: bench, api_keys: [ { sha256: %s } ] }\n' "$key_digest" ;;
      gatehouse-jwt-*)
        printf 'jwt_providers:\n  bench:\n    issuer: https://bench.test/\n    audiences: [bench]\n'
        printf '    algorithms: [ES256, RS256]\n    jwks_file: %s\n' "$TMP/jwks.json"
        printf '    consumer_claim: sub\n    forward_claims: { sub: x-user-id }\n' ;;
      gatehouse-rl-cluster)
        printf 'redis: { url: "redis://127.0.0.1:%s/0", timeout: 50ms }\n' "$REDIS_PORT" ;;
    esac
    sed -e "s/127.0.0.1:$GH_PORT/127.0.0.1:$2/" "$TMP/gatehouse/gatehouse.yaml"
    case $1 in
      gatehouse-key) printf '    plugins: { key_auth: { header: x-api-key } }\n' ;;
      gatehouse-jwt-*) printf '    plugins: { jwt_auth: { provider: bench, require_scopes: [read] } }\n' ;;
      gatehouse-rl-local) printf '    plugins: { rate_limit: { limits: ["1000000000/s"], key: ip } }\n' ;;
      gatehouse-rl-cluster)
        printf '    plugins: { rate_limit: { limits: ["1000000000/s"], key: ip, scope: cluster } }\n' ;;
    esac
  }
  if [[ " $PROXIES " == *" gatehouse-jwt-"* ]]; then
    command -v node >/dev/null || die "the JWT variants need node (scripts/install-deps.sh)"
    tokens=$(node "$(dirname "$0")/jwt-token.mjs" "$TMP/jwks.json") || die "cannot make JWTs"
    WRK_HEADER[gatehouse-jwt-es256]="Authorization: Bearer $(echo "$tokens" | awk '$1 == "ES256" { print $2 }')"
    WRK_HEADER[gatehouse-jwt-rs256]="Authorization: Bearer $(echo "$tokens" | awk '$1 == "RS256" { print $2 }')"
  fi
  WRK_HEADER[gatehouse-key]="x-api-key: $BENCH_KEY"
  plugin_config gatehouse-key "$GHK_PORT" >"$TMP/gatehouse-key/gatehouse.yaml"
  plugin_config gatehouse-jwt-es256 "$GHJE_PORT" >"$TMP/gatehouse-jwt-es256/gatehouse.yaml"
  plugin_config gatehouse-jwt-rs256 "$GHJR_PORT" >"$TMP/gatehouse-jwt-rs256/gatehouse.yaml"
  plugin_config gatehouse-rl-local "$GHRL_PORT" >"$TMP/gatehouse-rl-local/gatehouse.yaml"
  plugin_config gatehouse-rl-cluster "$GHRC_PORT" >"$TMP/gatehouse-rl-cluster/gatehouse.yaml"
fi

# Runs the load generator "$@" (pinned with PIN=1) under `timeout LIMIT`, output into OUT. In the
# background and waited for, so that a signal to this script interrupts the round at once (the
# trap then kills it); WHAT names it when it fails or times out.
run_load() {
  local limit=$1 out=$2 what=$3
  shift 3
  local cmd=("$@") rc=0
  [[ $PIN == 1 ]] && cmd=(taskset -c "$LOAD_CPU" "${cmd[@]}")
  timeout -k 5 "$limit" "${cmd[@]}" >"$out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || rc=$?
  WRK_PID=""
  ((rc == 0)) || { cat "$out" >&2; die "$what failed or timed out (exit $rc)"; }
}

# h2load in wrk's place (PROTOCOL=h2c): CONNECTIONS connections of STREAMS concurrent streams each.
# Its summary is written to $4 as the lines of wrk's that the rounds read (requests, requests/s,
# the 99th percentile from h2load's per-request log).
run_h2load() {
  local port=$1 dur=$2 limit=$3 out=$4 name=$5 cmd
  cmd=(h2load -c "$CONNECTIONS" -m "$STREAMS" -t "$THREADS" -D "$(to_seconds "$dur")" --log-file="$out.log")
  [[ -n ${WRK_HEADER[$name]:-} ]] && cmd+=(-H "${WRK_HEADER[$name]}")
  if [[ $name == gatehouse-transcode ]]; then
    cmd+=(-d "$TMP/json-request" -H "content-type: application/json")
  elif [[ $GRPC == 1 ]]; then
    cmd+=(-d "$TMP/grpc-request" -H "content-type: application/grpc" -H "te: trailers")
  fi
  cmd+=("http://127.0.0.1:$port$URL_PATH")
  run_load "$limit" "$out.h2load" "h2load (port $port)" "${cmd[@]}"
  local ok failed secs p99
  ok=$(awk '/^requests:/ { print $8; exit }' "$out.h2load")
  failed=$(awk '/^requests:/ { print $10; exit }' "$out.h2load")
  secs=$(awk '/^finished in/ { v = $3; sub(/s,$/, "", v); print v; exit }' "$out.h2load")
  [[ -n $ok && -n $secs ]] || { cat "$out.h2load" >&2; die "could not parse h2load output"; }
  # The log: start time, status, microseconds per request.
  p99=$(awk '{ print $3 }' "$out.log" | sort -n | awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.3fms", v[i] / 1000 }')
  {
    echo "  $ok requests in ${secs}s, 0MB read"
    echo "Requests/sec: $(awk -v n="$ok" -v s="$secs" 'BEGIN { printf "%.2f", n / s }')"
    echo "     99%   $p99"
    non2xx=$(awk '/^status codes:/ { print $5 + $7 + $9; exit }' "$out.h2load")
    ((non2xx + failed > 0)) && echo "  Non-2xx or 3xx responses: $((non2xx + failed))"
  } >"$out"
  rm -f "$out.log"
}

# Runs a small, fixed wrk load (10 connections; h2load with PROTOCOL=h2c) against proxy $5 on port
# $1 for $2; output into $4.
run_wrk_plain() {
  [[ $PROTOCOL == h2c ]] && { run_h2load "$@"; return; }  # its summary has wrk's "requests in" line
  local hdr=()
  [[ -n ${WRK_HEADER[$5]:-} ]] && hdr=(-H "${WRK_HEADER[$5]}")
  [[ $UNIQUE_URLS == 1 ]] && hdr+=(-s "$(dirname "${BASH_SOURCE[0]}")/unique-urls.lua")
  timeout -k 5 "$3" "$WRK_BIN" -t 1 -c 10 -d "$2" "${hdr[@]}" "$(scheme_of "$5")://127.0.0.1:$1$URL_PATH" >"$4" 2>&1 ||
    { cat "$4" >&2; die "wrk failed (port $1)"; }
}

# ---- start servers -------------------------------------------------------------------------
"$NGINX_BIN" -t -q -p "$TMP/backend" -c "$TMP/backend/nginx.conf" 2>"$TMP/backend/t.log" ||
  { cat "$TMP/backend/t.log" >&2; die "backend nginx config invalid"; }
start "$LOAD_CPU" "$TMP/backend/stderr.log" "$NGINX_BIN" -p "$TMP/backend" -c "$TMP/backend/nginx.conf"
BACKEND_PID=$STARTED_PID
wait_ready backend "$BACKEND_PORT" "$BACKEND_PID" "$TMP/backend/stderr.log"
if [[ " $PROXIES " == *" gatehouse-rl-cluster "* ]]; then
  command -v redis-server >/dev/null || die "gatehouse-rl-cluster needs redis-server (scripts/install-deps.sh)"
  start "${REDIS_CPU:-$LOAD_CPU}" "$TMP/redis/stderr.log" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
    --save '' --appendonly no --dir "$TMP/redis"
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break; sleep 0.1; done
fi

if [[ " $PROXIES " == *" gatehouse-traced"* ]]; then
  start "$LOAD_CPU" "$TMP/otlp/stderr.log" node "$(dirname "$0")/otlp-sink.mjs" "$OTLP_PORT"
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$OTLP_PORT") 2>/dev/null && break; sleep 0.1; done
fi

declare -A PORT PROC_PIDS
for p in $PROXIES; do
  case $p in
    gatehouse*)
      bin=$GATEHOUSE_BIN
      if [[ $p == gatehouse-baseline ]]; then
        [[ -x $BASELINE_BIN ]] || die "gatehouse-baseline needs BASELINE_BIN (another gatehouse build)"
        bin=$BASELINE_BIN
      fi
      "$bin" validate -c "$TMP/$p/gatehouse.yaml" >"$TMP/$p/validate.log" 2>&1 ||
        { cat "$TMP/$p/validate.log" >&2; die "$p config invalid"; }
      start "$PROXY_CPU" "$TMP/$p/stderr.log" "$bin" run -c "$TMP/$p/gatehouse.yaml"
      case $p in
        gatehouse) PORT[$p]=$GH_PORT ;;
        gatehouse-logged) PORT[$p]=$GHL_PORT ;;
        gatehouse-key) PORT[$p]=$GHK_PORT ;;
        gatehouse-jwt-es256) PORT[$p]=$GHJE_PORT ;;
        gatehouse-jwt-rs256) PORT[$p]=$GHJR_PORT ;;
        gatehouse-rl-local) PORT[$p]=$GHRL_PORT ;;
        gatehouse-rl-cluster) PORT[$p]=$GHRC_PORT ;;
        gatehouse-resilient) PORT[$p]=$GHR_PORT ;;
        gatehouse-baseline) PORT[$p]=$GHB_PORT ;;
        gatehouse-cache) PORT[$p]=$GHC_PORT ;;
        gatehouse-gzip) PORT[$p]=$GHZ_PORT ;;
        gatehouse-br) PORT[$p]=$GHBR_PORT ;;
        gatehouse-transcode) PORT[$p]=$GHT_PORT ;;
        gatehouse-aggregate) PORT[$p]=$GHA_PORT ;;
        gatehouse-traced) PORT[$p]=$GHTR_PORT ;;
        gatehouse-traced-1pct) PORT[$p]=$GHTR1_PORT ;;
        gatehouse-dashboard) PORT[$p]=$GHD_PORT ;;
      esac
      wait_ready "$p" "${PORT[$p]}" "$STARTED_PID" "$TMP/$p/stderr.log"
      PROC_PIDS[$p]=$STARTED_PID
      if [[ $p == gatehouse-dashboard ]]; then
        gh_pid=$STARTED_PID
        start "$LOAD_CPU" "$TMP/$p/poll.log" node "$(dirname "$0")/dashboard-poll.mjs" "$GHD_ADMIN_PORT"
        STARTED_PID=$gh_pid
      fi
      ;;
    nginx | nginx-cache | nginx-gzip)
      "$NGINX_BIN" -t -q -p "$TMP/$p" -c "$TMP/$p/nginx.conf" 2>"$TMP/$p/t.log" ||
        { cat "$TMP/$p/t.log" >&2; die "proxy $p config invalid"; }
      start "$PROXY_CPU" "$TMP/$p/stderr.log" "$NGINX_BIN" -p "$TMP/$p" -c "$TMP/$p/nginx.conf"
      PORT[$p]=$NGX_PORT
      [[ $p == nginx-cache ]] && PORT[$p]=$NGC_PORT
      [[ $p == nginx-gzip ]] && PORT[$p]=$NGZ_PORT
      wait_ready "$p" "${PORT[$p]}" "$STARTED_PID" "$TMP/$p/stderr.log"
      # CPU is spent in the worker: count master + its workers (with proxy_cache, not the cache
      # loader, which exits a minute after start, nor the cache manager, which only sweeps).
      mapfile -t workers < <(pgrep -P "$STARTED_PID" -f "worker process")
      ((${#workers[@]})) || [[ $INSTRUCTIONS == 1 ]] || die "nginx proxy has no worker process"
      PIDS+=("${workers[@]}")
      PROC_PIDS[$p]="$STARTED_PID ${workers[*]}"
      ;;
    varnish)
      command -v varnishd >/dev/null || die "varnish not found (scripts/install-deps.sh installs it)"
      # One thread pool, memory storage, pinned like the others.
      start "$PROXY_CPU" "$TMP/varnish/stderr.log" varnishd -F -n "$TMP/varnish/work" \
        -a "127.0.0.1:$VAR_PORT" -f "$TMP/varnish/default.vcl" -s malloc,256m \
        -p thread_pools=1 -p thread_pool_min=20
      PORT[$p]=$VAR_PORT
      wait_ready varnish "$VAR_PORT" "$STARTED_PID" "$TMP/varnish/stderr.log"
      # The cache process (varnishd's child, cache-main) does the work: count both. Not any
      # child: the VCL compiler runs as one for a moment at start.
      mapfile -t workers < <(pgrep -P "$STARTED_PID" -x cache-main)
      ((${#workers[@]})) || die "varnish has no cache-main process"
      PIDS+=("${workers[@]}")
      PROC_PIDS[$p]="$STARTED_PID ${workers[*]}"
      ;;
    haproxy)
      "$HAPROXY_BIN" -c -q -f "$TMP/haproxy/haproxy.cfg" >"$TMP/haproxy/check.log" 2>&1 ||
        { cat "$TMP/haproxy/check.log" >&2; die "haproxy config invalid"; }
      start "$PROXY_CPU" "$TMP/haproxy/stderr.log" "$HAPROXY_BIN" -db -f "$TMP/haproxy/haproxy.cfg"
      PORT[$p]=$HAP_PORT
      wait_ready haproxy "$HAP_PORT" "$STARTED_PID" "$TMP/haproxy/stderr.log"
      PROC_PIDS[$p]=$STARTED_PID
      ;;
  esac
done

# ---- INSTRUCTIONS mode: deterministic user-space work per request ---------------------------
# Wall-clock figures on a shared 2-core machine vary by +-10% from run to run. Instruction counts
# do not: callgrind counts every user-space instruction the proxy executes (the kernel's share,
# the same TCP work for all three, is not counted). Warm up, zero the counters, load, dump.
if [[ $INSTRUCTIONS == 1 ]]; then
  command -v callgrind_control >/dev/null || die "valgrind (callgrind_control) not found"
  load="wrk -c10"
  [[ $PROTOCOL == h2c ]] && load="h2load -c$CONNECTIONS -m$STREAMS"
  echo "instructions per request (callgrind, user space only), $load for ${DURATION} per proxy"
  printf '  %-10s %14s %12s\n' proxy "instr/req" requests
  declare -A IPR
  for p in $PROXIES; do
    # shellcheck disable=SC2086
    run_wrk_plain "${PORT[$p]}" 2s 60 "$TMP/iwarm-$p.txt" "$p"
    for pid in ${PROC_PIDS[$p]}; do callgrind_control -z "$pid" >/dev/null 2>&1 || true; done
    run_wrk_plain "${PORT[$p]}" "$DURATION" $((DUR_S + 60)) "$TMP/iwrk-$p.txt" "$p"
    for pid in ${PROC_PIDS[$p]}; do callgrind_control -d "$pid" >/dev/null 2>&1 || true; done
    sleep 1
    reqs=$(awk '/requests in/ { print $1; exit }' "$TMP/iwrk-$p.txt")
    # The dump after zeroing is the file with the highest part number, per process.
    total=0
    for pid in ${PROC_PIDS[$p]}; do
      f=$(ls "$TMP/$p/callgrind.$pid".* 2>/dev/null | sort -t. -k3 -n | tail -1 || true)
      [[ -n $f ]] && total=$((total + $(awk '/^totals:/ { print $2; exit }' "$f")))
    done
    IPR[$p]=$(awk -v t="$total" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.0f", t / n; else print "nan" }')
    printf '  %-10s %14s %12s\n' "$p" "${IPR[$p]}" "$reqs"
  done
  if [[ " $PROXIES " == *" gatehouse "* ]]; then
    for peer in nginx haproxy; do
      [[ " $PROXIES " == *" $peer "* ]] || continue
      printf '  gatehouse/%-8s %s (<1 better)\n' "$peer" \
        "$(awk -v a="${IPR[gatehouse]}" -v b="${IPR[$peer]}" 'BEGIN { printf "%.3f", a / b }')"
    done
  fi
  exit 0
fi

# ---- IDLE_CONNECTIONS mode: memory per idle keep-alive connection ----------------------------
# Each proxy, warmed up, then holding N client connections that each made one request and went
# quiet (bench/idle-hold.mjs), then N more: RSS growth per connection for the first N (what a
# burst of requests left behind counts too) and for the second N (the marginal cost of one more
# idle connection). Kernel socket memory is not in RSS and is the same for all three.
rss_kib() { local t=0 pid; for pid in "$@"; do t=$((t + $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"))); done; echo "$t"; }
# Holds $2 connections to port $1 until its descriptor HOLD_FD is closed; output in $3.
hold() {
  exec {HOLD_FD}> >(exec node "$(dirname "$0")/idle-hold.mjs" "$1" "$2" "$URL_PATH" >"$3" 2>&1)
  HOLD_PID=$!
  PIDS+=("$HOLD_PID")
  for _ in $(seq 3000); do
    [[ -s $3 ]] && break
    sleep 0.1
  done
  [[ $(cat "$3") == "held $2" ]] || die "idle-hold on port $1: $(cat "$3")"
}
if ((IDLE_CONNECTIONS > 0)); then
  command -v node >/dev/null || die "IDLE_CONNECTIONS needs node (scripts/install-deps.sh)"
  N=$IDLE_CONNECTIONS
  echo "memory per idle keep-alive connection: $N then $N more connections per proxy (limits: $PROXY_CONNECTIONS)," \
    "one GET $URL_PATH each, then quiet"
  printf '  %-12s %10s %10s %12s %10s %12s\n' proxy "warm KiB" "+N KiB" "B/conn (N)" "+2N KiB" "B/conn (2nd N)"
  for p in $PROXIES; do
    run_wrk_plain "${PORT[$p]}" 1s 30 "$TMP/idle-warm-$p.txt" "$p"
    # shellcheck disable=SC2086
    r0=$(rss_kib ${PROC_PIDS[$p]})
    hold "${PORT[$p]}" "$N" "$TMP/idle-1-$p.txt"
    fd1=$HOLD_FD pid1=$HOLD_PID
    sleep 1  # nothing is in flight: let the proxy settle
    # shellcheck disable=SC2086
    r1=$(rss_kib ${PROC_PIDS[$p]})
    hold "${PORT[$p]}" "$N" "$TMP/idle-2-$p.txt"
    fd2=$HOLD_FD pid2=$HOLD_PID
    sleep 1
    # shellcheck disable=SC2086
    r2=$(rss_kib ${PROC_PIDS[$p]})
    printf '  %-12s %10s %10s %12s %10s %12s\n' "$p" "$r0" "$r1" $(((r1 - r0) * 1024 / N)) "$r2" $(((r2 - r1) * 1024 / N))
    exec {fd1}>&- {fd2}>&-  # the holders close their connections and exit
    wait "$pid1" "$pid2" || die "$p closed some of the idle connections"
  done
  exit 0
fi

# ---- load ----------------------------------------------------------------------------------
# Runs wrk against proxy $5 on port $1 for $2 (wrk duration) with timeout $3 seconds; output into $4.
run_wrk() {
  local port=$1 dur=$2 limit=$3 out=$4 cmd
  local name=$5
  [[ $PROTOCOL == h2c ]] && { run_h2load "$@"; return; }
  cmd=("$WRK_BIN" -t "$THREADS" -c "$CONNECTIONS" -d "$dur" --latency)
  [[ -n ${WRK_HEADER[$name]:-} ]] && cmd+=(-H "${WRK_HEADER[$name]}")
  [[ $NEW_CONNECTIONS == 1 ]] && cmd+=(-H "Connection: close")
  [[ $UNIQUE_URLS == 1 ]] && cmd+=(-s "$(dirname "${BASH_SOURCE[0]}")/unique-urls.lua")
  cmd+=("$(scheme_of "$name")://127.0.0.1:$port$URL_PATH")
  run_load "$limit" "$out" "wrk (port $port)" "${cmd[@]}"  # wrk itself is bounded by -d
}

# Latency token (e.g. 812.00us, 1.23ms, 2.01s) -> milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else { printf "nan" } }'
}

[[ $PROTOCOL == h2c ]] && echo "HTTP/2 (h2c, prior knowledge): h2load -c$CONNECTIONS -m$STREAMS -t$THREADS in wrk's place"
[[ $GRPC == 1 ]] && echo "gRPC: unary calls, a ${BODY_BYTES}-byte message each way (POST $URL_PATH, grpc-status 0 in trailers; nginx: grpc_pass)"
[[ " $PROXIES " == *" gatehouse-transcode "* ]] &&
  echo "gatehouse-transcode: the same calls as POSTs of JSON, $((TEXT_BYTES + 11)) bytes each way ({\"text\": ...}), transcoded"
echo "gatehouse bench: $ROUNDS round(s) x ${DURATION} per proxy, wrk -t$THREADS -c$CONNECTIONS --latency," \
  "GET $SCHEME $URL_PATH (${BODY_BYTES}-byte body), new connection per request=$NEW_CONNECTIONS," \
  "pin=$PIN, cpu_limit=${CPU_LIMIT:-none}, equal_headers=$EQUAL_HEADERS, CLK_TCK=$CLK_TCK"
echo "proxies: $PROXIES (one worker/thread each); backend: nginx, 1 process, 127.0.0.1:$BACKEND_PORT"
echo "versions: $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //'), $("$HAPROXY_BIN" -v 2>/dev/null | head -1 | awk '{ print "haproxy/" $3 }'), $("$WRK_BIN" -v 2>&1 | head -1 | awk '{ print "wrk/" $2 }')"
if [[ $PROXIES == *gatehouse* ]]; then
  echo "gatehouse: $GATEHOUSE_BIN ($("$GATEHOUSE_BIN" version 2>&1 | head -1))"
  if [[ " $PROXIES " == *" gatehouse-baseline "* ]]; then echo "gatehouse-baseline: $BASELINE_BIN"; fi
fi
echo

if ((WARMUP_S > 0)); then
  for p in $PROXIES; do
    run_wrk "${PORT[$p]}" "$WARMUP" $((WARMUP_S + 30)) "$TMP/warmup-$p.txt" "$p"
  done
fi

median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) { print "nan"; exit }
  if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.3f", a / b; else print "n/a" }'; }
[[ -n $CSV ]] && echo "round,proxy,requests,seconds,rps,p99_ms,cpu_us_per_req,new_upstream_conns,errors" >"$CSV"
declare -A RPS P99 CPU ROUND_RPS ROUND_P99 ROUND_CPU RATIOS
printf '%-6s %-20s %12s %10s %12s %10s %10s  %s\n' round proxy "req/s" "p99 ms" "cpu us/req" requests "up conns" notes
read -r -a ORDER <<<"$PROXIES"
for ((r = 1; r <= ROUNDS; r++)); do
  # Rotate the order each round, so no proxy always runs first (or right after the same one).
  k=$(((r - 1) % ${#ORDER[@]}))
  for p in "${ORDER[@]:k}" "${ORDER[@]:0:k}"; do
    out="$TMP/wrk-$r-$p.txt"
    a0=$(backend_accepts)
    # shellcheck disable=SC2086
    read -r t0 s0 < <(cpu_ticks ${PROC_PIDS[$p]})
    # shellcheck disable=SC2086
    idle0=$(idle_waits ${PROC_PIDS[$p]})
    if [[ -n $CPU_LIMIT ]]; then
      read -r periods0 throttled0 < <(throttle_stat "${CGROUP_OF[$p]}")
    fi
    run_wrk "${PORT[$p]}" "$DURATION" $((DUR_S + 30)) "$out" "$p"
    # shellcheck disable=SC2086
    [[ $p == gatehouse-logged ]] && curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$GHL_ADMIN_PORT/metrics"
    # shellcheck disable=SC2086
    read -r t1 s1 < <(cpu_ticks ${PROC_PIDS[$p]})
    # shellcheck disable=SC2086
    idle1=$(idle_waits ${PROC_PIDS[$p]})
    a1=$(backend_accepts)
    newconns="?"
    [[ $a0 != "?" && $a1 != "?" ]] && newconns=$((a1 - a0 - 1))
    reqs=$(awk '/requests in/ { print $1; exit }' "$out")
    secs=$(awk '/requests in/ { v = $4; sub(/,$/, "", v); print v; exit }' "$out")
    rps=$(awk '/^Requests\/sec:/ { print $2; exit }' "$out")
    p99raw=$(awk '$1 == "99%" { print $2; exit }' "$out")
    [[ -n $reqs && -n $rps && -n $p99raw ]] || { cat "$out" >&2; die "could not parse wrk output"; }
    p99=$(to_ms "$p99raw")
    cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" -v n="$reqs" \
      'BEGIN { if (n > 0) printf "%.2f", (b - a) * 1e6 / hz / n; else print "nan" }')
    # The kernel's share of that CPU, and how often the proxy ran out of work and slept (per 1000
    # requests: fewer sleeps, bigger batches of work per wakeup).
    notes=$(awk -v t=$((t1 - t0)) -v s=$((s1 - s0)) -v i=$((idle1 - idle0)) -v n="$reqs" \
      'BEGIN { printf "sys %.0f%%, idle %.1f/kreq ", t ? 100 * s / t : 0, n ? 1000 * i / n : 0 }')
    if [[ -n $CPU_LIMIT ]]; then
      # Under the quota: how often the proxy used all of it.
      read -r periods1 throttled1 < <(throttle_stat "${CGROUP_OF[$p]}")
      notes+=$(awk -v p=$((periods1 - periods0)) -v t=$((throttled1 - throttled0)) \
        'BEGIN { printf "throttled %.0f%% of periods ", p ? 100 * t / p : 0 }')
    fi
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF; exit }' "$out")
    sockerr=$(awk '/Socket errors:/ { sub(/^ *Socket errors: */, ""); print; exit }' "$out")
    errors=0
    [[ -n $non2xx ]] && { notes+="non-2xx=$non2xx "; errors=$((errors + non2xx)); }
    if [[ -n $sockerr ]]; then
      notes+="socket errors: $sockerr"
      errors=$((errors + $(echo "$sockerr" | tr -cs '0-9' ' ' | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; print s }')))
    fi
    ((errors > 0)) && notes="WARNING $notes"
    RPS[$p]+="$rps "; P99[$p]+="$p99 "; CPU[$p]+="$cpu "
    ROUND_RPS[$p]=$rps; ROUND_P99[$p]=$p99; ROUND_CPU[$p]=$cpu
    printf '%-6s %-20s %12.1f %10.3f %12s %10s %10s  %s\n' "$r" "$p" "$rps" "$p99" "$cpu" "$reqs" "$newconns" "$notes"
    [[ -n $CSV ]] && echo "$r,$p,$reqs,$secs,$rps,$p99,$cpu,$newconns,$errors" >>"$CSV"
    # Every proxy must still be alive for the next round.
    for pid in ${PROC_PIDS[$p]}; do kill -0 "$pid" 2>/dev/null || die "$p (pid $pid) died during round $r"; done
  done
  # Ratios within the round: the host's load drifts, and it drifts alike for neighbouring runs.
  if [[ " $PROXIES " == *" $REF "* ]]; then
    for peer in $PEERS; do
      [[ " $PROXIES " == *" $peer "* && $peer != "$REF" ]] || continue
      RATIOS[$peer-rps]+="$(ratio "${ROUND_RPS[$REF]}" "${ROUND_RPS[$peer]}") "
      RATIOS[$peer-p99]+="$(ratio "${ROUND_P99[$REF]}" "${ROUND_P99[$peer]}") "
      RATIOS[$peer-cpu]+="$(ratio "${ROUND_CPU[$REF]}" "${ROUND_CPU[$peer]}") "
    done
  fi
done

# ---- summary -------------------------------------------------------------------------------

declare -A MRPS MP99 MCPU
echo
echo "medians over $ROUNDS round(s):"
printf '  %-20s %12s %10s %12s\n' proxy "req/s" "p99 ms" "cpu us/req"
for p in $PROXIES; do
  MRPS[$p]=$(echo "${RPS[$p]}" | median)
  MP99[$p]=$(echo "${P99[$p]}" | median)
  MCPU[$p]=$(echo "${CPU[$p]}" | median)
  printf '  %-20s %12.1f %10.3f %12.2f\n' "$p" "${MRPS[$p]}" "${MP99[$p]}" "${MCPU[$p]}"
done

if ((${#CODED_BYTES[@]})); then
  echo
  echo "compression: body bytes coded per second of the proxy's CPU (MB/s per core), coded size"
  for p in $PROXIES; do
    [[ -n ${CODED_BYTES[$p]:-} ]] || continue
    printf '  %-20s %10s MB/s %10s -> %s bytes\n' "$p" \
      "$(awk -v b="$BODY_BYTES" -v c="${MCPU[$p]}" 'BEGIN { printf "%.1f", b / c }')" "$BODY_BYTES" "${CODED_BYTES[$p]}"
  done
fi

if [[ " $PROXIES " == *" $REF "* ]]; then
  header=0
  for peer in $PEERS; do
    [[ " $PROXIES " == *" $peer "* && $peer != "$REF" ]] || continue
    if ((header == 0)); then
      echo
      echo "ratios $REF/peer (of medians):"
      printf '  %-30s %12s %12s %12s\n' "" "req/s" "p99" "cpu/req"
      printf '  %-30s %12s %12s %12s\n' "" "(>1 better)" "(<1 better)" "(<1 better)"
      header=1
    fi
    printf '  %-30s %12s %12s %12s\n' "$REF/$peer" \
      "$(ratio "${MRPS[$REF]}" "${MRPS[$peer]}")" \
      "$(ratio "${MP99[$REF]}" "${MP99[$peer]}")" \
      "$(ratio "${MCPU[$REF]}" "${MCPU[$peer]}")"
  done
  echo
  echo "median of per-round ratios (each round's proxies run back to back, so drift cancels):"
  for peer in $PEERS; do
    [[ " $PROXIES " == *" $peer "* && $peer != "$REF" ]] || continue
    printf '  %-30s %12s %12s %12s\n' "$REF/$peer" \
      "$(echo "${RATIOS[$peer-rps]}" | median)" "$(echo "${RATIOS[$peer-p99]}" | median)" \
      "$(echo "${RATIOS[$peer-cpu]}" | median)"
  done
fi

if [[ " $PROXIES " == *" gatehouse-traced"* ]]; then
  echo
  echo "otlp sink (the traced proxies' collector): $(curl -s --max-time 2 "http://127.0.0.1:$OTLP_PORT/stats")"
fi
