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
    local end
    end=$(revision)
    etcd get --prefix /registry/pods/default/ --rev="$1" -w json >"$TMP/start.json"
    timeout 5 env ETCDCTL_API=3 etcdctl --endpoints="$EP" watch --rev="$(($1 + 1))" --prefix /registry/pods/default/ \
        -w json >"$TMP/history.json" 2>/dev/null || true
    python3 "$HERE/rollout_bounds.py" "$2" "$3" "$4" "$TMP/start.json" "$end" <"$TMP/history.json"
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
# A node that heartbeats once (Ready, a fresh lease) and then falls silent: checked at the end,
# after the node lifecycle controller's 40 s grace. Its pod tolerates unreachable for 2 s only.
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
nowmicro=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
cat <<YAML | k create -f - >/dev/null
apiVersion: v1
kind: Node
metadata: {name: n-silent, labels: {kubernetes.io/hostname: n-silent}}
spec: {taints: [{key: silent, value: "yes", effect: NoSchedule}]}
status:
  capacity: {cpu: "8", memory: 16Gi, pods: "110"}
  allocatable: {cpu: "8", memory: 16Gi, pods: "110"}
  conditions: [{type: Ready, status: "True", reason: KubeletReady, lastHeartbeatTime: "$now", lastTransitionTime: "$now"}]
YAML
cat <<YAML | k create -f - >/dev/null
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: n-silent, namespace: kube-node-lease}
spec: {holderIdentity: n-silent, leaseDurationSeconds: 40, renewTime: "$nowmicro"}
YAML
silent_since=$(date +%s)
cat <<'YAML' | k create -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: on-silent}
spec:
  nodeName: n-silent
  containers: [{name: c, image: busybox:1.36}]
  tolerations: [{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}]
YAML
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

# A create refused (quota): FailedCreate event and ReplicaFailure condition, cleared once it fits.
k create namespace q >/dev/null
k create quota pods --hard=pods=1 -n q >/dev/null
cat <<'YAML' | k create -n q -f - >/dev/null
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: capped}
spec:
  replicas: 2
  selector: {matchLabels: {app: capped}}
  template:
    metadata: {labels: {app: capped}}
    spec: {containers: [{name: c, image: busybox:1.36, resources: {limits: {cpu: 100m, memory: 64Mi}}}]}
YAML
cond=""
for _ in $(seq 1 150); do
    cond=$(k get rs capped -n q -o jsonpath='{.status.conditions[?(@.type=="ReplicaFailure")].reason}')
    [ -n "$cond" ] && break
    sleep 0.1
done
check_eq "a refused create: ReplicaFailure condition" FailedCreate "$cond"
# ("status unknown for quota" until the quota's usage is first computed, then "exceeded quota")
check_contains "and a FailedCreate event naming the quota" "is forbidden:" \
    "$(k get events -n q --field-selector reason=FailedCreate -o jsonpath='{.items[0].message}')"
check_contains "the quota by name" "quota: pods" \
    "$(k get events -n q --field-selector reason=FailedCreate -o jsonpath='{.items[0].message}')"
k scale rs capped -n q --replicas=1 >/dev/null
for _ in $(seq 1 150); do
    cond=$(k get rs capped -n q -o jsonpath='{.status.conditions[?(@.type=="ReplicaFailure")].reason}')
    [ -z "$cond" ] && break
    sleep 0.1
done
check_eq "cleared once the pods fit" "" "$cond"

# ------------------------------------------------------------------ ipam ----

c1=$(k get node n1 -o jsonpath='{.spec.podCIDR}')
c2=$(k get node n2 -o jsonpath='{.spec.podCIDR}')
check_match "node IPAM: n1 gets a /24 of 10.244.0.0/16" '^10\.244\.[0-9]+\.0/24$' "$c1"
check_eq "and n2 another one" yes "$([ -n "$c2" ] && [ "$c1" != "$c2" ] && echo yes || echo "no: $c1 $c2")"

# -------------------------------------------------------------- endpoints ----

k expose deployment web --port=80 --target-port=8080 >/dev/null
eps=""
for _ in $(seq 1 100); do
    eps=$(k get endpoints web -o jsonpath='{range .subsets[*].addresses[*]}{.ip}{" "}{end}' 2>/dev/null | wc -w)
    [ "$eps" = 2 ] && break
    sleep 0.1
done
check_eq "a Service's Endpoints list its 2 ready pods" 2 "$eps"
check_eq "on the target port" 8080 "$(k get endpoints web -o jsonpath='{.subsets[0].ports[0].port}')"
n=""
for _ in $(seq 1 100); do
    n=$(k get endpointslices -l kubernetes.io/service-name=web -o jsonpath='{range .items[*].endpoints[*]}{.addresses[0]}{" "}{end}' | wc -w)
    [ "$n" = 2 ] && break
    sleep 0.1
