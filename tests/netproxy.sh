#!/usr/bin/env bash
# Services end to end, with stock kubectl: 3 masters and 2 agents on test hosts in network
# namespaces (tests/agent-cluster.sh), each agent running netproxy (nftables) and cluster DNS.
# (busybox wget -T crashes the static busybox in an empty image: `busybox timeout` bounds it.)
# Checks: a Deployment of 3 busybox httpd replicas behind a ClusterIP service (named target
# port); a client pod on the other node reaches the ClusterIP and, over many requests, all
# three backends; the same by DNS name (full and short); scaled to 1, the node's rules follow
# within a second; a NodePort answers on both nodes' addresses from outside the cluster; a
# service without endpoints is refused at once; the `kubernetes` service lists the masters and
# a pod reaches them through it; the rules are in table `ip skiff` and the proxy
# reports its syncs on /metrics; a stopped agent removes its table.
#
# Env: SKIFF_BIN, KEEP_TMP=1.
set -euo pipefail

SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
HERE=$(cd "$(dirname "$0")" && pwd)
BG_PIDS=()
PASSED=0
SUITE=netproxy
# shellcheck source=tests/check.sh
source "$HERE/check.sh"
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND" >&2; echo "netproxy: $PASSED passed, 1 failed"' ERR
# shellcheck source=tests/agent-cluster.sh
source "$HERE/agent-cluster.sh"

