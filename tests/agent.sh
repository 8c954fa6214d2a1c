#!/usr/bin/env bash
# Node agent end to end, with stock kubectl: 3 masters and 2 agents, each group on its own test
# "host" (a network namespace made here: m for the masters and the image registry, n1 and n2 for
# the agents), linked by a bridge inside a fourth namespace (the switch). Nothing touches the
# machine's own interfaces; no namespace has a default route. A busybox image is built from
# Debian's busybox-static and pushed to a docker-registry on the masters' host.
# Checks: both nodes register and go Ready with a podCIDR and a lease; `kubectl run` runs a real
# container (its output in the CRI log file, its exit code in the status); a crash loop backs off;
# a pod on n1 reaches a pod on n2 by pod IP through the routes the agents programmed; a missing
# image is ErrImagePull/ImagePullBackOff; a memory limit is enforced (OOMKilled); a Deployment
# runs its replicas; deleting pods removes every mount, cgroup, veth and IP they had; `kubectl
# logs` (--tail, --timestamps, --since, --limit-bytes, -c, -f, --previous) reads containers' output
# through the agents' HTTPS servers, which admit only the API servers; `kubectl exec` (-i, -t,
# exit codes, RBAC) runs commands in containers through the same servers.
#
# Env: SKIFF_BIN, KEEP_TMP=1.
set -euo pipefail

SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
HERE=$(cd "$(dirname "$0")" && pwd)
BG_PIDS=()
PASSED=0
SUITE=agent
# shellcheck source=tests/check.sh
source "$HERE/check.sh"
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND" >&2; echo "agent: $PASSED passed, 1 failed"' ERR
# shellcheck source=tests/agent-cluster.sh
source "$HERE/agent-cluster.sh"

