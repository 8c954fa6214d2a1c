# Sourced by tests/agent.sh and bench/agent.sh: a 3-master, 2-agent cluster on test "hosts",
# network namespaces made here: m for the masters and an image registry, n1 and n2 for the
# agents, linked by a bridge inside a fourth namespace (the switch). Nothing touches the
# machine's own interfaces and no namespace has a default route. A busybox image is built from
# Debian's busybox-static and pushed to a docker-registry on m (IMG). Everything is torn down on
# exit, on failure too: processes, the shims and their containers, namespaces, mounts, cgroups.
# Needs SKIFF_BIN, KUBECTL, HERE (the tests/ directory); AGENTS (default 2), AGENT_ARGS;
# NO_IMAGE=1 skips the registry and the image (for hollow nodes, which run nothing).
# Provides: TMP, NET, NS_M/NS_1/NS_2, inm, k (kubectl as admin), wait_for, jp, start_agent, IMG.
# shellcheck shell=bash

TMP=$(mktemp -d /tmp/skiff-agent.XXXXXX)
P=ska$$
NS_M=${P}m NS_1=${P}n1 NS_2=${P}n2 NS_SW=${P}sw
NET=10.250.$((RANDOM % 200 + 20))
BG_PIDS=()

agent_cleanup() {
    local rc=$?
    set +e
    local p
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${BG_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    # The shims outlive their agents by design: stop them and whatever containers remain.
    pkill -9 -f "agent-shim --root $TMP/" 2>/dev/null
    local f
    for f in /sys/fs/cgroup/*/skiff/pod*/*/cgroup.procs; do
        case "$(cat "$f" 2>/dev/null)" in "") ;; *) xargs -r kill -9 <"$f" 2>/dev/null ;; esac
    done
    if [ "$rc" -ne 0 ]; then
        for f in "$TMP"/*.log "$TMP"/n*/runtime/shim.log; do
            [ -f "$f" ] || continue
            echo "----- last 30 lines of ${f#"$TMP"/} -----" >&2
            tail -n 30 "$f" >&2
        done
    fi
    # Whatever still runs inside the test hosts (a process started through a shell function
    # is not the pid that was recorded) goes before its namespace.
    for n in $NS_M $NS_1 $NS_2 $NS_SW; do ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null; done
    for n in $NS_M $NS_1 $NS_2 $NS_SW; do ip netns del "$n" 2>/dev/null; done
    grep " $TMP/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    sleep 0.2
    for f in /sys/fs/cgroup/*/skiff/pod*; do [ -d "$f" ] && { rmdir "$f"/* 2>/dev/null; rmdir "$f" 2>/dev/null; }; done
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap agent_cleanup EXIT

# ---------------------------------------------------------------- test hosts --
ip netns add "$NS_SW"
ip -n "$NS_SW" link add br0 type bridge
ip -n "$NS_SW" link set br0 up
for h in m n1 n2; do
    ns=${P}$h
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add "${P}$h" netns "$NS_SW" type veth peer name eth0 netns "$ns"
    ip -n "$NS_SW" link set "${P}$h" master br0 up
    ip -n "$ns" link set eth0 up
done
ip -n "$NS_M" addr add "$NET.1/24" dev eth0
ip -n "$NS_M" addr add "$NET.2/24" dev eth0
ip -n "$NS_M" addr add "$NET.3/24" dev eth0
ip -n "$NS_1" addr add "$NET.11/24" dev eth0
ip -n "$NS_2" addr add "$NET.12/24" dev eth0
inm() { ip netns exec "$NS_M" "$@"; }

# ------------------------------------------------------------------- masters --
for i in 1 2 3; do
    # `ip netns exec` itself, not the inm function: it execs the master, so $! is the master.
    ip netns exec "$NS_M" "$SKIFF_BIN" master --name "m$i" --data-dir "$TMP/m$i" \
        --listen-peer "127.0.0.$i:2380" --listen-client "127.0.0.$i:2379" --listen-api "$NET.$i:6443" \
        --initial-cluster "m1=127.0.0.1:2380,m2=127.0.0.2:2380,m3=127.0.0.3:2380" \
        >>"$TMP/m$i.log" 2>&1 &
    BG_PIDS+=($!)
done
for i in 1 2 3; do
    for _ in $(seq 1 300); do
        [ -f "$TMP/m$i/admin.kubeconfig" ] && inm curl -sk --max-time 1 "https://$NET.$i:6443/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
done
k() { inm "$KUBECTL" --kubeconfig "$TMP/m1/admin.kubeconfig" --server "https://$NET.1:6443" --request-timeout=20s "$@"; }
jp() { k get "$@" 2>/dev/null || true; }

# ------------------------------------------------------------- the image --
if [ "${NO_IMAGE:-0}" != 1 ]; then
# Its own config: Debian's default one asks for htpasswd credentials.
printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
    "$TMP/registry" "$NET.1:5000" >"$TMP/registry.yml"
ip netns exec "$NS_M" docker-registry serve "$TMP/registry.yml" >>"$TMP/registry.log" 2>&1 &
BG_PIDS+=($!)
wait_for 10 inm curl -sf "http://$NET.1:5000/v2/"
inm bash "$HERE/busybox-image.sh" "$TMP/layout" "$NET.1:5000/test/busybox:1" >>"$TMP/image.log" 2>&1
fi
IMG=$NET.1:5000/test/busybox:1

# -------------------------------------------------------------------- agents --
# start_agent N: agent nN on host nN (address $NET.1N), failing over to the other masters.
start_agent() {
    local n=$1
    [ -f "$TMP/n$n.kubeconfig" ] || "$SKIFF_BIN" kubeconfig --data-dir "$TMP/m1" --user "system:node:n$n" \
        --group system:nodes --server "https://$NET.$n:6443" >"$TMP/n$n.kubeconfig"
    # nsenter, not `ip netns exec`: only the network namespace changes, so the agent's mounts
    # (pod namespaces, overlay roots) live in the host's mount namespace as they would in
    # production, and a restarted agent finds them.
    nsenter --net="/run/netns/${P}n$n" "$SKIFF_BIN" agent --name "n$n" --data-dir "$TMP/n$n" \
        --kubeconfig "$TMP/n$n.kubeconfig" --server "https://$NET.3:6443" --node-ip "$NET.1$n" \
        --insecure-registry "$NET.1:5000" --dns-upstream none ${AGENT_ARGS:-} >>"$TMP/agent-n$n.log" 2>&1 &
    BG_PIDS+=($!)
}
for n in $(seq 1 "${AGENTS:-2}"); do start_agent "$n"; done
