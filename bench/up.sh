#!/usr/bin/env bash
# Issue 11's figures on a `skiff up` cluster: time for `skiff up` to a Ready cluster (3 masters,
# 2 agents, each in its own network namespace), time from creating a Deployment of REPLICAS
# pods of the built-in sample image to all of them running (and each pod's start latency), and
# time for the control plane to acknowledge a write and bind a pod again after the leader
# master is killed with SIGKILL (bench/up_figures.py). `skiff down` at the end, on failure too.
#
#   bash bench/up.sh            # RUNS=3 clusters, REPLICAS=10
#   QUICK=1 bash bench/up.sh    # one cluster, 3 replicas (CI smoke run: checks it works, no times asserted)
#
# Env: SKIFF_BIN, RUNS, REPLICAS, UP_ARGS (extra `skiff up` flags), KEEP_TMP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
if [ "${QUICK:-0}" = 1 ]; then RUNS=${RUNS:-1} REPLICAS=${REPLICAS:-3}; fi
RUNS=${RUNS:-3} REPLICAS=${REPLICAS:-10}
TMP=$(mktemp -d /tmp/skiff-upbench.XXXXXX)
UP=$TMP/up
cleanup() {
    local rc=$?
    set +e
    if [ -f "$UP/state.json" ]; then
        [ "$rc" -ne 0 ] && for f in "$UP"/*.log; do echo "--- $f" >&2; tail -n 15 "$f" >&2; done
        "$SKIFF_BIN" down --dir "$UP" >&2
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT

for run in $(seq 1 "$RUNS"); do
    name=ub$((RANDOM % 10000))
    t0=$(date +%s%N)
    "$SKIFF_BIN" up --dir "$UP" --name "$name" ${UP_ARGS:-} --subnet "10.252.$((RANDOM % 200 + 20)).0/24" >/dev/null 2>"$TMP/up.err" ||
        { cat "$TMP/up.err" >&2; exit 1; }
    echo "run $run: skiff up to a Ready cluster: $(( ($(date +%s%N) - t0) / 1000000 )) ms (wall, including process start); $(grep -o 'cluster Ready in [0-9.]* s' "$TMP/up.err")"
    python3 bench/up_figures.py "$UP" skiff.local/hello:1 "$REPLICAS" 120
    "$SKIFF_BIN" down --dir "$UP" >/dev/null 2>"$TMP/down.err" || { cat "$TMP/down.err" >&2; exit 1; }
done
