#!/usr/bin/env bash
# etcdctl compatibility test.
#
# Drives the stock etcdctl v3.4 (Debian package etcd-client) against a
# 3-member cluster on loopback and checks what it prints, byte for byte where
# etcd's output is deterministic.
#
#   TARGET=skiff (default)  skiff masters, binary ${SKIFF_BIN}
#   TARGET=etcd             a real etcd 3.4 cluster (Debian package etcd-server),
#                           used to confirm that every expectation below is what
#                           etcd itself prints.
#
# Ports: client = PORT_BASE, peer = PORT_BASE+1, metrics = PORT_BASE+2, on each
# of 127.0.0.1..127.0.0.5 (members m1..m5).  All traffic stays on loopback.
#
# Env: TARGET, SKIFF_BIN, PORT_BASE (default 23790), KEEP_TMP=1 keeps the temp
# dir (data dirs and member logs) for inspection.
set -euo pipefail

TARGET=${TARGET:-skiff}
SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
PORT_BASE=${PORT_BASE:-23790}
CPORT=$PORT_BASE
PPORT=$((PORT_BASE + 1))
MPORT=$((PORT_BASE + 2))

# Only our own settings reach etcdctl.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^ETCDCTL_' || true)
export ETCDCTL_API=3

IP1=127.0.0.1 IP2=127.0.0.2 IP3=127.0.0.3 IP4=127.0.0.4 IP5=127.0.0.5
EP1=$IP1:$CPORT EP2=$IP2:$CPORT EP3=$IP3:$CPORT EP4=$IP4:$CPORT
EPS=$EP1,$EP2,$EP3

TMP=$(mktemp -d /tmp/skiff-etcdctl.XXXXXX)
declare -A PID=()   # member name -> pid of its server process
BG_PIDS=()          # every background process this script started
PASSED=0

# ------------------------------------------------- checking and cleanup --

SUITE=etcdctl
# shellcheck source=tests/check.sh
source "$(dirname "$0")/check.sh"
trap cleanup EXIT
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND" >&2; echo "etcdctl: $PASSED passed, 1 failed"' ERR

# ---------------------------------------------------------------- running --

# ectl ARGS: etcdctl against all three original members
ectl() {
    timeout 40 etcdctl --dial-timeout=2s --command-timeout="${CT:-10s}" --endpoints="$EPS" "$@"
}

# ectl_ep ENDPOINTS ARGS: etcdctl against the given endpoints only
ectl_ep() {
    local eps=$1
    shift
    timeout 40 etcdctl --dial-timeout=2s --command-timeout="${CT:-10s}" --endpoints="$eps" "$@"
}

# run NAME CMD...: run CMD; its stdout goes to OUT, its stderr to ERR; a
# non-zero exit fails check NAME.
run() {
    local name=$1
    shift
    local rc=0
    OUT=$("$@" 2>"$TMP/stderr") || rc=$?
    ERR=$(<"$TMP/stderr")
    if [ "$rc" -ne 0 ]; then
        fail "$name" "command failed (exit $rc): $*" "stdout: $OUT" "stderr: $ERR"
    fi
}

# run_fail NAME NEEDLE CMD...: CMD must exit non-zero and print NEEDLE (on
# stdout or stderr).
run_fail() {
    local name=$1 needle=$2
    shift 2
    local rc=0 out
    out=$("$@" 2>&1) || rc=$?
    if [ "$rc" -eq 0 ]; then
        fail "$name" "command succeeded but should have failed: $*" "output: $out"
    fi
    check_contains "$name" "$needle" "$out"
}

# run_reconfig NAME CMD...: like run, for membership changes.  etcd refuses
# them with "etcdserver: unhealthy cluster" until every member has been
# connected for a few seconds (e.g. right after a restart); retry that error
# only, for up to 30 s.
run_reconfig() {
    local name=$1
    shift
    local deadline=$((SECONDS + 30)) rc
    while true; do
        rc=0
        OUT=$("$@" 2>"$TMP/stderr") || rc=$?
        ERR=$(<"$TMP/stderr")
        [ "$rc" -eq 0 ] && return 0
        if [[ "$ERR" != *"etcdserver: unhealthy cluster"* ]] || [ "$SECONDS" -ge "$deadline" ]; then
            fail "$name" "command failed (exit $rc): $*" "stdout: $OUT" "stderr: $ERR"
        fi
        sleep 1
    done
}

