#!/usr/bin/env bash
# The control plane at a node count this machine cannot run for real, through hollow nodes
# (`skiff agent --hollow N`, kubemark's idea): 3 masters on 127.0.0.1-3 and one hollow agent
# standing for NODES nodes. Measures, for each node count:
#   - register: from the agent's start until every node is Ready (polled every 0.2 s);
#   - idle: over IDLE seconds with every node heartbeating (a Lease renewal per node every 10 s),
#     the CPU and memory of the hollow agent (per simulated node) and of the three masters;
#   - deploy: a Deployment of REPLICAS replicas from `kubectl create` until readyReplicas is
#     REPLICAS (controllers, scheduler, status writes and the API on the way), and pods/s;
#   - scale to 0: until every pod is gone (graceful deletions confirmed by the hollow agent).
# Times are never asserted; a run that does not converge makes the script fail.
#
#   bash bench/hollow.sh            # full run: 100 and 250 nodes, 2000 replicas, 30 s idle
#   QUICK=1 bash bench/hollow.sh    # smoke run: 10 nodes, 20 replicas, 3 s idle
#
# Env: NODES ["100 250"; quick 10; the masters' cluster CIDR, 10.244.0.0/16 in /24s, holds 256];
# REPLICAS [2000; quick 20]; IDLE [30; quick 3];
# PORT_BASE [29190; quick 29290]; SKIFF_BIN; KUBECTL; OUT_DIR (copy the JSON there); KEEP_TMP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }
NODES=${NODES:-$(q "100 250" 10)}
REPLICAS=${REPLICAS:-$(q 2000 20)}
IDLE=${IDLE:-$(q 30 3)}
PORT_BASE=${PORT_BASE:-$(q 29190 29290)}
SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
# shellcheck source=bench/masters.sh
source bench/masters.sh

k() { "$KUBECTL" --kubeconfig "$KC" --server "https://127.0.0.1:$APORT" --request-timeout=30s "$@"; }
now() { date +%s.%N; }
# until SECONDS CMD...: polls CMD every 0.2 s; fails the run when it never succeeds
until_ok() {
    local t=$1
    shift
    local end=$(($(date +%s) + t))
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$end" ]; then
            echo "did not converge within $t s: $*" >&2
            return 1
        fi
        sleep 0.2
    done
}
# CPU ticks (user + system) and RSS (KiB) of a process
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

ready_count() {
    k get nodes -l skiff.io/hollow=true \
        -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null |
        grep -c '^True$' || true
}
ready_replicas() { k get deployment web -o jsonpath='{.status.readyReplicas}' 2>/dev/null; }
no_pods() { [ -z "$(k get pods -l app=web -o name 2>/dev/null)" ]; }

for n in $NODES; do
    echo "== hollow: $n nodes, $REPLICAS replicas"
    t0=$(now)
    "$SKIFF_BIN" agent --hollow "$n" --name "h$n" --data-dir "$TMP/hollow-$n" --kubeconfig "$KC" \
        --server "https://127.0.0.2:$APORT" --server "https://127.0.0.3:$APORT" --node-ip 127.0.0.1 \
        >"$TMP/hollow-$n.log" 2>&1 &
    HP=$!
    PIDS+=("$HP")
    until_ok 300 eval '[ "$(ready_count)" -ge "$n" ]'
    t1=$(now)

    # Idle: heartbeats only.
    a0=$(ticks "$HP")
    m0=0
    for p in "${PIDS[@]:0:3}"; do m0=$((m0 + $(ticks "$p"))); done
    sleep "$IDLE"
    a1=$(ticks "$HP")
    m1=0
    mrss=0
    for p in "${PIDS[@]:0:3}"; do
        m1=$((m1 + $(ticks "$p")))
        mrss=$((mrss + $(rss "$p")))
    done
    arss=$(rss "$HP")

    d0=$(now)
    k create deployment web --image=registry.invalid/none:1 --replicas="$REPLICAS" >/dev/null
    until_ok 600 eval '[ "$(ready_replicas)" = "$REPLICAS" ]'
    d1=$(now)
    k scale deployment web --replicas=0 >/dev/null
    until_ok 600 no_pods
    d2=$(now)
    k delete deployment web >/dev/null

    python3 - "$n" "$REPLICAS" "$IDLE" "$HZ" "$t0" "$t1" "$a0" "$a1" "$m0" "$m1" "$arss" "$mrss" \
        "$d0" "$d1" "$d2" "$TMP/hollow-n$n.json" <<'EOF'
import json, sys
(n, reps, idle, hz, t0, t1, a0, a1, m0, m1, arss, mrss, d0, d1, d2) = map(float, sys.argv[1:16])
r = {
    "nodes": int(n), "replicas": int(reps), "idle_s": idle,
    "register_s": round(t1 - t0, 2),
    "agent_cpu_pct": round(100 * (a1 - a0) / hz / idle, 2),
    "agent_rss_mib": round(arss / 1024, 1),
    "agent_rss_kib_per_node": round(arss / n, 1),
    "masters_cpu_pct": round(100 * (m1 - m0) / hz / idle, 2),
    "masters_rss_mib": round(mrss / 1024, 1),
    "deploy_s": round(d1 - d0, 2),
    "deploy_pods_per_s": round(reps / (d1 - d0), 1),
    "scale_to_zero_s": round(d2 - d1, 2),
}
json.dump(r, open(sys.argv[16], "w"))
w = max(len(k) for k in r)
for k, v in r.items():
    print(f"  {k:<{w}}  {v}")
EOF
    kill "$HP"
    wait "$HP" 2>/dev/null || true
    # The next round starts from no hollow nodes.
    k delete nodes -l skiff.io/hollow=true --wait=false >/dev/null
    until_ok 120 eval '[ -z "$(k get nodes -l skiff.io/hollow=true -o name 2>/dev/null)" ]'
done

if [ -n "${OUT_DIR:-}" ]; then mkdir -p "$OUT_DIR" && cp "$TMP"/hollow-n*.json "$OUT_DIR"/; fi
