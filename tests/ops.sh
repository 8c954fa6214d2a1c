#!/usr/bin/env bash
# Operations test (issue 11, item 4): what an operator does to a running cluster, while a client
# writes without pause.
#
#   1. three masters (store + API) on loopback; `skiff member list` shows them and the leader;
#   2. rolling restart: each master in turn stopped (SIGTERM) and started again on its data,
#      the next one only after it has caught up; the writer's longest wait for an ack is measured;
#   3. membership under load: a learner registered with `skiff member add` and removed unstarted,
#      then `skiff member remove` of a voter and a new member that joins with `--join`;
#   4. backup: `skiff snapshot save` (and `etcdctl snapshot save`), `skiff snapshot status`;
#   5. disaster recovery: every master killed; `skiff snapshot restore` makes three data dirs of
#      a new cluster on other addresses; it elects, serves every acknowledged write and every
#      Kubernetes object of the snapshot, takes new writes, and the old admin credentials work.
#
# Hosts 127.0.6.1-4 (first cluster) and 127.0.6.11-13 (restored); ports PORT_BASE (client),
# +1 (peer), +2 (metrics), +3 (Kubernetes API). KEEP_TMP=1 keeps the temp dir.
set -euo pipefail

SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
PORT_BASE=${PORT_BASE:-24790}
CPORT=$PORT_BASE PPORT=$((PORT_BASE + 1)) MPORT=$((PORT_BASE + 2)) APORT=$((PORT_BASE + 3))
while read -r v; do unset "$v"; done < <(compgen -e | grep '^ETCDCTL_' || true)
export ETCDCTL_API=3

declare -A IP=([m1]=127.0.6.1 [m2]=127.0.6.2 [m3]=127.0.6.3 [m4]=127.0.6.4 [m5]=127.0.6.5
    [r1]=127.0.6.11 [r2]=127.0.6.12 [r3]=127.0.6.13)
declare -A PID=() EXTRA=()
INITIAL="m1=${IP[m1]}:$PPORT,m2=${IP[m2]}:$PPORT,m3=${IP[m3]}:$PPORT"
RESTORED="r1=${IP[r1]}:$PPORT,r2=${IP[r2]}:$PPORT,r3=${IP[r3]}:$PPORT"

TMP=$(mktemp -d /tmp/skiff-ops.XXXXXX)
BG_PIDS=()
PASSED=0
SUITE=ops
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/check.sh
source "$HERE/check.sh"
trap cleanup EXIT
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND" >&2; echo "ops: $PASSED passed, 1 failed"' ERR

require_free_ports "${IP[*]}" "$CPORT $PPORT $MPORT $APORT"

# ------------------------------------------------------------------ helpers --

ep() { echo "${IP[$1]}:$CPORT"; }
skiff() { timeout 60 "$SKIFF_BIN" "$@"; }
ectl() { timeout 30 etcdctl --dial-timeout=2s --command-timeout=10s "$@"; }
# k MEMBER ARGS: kubectl against MEMBER's API server with m1's admin credentials
k() { "$KUBECTL" --kubeconfig "$TMP/m1/admin.kubeconfig" --request-timeout=15s --server "https://${IP[$1]}:$APORT" "${@:2}"; }

# start NAME: a master on its data dir; its cluster flags are EXTRA[NAME]
start() {
    local n=$1
    # shellcheck disable=SC2086 # EXTRA holds several flags
    "$SKIFF_BIN" master --name "$n" --data-dir "$TMP/$n" \
        --listen-peer "${IP[$n]}:$PPORT" --listen-client "${IP[$n]}:$CPORT" \
        --listen-metrics "${IP[$n]}:$MPORT" --listen-api "${IP[$n]}:$APORT" \
        --heartbeat-ms 50 --election-timeout-ms 400 ${EXTRA[$n]} >>"$TMP/$n.log" 2>&1 &
    PID[$n]=$!
    BG_PIDS+=($!)
}

metric() { curl -s --max-time 2 "http://${IP[$1]}:$MPORT/metrics" | awk -v m="$2" '$1 == m {print int($2)}'; }
healthy() { curl -sf --max-time 2 "http://${IP[$1]}:$MPORT/healthz" >/dev/null; }
api_ready() { [ -f "$TMP/$1/admin.kubeconfig" ] && curl -sk --max-time 2 "https://${IP[$1]}:$APORT/readyz" >/dev/null; }
# caught_up NAME REV: NAME has applied at least revision REV
caught_up() { [ "$(metric "$1" skiff_mvcc_revision)" -ge "$2" ] 2>/dev/null; }
# top_rev NAME...: the highest revision the running ones among NAME... have applied
top_rev() { local n; for n in "$@"; do metric "$n" skiff_mvcc_revision || true; done | sort -n | tail -1; }
# stop NAME: SIGTERM; sets RC to its exit status once it has stopped (at most 20 s)
stop() {
    local n=$1
    RC=0
    kill -TERM "${PID[$n]}"
    timeout 20 tail --pid="${PID[$n]}" -f /dev/null || fail "$n stops within 20 s of SIGTERM"
    wait "${PID[$n]}" || RC=$?
}