node_ready() { [ "$(jp node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
wait_for 30 node_ready n1 && wait_for 30 node_ready n2 || true
check_eq "both nodes registered and Ready" "n1=True n2=True" \
    "$(k get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}' | xargs)"
check_match "node reports capacity and node info" '^[0-9]+ .*Ki skiff://' \
    "$(k get node n1 -o jsonpath='{.status.capacity.cpu} {.status.capacity.memory} {.status.nodeInfo.containerRuntimeVersion}')"
check_eq "node lease held and renewed" n1 "$(jp lease -n kube-node-lease n1 -o jsonpath='{.spec.holderIdentity}')"
has_cidr() { [ -n "$(jp node "$1" -o jsonpath='{.spec.podCIDR}')" ]; }
wait_for 20 has_cidr n1 && wait_for 20 has_cidr n2 || true
CIDR1=$(jp node n1 -o jsonpath='{.spec.podCIDR}')
CIDR2=$(jp node n2 -o jsonpath='{.spec.podCIDR}')
check_match "nodes got pod CIDRs" '^10\.244\.[0-9]+\.0/24 10\.244\.[0-9]+\.0/24$' "$CIDR1 $CIDR2"
route_there() { ip -n "$NS_1" route show "$CIDR2" | grep -q "via $NET.12"; }
wait_for 20 route_there || true
check_match "n1 routes n2's pod CIDR via n2" "via $NET.12" "$(ip -n "$NS_1" route show "$CIDR2")"
check_match "cluster CIDR blackholed on the node" 'blackhole 10.244.0.0/16' "$(ip -n "$NS_1" route show type blackhole)"

# ------------------------------------------------------------- a real pod --
phase_is() { [ "$(jp pod "$1" -o jsonpath='{.status.phase}')" = "$2" ]; }
# The test image has /bin/sh and /bin/busybox only: other applets run as `busybox APPLET`.
k run hello --image="$IMG" --restart=Never --overrides='{"spec":{"nodeName":"n1"}}' --env=WHO=skiff \
    --command -- sh -c 'echo hello $WHO from $(busybox hostname); exit 3' >/dev/null
wait_for 60 phase_is hello Failed || true
check_eq "pod ran to its exit code" "Failed 3 Error" \
    "$(jp pod hello -o jsonpath='{.status.phase} {.status.containerStatuses[0].state.terminated.exitCode} {.status.containerStatuses[0].state.terminated.reason}')"
UID_HELLO=$(jp pod hello -o jsonpath='{.metadata.uid}')
check_match "output in the CRI log file" '^[0-9T:.-]+Z stdout F hello skiff from hello$' \
    "$(cat "$TMP"/n1/pods/"$UID_HELLO"/logs/hello/0.log 2>&1)"
check_match "pod has an IP from n1's CIDR" "^${CIDR1%.0/24}\." "$(jp pod hello -o jsonpath='{.status.podIP}')"
check_match "imageID is the manifest digest" '^sha256:[0-9a-f]{64}$' "$(jp pod hello -o jsonpath='{.status.containerStatuses[0].imageID}')"

k run crash --image="$IMG" --overrides='{"spec":{"nodeName":"n1"}}' --command -- sh -c 'exit 1' >/dev/null
restarted() { [ "$(jp pod crash -o jsonpath='{.status.containerStatuses[0].restartCount}')" -ge 1 ]; }
wait_for 40 restarted || true
sleep 2
check_match "crash loop: restarted, then backing off" '^[1-9][0-9]* (CrashLoopBackOff|ContainerCreating) 1$' \
    "$(jp pod crash -o jsonpath='{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].state.waiting.reason} {.status.containerStatuses[0].lastState.terminated.exitCode}')"

k run nosuch --image="$NET.1:5000/test/nosuch:1" --overrides='{"spec":{"nodeName":"n2"}}' >/dev/null
pull_failed() { jp pod nosuch -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}' | grep -Eq 'ErrImagePull|ImagePullBackOff'; }
wait_for 30 pull_failed || true
check_match "missing image: ErrImagePull / ImagePullBackOff" 'ErrImagePull|ImagePullBackOff' \
    "$(jp pod nosuch -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}')"

cat <<YAML | k create -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  nodeName: n2
  restartPolicy: Never
  containers:
  - name: hog
    image: $IMG
    command: [sh, -c, 'x=a; while true; do x=\$x\$x; done']
    resources: {limits: {memory: 32Mi}}
YAML
wait_for 60 phase_is hog Failed || true
check_eq "memory limit enforced: OOMKilled" "Failed OOMKilled" \
    "$(jp pod hog -o jsonpath='{.status.phase} {.status.containerStatuses[0].state.terminated.reason}')"

# ------------------------------------------------------- pod to pod, cross node --
k run server --image="$IMG" --overrides='{"spec":{"nodeName":"n2"}}' --command -- busybox sleep 600 >/dev/null
wait_for 60 phase_is server Running || true
SERVER_IP=$(jp pod server -o jsonpath='{.status.podIP}')
check_match "server pod on n2 running with an IP from n2's CIDR" "^Running ${CIDR2%.0/24}\." "$(jp pod server -o jsonpath='{.status.phase}') $SERVER_IP"
k run client --image="$IMG" --restart=Never --overrides='{"spec":{"nodeName":"n1"}}' --command -- busybox ping -c 2 -W 2 "$SERVER_IP" >/dev/null
wait_for 60 phase_is client Succeeded || true
check_eq "a pod on n1 pings a pod on n2 by pod IP" Succeeded "$(jp pod client -o jsonpath='{.status.phase}')"

# ------------------------------------------------------ two containers, one pod --
cat <<YAML | k create -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: duo}
spec:
  nodeName: n1
  restartPolicy: Never
  containers:
  - name: web
    image: $IMG
    command: [busybox, httpd, -f, -p, "8080", -h, /etc]
  - name: get
    image: $IMG
    command: [sh, -c, 'for i in 1 2 3 4 5 6 7 8 9 10; do busybox wget -q -O - http://127.0.0.1:8080/skiff-release && exit 0; busybox sleep 0.5; done; exit 1']
YAML
get_done() { [ -n "$(jp pod duo -o jsonpath='{.status.containerStatuses[?(@.name=="get")].state.terminated.exitCode}')" ]; }
wait_for 60 get_done || true
check_eq "two containers of a pod talk over localhost" "0 Running" \
    "$(jp pod duo -o jsonpath='{.status.containerStatuses[?(@.name=="get")].state.terminated.exitCode} {.status.phase}')"
UID_DUO=$(jp pod duo -o jsonpath='{.metadata.uid}')
check_match "the second container's output logged" 'stdout F skiff test image' "$(cat "$TMP"/n1/pods/"$UID_DUO"/logs/get/0.log 2>&1)"

# ------------------------------------------------------------------ kubectl logs --
# Served by the agents' HTTPS servers (--listen-kubelet, NODE_IP:10250) through the API server.
check_eq "node reports its agent port" 10250 "$(jp node n1 -o jsonpath='{.status.daemonEndpoints.kubeletEndpoint.Port}')"
k run again --image="$IMG" --overrides='{"spec":{"nodeName":"n2"}}' --command -- sh -c 'echo run; exit 1' >/dev/null
k run talker --image="$IMG" --restart=Never --overrides='{"spec":{"nodeName":"n2"}}' --command -- \
    sh -c 'echo line one; echo line two; echo line three' >/dev/null
cat <<YAML | k create -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: pair}
spec:
  nodeName: n1
  restartPolicy: Never
  containers:
  - {name: left, image: $IMG, command: [sh, -c, 'echo from left']}
  - {name: right, image: $IMG, command: [sh, -c, 'echo from right']}
