#!/usr/bin/env bash
# Hollow nodes (`skiff agent --hollow N`), kubemark's idea: one process stands for N nodes so the
# control plane can be tested at a scale this machine cannot run for real. 3 masters on a test
# "host" (a network namespace made here, no default route), one hollow agent for NODES nodes.
# Checks: every hollow node registers, goes Ready, holds and renews its Lease and gets a podCIDR;
# a Deployment's pods are scheduled across them and reported Running and ready with IPs from
# their node's podCIDR; a restarted hollow agent leaves running pods alone (no status rewritten);
# a graceful pod deletion is confirmed at once; scaling to zero removes every pod.
#
# Env: SKIFF_BIN, NODES (default 20), REPLICAS (default 60), KEEP_TMP=1.
set -euo pipefail

SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
HERE=$(cd "$(dirname "$0")" && pwd)
NODES=${NODES:-20}
REPLICAS=${REPLICAS:-60}
PASSED=0
SUITE=hollow
# shellcheck source=tests/check.sh
source "$HERE/check.sh"
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND" >&2; echo "hollow: $PASSED passed, 1 failed"' ERR
AGENTS=0 NO_IMAGE=1
# shellcheck source=tests/agent-cluster.sh
source "$HERE/agent-cluster.sh"

HOLLOW_PID=
start_hollow() {
    ip netns exec "$NS_M" "$SKIFF_BIN" agent --hollow "$NODES" --name hollow --data-dir "$TMP/hollow" \
        --kubeconfig "$TMP/m1/admin.kubeconfig" --server "https://$NET.2:6443" --server "https://$NET.3:6443" \
        --node-ip "$NET.1" >>"$TMP/hollow.log" 2>&1 &
    HOLLOW_PID=$!
    BG_PIDS+=("$HOLLOW_PID")
}
start_hollow

# `hollow-0=True hollow-1=True ...` for the hollow nodes that are Ready, sorted.
ready_nodes() {
    jp nodes -l skiff.io/hollow=true \
        -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
        grep -c '=True$' || true
}
all_ready() { [ "$(ready_nodes)" = "$NODES" ]; }
wait_for 60 all_ready || true
check_eq "all $NODES hollow nodes registered and Ready" "$NODES" "$(ready_nodes)"
check_eq "the nodes carry the hollow label and the host's address" "$NET.1" \
    "$(k get nodes -l skiff.io/hollow=true -o jsonpath='{.items[*].status.addresses[?(@.type=="InternalIP")].address}' | tr ' ' '\n' | sort -u | xargs)"

leases() { jp leases -n kube-node-lease -o jsonpath='{range .items[*]}{.spec.holderIdentity}{"\n"}{end}' | grep -c '^hollow-' || true; }
check_eq "every hollow node holds its Lease" "$NODES" "$(leases)"
renew_of() { jp lease -n kube-node-lease hollow-0 -o jsonpath='{.spec.renewTime}'; }
R0=$(renew_of)
renewed() { [ "$(renew_of)" != "$R0" ]; }
wait_for 15 renewed || true
check_eq "leases are renewed (every 10 s)" changed "$([ "$(renew_of)" != "$R0" ] && echo changed || echo "still $R0")"
cidrs() { jp nodes -l skiff.io/hollow=true -o jsonpath='{range .items[*]}{.spec.podCIDR}{"\n"}{end}' | grep -c / || true; }
wait_for 20 eval '[ "$(cidrs)" = "$NODES" ]' || true
check_eq "every hollow node got a podCIDR" "$NODES" "$(cidrs)"

# ------------------------------------------------------------------ pods --
T0=$(date +%s.%N)
k create deployment web --image=registry.invalid/none:1 --replicas="$REPLICAS" >/dev/null
ready_replicas() { jp deployment web -o jsonpath='{.status.readyReplicas}'; }
wait_for 90 eval '[ "$(ready_replicas)" = "$REPLICAS" ]' || true
T1=$(date +%s.%N)
check_eq "a $REPLICAS-replica deployment is ready on hollow nodes (nothing pulled or run)" "$REPLICAS" "$(ready_replicas)"
echo "  ($REPLICAS replicas ready in $(python3 -c "print(round($T1 - $T0, 2))") s)"

