#!/usr/bin/env bash
# Service proxy benchmark, in network namespaces made here (nothing touches the machine's own
# interfaces or ruleset; no namespace has a default route out):
#  1. sync latency: `skiff bench proxy rules` in a "node" namespace writes a table of SERVICES
#     services x ENDPOINTS endpoints (default 1,000 x 10), then times CHANGES single endpoint
#     changes from the model update to the kernel holding them, and a full resync;
#  2. connection rate: a client namespace connects (and closes) in a loop through the node to a
#     server namespace, once to the service's cluster IP (DNAT by that same 10,000-endpoint
#     table) and once to the pod IP directly, alternating, SECONDS each.
# One connect loop, at most 12,000 connections a run (5 runs per target stay inside the
# client's 64k ports): a port reused while the node's conntrack remembers its last connection
# stalls on SYN retransmits (1 s), which measures the client, not the proxy.
# QUICK=1: 100 services, 20 changes, 1 s per connection run (a smoke run).
#
# Env: SKIFF_BIN, SERVICES, ENDPOINTS, CHANGES, SECONDS_EACH, CONCURRENCY, QUICK.
set -euo pipefail
SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
SERVICES=${SERVICES:-1000}
ENDPOINTS=${ENDPOINTS:-10}
CHANGES=${CHANGES:-100}
SECONDS_EACH=${SECONDS_EACH:-5}
CONCURRENCY=${CONCURRENCY:-1}
if [ "${QUICK:-0}" = 1 ]; then SERVICES=100 CHANGES=20 SECONDS_EACH=1; fi
P=skb$$
NODE=${P}node POD=${P}pod CLI=${P}cli
PIDS=()
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for n in $NODE $POD $CLI; do ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null; done
    for n in $NODE $POD $CLI; do ip netns del "$n" 2>/dev/null; done
}
trap cleanup EXIT
for n in $NODE $POD $CLI; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add "${P}p" netns "$NODE" type veth peer name eth0 netns "$POD"
ip link add "${P}c" netns "$NODE" type veth peer name eth0 netns "$CLI"
ip -n "$NODE" addr add 10.244.1.1/24 dev "${P}p"
ip -n "$NODE" addr add 10.244.2.1/24 dev "${P}c"
ip -n "$POD" addr add 10.244.1.2/24 dev eth0
ip -n "$CLI" addr add 10.244.2.2/24 dev eth0
for l in "${P}p" "${P}c"; do ip -n "$NODE" link set "$l" up; done
for n in $POD $CLI; do ip -n "$n" link set eth0 up; done
ip -n "$POD" route add default via 10.244.1.1
ip -n "$CLI" route add default via 10.244.2.1
ip netns exec "$NODE" sysctl -qw net.ipv4.ip_forward=1
# Room for every connection of the runs below without reusing a port (see `connect --count`).
ip netns exec "$CLI" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"

ip netns exec "$POD" "$SKIFF_BIN" bench proxy serve 0.0.0.0:8080 &
PIDS+=($!)
echo "== sync latency: $SERVICES services x $ENDPOINTS endpoints, $CHANGES endpoint changes"
ip netns exec "$NODE" "$SKIFF_BIN" --log warn bench proxy rules --services "$SERVICES" --endpoints "$ENDPOINTS" \
    --changes "$CHANGES" --first-backends 10.244.1.2:8080 | head -1
echo "== connection rate, $CONCURRENCY loops, ${SECONDS_EACH}s each: cluster IP (DNAT) vs pod IP"
# Warm-up, not counted: the first second of a fresh namespace has SYN retransmits (neighbour
# resolution) whatever the target.
for to in 10.96.0.100:80 10.244.1.2:8080; do
    ip netns exec "$CLI" "$SKIFF_BIN" bench proxy connect "$to" --seconds 1 --count 2000 --concurrency "$CONCURRENCY" >/dev/null
done
for round in 1 2 3 4; do
    for to in 10.96.0.100:80 10.244.1.2:8080; do
        echo -n "round $round  "
        ip netns exec "$CLI" "$SKIFF_BIN" bench proxy connect "$to" --seconds "$SECONDS_EACH" \
            --count 12000 --concurrency "$CONCURRENCY" | head -1
    done
done
