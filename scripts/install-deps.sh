#!/usr/bin/env bash
# Installs everything Gatehouse needs to build, test and benchmark on Debian 12.
# Debian packages only (plus npm packages for the test clients, installed by tests/integration).
# Idempotent: packages already present are skipped, so a second run takes seconds.
#
# Services are left alone. nginx, haproxy, redis-server and prometheus are only test and benchmark
# peers here, but on a developer's machine they may be the user's own, running for other purposes:
# this script never stops, disables or kills anything (no systemctl, service, pkill or killall).
# The tests, the demo and the benchmarks start their own instances on their own ports and stop
# them by PID. What it does instead is keep the packages it installs from starting their services
# (Debian starts nginx on :80, redis on :6379, prometheus on :9090 ... at install): the apt-get
# install runs under a temporary policy-rc.d that exits 101 ("action forbidden"), which invoke-rc.d
# and deb-systemd-invoke obey. It is created only if there is none (an existing one belongs to the
# administrator and is used as it is) and removed right after the install, on failure too.
# The services are still enabled as Debian does, so they start at the next boot; to keep one off:
# `systemctl disable nginx`. POLICY_RC_D names the file (default /usr/sbin/policy-rc.d; the tests
# point it elsewhere).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git clang-format
  # clang 14 for the fuzz targets (make fuzz): libFuzzer, ASan and UBSan come with it
  clang
  # libraries (headers-only Boost parts: Asio)
  libboost1.81-dev libboost-json1.81-dev libssl-dev libyaml-cpp-dev libre2-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # test peers and benchmark peers
  curl wrk nginx-light haproxy varnish nodejs npm procps openssl testssl.sh
  # promtool (checks the /metrics exposition in tests) and valgrind (bench INSTRUCTIONS=1)
  prometheus valgrind
  # rate limits shared through Redis: the hiredis protocol reader, and a real server for the tests
  libhiredis-dev redis-server
  # the compress plugin's codecs, and the zstd tool its tests decode with
  zlib1g-dev libbrotli-dev libzstd-dev zstd
  # HTTP/2: framing, HPACK and flow control (libnghttp2), and its clients for the tests and benchmarks
  libnghttp2-dev nghttp2-client
  # gRPC transcoding: descriptor sets and the proto3 JSON mapping (libprotobuf), and protoc for
  # the tests and the demo, which compile their .proto files into descriptor sets
  libprotobuf-dev protobuf-compiler
  # the gateway's allocator (docs/architecture.md, "The process allocator")
  libjemalloc-dev
  # the dashboard's tests: a real browser (headless Chromium, driven by playwright-core from npm)
  chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Node.js may come from elsewhere than apt (a newer build already on PATH): then skip Debian's.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]}"

if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
  created_policy=""
  remove_policy() { [ -z "$created_policy" ] || $sudo rm -f "$policy"; created_policy=""; }
  trap remove_policy EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  # Created with noclobber (O_EXCL): only if absent, so an administrator's file is never replaced.
  # shellcheck disable=SC2016  # $1 is the inner shell's
  if [ ! -e "$policy" ] && [ ! -L "$policy" ] && $sudo sh -c 'set -C; : >"$1"' sh "$policy" 2>/dev/null; then
    created_policy=1
    printf '#!/bin/sh\n# install-deps.sh: no service starts during its apt-get install\nexit 101\n' |
      $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  remove_policy
  trap - EXIT INT TERM HUP
fi
# npm packages of the integration tests (jose signs JWTs independently of gatehouse), pinned by
# package-lock.json; skipped when already installed at the locked versions.
tests_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/integration" && pwd)"
if ! (cd "$tests_dir" && npm ls --silent >/dev/null 2>&1); then
  echo "install-deps: npm ci in tests/integration"
  (cd "$tests_dir" && npm ci --no-audit --no-fund --silent)
fi
echo "install-deps: ok"
