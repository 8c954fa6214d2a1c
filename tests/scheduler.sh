#!/usr/bin/env bash
# Scheduler test with the stock kubectl: 3 skiff masters on loopback, Node objects with
# capacities, labels, taints and a cordon (no agents: the scheduler only reads Nodes), and pods
# whose placement each rule decides: resources, taints and tolerations, nodeSelector and node
# affinity, pod anti-affinity, topology spread, an unschedulable pod's condition and event in
# Kubernetes' words, a node change that makes it fit, preemption of a lower-priority pod,
# schedulerName, and a second binding refused. Also: only the Raft leader runs the scheduler.
#
# Env: SKIFF_BIN, PORT_BASE (default 27990: client; +1 peer; +2 metrics; +3 API), KEEP_TMP=1.
set -euo pipefail

SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
PORT_BASE=${PORT_BASE:-27990}
CPORT=$PORT_BASE
PPORT=$((PORT_BASE + 1))
MPORT=$((PORT_BASE + 2))
APORT=$((PORT_BASE + 3))
KUBECTL=${KUBECTL:-/usr/bin/kubectl}

TMP=$(mktemp -d /tmp/skiff-sched.XXXXXX)
BG_PIDS=()
PASSED=0
SUITE=scheduler
# shellcheck source=tests/check.sh
source "$(dirname "$0")/check.sh"

trap cleanup EXIT
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND" >&2; echo "scheduler: $PASSED passed, 1 failed"' ERR

require_free_ports "127.0.0.1 127.0.0.2 127.0.0.3" "$CPORT $PPORT $MPORT $APORT"
for i in 1 2 3; do
    ip=127.0.0.$i
    "$SKIFF_BIN" master --name "m$i" --data-dir "$TMP/m$i" \
        --listen-peer "$ip:$PPORT" --listen-client "$ip:$CPORT" --listen-api "$ip:$APORT" --listen-metrics "$ip:$MPORT" \
        --initial-cluster "m1=127.0.0.1:$PPORT,m2=127.0.0.2:$PPORT,m3=127.0.0.3:$PPORT" \
        >>"$TMP/m$i.log" 2>&1 &
    BG_PIDS+=($!)
done
for i in 1 2 3; do
    for _ in $(seq 1 300); do
        [ -f "$TMP/m$i/admin.kubeconfig" ] && curl -sk --max-time 1 "https://127.0.0.$i:$APORT/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
done
k() { "$KUBECTL" --kubeconfig "$TMP/m1/admin.kubeconfig" --request-timeout=20s "$@"; }
try() { "$@" 2>&1 || true; }

# node NAME CPU ZONE [EXTRA-SPEC-YAML]
node() {
    cat <<YAML | k create -f - >/dev/null
apiVersion: v1
kind: Node
metadata:
  name: $1
  labels: {kubernetes.io/hostname: $1, topology.kubernetes.io/zone: $3${5:+, $5}}
spec: {${4:-}}
status:
  capacity: {cpu: "$2", memory: 16Gi, pods: "110"}
  allocatable: {cpu: "$2", memory: 16Gi, pods: "110"}
YAML
}
node n-small 1 z1
node n-big 8 z1
node n-gpu 8 z2 "taints: [{key: dedicated, value: gpu, effect: NoSchedule}]" "accel: gpu"
node n-off 8 z3 "unschedulable: true"

# pod NAME CPU [EXTRA-SPEC-FLOW-MAPPING] [LABELS]
pod() {
    local extra=${3:-}
    extra=${extra#\{}
    extra=${extra%\}}
    cat <<YAML | k create -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: $1, labels: {${4:-app: t}}}
spec: {containers: [{name: c, image: busybox, resources: {requests: {cpu: "$2"}}}]${extra:+, $extra}}
YAML
}
node_of() { k get pod "$1" -o jsonpath='{.spec.nodeName}'; }
# wait_node POD: the pod's node once bound (empty after 15 s)
wait_node() {
    local n=""
    for _ in $(seq 1 150); do
        n=$(node_of "$1")
        [ -n "$n" ] && break
        sleep 0.1
    done
    printf '%s' "$n"
}
# wait_cond POD: the pod's PodScheduled condition as "status reason: message" (15 s)
wait_cond() {
    local c=""
    for _ in $(seq 1 150); do
        c=$(k get pod "$1" -o jsonpath='{.status.conditions[?(@.type=="PodScheduled")].status} {.status.conditions[?(@.type=="PodScheduled")].reason}: {.status.conditions[?(@.type=="PodScheduled")].message}')
        [ "${c%% *}" = "False" ] && break
        sleep 0.1
    done
    printf '%s' "$c"
}

# ------------------------------------------------------- leader only ----

