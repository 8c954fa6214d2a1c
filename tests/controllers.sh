#!/usr/bin/env bash
# Controller test with the stock kubectl: 3 skiff masters on loopback, two Node objects, and a
# stand-in for the node agent (tests/fake_kubelet.py: bound pods become Running and Ready; pods
# marked for graceful deletion are removed). Deployments: create, rollout status, an image change
# rolled out within maxSurge/maxUnavailable at every revision of the store's history (not just at
# the end), rollout history and undo, scale, delete with everything it owned; a bare ReplicaSet
# replaces a deleted pod and adopts an orphan; the leader master killed during a rollout, which the
# new leader finishes within the same bounds.
#
# Env: SKIFF_BIN, PORT_BASE (default 28190: client; +1 peer; +2 metrics; +3 API), KEEP_TMP=1.
set -euo pipefail

SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
PORT_BASE=${PORT_BASE:-28190}
CPORT=$PORT_BASE
PPORT=$((PORT_BASE + 1))
MPORT=$((PORT_BASE + 2))
APORT=$((PORT_BASE + 3))
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
HERE=$(cd "$(dirname "$0")" && pwd)

TMP=$(mktemp -d /tmp/skiff-ctrl.XXXXXX)
BG_PIDS=()
PASSED=0
SUITE=controllers
# shellcheck source=tests/check.sh
source "$HERE/check.sh"

trap cleanup EXIT
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND" >&2; echo "controllers: $PASSED passed, 1 failed"' ERR

require_free_ports "127.0.0.1 127.0.0.2 127.0.0.3" "$CPORT $PPORT $MPORT $APORT"
MASTER_PIDS=()
for i in 1 2 3; do
    ip=127.0.0.$i
    "$SKIFF_BIN" master --name "m$i" --data-dir "$TMP/m$i" \
        --listen-peer "$ip:$PPORT" --listen-client "$ip:$CPORT" --listen-api "$ip:$APORT" --listen-metrics "$ip:$MPORT" \
        --initial-cluster "m1=127.0.0.1:$PPORT,m2=127.0.0.2:$PPORT,m3=127.0.0.3:$PPORT" \
        >>"$TMP/m$i.log" 2>&1 &
    BG_PIDS+=($!)
    MASTER_PIDS+=($!)
done
for i in 1 2 3; do
    for _ in $(seq 1 300); do
        [ -f "$TMP/m$i/admin.kubeconfig" ] && curl -sk --max-time 1 "https://127.0.0.$i:$APORT/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
done
SERVER=https://127.0.0.1:$APORT
k() { "$KUBECTL" --kubeconfig "$TMP/m1/admin.kubeconfig" --server "$SERVER" --request-timeout=20s "$@"; }
try() { "$@" 2>&1 || true; }
EP=127.0.0.1:$CPORT,127.0.0.2:$CPORT,127.0.0.3:$CPORT
etcd() { ETCDCTL_API=3 etcdctl --endpoints="$EP" --command-timeout=10s "$@"; }
revision() { etcd endpoint status -w json | python3 -c 'import json,sys; print(max(s["Status"]["header"]["revision"] for s in json.load(sys.stdin)))'; }
# bounds REV LABEL MAX_PODS MIN_READY: the pods' history since REV stays within the bounds
bounds() {
    timeout 5 env ETCDCTL_API=3 etcdctl --endpoints="$EP" watch --rev="$1" --prefix /registry/pods/default/ -w json \
        >"$TMP/history.json" 2>/dev/null || true
    python3 "$HERE/rollout_bounds.py" "$2" "$3" "$4" <"$TMP/history.json"
}

for n in n1 n2; do
    cat <<YAML | k create -f - >/dev/null
apiVersion: v1
kind: Node
metadata: {name: $n, labels: {kubernetes.io/hostname: $n}}
status:
  capacity: {cpu: "8", memory: 16Gi, pods: "110"}
  allocatable: {cpu: "8", memory: 16Gi, pods: "110"}
YAML
done
python3 "$HERE/fake_kubelet.py" "$TMP/m1/admin.kubeconfig" \
    "https://127.0.0.1:$APORT,https://127.0.0.2:$APORT,https://127.0.0.3:$APORT" 600 "$TMP/stop" \
    >"$TMP/kubelet.log" 2>&1 &
BG_PIDS+=($!)

ready_pods() { k get pods -l "$1" -o jsonpath='{range .items[*]}{.metadata.deletionTimestamp}{"|"}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^|True$' || true; }
# wait_count LABEL N: until N ready, not deleting pods carry LABEL (30 s)
wait_count() {
    local n=""
    for _ in $(seq 1 300); do
        n=$(ready_pods "$1")
        [ "$n" = "$2" ] && [ "$(k get pods -l "$1" --no-headers 2>/dev/null | wc -l)" = "$2" ] && break
        sleep 0.1
    done
    printf '%s' "$n"
}

# images LABEL EXPECTED: the pods' images once they equal EXPECTED (terminating pods leave within
# a moment: the stand-in removes them), else what they are after 10 s
images() {
    local got=""
    for _ in $(seq 1 100); do
        got=$(k get pods -l "$1" -o jsonpath='{.items[*].spec.containers[0].image}')
        [ "$got" = "$2" ] && break
        sleep 0.1
    done
    printf '%s' "$got"
}

# ------------------------------------------------------------ deployment ----