# wait_until SECONDS DESCRIPTION CMD...: poll CMD (quietly) until it succeeds
wait_until() {
    local secs=$1 desc=$2
    shift 2
    local deadline=$((SECONDS + secs))
    while true; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            fail "$desc" "not true after ${secs}s: $*"
        fi
        sleep 0.5
    done
}

# wait_output_eq NAME SECONDS EXPECTED CMD...: poll until CMD's stdout equals
# EXPECTED, then PASS; FAIL with the last output after SECONDS.
wait_output_eq() {
    local name=$1 secs=$2 expected=$3
    shift 3
    local deadline=$((SECONDS + secs)) got
    while true; do
        got=$("$@" 2>&1) || true
        if [ "$got" == "$expected" ]; then
            pass "$name"
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            fail "$name" "after ${secs}s, expected:" "$(printf '%s' "$expected" | sed 's/^/| /')" \
                "last output of: $*" "$(printf '%s' "$got" | sed 's/^/| /')"
        fi
        sleep 0.5
    done
}

# wait_healthy [ENDPOINTS]: poll `endpoint health` (bounded, 30 s)
wait_healthy() {
    local eps=${1:-$EPS}
    CT=3s wait_until 30 "cluster healthy ($eps)" ectl_ep "$eps" endpoint health
}

# rev_of JSON: header.revision of a `-w json` answer
rev_of() { pyj 'd["header"]["revision"]'; }

# put_rev KEY VALUE: put and print the revision it created
put_rev() { ectl put "$1" "$2" -w json | rev_of; }

# ---------------------------------------------------------------- members --

need_tools() {
    if ! command -v etcdctl >/dev/null; then
        echo "etcdctl missing: installing etcd-client" >&2
        apt-get update -qq && apt-get install -y -qq etcd-client >/dev/null
    fi
    if [ "$TARGET" = etcd ] && ! command -v etcd >/dev/null; then
        echo "etcd missing: installing etcd-server" >&2
        apt-get update -qq && apt-get install -y -qq etcd-server >/dev/null
    fi
    if [ "$TARGET" = skiff ] && [ ! -x "$SKIFF_BIN" ]; then
        fail "skiff binary" "not found or not executable: $SKIFF_BIN"
    fi
    command -v python3 >/dev/null || fail "python3" "python3 is needed to parse JSON"
    case "$TARGET" in
        skiff | etcd) ;;
        *) fail "TARGET" "TARGET must be skiff or etcd, not '$TARGET'" ;;
    esac
}

# start_member N: start member mN (1..3) of the initial cluster, on its own
# data dir (a restart reuses it).
start_member() {
    local n=$1 ip=127.0.0.$1
    local name=m$n
    if [ "$TARGET" = skiff ]; then
        "$SKIFF_BIN" master --name "$name" --data-dir "$TMP/$name" \
            --listen-peer "$ip:$PPORT" --listen-client "$ip:$CPORT" --listen-metrics "$ip:$MPORT" --listen-api off \
            --initial-cluster "m1=$IP1:$PPORT,m2=$IP2:$PPORT,m3=$IP3:$PPORT" \
            >>"$TMP/$name.log" 2>&1 &
    else
        etcd --name "$name" --data-dir "$TMP/$name" \
            --listen-peer-urls "http://$ip:$PPORT" --initial-advertise-peer-urls "http://$ip:$PPORT" \
            --listen-client-urls "http://$ip:$CPORT" --advertise-client-urls "http://$ip:$CPORT" \
            --listen-metrics-urls "http://$ip:$MPORT" \
            --initial-cluster "m1=http://$IP1:$PPORT,m2=http://$IP2:$PPORT,m3=http://$IP3:$PPORT" \
            --initial-cluster-state new --initial-cluster-token skiff-etcdctl-test \
            >>"$TMP/$name.log" 2>&1 &
    fi
    PID[$name]=$!
    BG_PIDS+=("$!")
}