# missing_acked LABEL: reads `etcdctl get -w json` on stdin; prints LABEL and how many acknowledged
# writes of $TMP/acks are missing or wrong in it, or nothing when all are there.
missing_acked() {
    python3 -c '
import base64, json, sys
acked = {int(l.split()[0]) for l in open(sys.argv[1]) if not l.startswith("gave-up")}
got = {base64.b64decode(k["key"]).decode(): base64.b64decode(k["value"]).decode() for k in json.load(sys.stdin).get("kvs", [])}
bad = [i for i in acked if got.get("w/%d" % i) != "v%d" % i]
print("%s%d of %d acknowledged keys missing or wrong" % (sys.argv[2], len(bad), len(acked)) if bad else "", end="")' "$TMP/acks" "$1"
}

# ------------------------------------------------------------ the cluster --
for n in m1 m2 m3; do
    EXTRA[$n]="--initial-cluster $INITIAL"
    start "$n"
done
for n in m1 m2 m3; do wait_for 60 api_ready "$n" || fail "$n serves the Kubernetes API"; done
pass "three masters serve the store and the Kubernetes API"
EPS="$(ep m1),$(ep m2),$(ep m3)"

# Names and client URLs are published shortly after start.
three_named() { [ "$(skiff member list --endpoints "$EPS" | awk 'NR > 1 && $2 ~ /^m[123]$/ && $5 ~ /^http/' | wc -l)" = 3 ]; }
wait_for 20 three_named || fail "member list names three started members" "$(skiff member list --endpoints "$EPS" 2>&1)"
LIST=$(skiff member list --endpoints "$EPS")
check_eq "member list: one leader and two followers" "follower follower leader" "$(awk 'NR > 1 {print $3}' <<<"$LIST" | sort | xargs)"
check_match "member list: peer URLs as etcd prints them" "m2 +follower +http://${IP[m2]}:$PPORT|m2 +leader +http://${IP[m2]}:$PPORT" "$LIST"
check_eq "skiff and etcdctl agree on the member ids" \
    "$(awk 'NR > 1 {print $1}' <<<"$LIST" | sort | xargs)" \
    "$(ectl --endpoints="$EPS" member list | awk -F', ' '{printf "%016s\n", $1}' | tr ' ' 0 | sort | xargs)"
ERR=$(skiff member promote m1 --endpoints "$EPS" 2>&1) && fail "promoting a voter is refused" "$ERR"
check_contains "promoting a voter is refused, saying why" "m1 is a voter already" "$ERR"
ERR=$(skiff member remove m9 --endpoints "$EPS" 2>&1) && fail "removing an unknown member is refused" "$ERR"
check_contains "removing an unknown member names it" 'no member named or numbered "m9"' "$ERR"

k m1 create namespace ops >/dev/null
k m1 -n ops create configmap before-restarts --from-literal=at=start >/dev/null

# ---------------------------------------------------------------- writer --
# Puts w/1, w/2, ... through all the members' endpoints; each key retried until acknowledged
# (at most 30 tries); an ack is logged with its time. Stops at $TMP/stop, at 20000 keys or 600 s.
writer() {
    local i=1 tries eps=$1
    local end=$((SECONDS + 600))
    while [ ! -e "$TMP/stop" ] && [ "$i" -le 20000 ] && [ "$SECONDS" -lt "$end" ]; do
        tries=0
        until etcdctl --endpoints="$eps" --dial-timeout=1s --command-timeout=2s put "w/$i" "v$i" >/dev/null 2>&1; do
            tries=$((tries + 1))
            if [ "$tries" -ge 30 ]; then
                echo "gave-up $i" >>"$TMP/acks"
                return 0
            fi
            sleep 0.1
        done
        echo "$i $(date +%s.%N)" >>"$TMP/acks"
        i=$((i + 1))
    done
}
: >"$TMP/acks"
writer "$EPS" &
WRITER=$!
BG_PIDS+=($!)
acks() { grep -vc gave-up "$TMP/acks" || true; }
acked_20() { [ "$(acks)" -ge 20 ]; }
wait_for 20 acked_20 || fail "the writer's puts are acknowledged"