k get pods -l app=web -o json >"$TMP/pods.json"
k get nodes -l skiff.io/hollow=true -o json >"$TMP/nodes.json"
# Prints "ok", or the pods that are not Running and ready with an IP in their node's podCIDR
# and the node's address as hostIP, or IPs handed out twice.
pods_ok() {
    python3 - "$TMP/pods.json" "$TMP/nodes.json" "$NET.1" <<'EOF'
import ipaddress, json, sys
pods, nodes = (json.load(open(f))["items"] for f in sys.argv[1:3])
cidr = {n["metadata"]["name"]: ipaddress.ip_network(n["spec"]["podCIDR"]) for n in nodes}
bad = []
for p in pods:
    st, node = p.get("status", {}), p["spec"].get("nodeName", "")
    cs = st.get("containerStatuses") or []
    if not (st.get("phase") == "Running" and node in cidr and cs
            and all(c["ready"] and "running" in c["state"] for c in cs)
            and ipaddress.ip_address(st.get("podIP", "0.0.0.0")) in cidr[node]
            and st.get("hostIP") == sys.argv[3]):
        bad.append(p["metadata"]["name"])
ips = [p["status"].get("podIP") for p in pods]
dup = sorted({i for i in ips if ips.count(i) > 1})
print("ok" if not bad and not dup and pods else "bad: %s, duplicate IPs: %s" % (bad, dup))
EOF
}
check_eq "pods are Running and ready, with an IP from their node's podCIDR and the node's hostIP" ok "$(pods_ok)"
SPREAD=$(python3 -c 'import json,sys; print(len({p["spec"]["nodeName"] for p in json.load(open(sys.argv[1]))["items"]}))' "$TMP/pods.json")
check_eq "the scheduler spreads the pods over the hollow nodes" yes "$([ "$SPREAD" -ge $((NODES / 2)) ] && echo yes || echo "only $SPREAD nodes")"

# A restarted hollow agent finds its pods Running and writes nothing.
RVS=$(k get pods -l app=web -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.resourceVersion}{"\n"}{end}' | sort)
kill "$HOLLOW_PID"
wait "$HOLLOW_PID" 2>/dev/null || true
start_hollow
registered_twice() { [ "$(grep -c "hollow nodes registered" "$TMP/hollow.log")" -ge 2 ]; }
wait_for 30 registered_twice || true
sleep 3  # its list of the pods, and whatever it would write
check_eq "a restarted hollow agent leaves running pods alone" "$RVS" \
    "$(k get pods -l app=web -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.resourceVersion}{"\n"}{end}' | sort)"
check_eq "its nodes stay Ready" "$NODES" "$(ready_nodes)"

VICTIM=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["items"][0]["metadata"]["name"])' "$TMP/pods.json")
S0=$(date +%s.%N)
OUT=$(k delete pod "$VICTIM" --timeout=20s 2>&1 || true)
S1=$(date +%s.%N)
check_contains "a graceful delete is confirmed by the hollow agent" "\"$VICTIM\" deleted" "$OUT"
check_eq "at once (well inside the 30 s grace period)" yes \
    "$(python3 -c "print('yes' if $S1 - $S0 < 10 else 'took %.1f s' % ($S1 - $S0))")"
wait_for 30 eval '[ "$(ready_replicas)" = "$REPLICAS" ]' || true
check_eq "its replacement is ready" "$REPLICAS" "$(ready_replicas)"

k scale deployment web --replicas=0 >/dev/null
gone() { [ -z "$(jp pods -l app=web -o name)" ]; }
wait_for 60 gone || true
check_eq "scaled to zero, every pod is gone" "" "$(jp pods -l app=web -o name)"

RSS=$(awk '/VmRSS/ {print $2}' "/proc/$HOLLOW_PID/status" 2>/dev/null || echo 0)
echo "  (hollow agent for $NODES nodes: RSS $((RSS / 1024)) MiB)"
echo "$SUITE: $PASSED passed, 0 failed"