# kill_member NAME: kill -9 one member's server process
kill_member() {
    local p=${PID[$1]}
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

# start_watch NAME CMD...: run a watch in the background (bounded by timeout),
# its stdout+stderr in $TMP/NAME.out; WATCH_PID is its pid.
start_watch() {
    local name=$1
    shift
    timeout 60 etcdctl --dial-timeout=2s --endpoints="$EPS" "$@" >"$TMP/$name.out" 2>&1 &
    WATCH_PID=$!
    BG_PIDS+=("$!")
}

stop_watch() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# ================================================================== start ==

need_tools
echo "== etcdctl $(etcdctl version | head -n1 | awk '{print $3}') against TARGET=$TARGET, ports $CPORT/$PPORT/$MPORT, tmp $TMP"

start_member 1
start_member 2
start_member 3
wait_healthy
pass "cluster of 3 became healthy"

# ======================================================== endpoint health ==

run "endpoint health" ectl endpoint health
HEALTH="$OUT
$ERR" # etcdctl 3.4 prints the health lines on stderr
for ep in $EP1 $EP2 $EP3; do
    check_match "endpoint health: $ep healthy" \
        "^$ep is healthy: successfully committed proposal: took = .+$" "$HEALTH"
done
run "endpoint health -w json" ectl endpoint health -w json
check_py "endpoint health -w json: 3 endpoints, all healthy" \
    "len(d) == 3 and all(e['health'] is True for e in d) and sorted(e['endpoint'] for e in d) == sorted('$EPS'.split(','))" "$OUT"

# ============================================================ member list ==

run "member list" ectl member list
MEMBERS=$OUT
check_eq "member list: 3 lines" 3 "$(grep -c . <<<"$MEMBERS")"
for n in 1 2 3; do
    check_match "member list: m$n line" \
        "^[0-9a-f]+, started, m$n, http://127\.0\.0\.$n:$PPORT, http://127\.0\.0\.$n:$CPORT, false$" "$MEMBERS"
done
run "member list -w json" ectl member list -w json
check_py "member list -w json: names, peerURLs, clientURLs" \
    "sorted((m['name'], m['peerURLs'], m['clientURLs']) for m in d['members']) == [('m%d' % i, ['http://127.0.0.%d:$PPORT' % i], ['http://127.0.0.%d:$CPORT' % i]) for i in (1, 2, 3)]" "$OUT"
check_py "member list -w json: IDs are the hex IDs of the table" \
    "sorted('%x' % m['ID'] for m in d['members']) == sorted('''$MEMBERS'''.replace(',', ' ').split()[0::6])" "$OUT"

# ========================================================= endpoint status ==

run "endpoint status -w json" ectl endpoint status -w json
STATUS=$OUT
check_py "endpoint status -w json: one entry per endpoint" \
    "sorted(e['Endpoint'] for e in d) == sorted('$EPS'.split(','))" "$STATUS"
check_py "endpoint status -w json: version >= 3.4" \
    "all(tuple(int(x) for x in e['Status']['version'].split('.')[:2]) >= (3, 4) for e in d)" "$STATUS"
check_py "endpoint status -w json: all agree on one non-zero leader" \
    "len(set(e['Status']['leader'] for e in d)) == 1 and d[0]['Status']['leader'] != 0" "$STATUS"
check_py "endpoint status -w json: the leader is one of the members" \
    "[e['Status']['leader'] == e['Status']['header']['member_id'] for e in d].count(True) == 1" "$STATUS"
check_py "endpoint status -w json: raftIndex, raftTerm, raftAppliedIndex > 0" \
    "all(e['Status']['raftIndex'] > 0 and e['Status']['raftTerm'] > 0 and e['Status']['raftAppliedIndex'] > 0 for e in d)" "$STATUS"
check_py "endpoint status -w json: member_ids distinct, same cluster_id" \
    "len(set(e['Status']['header']['member_id'] for e in d)) == 3 and len(set(e['Status']['header']['cluster_id'] for e in d)) == 1" "$STATUS"
check_py "endpoint status -w json: member_ids are the member list IDs" \
    "sorted('%x' % e['Status']['header']['member_id'] for e in d) == sorted('''$MEMBERS'''.replace(',', ' ').split()[0::6])" "$STATUS"
check_py "endpoint status -w json: no member is a learner" \
    "not any(e['Status'].get('isLearner', False) for e in d)" "$STATUS"
for ep in $EP1 $EP2 $EP3; do
    run "endpoint status ($ep)" ectl_ep "$ep" endpoint status -w json
    check_py "endpoint status -w json from $ep alone" \
        "len(d) == 1 and d[0]['Endpoint'] == '$ep' and d[0]['Status']['leader'] != 0" "$OUT"
    run "endpoint status simple ($ep)" ectl_ep "$ep" endpoint status
    check_match "endpoint status simple line ($ep)" \
        "^$ep, [0-9a-f]+, 3\.([4-9]|[1-9][0-9])\.[0-9]+, [0-9.]+ [kMGT]?B, (true|false), false, [1-9][0-9]*, [1-9][0-9]*, [1-9][0-9]*, $" "$OUT"
done
run "endpoint status simple" ectl endpoint status
check_eq "endpoint status simple: exactly one leader" 1 "$(awk -F', ' '$5 == "true"' <<<"$OUT" | grep -c .)"

# ================================================================ put/get ==

run "put prints OK" ectl put pg/k v1
check_eq "put prints OK" "OK" "$OUT"
REV_V1=$(ectl get pg/k -w json | pyj 'd["kvs"][0]["mod_revision"]')
REV_V2=$(put_rev pg/k v2)
check_eq "put -w json: revision advances by one" "$((REV_V1 + 1))" "$REV_V2"
run "get" ectl get pg/k
check_eq "get prints key and value" $'pg/k\nv2' "$OUT"
run "get --rev" ectl get pg/k --rev="$REV_V1"
check_eq "get --rev=N returns the old value" $'pg/k\nv1' "$OUT"
ectl put pg/k2 x >/dev/null
ectl put pg/k3 y >/dev/null
ectl put pgz/other z >/dev/null
run "get --prefix" ectl get pg/ --prefix
check_eq "get --prefix (sorted by key, prefix only)" $'pg/k\nv2\npg/k2\nx\npg/k3\ny' "$OUT"
run "get range" ectl get pg/k pg/k3
check_eq "get KEY RANGE_END is half-open" $'pg/k\nv2\npg/k2\nx' "$OUT"
run "get --keys-only" ectl get pg/ --prefix --keys-only
check_eq "get --keys-only (key then empty line)" $'pg/k\n\npg/k2\n\npg/k3' "$OUT"
run "get --limit" ectl get pg/ --prefix --limit=2
check_eq "get --limit=2" $'pg/k\nv2\npg/k2\nx' "$OUT"
run "get --limit -w json" ectl get pg/ --prefix --limit=2 -w json
check_py "get --limit=2 -w json: 2 kvs, more, count of all" \
    "len(d['kvs']) == 2 and d.get('more') is True and d['count'] == 3" "$OUT"
run "get --print-value-only" ectl get pg/k --print-value-only
check_eq "get --print-value-only" "v2" "$OUT"
for ep in $EP1 $EP2 $EP3; do
    CT=3s wait_output_eq "get --consistency=s from $ep" 10 $'pg/k\nv2' \
        ectl_ep "$ep" get pg/k --consistency=s
done
run "get -w json" ectl get pg/k -w json
GETJSON=$OUT
check_py "get -w json: key, value (base64), count" \
    "b64(d['kvs'][0]['key']) == 'pg/k' and b64(d['kvs'][0]['value']) == 'v2' and d['count'] == 1" "$GETJSON"
check_py "get -w json: create_revision, mod_revision, version" \
    "d['kvs'][0]['create_revision'] == $REV_V1 and d['kvs'][0]['mod_revision'] == $REV_V2 and d['kvs'][0]['version'] == 2" "$GETJSON"
check_py "get -w json: header revision is the store revision" \
    "d['header']['revision'] == $REV_V2 + 3 and d['header']['cluster_id'] != 0 and d['header']['member_id'] != 0 and d['header']['raft_term'] > 0" "$GETJSON"
run "get missing key" ectl get pg/missing
check_eq "get of a missing key prints nothing" "" "$OUT"
run "get missing key -w json" ectl get pg/missing -w json
check_py "get -w json of a missing key: no kvs, no count" "'kvs' not in d and 'count' not in d and d['header']['revision'] > 0" "$OUT"

# ==================================================================== del ==

ectl put d/a 1 >/dev/null
run "del" ectl del d/a
check_eq "del prints the number deleted" "1" "$OUT"
run "del missing" ectl del d/a
check_eq "del of a missing key prints 0" "0" "$OUT"
for k in p1 p2 p3; do ectl put "d/$k" "$k" >/dev/null; done
ectl put d/q keep >/dev/null
run "del --prefix" ectl del d/p --prefix
check_eq "del --prefix prints the number deleted" "3" "$OUT"
run "get after del --prefix" ectl get d/ --prefix
check_eq "del --prefix removed only the prefix" $'d/q\nkeep' "$OUT"
ectl put d/x val >/dev/null
run "del --prev-kv" ectl del d/x --prev-kv
check_eq "del --prev-kv prints count then key and old value" $'1\nd/x\nval' "$OUT"
run "get after del" ectl get d/x
check_eq "deleted key is gone" "" "$OUT"

# ==================================================================== txn ==

ectl put tx/a 1 >/dev/null
REV_TXA=$(ectl get tx/a -w json | pyj 'd["kvs"][0]["mod_revision"]')
run "txn (success branch)" ectl txn <<EOF
value("tx/a") = "1"
version("tx/a") = "1"
mod("tx/a") = "$REV_TXA"

put tx/b yes
get tx/a

put tx/b no

EOF
check_eq "txn success branch output" $'SUCCESS\n\nOK\n\ntx/a\n1' "$OUT"
check_eq "txn success branch applied" "yes" "$(ectl get tx/b --print-value-only)"
run "txn (failure branch)" ectl txn <<EOF
value("tx/a") = "1"
mod("tx/a") > "$REV_TXA"

put tx/b yes

put tx/b no
del tx/a
get tx/b

EOF
check_eq "txn failure branch output" $'FAILURE\n\nOK\n\n1\n\ntx/b\nno' "$OUT"
check_eq "txn failure branch deleted tx/a" "" "$(ectl get tx/a)"
run "txn -w json" ectl txn -w json <<EOF
version("tx/a") = "0"
value("tx/b") != "yes"

get tx/b


EOF
check_py "txn -w json: succeeded, range response" \
    "d.get('succeeded') is True and b64(d['responses'][0]['Response']['ResponseRange']['kvs'][0]['value']) == 'no'" "$OUT"
run "txn -w json (failed compare)" ectl txn -w json <<EOF
version("tx/b") < "1"

put tx/c yes


EOF
check_py "txn -w json: failed compare has no 'succeeded'" \
    "'succeeded' not in d and d['header']['revision'] > 0" "$OUT"

# ================================================================== watch ==

# History: watch --rev=N KEY replays the three events that already happened.
REV_W1=$(put_rev w1/k a)
ectl put w1/k b >/dev/null
ectl del w1/k >/dev/null
start_watch watch1 watch --rev="$REV_W1" w1/k
wait_output_eq "watch --rev=N replays PUT, PUT, DELETE in order" 15 \
    $'PUT\nw1/k\na\nPUT\nw1/k\nb\nDELETE\nw1/k' cat "$TMP/watch1.out"
stop_watch "$WATCH_PID"

# Live: watch --prefix (no --rev); synchronise on a sentinel key first.
start_watch watch2 watch --prefix w2/
i=0
deadline=$((SECONDS + 15))
until grep -qx 'w2/0sync' "$TMP/watch2.out"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "watch --prefix: watch established" \
        "no sentinel event after 15s" "$(cat "$TMP/watch2.out")"
    i=$((i + 1))
    ectl put w2/0sync "$i" >/dev/null
    sleep 0.3
done
ectl put w2/a 1 >/dev/null
ectl put w2/b 2 >/dev/null
ectl put w2x/outside no >/dev/null
ectl del w2/a >/dev/null
ectl put w2/a 3 >/dev/null
ectl del w2/ --prefix >/dev/null
after_sync() {
    python3 -c '
import sys
lines = open(sys.argv[1]).read().split("\n")
i = max(n for n, l in enumerate(lines) if l == "w2/0sync" and lines[n - 1] == "PUT")
print("\n".join(lines[i + 2:]), end="")' "$TMP/watch2.out"
}
wait_output_eq "watch --prefix: live events in order, nothing outside the prefix" 15 \
    $'PUT\nw2/a\n1\nPUT\nw2/b\n2\nDELETE\nw2/a\n\nPUT\nw2/a\n3\nDELETE\nw2/0sync\n\nDELETE\nw2/a\n\nDELETE\nw2/b' \
    after_sync
stop_watch "$WATCH_PID"

# --prev-kv: each event is preceded by the previous key/value when there is one.
REV_W3=$(put_rev w3/k v1)
ectl put w3/k v2 >/dev/null
ectl del w3/k >/dev/null
start_watch watch3 watch --prev-kv --rev="$REV_W3" w3/k
wait_output_eq "watch --prev-kv: prev key/value before each event" 15 \
    $'PUT\nw3/k\nv1\nPUT\nw3/k\nv1\nw3/k\nv2\nDELETE\nw3/k\nv2\nw3/k' cat "$TMP/watch3.out"
stop_watch "$WATCH_PID"

# -w json: revisions of the events (one JSON object per watch response).
watch_json_events() {
    python3 -c '
import json, sys
print(json.dumps([e for l in open(sys.argv[1]) if l.strip() for e in json.loads(l)["Events"]]))' "$TMP/watch4.out"
}
start_watch watch4 watch --rev="$REV_W3" w3/k -w json
wait_until 15 "watch -w json: three events" \
    bash -c '[ "$(python3 -c "import json,sys; print(sum(len(json.loads(l)[\"Events\"]) for l in open(sys.argv[1]) if l.strip()))" "$1")" = 3 ]' _ "$TMP/watch4.out"
stop_watch "$WATCH_PID"
check_py "watch -w json: events carry revisions, DELETE is type 1" \
    "[(e.get('type', 0), e['kv']['mod_revision']) for e in d] == [(0, $REV_W3), (0, $REV_W3 + 1), (1, $REV_W3 + 2)] and b64(d[1]['kv']['value']) == 'v2' and d[1]['kv']['version'] == 2 and d[1]['kv']['create_revision'] == $REV_W3" \
    "$(watch_json_events)"

# ================================================================== lease ==

run "lease grant" ectl lease grant 60
check_match "lease grant: 'lease <016x> granted with TTL(60s)'" '^lease [0-9a-f]{16} granted with TTL\(60s\)$' "$OUT"
LEASE=$(awk '{print $2}' <<<"$OUT")
run "put --lease" ectl put ls/k1 v1 --lease="$LEASE"
check_eq "put --lease prints OK" "OK" "$OUT"
ectl put ls/k2 v2 --lease="$LEASE" >/dev/null
run "get -w json (lease)" ectl get ls/k1 -w json
check_py "get -w json: kv carries the lease id" "'%016x' % d['kvs'][0]['lease'] == '$LEASE'" "$OUT"
run "lease timetolive" ectl lease timetolive "$LEASE"
check_match "lease timetolive" "^lease $LEASE granted with TTL\(60s\), remaining\((5[0-9]|60)s\)$" "$OUT"
run "lease timetolive --keys" ectl lease timetolive "$LEASE" --keys
check_match "lease timetolive --keys lists attached keys" \
    "^lease $LEASE granted with TTL\(60s\), remaining\((5[0-9]|60)s\), attached keys\(\[(ls/k1 ls/k2|ls/k2 ls/k1)\]\)$" "$OUT"
run "lease keep-alive --once" ectl lease keep-alive --once "$LEASE"
check_eq "lease keep-alive --once" "lease $LEASE keepalived with TTL(60)" "$OUT"
run "lease list" ectl lease list
check_match "lease list: 'found N leases'" '^found [1-9][0-9]* leases$' "$OUT"
check_match "lease list contains the lease" "^$LEASE$" "$OUT"
run "lease revoke" ectl lease revoke "$LEASE"
check_eq "lease revoke" "lease $LEASE revoked" "$OUT"
run "get after revoke" ectl get ls/ --prefix
check_eq "lease revoke deleted the attached keys" "" "$OUT"
run "lease timetolive after revoke" ectl lease timetolive "$LEASE"
check_eq "lease timetolive of a revoked lease" "lease $LEASE already expired" "$OUT"
run_fail "lease revoke of an unknown lease" "requested lease not found" ectl lease revoke "$LEASE"
# Expiry: a short lease that is not kept alive takes its key with it.
run "lease grant 3" ectl lease grant 3
SHORT=$(awk '{print $2}' <<<"$OUT")
ectl put ls/short v --lease="$SHORT" >/dev/null
check_eq "key attached to a short lease exists" "v" "$(ectl get ls/short --print-value-only)"
wait_output_eq "lease expiry deletes the key (TTL 3s, within 15s)" 15 "" ectl get ls/short

# ================================================================= errors ==

CUR=$(ectl get pg/k -w json | rev_of)
run_fail "get --rev in the future" "etcdserver: mvcc: required revision is a future revision" \
    ectl get pg/k --rev=$((CUR + 100000))
run_fail "put with an unknown lease" "etcdserver: requested lease not found" \
    ectl put pg/nolease v --lease=123abc
run_fail "member remove of an unknown member" "etcdserver: member not found" \
    ectl member remove 123abc

# ============================================================= compaction ==

REV_C1=$(put_rev c/k old)
REV_C2=$(put_rev c/k new)
run "compaction" ectl compaction "$REV_C2"
check_eq "compaction prints the revision" "compacted revision $REV_C2" "$OUT"
run_fail "get --rev below the compaction" "etcdserver: mvcc: required revision has been compacted" \
    ectl get c/k --rev="$REV_C1"
run "get --rev at the compaction" ectl get c/k --rev="$REV_C2"
check_eq "get --rev=compacted revision still works" $'c/k\nnew' "$OUT"
run_fail "watch --rev below the compaction is canceled" \
    "watch was canceled (etcdserver: mvcc: required revision has been compacted)" \
    timeout 15 etcdctl --endpoints="$EPS" watch --rev="$REV_C1" c/k
run_fail "compaction of an already compacted revision" "required revision has been compacted" \
    ectl compaction "$REV_C1"
CUR=$(ectl get c/k -w json | rev_of)
run_fail "compaction of a future revision" "required revision is a future revision" \
    ectl compaction $((CUR + 100000))

# =============================================================== snapshot ==

run "snapshot save" ectl_ep "$EP1" snapshot save "$TMP/snap.db"
check_eq "snapshot save prints the path" "Snapshot saved at $TMP/snap.db" "$OUT"
if [ -s "$TMP/snap.db" ]; then pass "snapshot file exists and is not empty"; else fail "snapshot file exists and is not empty" "$(ls -l "$TMP" 2>&1)"; fi
run_fail "snapshot save needs exactly one endpoint" "snapshot must be requested to one selected node" \
    ectl snapshot save "$TMP/snap2.db"

# ============================================================ leader kill ==

run "endpoint status -w json (find leader)" ectl endpoint status -w json
LEADER_EP=$(pyj '" ".join(e["Endpoint"] for e in d if e["Status"]["leader"] == e["Status"]["header"]["member_id"])' <<<"$OUT")
check_match "exactly one endpoint reports itself leader" '^127\.0\.0\.[123]:[0-9]+$' "$LEADER_EP"
LEADER_IP=${LEADER_EP%:*}
LEADER_N=${LEADER_IP##*.}
LEADER=m$LEADER_N
REST_EPS=$(tr ',' '\n' <<<"$EPS" | grep -vx "$LEADER_EP" | paste -sd,)
echo "   leader is $LEADER ($LEADER_EP); killing it"
kill_member "$LEADER"
CT=3s wait_until 15 "put served by the remaining two after killing the leader" \
    ectl_ep "$REST_EPS" put kill/k1 v1
pass "put served by the remaining two after killing the leader"
run "put while the old leader is down" ectl_ep "$REST_EPS" put kill/k2 v2
CT=3s wait_output_eq "linearizable get from the remaining two" 15 $'kill/k1\nv1\nkill/k2\nv2' \
    ectl_ep "$REST_EPS" get kill/ --prefix
run "endpoint status of the remaining two" ectl_ep "$REST_EPS" endpoint status -w json
check_py "a new leader was elected among the remaining two" \
    "len(set(e['Status']['leader'] for e in d)) == 1 and [e['Status']['leader'] == e['Status']['header']['member_id'] for e in d].count(True) == 1" "$OUT"
start_member "$LEADER_N"
CT=3s wait_output_eq "restarted $LEADER serves the keys written while it was down" 15 \
    $'kill/k1\nv1\nkill/k2\nv2' ectl_ep "$LEADER_EP" get kill/ --prefix --consistency=s
wait_healthy
pass "cluster healthy again after the restart"

# ================================================================ members ==

# An unstarted learner can be added and removed.
run_reconfig "member add --learner (unstarted)" ectl member add m5 --peer-urls="http://$IP5:$PPORT" --learner
check_match "member add: 'Member <16x> added to cluster <16x>'" \
    '^Member +[0-9a-f]{1,16} added to cluster +[0-9a-f]{1,16}$' "$(head -n1 <<<"$OUT")"
check_contains "member add prints ETCD_NAME" 'ETCD_NAME="m5"' "$OUT"
check_contains "member add prints ETCD_INITIAL_ADVERTISE_PEER_URLS" \
    "ETCD_INITIAL_ADVERTISE_PEER_URLS=\"http://$IP5:$PPORT\"" "$OUT"
check_contains "member add prints ETCD_INITIAL_CLUSTER_STATE" 'ETCD_INITIAL_CLUSTER_STATE="existing"' "$OUT"
M5_ID=$(head -n1 <<<"$OUT" | awk '{print $2}')
run "member list with m5" ectl member list
check_match "member list: unstarted learner line" "^$M5_ID, unstarted, , http://127\.0\.0\.5:$PPORT, , true$" "$OUT"
check_eq "member list: 4 lines" 4 "$(grep -c . <<<"$OUT")"
run_reconfig "member remove m5" ectl member remove "$M5_ID"
check_match "member remove: 'Member <16x> removed from cluster <16x>'" \
    "^Member +$M5_ID removed from cluster +[0-9a-f]{1,16}$" "$OUT"
run "member list without m5" ectl member list
check_not_contains "member list: m5 gone" "$M5_ID" "$OUT"
check_eq "member list: 3 lines again" 3 "$(grep -c . <<<"$OUT")"

# A 4th member joins as a learner, catches up and becomes a voter.
M4_LINE="^[0-9a-f]+, started, m4, http://127\.0\.0\.4:$PPORT, http://127\.0\.0\.4:$CPORT, false$"
m4_is_voter() { ectl member list | grep -Eq "$M4_LINE"; }
if [ "$TARGET" = skiff ]; then
    "$SKIFF_BIN" master --name m4 --data-dir "$TMP/m4" \
        --listen-peer "$IP4:$PPORT" --listen-client "$IP4:$CPORT" --listen-metrics "$IP4:$MPORT" --listen-api off \
        --join "$IP1:$CPORT" >>"$TMP/m4.log" 2>&1 &
    PID[m4]=$!
    BG_PIDS+=("$!")
    CT=3s wait_until 30 "m4 joined and was promoted to voter" m4_is_voter
else
    run_reconfig "member add m4 --learner" ectl member add m4 --peer-urls="http://$IP4:$PPORT" --learner
    check_match "member add m4: first line" '^Member +[0-9a-f]{1,16} added to cluster +[0-9a-f]{1,16}$' "$OUT"
    M4_CLUSTER=$(sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p' <<<"$OUT")
    M4_ID=$(head -n1 <<<"$OUT" | awk '{print $2}')
    etcd --name m4 --data-dir "$TMP/m4" \
        --listen-peer-urls "http://$IP4:$PPORT" --initial-advertise-peer-urls "http://$IP4:$PPORT" \
        --listen-client-urls "http://$IP4:$CPORT" --advertise-client-urls "http://$IP4:$CPORT" \
        --listen-metrics-urls "http://$IP4:$MPORT" \
        --initial-cluster "$M4_CLUSTER" --initial-cluster-state existing \
        >>"$TMP/m4.log" 2>&1 &
    PID[m4]=$!
    BG_PIDS+=("$!")
    CT=3s wait_until 30 "learner m4 promoted" ectl member promote "$M4_ID"
    CT=3s wait_until 10 "m4 listed as a started voter" m4_is_voter
fi
pass "m4 is listed as a started voter"
run "member list with m4" ectl member list
check_eq "member list: 4 started voters" 4 "$(grep -Ec '^[0-9a-f]+, started, m[1-4], .*, false$' <<<"$OUT")"
M4_ID=$(grep -E "$M4_LINE" <<<"$OUT" | awk -F', ' '{print $1}')
CT=3s wait_output_eq "m4 serves the data (serializable)" 15 $'kill/k1\nv1\nkill/k2\nv2' \
    ectl_ep "$EP4" get kill/ --prefix --consistency=s
run "put through m4" ectl_ep "$EP4" put m4/k via-m4
check_eq "linearizable get of a key written through m4" "via-m4" "$(ectl get m4/k --print-value-only)"
run "endpoint status of m4" ectl_ep "$EP4" endpoint status -w json
check_py "endpoint status of m4: voter, knows the leader" \
    "not d[0]['Status'].get('isLearner', False) and d[0]['Status']['leader'] != 0 and '%x' % d[0]['Status']['header']['member_id'] == '$M4_ID'" "$OUT"
run_reconfig "member remove m4" ectl member remove "$M4_ID"
check_match "member remove m4" "^Member +$M4_ID removed from cluster +[0-9a-f]{1,16}$" "$OUT"
kill_member m4
run "member list after removing m4" ectl member list
check_eq "member list: back to m1..m3" "m1 m2 m3" "$(awk -F', ' '{print $3}' <<<"$OUT" | sort | paste -sd' ')"
wait_healthy
pass "cluster of 3 healthy at the end"

echo "etcdctl: $PASSED passed, 0 failed"