node_ready() { [ "$(jp node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
wait_for 30 node_ready n1 && wait_for 30 node_ready n2 || true
has_cidr() { [ -n "$(jp node "$1" -o jsonpath='{.spec.podCIDR}')" ]; }
wait_for 20 has_cidr n1 && wait_for 20 has_cidr n2 || true

# pod_out NODE POD: what the pod's (single) container printed, without the CRI prefixes.
pod_out() {
    local uid
    uid=$(jp pod "$2" -o jsonpath='{.metadata.uid}')
    cut -d' ' -f4- "$TMP/$1/pods/$uid/logs/$2/0.log" 2>/dev/null || true
}
phase_is() { [ "$(jp pod "$1" -o jsonpath='{.status.phase}')" = "$2" ]; }
done_() { phase_is "$1" Succeeded || phase_is "$1" Failed; }
# client NAME NODE SCRIPT: runs SCRIPT in a pod on NODE to its end.
client() {
    k run "$1" --image="$IMG" --restart=Never --overrides="{\"spec\":{\"nodeName\":\"$2\"}}" \
        --command -- sh -c "$3" >/dev/null
    wait_for 60 done_ "$1" || true
}

# ----------------------------------------------------------- the service --
k apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: httpd
        image: $IMG
        command: [sh, -c, 'busybox mkdir -p /www && busybox hostname >/www/index.html && exec busybox httpd -f -p 8080 -h /www']
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nobody}
  ports: [{port: 80, targetPort: 8080}]
YAML
ready3() { [ "$(jp deployment web -o jsonpath='{.status.readyReplicas}')" = 3 ]; }
wait_for 90 ready3 || true
check_eq "3 httpd replicas ready" 3 "$(jp deployment web -o jsonpath='{.status.readyReplicas}')"
VIP=$(jp service web -o jsonpath='{.spec.clusterIP}')
check_match "the service got a cluster IP from 10.96.0.0/16" '^10\.96\.[0-9]+\.[0-9]+$' "$VIP"
slice3() { [ "$(jp endpointslices -l kubernetes.io/service-name=web -o jsonpath='{.items[*].endpoints[*].addresses[0]}' | wc -w)" = 3 ]; }
wait_for 20 slice3 || true
check_eq "the endpoint slice resolved the named port" "http 8080" \
    "$(jp endpointslices -l kubernetes.io/service-name=web -o jsonpath='{.items[0].ports[0].name} {.items[0].ports[0].port}')"
rules_have() { [ "$(ip netns exec "$NS_2" nft list table ip skiff 2>/dev/null | grep -c "dnat to 10\.244\.")" -ge "$1" ]; }
wait_for 10 rules_have 3 || true
check_match "n2 programmed the service into table ip skiff" "$VIP \. tcp \. 80 : goto" \
    "$(ip netns exec "$NS_2" nft list map ip skiff service-ips 2>&1)"

# ---------------------------------------------------- reaching the service --
client c-vip n2 "for i in \$(busybox seq 1 40); do busybox timeout 5 busybox wget -q -O - http://$VIP:80/ || echo FAILED; done"
HITS=$(pod_out n2 c-vip)
check_eq "a client on n2 reached the ClusterIP 40 times" "40 0" \
    "$(grep -c '^web-' <<<"$HITS" || true) $(grep -c FAILED <<<"$HITS" || true)"
check_eq "the requests reached all three backends" 3 "$(grep '^web-' <<<"$HITS" | sort -u | wc -l)"
client c-dns n2 "busybox nslookup web.default.svc.cluster.local; busybox timeout 5 busybox wget -q -O - http://web.default.svc.cluster.local:80/; busybox timeout 5 busybox wget -q -O - http://web:80/"
OUT=$(pod_out n2 c-dns)
check_match "cluster DNS answers the service name with its cluster IP" "Address: $VIP" "$OUT"
check_eq "reached by full and short DNS name" 2 "$(grep -c '^web-' <<<"$OUT" || true)"
client c-nx n1 "busybox nslookup nosuch.default.svc.cluster.local; echo rc=\$?"
check_match "an unknown service name is NXDOMAIN" "NXDOMAIN|can't find" "$(pod_out n1 c-nx)"

# -------------------------------------------------------------- node port --
NP1=$(inm curl -s --max-time 3 "http://$NET.11:30080/" || echo none)
NP2=$(inm curl -s --max-time 3 "http://$NET.12:30080/" || echo none)
check_match "the NodePort answers on n1 and n2 from outside the cluster" '^web-[^ ]+ web-[^ ]+$' "$NP1 $NP2"
check_eq "the service kept the requested node port" 30080 "$(jp service web-np -o jsonpath='{.spec.ports[0].nodePort}')"
k create service nodeport auto --tcp=80:8080 >/dev/null
check_match "a node port is allocated from 30000-32767" '^(3[0-1][0-9]{3}|32[0-6][0-9]{2}|327[0-6][0-9])$' \
    "$(jp service auto -o jsonpath='{.spec.ports[0].nodePort}')"
check_match "a taken node port is refused, naming the field" 'spec.ports\[0\].nodePort.*already allocated' \
    "$(k create service nodeport dup --tcp=80:8080 --node-port=30080 2>&1 || true)"

etcd_keys() { inm env ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379 get --prefix "$1" --keys-only | grep -c . || true; }
SVC_IPS=$(k get svc -A -o jsonpath='{range .items[*]}{.spec.clusterIP}{"\n"}{end}' | grep -c '^[0-9]' || true)
check_eq "one cluster IP reservation per service (the refused create left none)" "$SVC_IPS" \
    "$(etcd_keys /registry/skiff/serviceips/)"
check_eq "one node port reservation per node port in use" 2 "$(etcd_keys /registry/skiff/nodeports/)"

# -------------------------------------------------- the kubernetes service --
check_eq "the kubernetes service is 10.96.0.1:443" "10.96.0.1 443" \
    "$(jp service kubernetes -o jsonpath='{.spec.clusterIP} {.spec.ports[0].port}')"
masters_listed() { [ "$(jp endpointslice kubernetes -o jsonpath='{.endpoints[*].addresses[0]}' | wc -w)" = 3 ]; }
wait_for 30 masters_listed || true
check_eq "its endpoints are the three masters' API addresses" "$NET.1 $NET.2 $NET.3" \
    "$(jp endpointslice kubernetes -o jsonpath='{.endpoints[*].addresses[0]}' | tr ' ' '\n' | sort | xargs)"
# The masters' host routes the pod CIDRs back to the nodes (masters are not nodes here).
ip -n "$NS_M" route add "$(jp node n1 -o jsonpath='{.spec.podCIDR}')" via "$NET.11"
ip -n "$NS_M" route add "$(jp node n2 -o jsonpath='{.spec.podCIDR}')" via "$NET.12"
# Plain HTTP to the TLS port: the handshake fails, but only after the connection was made.
client c-api n1 "busybox timeout 5 busybox wget -q -O - http://10.96.0.1:443/ 2>&1; echo rc=\$?"
OUT=$(pod_out n1 c-api)
check_match "a pod reaches the API servers at 10.96.0.1:443 (connected; TLS refuses plain HTTP)" \
    'error getting response' "$OUT"

# ---------------------------------------------------------- no endpoints --
EMPTY=$(jp service empty -o jsonpath='{.spec.clusterIP}')
# /proc/uptime in centiseconds: the image's busybox date has no %N.
client c-empty n2 "read s _ </proc/uptime; busybox timeout 10 busybox wget -q -O - http://$EMPTY:80/ 2>&1; read e _ </proc/uptime; echo ms=\$(( (\${e%.*}\${e#*.} - \${s%.*}\${s#*.}) * 10 ))"
OUT=$(pod_out n2 c-empty)
check_match "a service without endpoints is refused" "refused" "$OUT"
check_py "refused at once, not timed out" "d < 1000" "$(sed -n 's/^ms=//p' <<<"$OUT")"

# ----------------------------------------------------------------- scaling --
k scale deployment web --replicas=1 >/dev/null
slice1() { [ "$(jp endpointslices -l kubernetes.io/service-name=web -o jsonpath='{.items[*].endpoints[*].addresses[0]}' | wc -w)" = 1 ]; }
wait_for 30 slice1 || true
t0=$(date +%s%N)
rules_one() { [ "$(ip netns exec "$NS_2" nft list table ip skiff 2>/dev/null | grep -c "dnat to 10\.244\.")" = 2 ]; }
for _ in $(seq 1 100); do rules_one && break; sleep 0.02; done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# web and web-np keep one endpoint each.
check_eq "scaled to 1: n2's rules follow" 2 "$(ip netns exec "$NS_2" nft list table ip skiff | grep -c "dnat to 10\.244\.")"
check_py "within a second of the slice change" "d < 1000" "$ms"
client c-one n1 "for i in \$(busybox seq 1 10); do busybox timeout 5 busybox wget -q -O - http://$VIP:80/ || echo FAILED; done"
check_eq "every request now reaches the one backend" "10 1" \
    "$(pod_out n1 c-one | grep -c '^web-') $(pod_out n1 c-one | grep '^web-' | sort -u | wc -l)"

# ---------------------------------------------------------------- metrics --
M=$(ip netns exec "$NS_1" curl -s --max-time 2 http://127.0.0.1:10249/metrics)
check_match "metrics: syncs counted" '^skiff_netproxy_syncs_total [1-9]' "$M"
check_match "metrics: no sync errors" '^skiff_netproxy_sync_errors_total 0$' "$M"
check_match "metrics: sync latency histogram" '^skiff_netproxy_sync_latency_seconds_count [1-9]' "$M"

# --------------------------------------------------------------- shutdown --
kill -TERM "${BG_PIDS[-2]}"
gone() { ! ip netns exec "$NS_1" nft list table ip skiff >/dev/null 2>&1; }
wait_for 15 gone || true
check_eq "a stopped agent removes its nftables table" "" "$(ip netns exec "$NS_1" nft list table ip skiff 2>/dev/null || true)"

k delete deployment web --wait=false >/dev/null
echo "netproxy: $PASSED passed"