k create deployment web --image=busybox:1.36 --replicas=3 >/dev/null
check_eq "deployment of 3 replicas: 3 ready pods" 3 "$(wait_count app=web 3)"
out=$(try k rollout status deployment/web --timeout=60s)
check_contains "kubectl rollout status" 'deployment "web" successfully rolled out' "$out"
rs=$(k get rs -l app=web -o jsonpath='{.items[0].metadata.name}')
check_match "its ReplicaSet is named after the template hash" '^web-[a-z0-9]+$' "$rs"
check_eq "owned by the deployment" Deployment "$(k get rs "$rs" -o jsonpath='{.metadata.ownerReferences[0].kind}')"
check_eq "revision 1" 1 "$(k get rs "$rs" -o jsonpath='{.metadata.annotations.deployment\.kubernetes\.io/revision}')"
check_eq "pods owned by the ReplicaSet" "$rs $rs $rs" "$(k get pods -l app=web -o jsonpath='{.items[*].metadata.ownerReferences[0].name}')"
check_eq "deployment status: 3 available" "3 3 3" "$(k get deploy web -o jsonpath='{.status.replicas} {.status.updatedReplicas} {.status.availableReplicas}')"

rev=$(revision)
k set image deployment/web busybox=busybox:1.37 >/dev/null
out=$(try k rollout status deployment/web --timeout=90s)
check_contains "image change: rollout status" 'successfully rolled out' "$out"
check_eq "all pods run the new image" "busybox:1.37 busybox:1.37 busybox:1.37" \
    "$(images app=web "busybox:1.37 busybox:1.37 busybox:1.37")"
out=$(bounds "$rev" app=web 4 3)
check_contains "rollout within maxSurge 1 / maxUnavailable 0 at every revision" "revisions: at most" "$out"
check_contains "kubectl rollout history" "2 " "$(k rollout history deployment/web)"
check_eq "two ReplicaSets, the old one at 0" "0 3" \
    "$(k get rs -l app=web -o jsonpath='{range .items[*]}{.spec.replicas}{" "}{end}' | tr ' ' '\n' | grep -v '^$' | sort -n | tr '\n' ' ' | sed 's/ $//')"

k rollout undo deployment/web >/dev/null
out=$(try k rollout status deployment/web --timeout=90s)
check_contains "rollout undo: rolled out" 'successfully rolled out' "$out"
check_eq "undo: the old image is back" "busybox:1.36 busybox:1.36 busybox:1.36" \
    "$(images app=web "busybox:1.36 busybox:1.36 busybox:1.36")"
check_eq "undo reuses the first ReplicaSet at revision 3" 3 \
    "$(k get rs "$rs" -o jsonpath='{.metadata.annotations.deployment\.kubernetes\.io/revision}')"

k scale deployment/web --replicas=5 >/dev/null
check_eq "scale to 5" 5 "$(wait_count app=web 5)"
k scale deployment/web --replicas=2 >/dev/null
check_eq "scale to 2" 2 "$(wait_count app=web 2)"

# ------------------------------------------------------------ replicaset ----

cat <<'YAML' | k create -f - >/dev/null
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: bare}
spec:
  replicas: 2
  selector: {matchLabels: {app: bare}}
  template:
    metadata: {labels: {app: bare}}
    spec: {containers: [{name: c, image: busybox:1.36}]}
YAML
check_eq "a bare ReplicaSet: 2 pods" 2 "$(wait_count app=bare 2)"
victim=$(k get pods -l app=bare -o jsonpath='{.items[0].metadata.name}')
k delete pod "$victim" --wait=false >/dev/null
check_eq "a deleted pod is replaced" 2 "$(wait_count app=bare 2)"
check_not_contains "by another pod" "$victim" "$(k get pods -l app=bare -o name)"
k scale rs bare --replicas=1 >/dev/null
check_eq "scaled down to 1" 1 "$(wait_count app=bare 1)"
cat <<'YAML' | k create -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: orphan, labels: {app: bare}}
spec: {containers: [{name: c, image: busybox:1.36}]}
YAML
sleep 2
check_eq "an orphan matching the selector is adopted (and the surplus removed)" 1 "$(wait_count app=bare 1)"

# --------------------------------------------------------------- garbage ----

k delete deployment web >/dev/null
gone=""
for _ in $(seq 1 150); do
    gone="$(k get rs,pods -l app=web --no-headers 2>/dev/null | wc -l)"
    [ "$gone" = 0 ] && break
    sleep 0.1
done
check_eq "deleting the deployment removes its ReplicaSets and pods" 0 "$gone"

# ---------------------------------------------------- leader kill mid-rollout ----

k create deployment ha --image=busybox:1.36 --replicas=4 >/dev/null
check_eq "ha: 4 pods" 4 "$(wait_count app=ha 4)"
leader=$(etcd endpoint status -w json | python3 -c '
import json, sys
for i, s in enumerate(json.load(sys.stdin)):
    if s["Status"]["leader"] == s["Status"]["header"]["member_id"]:
        print(i + 1)')
rev=$(revision)
k set image deployment/ha busybox=busybox:1.37 >/dev/null
sleep 0.3
kill -9 "${MASTER_PIDS[$((leader - 1))]}"
killed_at=$(date +%s.%N)
other=$((leader % 3 + 1))
SERVER=https://127.0.0.$other:$APORT
EP=127.0.0.$other:$CPORT,127.0.0.$((other % 3 + 1)):$CPORT
out=$(try k rollout status deployment/ha --timeout=90s)
check_contains "leader killed mid-rollout: the new leader finishes it" 'successfully rolled out' "$out"
# 4 replicas: maxSurge ceil(1) = 1, maxUnavailable floor(1) = 1.
out=$(bounds "$rev" app=ha 5 3)
check_contains "and the rollout stayed within its bounds through the failover" "revisions: at most" "$out"
echo "$out"
for i in 1 2 3; do
    grep -h "first controller write since this master became leader" "$TMP/m$i.log" | tail -n 1 || true
done
echo "leader m$leader killed at $killed_at"

touch "$TMP/stop"
echo "controllers: $PASSED passed, 0 failed"
