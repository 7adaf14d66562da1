#!/usr/bin/env bash
# scripts/install-deps.sh leaves services alone: it never calls systemctl, service, pkill or
# killall, and runs apt-get install under a policy-rc.d that forbids starting services (exit 101),
# created only when there is none and removed afterwards, on failure too.
# Runs the real script with fake apt-get, dpkg-query, npm, sudo and service tools first on PATH;
# each records its call in a log. No root needed, nothing is installed.
# shellcheck disable=SC2016  # the fakes' bodies are expanded when they run, not here
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/install-deps-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fake=$tmp/bin log=$tmp/calls
mkdir -p "$fake"

recorder() {  # recorder NAME BODY: a fake NAME that logs "NAME ARGS", then runs BODY
  printf '#!/usr/bin/env bash\necho "%s $*" >>"$FAKE_LOG"\n%s\n' "$1" "$2" >"$fake/$1"
  chmod +x "$fake/$1"
}
for tool in systemctl service pkill killall invoke-rc.d; do recorder "$tool" 'exit 0'; done
recorder npm 'exit 0'
recorder node 'exit 0'
recorder sudo 'exec "$@"'
# dpkg-query -W -f=${Status} PACKAGE: installed unless named in FAKE_MISSING
recorder dpkg-query 'for m in $FAKE_MISSING; do [ "$m" = "${!#}" ] && exit 1; done; printf "install ok installed"'
# apt-get install: what policy-rc.d says to "start nginx" at this moment; FAKE_APT_FAIL fails it
recorder apt-get '[ "$1" = install ] || exit 0
if [ -x "$POLICY_RC_D" ]; then "$POLICY_RC_D" nginx start; echo "policy-rc.d exit $?" >>"$FAKE_LOG"
else echo "policy-rc.d absent" >>"$FAKE_LOG"; fi
exit "${FAKE_APT_FAIL:-0}"'

failures=0
check() {  # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "ok - $1"; else echo "not ok - $1"; failures=$((failures + 1)); fi
}
run() {  # run [VAR=VALUE...]: the script with the fakes, a fresh log; its exit status in $status
  : >"$log"
  env PATH="$fake:$PATH" FAKE_LOG="$log" POLICY_RC_D="$tmp/policy-rc.d" FAKE_MISSING= "$@" \
    bash "$repo/scripts/install-deps.sh" >"$tmp/out" 2>&1
  status=$?
}
no_service_calls() { ! grep -E '^(systemctl|service|pkill|killall|invoke-rc.d) ' "$log"; }
no_apt_get() { ! grep -q '^apt-get' "$log"; }
logged() { grep -qxF -- "$1" "$log"; }
installed() { grep -qE "^apt-get install .* $1( |\$)" "$log"; }
policy_absent() { [ ! -e "$tmp/policy-rc.d" ]; }

# 1. Everything installed: nothing to do, and nothing stopped, disabled or killed.
run
check "all installed: exits 0" [ "$status" -eq 0 ]
check "all installed: no systemctl/service/pkill/killall" no_service_calls
check "all installed: no apt-get" no_apt_get

# 2. A package missing: installed while a policy-rc.d forbids starting services, removed after.
run FAKE_MISSING="nginx-light redis-server"
check "missing: exits 0" [ "$status" -eq 0 ]
check "missing: apt-get install of the missing packages" installed redis-server
check "missing: policy-rc.d exits 101 during apt-get install" logged "policy-rc.d exit 101"
check "missing: policy-rc.d removed afterwards" policy_absent
check "missing: no systemctl/service/pkill/killall" no_service_calls

# 3. The administrator's own policy-rc.d is used as it is and left in place.
printf '#!/bin/sh\nexit 0\n' >"$tmp/policy-rc.d" && chmod 755 "$tmp/policy-rc.d"
cp "$tmp/policy-rc.d" "$tmp/policy-rc.d.orig"
run FAKE_MISSING=haproxy
check "existing policy-rc.d: exits 0" [ "$status" -eq 0 ]
check "existing policy-rc.d: apt-get install ran under it" logged "policy-rc.d exit 0"
check "existing policy-rc.d: left unchanged" cmp -s "$tmp/policy-rc.d" "$tmp/policy-rc.d.orig"
rm -f "$tmp/policy-rc.d"

# 4. apt-get install fails: the script fails, and its policy-rc.d is gone all the same.
run FAKE_MISSING=haproxy FAKE_APT_FAIL=100
check "failed install: exits non-zero" [ "$status" -ne 0 ]
check "failed install: policy-rc.d was in force" logged "policy-rc.d exit 101"
check "failed install: policy-rc.d removed" policy_absent

if ((failures)); then
  echo "install_deps_test: $failures failed; last output:"; cat "$tmp/out"; echo "calls:"; cat "$log"
  exit 1
fi
echo "install_deps_test: all passed"