YAML
k run ticker --image="$IMG" --env=SKIFF_GREETING=ahoy --overrides='{"spec":{"nodeName":"n1"}}' --command -- \
    sh -c 'i=0; while true; do i=$((i+1)); echo tick $i; busybox sleep 1; done' >/dev/null
wait_for 60 phase_is talker Succeeded || true
wait_for 60 phase_is pair Succeeded || true
wait_for 60 phase_is ticker Running || true
check_eq "kubectl logs: the container's output" "line one|line two|line three" "$(k logs talker 2>&1 | paste -sd'|')"
check_eq "kubectl logs --tail=1" "line three" "$(k logs talker --tail=1 2>&1)"
check_match "kubectl logs --timestamps" '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z line three$' \
    "$(k logs talker --tail=1 --timestamps 2>&1)"
check_eq "kubectl logs --limit-bytes=6" "line o" "$(k logs talker --limit-bytes=6 2>&1)"
check_eq "kubectl logs --since=1h: everything" 3 "$(k logs talker --since=1h 2>&1 | wc -l)"
check_eq "kubectl logs --since-time in the future: nothing" "" "$(k logs talker --since-time=2100-01-01T00:00:00Z 2>&1)"
check_eq "kubectl logs -c picks the container" "from right" "$(k logs pair -c right 2>&1)"
check_match "no container named (several): 400 naming the choices" \
    'BadRequest.*a container name must be specified for pod pair, choose one of: \[left right\]' \
    "$(k get --raw /api/v1/namespaces/default/pods/pair/log 2>&1)"
check_match "unknown container: 400" 'container nosuch is not valid for pod pair' "$(k logs pair -c nosuch 2>&1)"
check_match "out-of-range option: 422" 'PodLogOptions "pair" is invalid.*tailLines' \
    "$(k get --raw '/api/v1/namespaces/default/pods/pair/log?container=left&tailLines=-2' 2>&1)"
# -f: lines arrive one by one as the container prints them (a buffered body would show none
# before the timeout kills kubectl), each stamped with its arrival time here.
inm timeout 6 "$KUBECTL" --kubeconfig "$TMP/m1/admin.kubeconfig" --server "https://$NET.1:6443" \
    logs -f --tail=1 ticker 2>&1 | while IFS= read -r l; do echo "$(date +%s.%N) $l"; done >"$TMP/follow.out" || true
check_py "kubectl logs -f streams: a tick a second, as they come" "d[0] >= 3 and d[1] >= 2" \
    "[$(grep -c ' tick ' "$TMP/follow.out"), $(awk 'NR==1{f=$1} {l=$1} END{printf "%.1f", l-f}' "$TMP/follow.out")]"
check_eq "kubectl logs -f of a finished container ends after its output" "0 3" \
    "$(rc=0; n=$(inm timeout 20 "$KUBECTL" --kubeconfig "$TMP/m1/admin.kubeconfig" --server "https://$NET.1:6443" \
        logs -f talker 2>&1 | wc -l) || rc=$?; echo "$rc $n")"
