#!/usr/bin/env bash
# HA failure tests of the whole control plane (issue 11, item 3), on `skiff up` clusters (3
# masters and real agents, each host in its own network namespace, no route out).
#
# While a client churns pods (create, delete, through the masters in turn) and every phase rolls
# the Deployment `web` out again, the nemesis, one fault at a time:
#   1. kills the leader master with SIGKILL, then restarts it on its data;
#   2. pauses the (new) leader master with SIGSTOP, then resumes it;
#   3. cuts the leader master off from the other masters with nftables rules inside its
#      namespace, then heals the partition;
#   4. kills an agent with SIGKILL: its node turns unreachable after the grace period (6 s here,
#      --node-monitor-grace-period; the agents renew their Lease every second,
#      --node-lease-duration-seconds 4), its Deployment pods are evicted and replaced on the
#      other node; then the agent is restarted and its node is Ready again;
#   5. kills every master and agent at once (power loss), then restarts them all.
# After each fault the control plane must acknowledge writes again. At the end the cluster must
# converge (the last rollout complete, every node Ready), and tests/ha_check.py reads the
# store's whole history back: no pod bound to two nodes, ReplicaSets and the Deployment within
# their bounds at every revision, every acknowledged create kept and delete done, and the
# state machine's fence ledger shows no write of a deposed leader's components.
#
# Then the negative control: a second cluster whose masters run with --unsafe-no-fencing (no
# fence, and a deposed leader's components run on for 5 s). Its leader is paused, resumed, and
# the Deployment scaled while the deposed components still run: the checker must catch it.
#
# Env: SKIFF_BIN, CHURN_SECS (the churn's time bound, 300), KEEP_TMP=1 (keep logs on failure).
set -euo pipefail

SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
CHURN_SECS=${CHURN_SECS:-300}
HERE=$(cd "$(dirname "$0")" && pwd)
PASSED=0
SUITE=ha
# shellcheck source=tests/check.sh
source "$HERE/check.sh"
# shellcheck source=tests/up_hosts.sh
source "$HERE/up_hosts.sh"
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND" >&2; echo "ha: $PASSED passed, 1 failed"' ERR