# ------------------------------------------------------- rolling restart --
for n in m1 m2 m3; do
    before=$(acks)
    t0=$(date +%s.%N)
    stop "$n"
    check_eq "$n exits 0 on SIGTERM" 0 "$RC"
    target=$(top_rev m1 m2 m3)
    start "$n"
    wait_for 60 healthy "$n" || fail "$n restarted on its data is healthy"
    wait_for 60 caught_up "$n" "$target" || fail "$n catches up to revision $target after its restart"
    wait_for 60 api_ready "$n" || fail "$n serves the API again"
    k "$n" -n ops create configmap "restarted-$n" --from-literal=at="$n" >/dev/null ||
        fail "$n takes a Kubernetes write after its restart"
    back=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
    pass "$n restarted and caught up in ${back} s; $(($(acks) - before)) writes acknowledged meanwhile"
done
check_eq "no write gave up during the rolling restart" "" "$(grep gave-up "$TMP/acks" || true)"
GAP=$(awk '$1 != "gave-up" {if (p) {g = $2 - p; if (g > m) m = g}; p = $2} END {printf "%.2f", m}' "$TMP/acks")
echo "longest wait between two acknowledged writes so far: ${GAP} s"
if awk -v g="$GAP" 'BEGIN {exit !(g < 8)}'; then
    pass "writes kept being acknowledged through the rolling restart (longest gap ${GAP} s < 8 s)"
else
    fail "writes kept being acknowledged through the rolling restart" "longest gap ${GAP} s"
fi

# ---------------------------------------------------- membership changes --
OUT=$(skiff member add m5 --peer "${IP[m5]}:$PPORT" --learner --endpoints "$EPS")
check_contains "member add registers an unstarted learner and says how to start it" \
    "--join" "$OUT"
LIST=$(skiff member list --endpoints "$EPS")
check_match "the added learner is listed unstarted" "\(unstarted\) +learner +http://${IP[m5]}:$PPORT" "$LIST"
ID5=$(awk '/unstarted/ {print $1}' <<<"$LIST")
skiff member remove "$ID5" --endpoints "$EPS" >/dev/null
check_not_contains "an unstarted learner is removed by its hex id" "unstarted" "$(skiff member list --endpoints "$EPS")"

OUT=$(skiff member remove m3 --endpoints "$EPS")
check_contains "member remove names the member removed" "(m3) removed" "$OUT"
stop m3
gone_m3() { ! skiff member list --endpoints "$(ep m1),$(ep m2)" | grep -q ' m3 '; }
wait_for 20 gone_m3 || fail "m3 is no longer listed"
pass "m3 removed under load and stopped (exit $RC)"
EXTRA[m4]="--join $(ep m1)"
start m4
m4_voter() { skiff member list --endpoints "$(ep m1),$(ep m2)" | grep -Eq " m4 +(follower|leader) "; }
wait_for 60 m4_voter || fail "m4 joins as a voter" "$(skiff member list --endpoints "$(ep m1),$(ep m2)" 2>&1)"
EPS="$(ep m1),$(ep m2),$(ep m4)"
wait_for 60 caught_up m4 "$(top_rev m1 m2)" || fail "m4 catches up with the cluster"
check_eq "three voters again: m1, m2, m4" "m1 m2 m4" \
    "$(skiff member list --endpoints "$EPS" | awk 'NR > 1 {print $2}' | sort | xargs)"
pass "m4 joined under load and caught up"

# Hand the writer the new endpoints: stop the first, start another on the new list.
touch "$TMP/stop"
wait "$WRITER" || true
rm -f "$TMP/stop"
writer "$EPS" &
WRITER=$!
BG_PIDS+=($!)
sleep 2
touch "$TMP/stop"
wait "$WRITER" || true
check_eq "no write gave up during the membership changes" "" "$(grep gave-up "$TMP/acks" || true)"
ACKED=$(acks)
echo "acknowledged writes: $ACKED (the second writer rewrote the first keys)"

# Every acknowledged key holds its value on every member (serializable reads, each member's own state).
MISSING=$(for n in m1 m2 m4; do
    ectl --endpoints="$(ep "$n")" get w/ --prefix --consistency=s -w json | missing_acked "$n: "
done)
check_eq "every acknowledged write is on every member" "" "$MISSING"

