#!/usr/bin/env bash
# The seed's flow end to end on a `skiff up` cluster (3 masters, 2 agents, each in its own
# network namespace on a bridge `skiff up` makes; no route out), with stock kubectl from the
# host: a Deployment of the built-in sample image runs on both agents, a Service in front of
# it answers a client pod by DNS name, `kubectl logs`, `exec`, `scale`, `rollout` (update,
# status, undo) work; then `skiff down` leaves nothing behind (processes, namespaces, bridge, mounts,
# cgroups, routes, nftables).
#
# Env: SKIFF_BIN, KEEP_TMP=1 (keep the cluster's logs after a failure).
set -euo pipefail

SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
HERE=$(cd "$(dirname "$0")" && pwd)
PASSED=0
SUITE=e2e
# shellcheck source=tests/check.sh
source "$HERE/check.sh"
# shellcheck source=tests/up_hosts.sh
source "$HERE/up_hosts.sh"
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND" >&2; echo "e2e: $PASSED passed, 1 failed"' ERR

TMP=$(mktemp -d /tmp/skiff-e2e.XXXXXX)
UP=$TMP/up
NAME=e2e$((RANDOM % 10000))
SUBNET=10.251.$((RANDOM % 200 + 20))
cleanup() {
    local rc=$?
    set +e
    if [ "$rc" -ne 0 ]; then
        for f in "$UP"/*.log; do
            [ -f "$f" ] || continue
            echo "----- last 20 lines of ${f#"$TMP"/} -----" >&2
            tail -n 20 "$f" >&2
        done
    fi
    [ -f "$UP/state.json" ] && "$SKIFF_BIN" down --dir "$UP" >&2
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT

k() { "$KUBECTL" --kubeconfig "$UP/admin.kubeconfig" --request-timeout=20s "$@"; }

# ---------------------------------------------------------------- skiff up --
t0=$(date +%s.%N)
"$SKIFF_BIN" up --dir "$UP" --name "$NAME" --subnet "$SUBNET.0/24" >"$TMP/up.out" 2>"$TMP/up.err" || {
    cat "$TMP/up.err" >&2
    fail "skiff up starts a cluster"
}
echo "skiff up: Ready in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
check_contains "skiff up reports progress and a Ready cluster" "cluster Ready in" "$(cat "$TMP/up.err")"
check_contains "skiff up prints what to try next" "kubectl create deployment hello --image=skiff.local/hello:1" "$(cat "$TMP/up.out")"
check_contains "a second skiff up on the same dir is refused" "is up already" \
    "$("$SKIFF_BIN" up --dir "$UP" --name "$NAME" 2>&1 || true)"
check_eq "five hosts, each in its own network namespace" \
    "$NAME-m1 $NAME-m2 $NAME-m3 $NAME-n1 $NAME-n2" "$(ip netns list | awk '{print $1}' | grep "^$NAME-" | sort | xargs)"
check_eq "no host namespace has a default route" "" \
    "$(for h in m1 m2 m3 n1 n2; do ip -n "$NAME-$h" route show default; done)"
# The hosts cannot open connections to this machine (its services stay out of the cluster's
# reach), though kubectl from here reaches them. Control: the same listener answers from here.
timeout 20 python3 -m http.server 18080 --bind "$SUBNET.1" >/dev/null 2>&1 &
wait_for 5 curl -sf --max-time 1 "http://$SUBNET.1:18080/" || true
check_eq "the machine's own services are not reachable from the hosts" "here=200 from-n1=000" \
    "here=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$SUBNET.1:18080/") from-n1=$(
        ip netns exec "$NAME-n1" curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$SUBNET.1:18080/" || true)"
check_eq "both nodes Ready" "n1=True n2=True" \
    "$(k get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}' | xargs)"

status_counts() {
    local st
    st=$("$SKIFF_BIN" status --dir "$UP" 2>&1 || true)
    echo "$(grep -c '^m[123] ' <<<"$st") $(grep -Ec '^m[123] +[0-9.:]+ +\* ' <<<"$st") $(grep -Ec '^n[12] +True ' <<<"$st")"
}
# Right after start-up a deposed candidate may still believe it leads for a moment.
wait_for 10 eval '[ "$(status_counts)" = "3 1 2" ]' || true
check_eq "skiff status: three members, one leader, both nodes Ready" "3 1 2" "$(status_counts)"

# ------------------------------------------------------- deployment, service --
k create deployment hello --image=skiff.local/hello:1 --replicas=4 >/dev/null
k expose deployment hello --port=80 --target-port=8080 >/dev/null
check_contains "the deployment rolls out" "successfully rolled out" \
    "$(k rollout status deployment/hello --timeout=90s 2>&1)"
check_eq "its pods run on both agents" "n1 n2" \
    "$(k get pods -l app=hello -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u | xargs)"
UIDS=$(k get pods -l app=hello -o jsonpath='{.items[*].metadata.uid}')

k run client --image=skiff.local/hello:1 --restart=Never -- \
    sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- hello.default.svc.cluster.local && exit 0; sleep 1; done; exit 1' >/dev/null
done_ok() { [ "$(k get pod client -o jsonpath='{.status.phase}')" = Succeeded ]; }
wait_for 60 done_ok || true
check_eq "a client pod reaches the service by DNS name" Succeeded "$(k get pod client -o jsonpath='{.status.phase}')"
check_match "kubectl logs: the client got a page from a hello pod" '^hello from hello-' "$(k logs client 2>&1)"
check_contains "kubectl logs of a deployment's pod" "hello: serving /www on :8080" "$(k logs deployment/hello 2>&1)"
check_match "kubectl exec into a deployment's pod: it reaches the service by name" '^hello from hello-' \
    "$(k exec deployment/hello -- wget -qO- hello 2>&1)"
check_eq "kubectl exec -i: stdin in, exit code out" "ping|5" \
    "$(out=$(echo ping | k exec -i deployment/hello -- sh -c 'read l; echo $l; exit 5' 2>/dev/null) && rc=0 || rc=$?; echo "$out|$rc")"

# ---------------------------------------------------------------- scale ----
k scale deployment hello --replicas=6 >/dev/null
ready_is() { [ "$(k get deployment hello -o jsonpath='{.status.readyReplicas}')" = "$1" ]; }
wait_for 60 ready_is 6 || true
check_eq "kubectl scale up: 6 ready replicas" 6 "$(k get deployment hello -o jsonpath='{.status.readyReplicas}')"
k scale deployment hello --replicas=2 >/dev/null
pods_are() { [ "$(k get pods -l app=hello --no-headers 2>/dev/null | wc -l)" = "$1" ]; }
wait_for 60 pods_are 2 || true
check_eq "kubectl scale down: 2 pods left" 2 "$(k get pods -l app=hello --no-headers | wc -l)"

# -------------------------------------------------------------- rollout ----
k set env deployment/hello GREETING=v2 >/dev/null
check_contains "kubectl rollout of a new template" "successfully rolled out" \
    "$(k rollout status deployment/hello --timeout=90s 2>&1)"
# Pods of the old template may still be terminating after the rollout is reported done.
templates() { k get pods -l app=hello -o jsonpath='{range .items[*]}{.spec.containers[0].env[0].name}={.spec.containers[0].env[0].value}{"\n"}{end}' | sort -u | xargs; }
wait_for 60 eval '[ "$(templates)" = GREETING=v2 ]' || true
check_eq "the new pods run the new template" "GREETING=v2" \
    "$(k get pods -l app=hello -o jsonpath='{range .items[*]}{.spec.containers[0].env[0].name}={.spec.containers[0].env[0].value}{"\n"}{end}' | sort -u | xargs)"
check_match "rollout history has two revisions" '^2 ' "$(k rollout history deployment/hello | tail -n 2 | head -n 1)"
k rollout undo deployment/hello >/dev/null
check_contains "kubectl rollout undo rolls back" "successfully rolled out" \
    "$(k rollout status deployment/hello --timeout=90s 2>&1)"
only_old() { [ -z "$(k get pods -l app=hello -o jsonpath='{.items[*].spec.containers[0].env}')" ] && pods_are 2; }
wait_for 60 only_old || true
check_eq "after undo the pods have the first template again" "" \
    "$(k get pods -l app=hello -o jsonpath='{.items[*].spec.containers[0].env}')"
check_eq "the service still answers after the rollouts" Succeeded "$(
    k run client2 --image=skiff.local/hello:1 --restart=Never -- sh -c 'wget -qO- hello' >/dev/null
    c2() { [ "$(k get pod client2 -o jsonpath='{.status.phase}')" = Succeeded ]; }
    wait_for 60 c2 || true
    k get pod client2 -o jsonpath='{.status.phase}'
)"

# ------------------------------------------------- the leader master dies --
# The member a majority names as leader (etcdctl endpoint status), killed with SIGKILL during a
# scale; kubectl goes on through another master, the deployment converges, the killed master is
# restarted on its data and catches up.
LEADER=$(leader_name)
check_match "a leader master is known" '^m[123]$' "$LEADER"
LPID=$(host_pid "$LEADER")
OTHER=$(for i in 1 2 3; do [ "m$i" != "$LEADER" ] && echo "$SUBNET.1$i" && break; done)
ko() { k --server "https://$OTHER:6443" "$@"; }
save_cmdline "$LEADER" "$LPID"
kill_host "$LEADER" "$LPID" KILL
scaled() { ko scale deployment hello --replicas=4 >/dev/null; }
wait_for 20 scaled || true
wait_for 60 eval '[ "$(ko get deployment hello -o jsonpath={.status.readyReplicas})" = 4 ]' || true
check_eq "leader $LEADER killed: kubectl scale through another master converges to 4 ready" 4 \
    "$(ko get deployment hello -o jsonpath='{.status.readyReplicas}')"
check_contains "skiff status shows the killed master unreachable" "$LEADER" \
    "$("$SKIFF_BIN" status --dir "$UP" 2>&1 | grep unreachable || true)"
NEW=$(leader_name 2>/dev/null || true)
check_match "another master leads" "^m[123]$" "$([ "$NEW" != "$LEADER" ] && echo "$NEW")"
i=${LEADER#m}
restart_host "$LEADER" >/dev/null
back() { [ "$(k --server "https://$SUBNET.1$i:6443" get deployment hello -o jsonpath='{.spec.replicas}')" = 4 ]; }
wait_for 30 back || true
check_eq "the killed master restarts on its data and serves the new state" 4 \
    "$(k --server "https://$SUBNET.1$i:6443" get deployment hello -o jsonpath='{.spec.replicas}' 2>&1)"

# ------------------------------------------------------------- skiff down --
UIDS="$UIDS $(k get pods -A -o jsonpath='{.items[*].metadata.uid}')"
"$SKIFF_BIN" down --dir "$UP" >"$TMP/down.out" 2>&1 || {
    cat "$TMP/down.out" >&2
    fail "skiff down removes the cluster"
}
pass "skiff down removes the cluster ($(tail -n 1 "$TMP/down.out"))"
check_eq "no namespace left" "" "$(ip netns list | grep "^$NAME-" || true)"
check_eq "no bridge left" "" "$(ip -o link show "$NAME-br" 2>/dev/null || true)"
check_eq "no mount left" "" "$(grep " $UP" /proc/self/mountinfo || true)"
check_eq "no process left" "" "$(pgrep -af -- "--data-dir $UP" || true; pgrep -af "agent-shim --root $UP" || true)"
left=""
for u in $UIDS; do for d in /sys/fs/cgroup/*/skiff/pod"$u" /sys/fs/cgroup/skiff/pod"$u"; do [ -d "$d" ] && left="$left $d"; done; done
check_eq "no pod cgroup left" "" "$left"
check_eq "no nftables table left on the host" "" "$(nft list tables | grep -e "$NAME" -e ' skiff$' || true)"
check_eq "no state dir left" "" "$(ls -A "$UP" 2>/dev/null || true)"

echo "e2e: $PASSED passed, 0 failed"