TMP=$(mktemp -d /tmp/skiff-ha.XXXXXX)
CHURN_PID=""
UPS=()
cleanup() {
    local rc=$? d f
    set +e
    [ -n "$CHURN_PID" ] && kill "$CHURN_PID" 2>/dev/null && wait "$CHURN_PID" 2>/dev/null
    for d in "${UPS[@]}"; do
        if [ "$rc" -ne 0 ]; then
            mkdir -p "$TMP/logs-${d##*/}" && cp "$d"/*.log "$TMP/logs-${d##*/}/" 2>/dev/null
            for f in "$d"/*.log; do
                [ -f "$f" ] || continue
                echo "----- last 20 lines of ${f#"$TMP"/} -----" >&2
                tail -n 20 "$f" >&2
            done
        fi
        [ -f "$d/state.json" ] && "$SKIFF_BIN" down --dir "$d" >&2
    done
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT

# kubectl through master KM (one the nemesis is not acting on), or through master I only (km I ARGS)
KM=1
k() { km "$KM" "$@"; }
km() { "$KUBECTL" --kubeconfig "$UP/admin.kubeconfig" --request-timeout=10s --server "https://$SUBNET.1$1:6443" "${@:2}"; }

# start_cluster LABEL AGENTS MASTER_ARGS: a `skiff up` cluster in $TMP/LABEL; sets UP, NAME, SUBNET.
start_cluster() {
    UP=$TMP/$1
    NAME=$1$((RANDOM % 10000))
    SUBNET=10.252.$((RANDOM % 200 + 20))
    UPS+=("$UP")
    KM=1
    "$SKIFF_BIN" up --dir "$UP" --name "$NAME" --subnet "$SUBNET.0/24" --agents "$2" \
        --master-args "--node-monitor-grace-period 6 $3" --agent-args "--node-lease-duration-seconds 4" >"$TMP/$1-up.out" 2>"$TMP/$1-up.err" || {
        cat "$TMP/$1-up.err" >&2
        fail "skiff up starts the $1 cluster"
    }
    local h
    for h in m1 m2 m3 $(seq -f 'n%g' 1 "$2"); do save_cmdline "$h" "$(host_pid "$h")"; done
}

# The Deployment: pods tolerate an unreachable or not-ready node for 2 s (instead of the 300 s
# DefaultTolerationSeconds gives), so that an agent's death is repaired within the test.
deploy_web() {
    k apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: $1
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      containers:
      - {name: web, image: skiff.local/hello:1}
EOF
}

# A new rollout of web (PHASE=$1), through whichever master accepts it first (KM's first).
rollout() {
    local end=$((SECONDS + 30)) i
    while [ "$SECONDS" -lt "$end" ]; do
        for i in "$KM" 1 2 3; do
            km "$i" set env deployment/web "PHASE=$1" >/dev/null 2>&1 && return 0
        done
        sleep 0.3
    done
    return 1
}

# The churn: create a pod, delete the one made three steps before, through the masters in
# turn; an ack is written only after the API answered. Bounded by count and by CHURN_SECS.
churn() {
    local i=0 uid end=$((SECONDS + CHURN_SECS))
    while [ "$i" -lt 600 ] && [ "$SECONDS" -lt "$end" ] && [ ! -e "$TMP/stop-churn" ]; do
        local m=$((i % 3 + 1))
        # A master the nemesis acts on does not answer: give up on it soon, go on to the next.
        if uid=$(km "$m" --request-timeout=3s run "churn-$i" --image=skiff.local/hello:1 --restart=Never \
            -o jsonpath='{.metadata.uid}' -- sleep 3600 2>/dev/null) && [ -n "$uid" ]; then
            echo "create churn-$i $uid" >>"$TMP/acks"
        fi
        # Written before the call: a delete that gets no answer may still be applied.
        [ "$i" -ge 3 ] && echo "try-delete churn-$((i - 3))" >>"$TMP/acks"
        if [ "$i" -ge 3 ] && km "$m" --request-timeout=3s delete pod "churn-$((i - 3))" --wait=false >/dev/null 2>&1; then
            echo "delete churn-$((i - 3))" >>"$TMP/acks"
        fi
        i=$((i + 1))
        sleep 0.3
    done
}

# new_leader OLD: waits (10 s at most) for a majority to name a leader other than OLD; prints it.
new_leader() {
    local end=$((SECONDS + 10)) l
    while [ "$SECONDS" -lt "$end" ]; do
        l=$(leader_name 2>/dev/null || true)
        if [ -n "$l" ] && [ "$l" != "$1" ]; then echo "$l"; return 0; fi
        sleep 0.2
    done
    return 1
}
# other_than M: a master index other than M's
other_than() { local i; for i in 1 2 3; do [ "m$i" != "$1" ] && echo "$i" && return; done; }
acked_write_after() {
    local t0=$SECONDS
    rollout "$1" || fail "a write is acknowledged after $2"
    pass "after $2, a rollout (PHASE=$1) is acknowledged ($((SECONDS - t0)) s)"
}
rev_of() {
    ETCDCTL_API=3 etcdctl --endpoints="$SUBNET.1$1:2379" --command-timeout=2s endpoint status -w json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])'
}
# max_revision: the highest revision any master reports
max_revision() {
    { ETCDCTL_API=3 etcdctl --endpoints="$(master_endpoints)" --command-timeout=3s endpoint status -w json || true; } |
        python3 -c 'import json,sys; print(max(e["Status"]["header"]["revision"] for e in json.load(sys.stdin)))'
}
# read_history FILE END: the store's whole history (every key, from revision 1) into FILE, until
# an event of revision END arrived (60 s at most; the checker says so if it did not).
read_history() {
    python3 - "$1" "$2" "$SUBNET.11:2379" <<'PY'
import base64, json, subprocess, sys, time
out, end, ep = sys.argv[1], int(sys.argv[2]), sys.argv[3]
p = subprocess.Popen(["etcdctl", "--endpoints=" + ep, "watch", "--rev=1", "--prefix", "/registry/", "-w", "json"],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})
deadline, seen = time.time() + 60, 0
with open(out, "w") as f:
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    while seen < end and time.time() < deadline:
        if not sel.select(timeout=1):
            continue
        line = p.stdout.readline()
        if not line:
            break
        f.write(line.decode())
        if line.startswith(b"{"):
            for ev in json.loads(line).get("Events") or []:
                seen = max(seen, int(ev["kv"].get("mod_revision", 0)))
p.kill()
PY
}
# pause_leader: SIGSTOP to the leader master until another leads; sets L (paused), LPID, N (new).
pause_leader() {
    L=$(leader_name)
    [ -n "$L" ] || fail "a leader master is known before the pause"
    LPID=$(pgrep -f -- "master --name $L --data-dir $UP/$L " | head -n 1 || true)
    [ -n "$LPID" ] || fail "the pid of leader $L"
    KM=$(other_than "$L")
    kill_host "$L" "$LPID" STOP
    N=$(new_leader "$L") || { kill -CONT "$LPID"; fail "another master leads while $L is paused"; }
}
metrics_of() { curl -sf --max-time 3 "http://$SUBNET.1$1:2381/metrics"; }

# ============================================================ the main run ==
out=$(python3 "$HERE/ha_check_test.py" 2>&1) || fail "the checker catches each violation in made-up histories" "$out"
pass "the checker catches each violation in made-up histories ($(grep -c '^ok' <<<"$out") cases)"
start_cluster ha 2 ""
pass "skiff up: 3 masters, 2 agents ($NAME, $SUBNET.0/24)"
deploy_web 4
check_contains "web rolls out" "successfully rolled out" "$(k rollout status deployment/web --timeout=90s 2>&1)"
churn &
CHURN_PID=$!

# 1. The leader master, killed.
L=$(leader_name)
check_match "a leader master is known" '^m[123]$' "$L"
KM=$(other_than "$L")
kill_host "$L" "$(host_pid "$L")" KILL
N=$(new_leader "$L") || fail "another master leads after $L was killed"
pass "leader $L killed: $N leads"
acked_write_after 1 "the leader's kill"
LPID=$(restart_host "$L")
wait_for 30 km "${L#m}" get deployment web || fail "$L restarted on its data serves the API"
pass "$L restarted on its data (pid $LPID) serves the API"

# 2. The leader master, paused.
new_leader "" >/dev/null || true
pause_leader
pass "leader $L paused: $N leads"
acked_write_after 2 "the leader's pause"
kill_host "$L" "$LPID" CONT
wait_for 30 km "${L#m}" get deployment web || fail "$L resumed serves the API"
pass "$L resumed serves the API"

# 3. The leader master, cut off from the other masters (both ways), then healed.
L=$(leader_name)
[ -n "$L" ] || fail "a leader master is known before the partition"
KM=$(other_than "$L")
others=$(for i in 1 2 3; do [ "m$i" != "$L" ] && printf '%s, ' "$SUBNET.1$i"; done)
ip netns exec "$NAME-$L" nft -f - <<EOF
table inet ha-partition {
    chain in { type filter hook input priority 0; ip saddr { ${others%, } } drop; }
    chain out { type filter hook output priority 0; ip daddr { ${others%, } } drop; }
}
EOF
N=$(new_leader "$L") || fail "the majority elects a leader when $L is cut off"
pass "leader $L cut off from the other masters: $N leads the majority"
acked_write_after 3 "the partition"
target=$(rev_of "${N#m}") || fail "the revision of the majority's leader $N"
ip netns exec "$NAME-$L" nft delete table inet ha-partition
wait_for 30 eval '[ "$(rev_of "${L#m}")" -ge "$target" ]' || fail "the healed member catches up"
pass "partition healed: $L caught up with the majority's revision $target"
same_revision() {
    ETCDCTL_API=3 etcdctl --endpoints="$(master_endpoints)" --command-timeout=2s endpoint status -w json | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if len(d) == 3 and len({e["Status"]["header"]["revision"] for e in d}) == 1 else 1)'
}

# 4. An agent, killed: its node becomes unreachable, web's pods there are replaced.
running_node() { k get pods -l app=web -o jsonpath='{.items[?(@.status.phase=="Running")].spec.nodeName}' | awk '{print $1}'; }
wait_for 60 eval '[ -n "$(running_node)" ]' || fail "web has a running pod" "$(k get pods -o wide 2>&1)" "$(k describe deployment web 2>&1 | tail -n 20)"
V=$(running_node)
check_match "web runs on a node whose agent is killed next" '^n[12]$' "$V"
W=n$((3 - ${V#n}))
kill_host "$V" "$(host_pid "$V")" KILL
ready_of() { k get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}'; }
wait_for 40 eval '[ "$(ready_of "$V")" = Unknown ]' || fail "$V's agent killed: the node turns Ready=Unknown"
pass "$V's agent killed: the node is Ready=Unknown after the grace period"
# Pods left on V are being deleted (their deletion waits for V's agent); none is live there.
live_on_victim() {
    k get pods -l app=web -o jsonpath="{range .items[?(@.spec.nodeName==\"$V\")]}{.metadata.deletionTimestamp}|{.metadata.name} {end}" |
        tr ' ' '\n' | grep '^|' || true
}
replaced() { [ "$(k get deployment web -o jsonpath='{.status.availableReplicas}')" = 4 ] && [ -z "$(live_on_victim)" ]; }
wait_for 60 replaced || fail "web's pods on $V are evicted and replaced on $W" "$(k get pods -l app=web -o wide 2>&1)" \
    "$(k get nodes -o wide 2>&1)" "$(k describe pods -l app=web 2>&1 | grep -A8 '^Events' | head -n 30)"
pass "web's pods on $V evicted and replaced: 4 available, none live on $V"
restart_host "$V" >/dev/null
wait_for 40 eval '[ "$(ready_of "$V")" = True ]' || fail "$V's agent restarted: the node is Ready again"
pass "$V's agent restarted: the node is Ready again"

# 5. Power loss: every master and agent killed at once, then all restarted.
for h in m1 m2 m3 n1 n2; do
    for p in $(pgrep -f -- " --name $h --data-dir $UP/$h " || true); do kill_host "$h" "$p" KILL; done
done
sleep 1
for h in m1 m2 m3 n1 n2; do restart_host "$h" >/dev/null; done
acked_write_after 5 "every master and agent was killed and restarted"
both_ready() { [ "$(k get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{" "}{end}')" = "True True " ]; }
wait_for 60 both_ready || fail "after the power loss both nodes are Ready"
pass "after the power loss both nodes are Ready"

# ------------------------------------------------------------------ converge --
touch "$TMP/stop-churn"
wait "$CHURN_PID" || true
CHURN_PID=""
check_contains "the last rollout completes" "successfully rolled out" "$(k rollout status deployment/web --timeout=120s 2>&1)"
check_eq "web runs the last template" "PHASE=5" \
    "$(k get deployment web -o jsonpath='{.spec.template.spec.containers[0].env[0].name}={.spec.template.spec.containers[0].env[0].value}')"
k get pods -o json >"$TMP/final.json"
creates=$(grep -c '^create churn-' "$TMP/acks" || true)
check_match "the churn was acknowledged (at least 10 creates: $creates)" '^([1-9][0-9]+)$' "$creates"

# ------------------------------------------------------------------- history --
END=$(max_revision) || fail "the masters' revision"
# Quiet now: the members reach one revision, so their fence ledgers are read at one point.
wait_for 10 same_revision || true
for i in 1 2 3; do metrics_of "$i" >"$TMP/m$i.prom" || fail "metrics of m$i"; done
read_history "$TMP/history.json" "$END"
if out=$(python3 "$HERE/ha_check.py" --history "$TMP/history.json" --end-rev "$END" --deployment default/web \
    --metrics "$TMP"/m{1,2,3}.prom --acks "$TMP/acks" --final "$TMP/final.json" 2>&1); then
    pass "the store's history: $(tr '\n' ';' <<<"$out")"
else
    fail "the store's history holds no violation" "$out"
fi
"$SKIFF_BIN" down --dir "$UP" >"$TMP/down.out" 2>&1 || { cat "$TMP/down.out" >&2; fail "skiff down"; }
pass "skiff down removes the cluster"

# ======================================================= the negative control ==
# Without the fence, a deposed leader's controllers act for a moment on what they believe:
# here they create pods the new leader's controllers create too.
start_cluster neg 1 "--unsafe-no-fencing"
deploy_web 2
check_contains "(no fencing) web rolls out" "successfully rolled out" "$(k rollout status deployment/web --timeout=90s 2>&1)"
caught=""
for try in 1 2 3; do
    pause_leader
    kill_host "$L" "$LPID" CONT
    sleep 1
    wait_for 10 km "${N#m}" scale deployment web --replicas=$((2 + 3 * try)) || fail "(no fencing) scale web"
    sleep 6
    metrics_of "${N#m}" >"$TMP/neg.prom" || true
    # Exit 1: a violation found (any other status is the checker failing, not a catch).
    rc=0
    python3 "$HERE/ha_check.py" --ledger-only --metrics "$TMP/neg.prom" >"$TMP/neg-ledger.out" 2>&1 || rc=$?
    [ "$rc" -eq 1 ] && grep -q "a deposed leader's components wrote" "$TMP/neg-ledger.out" && caught=$try && break
done
check_match "(no fencing) a deposed leader's components wrote in a later term" '^[123]$' "$caught"
END=$(max_revision) || fail "(no fencing) the masters' revision"
read_history "$TMP/neg-history.json" "$END"
out=$(python3 "$HERE/ha_check.py" --history "$TMP/neg-history.json" --end-rev "$END" --deployment default/web \
    --metrics "$TMP/neg.prom" 2>&1) && fail "(no fencing) the checker catches the unfenced writes" "$out"
check_contains "(no fencing) the checker catches the deposed leader's writes" "a deposed leader's components wrote" "$out"
echo "negative control, the checker said: $(grep -c VIOLATION <<<"$out") violations, e.g. $(grep -m 2 VIOLATION <<<"$out" | tr '\n' ' ')"
"$SKIFF_BIN" down --dir "$UP" >"$TMP/down.out" 2>&1 || { cat "$TMP/down.out" >&2; fail "skiff down (negative control)"; }
pass "skiff down removes the negative control's cluster"

echo "ha: $PASSED passed, 0 failed"