# ---------------------------------------------------------------- backup --
OUT=$(skiff snapshot save "$TMP/snap.db" --endpoints "$(ep m1)")
check_contains "snapshot save reports the file" "Snapshot saved at $TMP/snap.db" "$OUT"
ectl --endpoints="$(ep m2)" snapshot save "$TMP/etcdctl.db" >/dev/null
STATUS=$(skiff snapshot status "$TMP/snap.db")
SNAP_REV=$(awk 'NR == 2 {print $1}' <<<"$STATUS")
SAVED_REV=$(grep -o 'revision [0-9]*' <<<"$OUT" | awk '{print $2}')
if [ "$SNAP_REV" -ge "$SAVED_REV" ] 2>/dev/null; then pass "snapshot status reads the revision ($SNAP_REV)"; else fail "snapshot status reads the revision" "$STATUS" "$OUT"; fi
check_match "snapshot status reads a file etcdctl saved" '^[0-9]+ ' "$(skiff snapshot status "$TMP/etcdctl.db" | sed -n 2p)"
ERR=$(skiff snapshot save /nonexistent/dir/x.db --endpoints "$(ep m1)" 2>&1) && fail "saving into a missing dir fails" "$ERR"
check_contains "saving into a missing dir names the path" "/nonexistent/dir/x.db" "$ERR"
# Written after the snapshot: must not be in the restored cluster.
ectl --endpoints="$EPS" put after-snapshot yes >/dev/null
k m1 -n ops create configmap after-snapshot --from-literal=at=late >/dev/null

# A damaged copy is refused and leaves nothing behind.
cp "$TMP/snap.db" "$TMP/bad.db"
printf '\x01' | dd of="$TMP/bad.db" bs=1 seek=100 conv=notrunc status=none
ERR=$(skiff snapshot restore "$TMP/bad.db" --name r1 --data-dir "$TMP/bad-r1" --initial-cluster "$RESTORED" 2>&1) &&
    fail "a damaged snapshot is refused" "$ERR"
check_contains "a damaged snapshot is refused by its SHA-256" "SHA-256 does not match" "$ERR"
check_eq "a refused restore leaves no data dir" "" "$(ls -A "$TMP/bad-r1" 2>/dev/null || true)"

# ------------------------------------------------------ disaster recovery --
for n in m1 m2 m4; do kill -9 "${PID[$n]}"; wait "${PID[$n]}" 2>/dev/null || true; done
pass "every master of the first cluster killed"
for n in r1 r2 r3; do
    OUT=$(skiff snapshot restore "$TMP/snap.db" --name "$n" --data-dir "$TMP/$n" --initial-cluster "$RESTORED")
    check_contains "restore $n at the snapshot's revision" "at revision $SNAP_REV " "$OUT"
done
ERR=$(skiff snapshot restore "$TMP/snap.db" --name r1 --data-dir "$TMP/r1" --initial-cluster "$RESTORED" 2>&1) &&
    fail "restoring into a used data dir is refused" "$ERR"
check_contains "restoring into a used data dir is refused" "is not empty" "$ERR"
for n in r1 r2 r3; do
    EXTRA[$n]="--initial-cluster $RESTORED"
    start "$n"
done
for n in r1 r2 r3; do wait_for 60 api_ready "$n" || fail "restored $n serves the Kubernetes API"; done
REPS="$(ep r1),$(ep r2),$(ep r3)"
r_named() { [ "$(skiff member list --endpoints "$REPS" | awk 'NR > 1 && $2 ~ /^r[123]$/ && $5 ~ /^http/' | wc -l)" = 3 ]; }
wait_for 20 r_named || fail "the restored cluster lists r1, r2, r3" "$(skiff member list --endpoints "$REPS" 2>&1)"
check_eq "the restored cluster has only its new members" "r1 r2 r3" \
    "$(skiff member list --endpoints "$REPS" | awk 'NR > 1 {print $2}' | sort | xargs)"
MISSING=$(ectl --endpoints="$REPS" get w/ --prefix -w json | missing_acked "")
check_eq "every write acknowledged before the snapshot is in the restored cluster" "" "$MISSING"
check_eq "a write after the snapshot is not" "" "$(ectl --endpoints="$REPS" get after-snapshot --print-value-only)"
NOW=$(top_rev r1 r2 r3)
if [ "$NOW" -ge "$SNAP_REV" ]; then pass "the restored cluster continues from revision $SNAP_REV (now $NOW)"; else fail "revisions continue" "$NOW < $SNAP_REV"; fi
ectl --endpoints="$REPS" put restored yes >/dev/null
check_eq "the restored cluster takes writes" "yes" "$(ectl --endpoints="$REPS" get restored --print-value-only)"
CMS=$(k r1 -n ops get configmaps -o name | grep -v kube-root-ca | sort | xargs)
check_eq "the Kubernetes objects of the snapshot, with the first cluster's admin credentials" \
    "configmap/before-restarts configmap/restarted-m1 configmap/restarted-m2 configmap/restarted-m3" "$CMS"
"$KUBECTL" --kubeconfig "$TMP/r2/admin.kubeconfig" --request-timeout=15s -n ops create configmap after-restore \
    --from-literal=at=restored >/dev/null || fail "the restored cluster takes Kubernetes writes"
check_eq "a Kubernetes write on the restored cluster reads back through another member" "restored" \
    "$(k r3 -n ops get configmap after-restore -o jsonpath='{.data.at}')"

echo "ops: $PASSED passed, 0 failed"