ran_twice() { [ "$(jp pod again -o jsonpath='{.status.containerStatuses[0].restartCount}')" -ge 2 ] 2>/dev/null; }
wait_for 60 ran_twice || true
check_eq "kubectl logs --previous: the last run's output" run "$(k logs again --previous 2>&1)"
# agent_get CURL_ARGS...: "CODE BODY" of a request to n1's agent server, from the masters' host.
agent_get() {
    local code
    code=$(inm curl -sk -o "$TMP/agent.resp" -w '%{http_code}' "$@" "https://$NET.11:10250/containerLogs/default/pair/left")
    echo "$code $(cat "$TMP/agent.resp")"
}
check_match "the agent server refuses a client without a certificate (401)" '^401 Unauthorized' "$(agent_get)"
"$KUBECTL" config view --kubeconfig "$TMP/m1/admin.kubeconfig" --raw -o jsonpath='{.users[0].user.client-certificate-data}' | base64 -d >"$TMP/admin.crt"
"$KUBECTL" config view --kubeconfig "$TMP/m1/admin.kubeconfig" --raw -o jsonpath='{.users[0].user.client-key-data}' | base64 -d >"$TMP/admin.key"
check_match "the agent server refuses the cluster admin (403): only API servers may call" '^403 Forbidden: user "admin"' \
    "$(agent_get --cert "$TMP/admin.crt" --key "$TMP/admin.key")"

# ------------------------------------------------------------------ kubectl exec --
# WebSocket (v5.channel.k8s.io) from kubectl to the API server, spliced to the agent's server,
# which runs the command in the container through libcontainer.
exec_out=$(k exec ticker -- sh -c 'echo out; echo err >&2; exit 3' 2>"$TMP/exec.err") && rc=0 || rc=$?
check_eq "kubectl exec: stdout, stderr and the exit code" "out|err|3" "$exec_out|$(grep -v '^command terminated' "$TMP/exec.err")|$rc"
check_eq "kubectl exec -i: stdin to the command, closed at its end" "hi 20000" \
    "$(echo hi | k exec -i ticker -- busybox cat 2>&1) $(seq 1 20000 | k exec -i ticker -- busybox wc -l 2>&1 | tr -d ' ')"
check_eq "exec runs in the container: its env, its PID 1" "ahoy sh -c i=0;" \
    "$(k exec ticker -- sh -c 'echo $SKIFF_GREETING' 2>&1) $(k exec ticker -- busybox cat /proc/1/cmdline 2>&1 | tr '\0' ' ' | cut -d' ' -f1-3)"
# -t: a terminal in the container, sized as kubectl's own (script gives kubectl one; at the end
# of its empty stdin script types a NUL, which the container's terminal echoes as ^@).
tty_out=$(inm script -qec "stty cols 123 rows 45; $KUBECTL --kubeconfig $TMP/m1/admin.kubeconfig --server https://$NET.1:6443 exec -it ticker -- sh -c 'busybox tty; busybox stty size'" /dev/null </dev/null 2>&1 | tr -d '\r' | sed 's/\^@//g')
check_match "kubectl exec -it: a pty, with the client's window size" '^/dev/pts/[0-9]+ 45 123$' "$(echo $tty_out)"
check_match "exec into an unknown container: 400" 'container nosuch is not valid for pod ticker' \
    "$(k exec ticker -c nosuch -- true 2>&1)"
check_match "exec of a missing command: the reason, exit code not 0" 'no-such-cmd.*(not found|No such file)' \
    "$(k exec ticker -- no-such-cmd 2>&1 && echo exited 0)"
check_match "exec into a completed pod: 400" 'cannot exec into a container in a completed pod; current phase is Succeeded' \
    "$(k exec talker -- true 2>&1)"
k create role pod-reader --verb=get,list --resource=pods >/dev/null
k create rolebinding eve-reads --role=pod-reader --user=eve >/dev/null
check_match "exec needs create on pods/exec (RBAC): reading pods is not enough" 'forbidden: User "eve" cannot create resource "pods/exec"' \
    "$(k exec --as=eve ticker -- true 2>&1)"