# running: masters whose last word on leader-only components is "started" (a leader change at
# start-up leaves one "stopped" behind).
running() {
    local n=0 i last
    for i in 1 2 3; do
        last=$(grep -o "leader-only components st[a-z]*" "$TMP/m$i.log" | tail -n 1 || true)
        [ "$last" = "leader-only components started" ] && n=$((n + 1))
    done
    echo "$n"
}
for _ in $(seq 1 100); do
    [ "$(running)" -ge 1 ] && break
    sleep 0.1
done
check_eq "exactly one master (the Raft leader) runs the leader-only components" 1 "$(running)"

# ---------------------------------------------------------- placement ----

pod big 4
check_eq "4 cpu: only n-big fits (n-small too small, n-gpu tainted, n-off cordoned)" n-big "$(wait_node big)"
pod gpu 1 "{tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}], nodeSelector: {accel: gpu}}"
check_eq "toleration + nodeSelector: n-gpu" n-gpu "$(wait_node gpu)"
pod aff 100m "{affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [z1]}]}]}}}}"
n=$(wait_node aff)
check_match "required node affinity zone In [z1]: n-small or n-big" '^n-(small|big)$' "$n"
anti="{affinity: {podAntiAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: anti}}}]}}}"
pod anti1 100m "$anti" "app: anti"
pod anti2 100m "$anti" "app: anti"
a1=$(wait_node anti1)
a2=$(wait_node anti2)
check_eq "pod anti-affinity by hostname: two different nodes" yes "$([ -n "$a1" ] && [ -n "$a2" ] && [ "$a1" != "$a2" ] && echo yes || echo "no: $a1 $a2")"
msg=$(k get events --field-selector involvedObject.name=big,reason=Scheduled -o jsonpath='{.items[0].message}')
check_eq "Scheduled event in Kubernetes' words" "Successfully assigned default/big to n-big" "$msg"

# -------------------------------------------------------- unschedulable ----

pod huge 100
c=$(wait_cond huge)
check_contains "unschedulable: PodScheduled False Unschedulable" "False Unschedulable: 0/4 nodes are available:" "$c"
check_contains "the message counts cpu" "2 Insufficient cpu" "$c"
check_contains "the message names the taint" "1 node(s) had untolerated taint {dedicated: gpu}" "$c"
check_contains "the message names the cordon" "1 node(s) were unschedulable" "$c"
check_contains "the message says preemption cannot help" "preemption: 0/4 nodes are available:" "$c"
ev=""
for _ in $(seq 1 100); do
    ev=$(k get events --field-selector involvedObject.name=huge,reason=FailedScheduling -o jsonpath='{.items[0].type} {.items[0].message}')
    [ -n "$ev" ] && break
    sleep 0.1
done
check_contains "FailedScheduling warning event" "Warning 0/4 nodes are available:" "$ev"
check_contains "kubectl describe shows it" "FailedScheduling" "$(k describe pod huge)"

# A pod that only the cordoned node can take, until it is uncordoned.
pod waiter 7 "{nodeSelector: {topology.kubernetes.io/zone: z3}}"
c=$(wait_cond waiter)
check_contains "waiter: pending while n-off is cordoned" "1 node(s) were unschedulable" "$c"
k uncordon n-off >/dev/null
check_eq "uncordon: the waiting pod is scheduled there" n-off "$(wait_node waiter)"

# ------------------------------------------------------------ preemption ----

cat <<YAML | k create -f - >/dev/null
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
YAML
pod low 800m "{nodeSelector: {kubernetes.io/hostname: n-small}}"
check_eq "low-priority pod on n-small" n-small "$(wait_node low)"
pod high 800m "{priorityClassName: high, nodeSelector: {kubernetes.io/hostname: n-small}}"
check_eq "high-priority pod preempts it and lands on n-small" n-small "$(wait_node high)"
check_contains "the victim is gone" "NotFound" "$(try k get pod low)"
check_contains "Preempted event on the victim" "Preempted by pod" \
    "$(k get events --field-selector involvedObject.name=low,reason=Preempted -o jsonpath='{.items[0].message}')"

# ------------------------------------------------------- schedulerName ----

pod other 100m "{schedulerName: someone-else}"
pod after 100m
check_match "a pod created after it is bound" '^n-' "$(wait_node after)"
check_eq "a pod for another scheduler is left alone" "" "$(node_of other)"

# -------------------------------------------------------------- binding ----

out=$(try k create --raw /api/v1/namespaces/default/pods/big/binding -f - <<<'{"apiVersion":"v1","kind":"Binding","metadata":{"name":"big"},"target":{"kind":"Node","name":"n-small"}}')
check_contains "a second binding is refused" 'is already assigned to node "n-big"' "$out"
check_eq "and changes nothing" n-big "$(node_of big)"

echo "scheduler: $PASSED passed, 0 failed"