done
check_eq "and its EndpointSlice too" 2 "$n"
k scale deployment/web --replicas=3 >/dev/null
for _ in $(seq 1 150); do
    eps=$(k get endpoints web -o jsonpath='{range .subsets[*].addresses[*]}{.ip}{" "}{end}' | wc -w)
    [ "$eps" = 3 ] && break
    sleep 0.1
done
check_eq "scaling the deployment updates them" 3 "$eps"

# ------------------------------------------------------------- daemonset ----

cat <<'YAML' | k create -f - >/dev/null
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: c, image: busybox:1.36}]}
YAML
check_eq "a DaemonSet runs one pod per node (n-silent's taint is not tolerated)" 2 "$(wait_count app=agent 2)"
check_eq "on n1 and n2" "n1 n2" "$(k get pods -l app=agent -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort | tr '\n' ' ' | sed 's/ $//')"
cat <<YAML | k create -f - >/dev/null
apiVersion: v1
kind: Node
metadata: {name: n3, labels: {kubernetes.io/hostname: n3}}
status:
  capacity: {cpu: "8", memory: 16Gi, pods: "110"}
  allocatable: {cpu: "8", memory: 16Gi, pods: "110"}
YAML
check_eq "a new node gets its pod" 3 "$(wait_count app=agent 3)"
k delete node n3 >/dev/null
check_eq "a deleted node's pod goes" 2 "$(wait_count app=agent 2)"
for _ in $(seq 1 100); do
    out=$(k get ds agent -o jsonpath='{.status.desiredNumberScheduled} {.status.numberReady}')
    [ "$out" = "2 2" ] && break
    sleep 0.1
done
check_eq "DaemonSet status" "2 2" "$out"

k delete rs bare --cascade=orphan >/dev/null
sleep 1
check_eq "delete --cascade=orphan keeps the pods" 1 "$(k get pods -l app=bare --no-headers | wc -l)"
check_eq "and they lose their owner reference" "" "$(k get pods -l app=bare -o jsonpath='{.items[0].metadata.ownerReferences}')"

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
check_match "the Raft leader is known" '^[123]$' "$leader"
rev=$(revision)
k set image deployment/ha busybox=busybox:1.37 >/dev/null
# Kill once the rollout is under way (some pods updated, not all).
for _ in $(seq 1 100); do
    u=$(k get deploy ha -o jsonpath='{.status.updatedReplicas}')
    [ -n "$u" ] && [ "$u" -gt 0 ] && [ "$u" -lt 4 ] && break
    sleep 0.05
done
check_match "killed mid-rollout ($u of 4 pods updated)" '^[123]$' "$u"
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
# Failover, from the masters' logs: kill to the new leader's first controller write.
python3 - "$killed_at" "$TMP"/m*.log <<'PY'
import re, sys
from datetime import datetime
killed = float(sys.argv[1])
best = None
for path in sys.argv[2:]:
    for line in open(path, errors="replace"):
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        if "first controller write since this master became leader" not in line:
            continue
        t = datetime.strptime(line.split()[0][:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
        # Log timestamps are UTC; make the parsed naive time UTC too.
        t += datetime.now().astimezone().utcoffset().total_seconds()
        after = re.search(r"after_ms=(\d+)", line)
        if t > killed and (best is None or t < best[0]):
            best = (t, after.group(1) if after else "?")
if best:
    print(f"controller failover: first write by the new leader {best[0] - killed:.2f} s after the kill, "
          f"{best[1]} ms after it won the election")
else:
    print("controller failover: no write by a new leader found in the logs")
PY

# ------------------------------------------------------- node lifecycle ----

# A new leader's controllers give every node a full grace from their start (as
# kube-controller-manager does): the leader kill above restarted the clock.
left=$(python3 -c "import sys, time; print(int(max($silent_since, ${killed_at%.*}) + 47 - time.time()))")
[ "$left" -gt 0 ] && sleep "$left"
cond=""
for _ in $(seq 1 100); do
    cond=$(k get node n-silent -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')
    [ "$cond" = Unknown ] && break
    sleep 0.1
done
check_eq "a node whose lease stopped 40 s ago: Ready Unknown" Unknown "$cond"
check_contains "and the unreachable NoExecute taint" "node.kubernetes.io/unreachable:NoExecute" \
    "$(k get node n-silent -o jsonpath='{range .spec.taints[*]}{.key}:{.effect}{"\n"}{end}')"
gone=""
for _ in $(seq 1 100); do
    gone=$(try k get pod on-silent)
    [[ "$gone" == *NotFound* ]] && break
    sleep 0.1
done
check_contains "its pod, tolerating that for 2 s, is evicted" "NotFound" "$gone"

touch "$TMP/stop"
echo "controllers: $PASSED passed, 0 failed"