# A client that goes away takes its command with it.
inm timeout 3 "$KUBECTL" --kubeconfig "$TMP/m1/admin.kubeconfig" --server "https://$NET.1:6443" \
    exec ticker -- busybox sleep 4242 >/dev/null 2>&1 || true
sleep_gone() { ! pgrep -f 'sleep 4242' >/dev/null; }
wait_for 10 sleep_gone || true
check_eq "an abandoned exec's command is killed; no helper or file left" "0 0 " \
    "$(pgrep -fc 'sleep 4242' || true) $(pgrep -fc 'skiff agent-exec' || true) $(ls "$TMP"/n1/runtime/exec 2>&1)"

# ------------------------------------------------------------------ probes --
cat <<YAML | k create -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  nodeName: n1
  containers:
  - name: web
    image: $IMG
    command: [busybox, httpd, -f, -p, "8080", -h, /etc]
    readinessProbe: {httpGet: {path: /skiff-release, port: 8080}, periodSeconds: 1}
  - name: picky
    image: $IMG
    command: [busybox, httpd, -f, -p, "8081", -h, /etc]
    readinessProbe: {httpGet: {path: /no-such-file, port: 8081}, periodSeconds: 1}
  - name: dead
    image: $IMG
    command: [busybox, sleep, "600"]
    livenessProbe: {tcpSocket: {port: 9}, periodSeconds: 1, failureThreshold: 2}
  - name: flagged
    image: $IMG
    command: [sh, -c, 'busybox touch /etc/ready; exec busybox sleep 600']
    readinessProbe: {exec: {command: [busybox, test, -e, /etc/ready]}, periodSeconds: 1}
  - name: slow
    image: $IMG
    command: [busybox, sleep, "600"]
    readinessProbe: {exec: {command: [busybox, sleep, "30"]}, periodSeconds: 1, timeoutSeconds: 1}
  - name: sick
    image: $IMG
    command: [busybox, sleep, "600"]
    livenessProbe: {exec: {command: [busybox, cat, /etc/healthy]}, periodSeconds: 1, failureThreshold: 2}
