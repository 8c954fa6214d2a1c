# Helpers for tests that drive a `skiff up` cluster's hosts (tests/e2e.sh, tests/ha.sh).
# The sourcing script sets UP (the cluster's --dir), NAME (--name) and SUBNET (the first three
# octets of --subnet); masters are m1.. at $SUBNET.11.., agents n1.. at $SUBNET.21..
# shellcheck shell=bash

# The masters' etcd client endpoints, comma-separated.
master_endpoints() {
    local i out=""
    for i in 1 2 3; do out="$out$SUBNET.1$i:2379,"; done
    echo "${out%,}"
}

# leader_name: the master (m1..m3) a majority of the reachable members names as leader, or ""
# (also when members are down: etcdctl then fails but still lists the others).
leader_name() {
    { ETCDCTL_API=3 etcdctl --endpoints="$(master_endpoints)" --command-timeout=2s endpoint status -w json 2>/dev/null || true; } | python3 -c '
import collections, json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    d = []
if not d:
    print("")
    sys.exit(0)
lid, n = collections.Counter(e["Status"]["leader"] for e in d).most_common(1)[0]
names = {e["Status"]["header"]["member_id"]: e["Endpoint"] for e in d}
print("m" + names[lid].split(":")[0].rsplit(".", 1)[1][1] if n >= 2 and lid in names else "")'
}

# host_pid HOST: the pid `skiff up` recorded for HOST (m1, n2, ...).
host_pid() {
    python3 -c 'import json,sys; print([h["pid"] for h in json.load(open(sys.argv[1]))["hosts"] if h["name"] == sys.argv[2]][0])' \
        "$UP/state.json" "$1"
}

# save_cmdline HOST PID: keeps HOST's command line (checked to be that host's skiff) in
# $TMP/$NAME-HOST.cmdline (not in the cluster's dir: `skiff down` leaves that empty) so that
# restart_host can start it again after a kill. The sourcing script sets TMP.
save_cmdline() {
    local cmd
    cmd=$(tr '\0' ' ' <"/proc/$2/cmdline" 2>/dev/null || true)
    case "$cmd" in
        *" --name $1 --data-dir $UP/$1 "*) cp "/proc/$2/cmdline" "$TMP/$NAME-$1.cmdline" ;;
        *) fail "pid $2 is the skiff of host $1" "$cmd" ;;
    esac
}

# restart_host HOST: starts HOST's skiff again, on its data, in its namespace (as `skiff up`
# did: the host's network namespace, this machine's mount namespace); prints the new pid.
# `skiff down` stops it with everything else in the namespace.
restart_host() {
    local -a argv
    mapfile -d '' argv <"$TMP/$NAME-$1.cmdline"
    setsid nsenter --net="/run/netns/$NAME-$1" "${argv[@]}" </dev/null >>"$UP/$1.log" 2>&1 &
    echo $!
}

# kill_host HOST PID SIGNAL: sends SIGNAL to PID after checking it still is HOST's skiff.
kill_host() {
    case "$(tr '\0' ' ' <"/proc/$2/cmdline" 2>/dev/null || true)" in
        *" --name $1 --data-dir $UP/$1 "*) kill "-$3" "$2" ;;
        *) fail "pid $2 is still the skiff of host $1" ;;
    esac
}
