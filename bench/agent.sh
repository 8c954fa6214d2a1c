#!/usr/bin/env bash
# Node agent start latency: the time from a pod being bound (created with spec.nodeName) to its
# container running, p50/p99 over COUNT pods (default 100, CONCURRENCY 1 at a time), on a
# 3-master cluster with one agent (tests/agent-cluster.sh: test hosts in network namespaces,
# a real registry). For comparison, in the same run, the same image's bundle (umoci unpack)
# started detached with `runc run -d` COUNT times. Then exec latency: `kubectl exec POD -- busybox
# true` (with `kubectl get pod`, kubectl's own cost, beside it) and `runc exec` into a runc container
# of the same bundle, COUNT times each. QUICK=1: 10 of each (smoke run).
#
# Env: SKIFF_BIN, COUNT, CONCURRENCY, QUICK, KEEP_TMP=1.
set -euo pipefail
SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
HERE=$(cd "$(dirname "$0")/../tests" && pwd)
BENCH=$(cd "$(dirname "$0")" && pwd)
COUNT=${COUNT:-100}
CONCURRENCY=${CONCURRENCY:-1}
[ "${QUICK:-0}" = 1 ] && COUNT=10
AGENTS=1
"$(dirname "$0")/../scripts/deps.sh" runc  # the comparison
# wait_for (the checks themselves are not used here)
SUITE=bench-agent PASSED=0
# shellcheck source=tests/check.sh
source "$HERE/check.sh"
# shellcheck source=tests/agent-cluster.sh
source "$HERE/agent-cluster.sh"

node_ready() { [ "$(jp node n1 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
has_cidr() { [ -n "$(jp node n1 -o jsonpath='{.spec.podCIDR}')" ]; }
wait_for 30 node_ready
wait_for 30 has_cidr
# Pull once first: the figure is the start path, not the registry.
k run warm --image="$IMG" --restart=Never --overrides='{"spec":{"nodeName":"n1"}}' --command -- busybox true >/dev/null
warm_done() { [ "$(jp pod warm -o jsonpath='{.status.phase}')" = Succeeded ]; }
wait_for 60 warm_done
k delete pod warm --wait=false >/dev/null

echo "== skiff agent: bound -> running, $COUNT pods, $CONCURRENCY at a time"
inm python3 "$BENCH/agent_latency.py" "$TMP/m1/admin.kubeconfig" "https://$NET.1:6443" "$IMG" n1 "$COUNT" "$CONCURRENCY" 300

echo "== runc $(runc --version | head -1 | awk '{print $3}'): runc run -d of the same image's bundle, $COUNT times"
umoci unpack --image "$TMP/layout:latest" "$TMP/bundle" >/dev/null
python3 - "$TMP/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["busybox", "sleep", "3600"]
c["process"]["terminal"] = False
json.dump(c, open(p, "w"))
PY
python3 - "$TMP/bundle" "$COUNT" <<'PY'
import subprocess, sys, time
bundle, n = sys.argv[1], int(sys.argv[2])
lat = []
for i in range(n):
    cid = "skiff-bench-runc-%d" % i
    t = time.monotonic()
    subprocess.run(["runc", "run", "-d", "--bundle", bundle, cid], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    lat.append((time.monotonic() - t) * 1000)
    subprocess.run(["runc", "delete", "-f", cid], check=True)
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(p / 100 * len(lat)))]
print("runs %d  runc run -d ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f" % (n, pct(50), pct(90), pct(99), lat[-1]))
PY

# time_runs LABEL N CMD...: p50/p90/p99/max of N runs of CMD (each must succeed).
time_runs() {
    python3 - "$@" <<'PY'
import subprocess, sys, time
label, n, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
lat = []
for i in range(n):
    t = time.monotonic()
    # Bounded by timeout(1): subprocess's own timeout polls the child at 50 ms steps.
    subprocess.run(["timeout", "30"] + cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    lat.append((time.monotonic() - t) * 1000)
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(p / 100 * len(lat)))]
print("runs %d  %s ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f" % (n, label, pct(50), pct(90), pct(99), lat[-1]))
PY
}

# The start benchmark's pods are torn down first: exec waits behind them at the shim otherwise.
no_pods() { [ -z "$(jp pods -o name)" ]; }
wait_for 120 no_pods
echo "== exec: \`busybox true\` in a running container, $COUNT times each"
k run target --image="$IMG" --overrides='{"spec":{"nodeName":"n1"}}' --command -- busybox sleep 3600 >/dev/null
target_running() { [ "$(jp pod target -o jsonpath='{.status.phase}')" = Running ]; }
wait_for 60 target_running
KC=("$KUBECTL" --kubeconfig "$TMP/m1/admin.kubeconfig" --server "https://$NET.1:6443")
time_runs "kubectl exec" "$COUNT" ip netns exec "$NS_M" "${KC[@]}" exec target -- busybox true
time_runs "kubectl get pod (kubectl's own cost)" "$COUNT" ip netns exec "$NS_M" "${KC[@]}" get pod target -o name
runc run -d --bundle "$TMP/bundle" skiff-bench-runc-exec </dev/null >/dev/null
time_runs "runc exec" "$COUNT" runc exec skiff-bench-runc-exec busybox true
runc delete -f skiff-bench-runc-exec
