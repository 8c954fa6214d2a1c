#!/usr/bin/env bash
# Scheduler throughput through the full stack, in the manner of Kubernetes' scheduler_perf.
#
# First the scheduler's decisions alone (`--core`, in process), then starts 3 skiff masters
# (127.0.0.1-3) and runs `skiff bench scheduler` for each node count in
# NODES and each pod shape in SHAPES: Node objects created through the API (no agents), PODS pods
# created by CLIENTS clients, every pod's creation-to-bind latency read from a watch. Prints each
# report; stops the masters and removes the temp dir on exit. Times are never asserted; a run in
# which a created pod is never bound makes the script fail.
#
#   bash bench/scheduler.sh            # full run: 1000 and 5000 nodes, 10000 pods, 4 shapes
#   QUICK=1 bash bench/scheduler.sh    # smoke run: 50 nodes, 300 pods, basic and spread
#
# Env: NODES ["1000 5000"; quick 50]; PODS [10000; quick 300]; SHAPES ["basic taints affinity
# spread"; quick "basic spread"]; CLIENTS [50; quick 10]; PORT_BASE [28990; quick 29090];
# SKIFF_BIN; OUT_DIR (copy JSON reports there); KEEP_TMP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }
NODES=${NODES:-$(q "1000 5000" 50)}
PODS=${PODS:-$(q 10000 300)}
SHAPES=${SHAPES:-$(q "basic taints affinity spread" "basic spread")}
CLIENTS=${CLIENTS:-$(q 50 10)}
PORT_BASE=${PORT_BASE:-$(q 28990 29090)}
SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
# shellcheck source=bench/masters.sh
source bench/masters.sh

# The decisions alone, in process: what the scheduling loop can do without IO.
for n in $NODES; do
    for shape in $SHAPES; do
        "$SKIFF_BIN" bench scheduler --core --nodes "$n" --pods "$PODS" --shape "$shape"
    done
done
for n in $NODES; do
    for shape in $SHAPES; do
        name="sched-$shape-n$n-p$PODS"
        echo "== $name"
        "$SKIFF_BIN" bench scheduler --kubeconfig "$KC" --endpoints "$EPS" --nodes "$n" --pods "$PODS" \
            --clients "$CLIENTS" --shape "$shape" --label "$name" --json "$TMP/$name.json"
    done
done
grep -h "first pod bound" "$TMP"/m*.log | tail -n 3 || true

if [ -n "${OUT_DIR:-}" ]; then mkdir -p "$OUT_DIR" && cp "$TMP"/*.json "$OUT_DIR"/; fi
