#!/usr/bin/env bash
# Official Python client test.
#
# Installs the `kubernetes` package from PyPI into a venv outside the repo (once), starts 3
# skiff masters on loopback (127.0.0.1-3, API on API_PORT over HTTPS), writes admin
# kubeconfigs for two masters, and runs tests/python_client.py: namespaces, configmaps (create,
# read, label selectors, patch, stale replace), a deployment scaled through its scale
# subresource, watches, and a kill -9 of the master the client talks to (the raft leader,
# found with etcdctl) after which the test carries on and resumes its watch through another.
#
# Env: SKIFF_BIN, ETCDCTL, PORT_BASE (default 26790: client; +1 peer; +3 API),
# SKIFF_VENV (default /var/cache/skiff/venv), PYTHON (default python3, makes the venv),
# KEEP_TMP=1 keeps the temp dir (data dirs, logs, kubeconfigs).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
PORT_BASE=${PORT_BASE:-26790}
CPORT=$PORT_BASE
PPORT=$((PORT_BASE + 1))
APORT=$((PORT_BASE + 3))
VENV=${SKIFF_VENV:-/var/cache/skiff/venv}
PYTHON=${PYTHON:-python3}
ETCDCTL=${ETCDCTL:-etcdctl}
CLIENT_VERSION=${KUBERNETES_CLIENT_VERSION:-37.0.2}
SUITE=python-client

# ------------------------------------------------------------- the client ----

if "$VENV/bin/python" -c 'import kubernetes' 2>/dev/null; then
    :
else
    if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
        "$ROOT/scripts/deps.sh" python3-venv
    fi
    if ! "$VENV/bin/python" -c '' 2>/dev/null; then
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv --clear "$VENV"
    fi
    echo "$SUITE: installing kubernetes==$CLIENT_VERSION into $VENV" >&2
    "$VENV/bin/python" -m pip install -q "kubernetes==$CLIENT_VERSION"
    "$VENV/bin/python" -c 'import kubernetes'
fi

# ------------------------------------------------------------ the cluster ----

TMP=$(mktemp -d /tmp/skiff-python-client.XXXXXX)
declare -A PID=()
BG_PIDS=()

PASSED=0
# shellcheck source=tests/check.sh
source "$(dirname "$0")/check.sh"
trap cleanup EXIT
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND" >&2; echo "$SUITE: 0 passed, 1 failed"' ERR

die() {
    echo "FAIL: $1" >&2
    echo "$SUITE: 0 passed, 1 failed"
    exit 1
}

require_free_ports "127.0.0.1 127.0.0.2 127.0.0.3" "$CPORT $PPORT $APORT"

start_master() {
    local i=$1 ip=127.0.0.$1
    "$SKIFF_BIN" master --name "m$i" --data-dir "$TMP/m$i" \
        --listen-peer "$ip:$PPORT" --listen-client "$ip:$CPORT" --listen-api "$ip:$APORT" \
        --initial-cluster "m1=127.0.0.1:$PPORT,m2=127.0.0.2:$PPORT,m3=127.0.0.3:$PPORT" \
        >>"$TMP/m$i.log" 2>&1 &
    PID[m$i]=$!
    BG_PIDS+=($!)
}
for i in 1 2 3; do start_master "$i"; done

# Every API server must answer (the kubeconfig needs the CA the masters write).
for i in 1 2 3; do
    ready=0
    for _ in $(seq 1 600); do
        if [ -f "$TMP/m$i/admin.kubeconfig" ] &&
            curl -sk --max-time 1 "https://127.0.0.$i:$APORT/readyz" >/dev/null 2>&1; then
            ready=1
            break
        fi
        kill -0 "${PID[m$i]}" 2>/dev/null || die "master m$i exited while starting"
        sleep 0.1
    done
    [ "$ready" = 1 ] || die "master m$i: API not ready on 127.0.0.$i:$APORT after 60 s"
done

# The client talks to the raft leader, so that killing it also makes the survivors elect a
# new one (m1 when etcdctl is missing); the second kubeconfig names the next master.
lead=
if command -v "$ETCDCTL" >/dev/null; then
    for _ in $(seq 1 50); do
        status=$(ETCDCTL_API=3 "$ETCDCTL" --command-timeout=2s \
            --endpoints="127.0.0.1:$CPORT,127.0.0.2:$CPORT,127.0.0.3:$CPORT" endpoint status -w json 2>/dev/null) || status='[]'
        lead=$("$VENV/bin/python" -c '
import json, sys
d = json.load(sys.stdin)
ips = [e["Endpoint"].split(":")[0] for e in d if e["Status"]["leader"] == e["Status"]["header"]["member_id"]]
print(ips[0].split(".")[3] if len(ips) == 1 and len(d) == 3 else "")
' <<<"$status")
        [ -z "$lead" ] || break
        sleep 0.2
    done
    [ -n "$lead" ] || die "etcdctl endpoint status names no single leader: $status"
fi
role="the leader"
[ -n "$lead" ] || { lead=1 role="no etcdctl: leader unknown"; }
next=$((lead % 3 + 1))
echo "$SUITE: the client talks to m$lead ($role), then to m$next"
"$SKIFF_BIN" kubeconfig --data-dir "$TMP/m$lead" --server "https://127.0.0.$lead:$APORT" >"$TMP/kubeconfig"
"$SKIFF_BIN" kubeconfig --data-dir "$TMP/m$next" --server "https://127.0.0.$next:$APORT" >"$TMP/kubeconfig2"

# ---------------------------------------------------------------- the test ----

rc=0
KUBECONFIG=$TMP/kubeconfig KUBECONFIG2=$TMP/kubeconfig2 SKIFF_KILL_PID=${PID[m$lead]} \
    timeout 300 "$VENV/bin/python" -u "$ROOT/tests/python_client.py" || rc=$?
if [ "$rc" != 0 ]; then
    [ "$rc" != 124 ] || echo "FAIL: tests/python_client.py did not finish in 300 s" >&2
    exit "$rc"
fi