YAML
restarted_once() { [ "$(jp pod probed -o jsonpath="{.status.containerStatuses[?(@.name==\"$1\")].restartCount}")" -ge 1 ] 2>/dev/null; }
wait_for 60 restarted_once dead || true
wait_for 60 restarted_once sick || true
check_eq "readiness probes: httpGet 200 ready, 404 not ready" "true false" \
    "$(jp pod probed -o jsonpath='{.status.containerStatuses[?(@.name=="web")].ready} {.status.containerStatuses[?(@.name=="picky")].ready}')"
check_match "liveness probe failure restarts the container" '^[1-9]' \
    "$(jp pod probed -o jsonpath='{.status.containerStatuses[?(@.name=="dead")].restartCount}')"
check_match "probe failures are events" 'Liveness probe failed: dial tcp' \
    "$(k get events -o jsonpath='{range .items[*]}{.involvedObject.name}: {.message}{"\n"}{end}' 2>&1 | grep '^probed: ')"
check_eq "exec probes: exit 0 ready; a command past its timeout not ready" "true false" \
    "$(jp pod probed -o jsonpath='{.status.containerStatuses[?(@.name=="flagged")].ready} {.status.containerStatuses[?(@.name=="slow")].ready}')"
check_match "exec liveness failure restarts, its output the event's message" \
    "^[1-9][0-9]* .*Liveness probe failed: cat: can't open '/etc/healthy': No such file or directory" \
    "$(jp pod probed -o jsonpath='{.status.containerStatuses[?(@.name=="sick")].restartCount}') $(k get events -o jsonpath='{range .items[*]}{.involvedObject.name}: {.message}{"\n"}{end}' 2>&1 | grep '^probed: ' | paste -sd' ')"
check_match "an exec probe past its timeout is an event" 'Readiness probe failed: command \[.busybox., .sleep., .30.\] timed out after 1s' \
    "$(k get events -o jsonpath='{range .items[*]}{.involvedObject.name}: {.message}{"\n"}{end}' 2>&1 | grep '^probed: ')"

# ------------------------------------------------------ graceful termination --
k run polite --image="$IMG" --overrides='{"spec":{"nodeName":"n2"}}' --command -- \
    sh -c 'trap "echo got TERM; exit 0" TERM; while true; do busybox sleep 0.2; done' >/dev/null
k run stubborn --image="$IMG" --overrides='{"spec":{"nodeName":"n2"}}' --command -- \
    sh -c 'trap "" TERM; while true; do busybox sleep 0.2; done' >/dev/null
wait_for 60 phase_is polite Running || true
wait_for 60 phase_is stubborn Running || true
UID_POLITE=$(jp pod polite -o jsonpath='{.metadata.uid}')
gone() { ! k get pod "$1" >/dev/null 2>&1; }
t0=$(date +%s.%N)
k delete pod polite --grace-period=30 --wait=false >/dev/null
wait_for 40 gone polite || true
t_polite=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
check_py "SIGTERM honoured: gone well before the 30 s grace" "d < 10" "$t_polite"
t0=$(date +%s.%N)
k delete pod stubborn --grace-period=3 --wait=false >/dev/null
wait_for 40 gone stubborn || true
t_stubborn=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
check_py "SIGTERM ignored: killed after the 3 s grace" "3 <= d < 12" "$t_stubborn"

# ---------------------------------------------------- adoption after a restart --
CID=$(jp pod server -o jsonpath='{.status.containerStatuses[0].containerID}')
kill -9 "${BG_PIDS[-1]}"
start_agent 2
sleep 8
SERVER_UID_NOW=$(jp pod server -o jsonpath='{.metadata.uid}')
check_eq "after an agent restart the running container is adopted, not duplicated" "$CID 0 Running" \
    "$(jp pod server -o jsonpath='{.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount} {.status.phase}')"
check_eq "one process tree for the adopted pod" 1 \
    "$(cat /sys/fs/cgroup/pids/skiff/pod"$SERVER_UID_NOW"/*/cgroup.procs 2>/dev/null | wc -l)"

# -------------------------------------------------------------- deployment --
k create deployment web --image="$IMG" --replicas=2 -- busybox sleep 600 >/dev/null
all_ready() { [ "$(jp deployment web -o jsonpath='{.status.readyReplicas}')" = 2 ]; }
wait_for 60 all_ready || true
check_eq "deployment's replicas run and are ready" 2 "$(jp deployment web -o jsonpath='{.status.readyReplicas}')"

# ----------------------------------------------------------------- cleanup --
SERVER_UID=$(jp pod server -o jsonpath='{.metadata.uid}')
k delete deployment web --wait=false >/dev/null
k delete pod hello crash nosuch hog server client duo probed again talker pair ticker --grace-period=2 --wait=false >/dev/null
no_pods() { [ -z "$(k get pods -o name 2>/dev/null)" ]; }
wait_for 60 no_pods || true
check_eq "deleted pods are gone from the API (the agents confirmed)" "" "$(k get pods -o name 2>&1)"
sleep 1
check_eq "no pod directories left" "" "$(ls "$TMP/n1/pods" "$TMP/n2/pods" 2>&1 | grep -v '^/\|^$' || true)"
check_eq "no overlay mounts left" "" "$(grep " $TMP/n" /proc/*/mountinfo 2>/dev/null | grep -c overlay | grep -v '^0$' || true)"
check_eq "no pod cgroups left" "" "$(ls -d /sys/fs/cgroup/*/skiff/pod"$SERVER_UID" /sys/fs/cgroup/*/skiff/pod"$UID_HELLO" /sys/fs/cgroup/*/skiff/pod"$UID_POLITE" 2>/dev/null || true)"
check_eq "no pod veths left" "" "$(ip -n "$NS_1" -o link show | grep -o 'vskf[0-9a-f]*' || true)$(ip -n "$NS_2" -o link show | grep -o 'vskf[0-9a-f]*' || true)"
check_eq "no IPs left allocated" "" "$(find "$TMP"/n*/network/ipam -type f ! -name 'last*' ! -name '.*' 2>/dev/null || true)"

echo "agent: $PASSED passed"
