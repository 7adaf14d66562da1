#!/usr/bin/env bash
# Installs everything Gatehouse needs to build, test and benchmark on Debian 12.
# Debian packages only (plus npm packages for the test clients, installed by tests/integration).
# Idempotent: packages already present are skipped, so a second run takes seconds.
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
  curl wrk nginx-light haproxy nodejs npm procps openssl testssl.sh
  # promtool (checks the /metrics exposition in tests) and valgrind (bench INSTRUCTIONS=1)
  prometheus valgrind
  # rate limits shared through Redis: the hiredis protocol reader, and a real server for the tests
  libhiredis-dev redis-server
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
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# nginx, haproxy and prometheus are test and benchmark tools only: never leave them running.
for svc in nginx haproxy prometheus redis-server; do
  if command -v systemctl >/dev/null && systemctl is-enabled --quiet "$svc" 2>/dev/null; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
pkill -x nginx 2>/dev/null || true
pkill -x haproxy 2>/dev/null || true
pkill -x prometheus 2>/dev/null || true
# npm packages of the integration tests (jose signs JWTs independently of gatehouse), pinned by
# package-lock.json; skipped when already installed at the locked versions.
tests_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/integration" && pwd)"
if ! (cd "$tests_dir" && npm ls --silent >/dev/null 2>&1); then
  echo "install-deps: npm ci in tests/integration"
  (cd "$tests_dir" && npm ci --no-audit --no-fund --silent)
fi
echo "install-deps: ok"
