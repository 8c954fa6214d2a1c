#!/usr/bin/env bash
# kubectl compatibility test.
#
# Starts 3 skiff masters on loopback (127.0.0.1-3, API on API_PORT over HTTPS),
# then drives the stock /usr/bin/kubectl (v1.32) against them and checks what
# it prints and what the API stores, not just exit codes. Ends by killing the
# master kubectl talks to and carrying on through another one.
#
# Env: SKIFF_BIN, PORT_BASE (default 25790: client; +1 peer; +2 metrics; +3 API),
# KEEP_TMP=1 keeps the temp dir (data dirs, logs, kubeconfig).
set -euo pipefail

SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
PORT_BASE=${PORT_BASE:-25790}
CPORT=$PORT_BASE
PPORT=$((PORT_BASE + 1))
MPORT=$((PORT_BASE + 2))
APORT=$((PORT_BASE + 3))
KUBECTL=${KUBECTL:-/usr/bin/kubectl}

TMP=$(mktemp -d /tmp/skiff-kubectl.XXXXXX)
declare -A PID=()
BG_PIDS=()
PASSED=0
SUITE=kubectl
# shellcheck source=tests/check.sh
source "$(dirname "$0")/check.sh"

trap cleanup EXIT
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND" >&2; echo "kubectl: $PASSED passed, 1 failed"' ERR

require_free_ports "127.0.0.1 127.0.0.2 127.0.0.3" "$CPORT $PPORT $MPORT $APORT"

start_master() {
    local i=$1 ip=127.0.0.$1
    "$SKIFF_BIN" master --name "m$i" --data-dir "$TMP/m$i" \
        --listen-peer "$ip:$PPORT" --listen-client "$ip:$CPORT" --listen-api "$ip:$APORT" --listen-metrics "$ip:$MPORT" \
        --initial-cluster "m1=127.0.0.1:$PPORT,m2=127.0.0.2:$PPORT,m3=127.0.0.3:$PPORT" \
        >>"$TMP/m$i.log" 2>&1 &
    PID[m$i]=$!
    BG_PIDS+=($!)
}
for i in 1 2 3; do start_master "$i"; done

# Wait for every API server (the kubeconfig needs the CA the masters write).
for i in 1 2 3; do
    for _ in $(seq 1 300); do
        [ -f "$TMP/m$i/admin.kubeconfig" ] && curl -sk --max-time 1 "https://127.0.0.$i:$APORT/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
done
"$SKIFF_BIN" kubeconfig --data-dir "$TMP/m1" --server "https://127.0.0.1:$APORT" >"$TMP/kubeconfig"
export KUBECONFIG=$TMP/kubeconfig
k() { "$KUBECTL" --request-timeout=20s "$@"; }

# ------------------------------------------------------------ discovery ----

out=$(k version -o json)
check_py "version: server is 1.32" 'd["serverVersion"]["major"] == "1" and d["serverVersion"]["minor"] == "32"' "$out"
out=$(k cluster-info)
check_contains "cluster-info names the control plane" "is running at https://127.0.0.1:$APORT" "$out"
out=$(k api-versions)
for gv in v1 apps/v1 coordination.k8s.io/v1 discovery.k8s.io/v1 events.k8s.io/v1 rbac.authorization.k8s.io/v1; do
    check_match "api-versions lists $gv" "^$gv\$" "$out"
done
out=$(k api-resources --no-headers)
check_match "api-resources: pods, po, v1, namespaced, Pod" '^pods +po +v1 +true +Pod$' "$out"
check_match "api-resources: deployments, deploy, apps/v1" '^deployments +deploy +apps/v1 +true +Deployment$' "$out"
check_match "api-resources: nodes are cluster-scoped" '^nodes +no +v1 +false +Node$' "$out"
out=$(k get namespaces -o name)
for ns in default kube-system kube-public kube-node-lease; do
    check_match "namespace $ns exists from the start" "^namespace/$ns\$" "$out"
done

# ------------------------------------------------------------ create -f ----

cat >"$TMP/objs.yaml" <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Pod
metadata:
  name: web-0
  namespace: shop
  labels: {app: web, tier: front}
spec:
  containers:
  - name: web
    image: busybox:1.36
    command: ["sleep", "3600"]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
  labels: {app: api}
spec:
  replicas: 2
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: busybox:1.36
      - name: sidecar
        image: busybox:1.36
        env:
        - {name: MODE, value: side}
---
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: shop
spec:
  selector: {app: api}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  color: blue
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: shop
stringData:
  password: hunter2
EOF
out=$(k create -f "$TMP/objs.yaml")
for o in namespace/shop pod/web-0 deployment.apps/api service/api configmap/settings secret/creds; do
    check_contains "create -f: $o created" "$o created" "$out"
done
out=$(k create -f "$TMP/objs.yaml" 2>&1 || true)
check_contains "create -f again: AlreadyExists" 'pods "web-0" already exists' "$out"

out=$(k get pod web-0 -n shop -o json)
check_py "pod: uid, creationTimestamp, resourceVersion set" 'len(d["metadata"]["uid"]) == 36 and d["metadata"]["creationTimestamp"].endswith("Z") and int(d["metadata"]["resourceVersion"]) > 0' "$out"
check_py "pod: defaults (restartPolicy, pull policy, phase)" 'd["spec"]["restartPolicy"] == "Always" and d["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent" and d["status"]["phase"] == "Pending"' "$out"
out=$(k get svc api -n shop -o jsonpath='{.spec.clusterIP}')
check_match "service got a cluster IP in 10.96.0.0/16" '^10\.96\.[0-9]+\.[0-9]+$' "$out"
out=$(k get secret creds -n shop -o jsonpath='{.data.password}' | base64 -d)
check_eq "secret stringData stored as data" "hunter2" "$out"
out=$(ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:$CPORT get --prefix /registry/pods/shop/ --keys-only)
check_contains "etcdctl sees the pod under /registry/pods" "/registry/pods/shop/web-0" "$out"

# ------------------------------------------------------------------ get ----

out=$(k get pods -n shop -o wide)
check_match "get -o wide: header" '^NAME +READY +STATUS +RESTARTS +AGE +IP +NODE' "$out"
check_match "get -o wide: row" '^web-0 +0/1 +Pending +0 ' "$out"
out=$(k get deploy api -n shop -o yaml)
check_contains "get -o yaml: replicas" "replicas: 2" "$out"
out=$(k get deploy api -n shop -o jsonpath='{.spec.template.spec.containers[*].name}')
check_eq "get -o jsonpath" "api sidecar" "$out"
out=$(k get pods -n shop -l app=web -o name)
check_eq "get -l app=web" "pod/web-0" "$out"
out=$(k get pods -n shop -l 'app in (nothing)' -o name 2>&1)
check_eq "get -l with no match" "" "$out"
out=$(k get pods -A --field-selector metadata.name=web-0 -o name)
check_eq "get -A --field-selector" "pod/web-0" "$out"
out=$(k get pods -A --field-selector spec.nodeName= --no-headers)
check_match "get -A shows the namespace column" '^shop +web-0 ' "$out"
out=$(k get pods --field-selector spec.bogus=1 2>&1 || true)
check_contains "unsupported field selector is refused" "field label not supported: spec.bogus" "$out"
out=$(k get cm,secret -n shop --no-headers)
check_match "get configmap row" '^configmap/settings +1 ' "$out"
check_match "get secret row" '^secret/creds +Opaque +1 ' "$out"

# -------------------------------------------------------------- --watch ----

# The API server's own informers (RBAC, admission caches) hold store watchers too: count from them.
base_watchers=$(curl -s "http://127.0.0.1:$MPORT/metrics" | awk '/^skiff_watchers /{print $2}')
"$KUBECTL" get configmaps -n shop --watch -o name >"$TMP/watch.out" 2>&1 &
WPID=$!
BG_PIDS+=($WPID)
sleep 1
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched, namespace: shop}\ndata: {a: "1"}\n' | k create -f - >/dev/null
for _ in $(seq 1 50); do grep -q configmap/watched "$TMP/watch.out" && break; sleep 0.1; done
kill "$WPID" 2>/dev/null || true
check_contains "get --watch sees a configmap created meanwhile" "configmap/watched" "$(cat "$TMP/watch.out")"
watchers=
for _ in $(seq 1 50); do
    watchers=$(curl -s "http://127.0.0.1:$MPORT/metrics" | awk '/^skiff_watchers /{print $2}')
    [ "$watchers" = "$base_watchers" ] && break
    sleep 0.1
done
check_eq "the store watcher goes away with the client" "$base_watchers" "$watchers"

# ------------------------------------------------------ describe, label ----

out=$(k describe pod web-0 -n shop)
check_match "describe pod: name" '^Name: +web-0' "$out"
check_match "describe pod: image" 'Image: +busybox:1.36' "$out"
k label pod web-0 -n shop stage=canary >/dev/null
out=$(k get pod web-0 -n shop -o jsonpath='{.metadata.labels.stage}')
check_eq "label" "canary" "$out"
k label pod web-0 -n shop stage- >/dev/null
out=$(k get pod web-0 -n shop -o jsonpath='{.metadata.labels}')
check_not_contains "label removal" "stage" "$out"
k annotate deploy api -n shop owner=team-a >/dev/null
out=$(k get deploy api -n shop -o jsonpath='{.metadata.annotations.owner}')
check_eq "annotate" "team-a" "$out"
out=$(k label pod web-0 -n shop 'bad key=x' 2>&1 || true)
check_contains "an invalid label is refused" "invalid" "$out"

# ---------------------------------------------------------------- apply ----

cat >"$TMP/app.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop-front
  namespace: shop
  labels: {app: front}
spec:
  replicas: 1
  selector:
    matchLabels: {app: front}
  template:
    metadata:
      labels: {app: front}
    spec:
      containers:
      - name: front
        image: busybox:1.35
EOF
out=$(k apply -f "$TMP/app.yaml")
check_contains "apply creates" "deployment.apps/shop-front created" "$out"
gen1=$(k get deploy shop-front -n shop -o jsonpath='{.metadata.generation}')
sed -i 's/busybox:1.35/busybox:1.36/; s/labels: {app: front}$/labels: {app: front, release: two}/' "$TMP/app.yaml"
out=$(k apply -f "$TMP/app.yaml")
check_contains "apply again configures" "deployment.apps/shop-front configured" "$out"
out=$(k get deploy shop-front -n shop -o jsonpath='{.spec.template.spec.containers[0].image} {.metadata.labels.release}')
check_eq "apply changed the image and the label" "busybox:1.36 two" "$out"
gen2=$(k get deploy shop-front -n shop -o jsonpath='{.metadata.generation}')
check_eq "generation bumped by the spec change" "$((gen1 + 1))" "$gen2"
out=$(k apply -f "$TMP/app.yaml")
check_contains "apply unchanged" "deployment.apps/shop-front unchanged" "$out"
out=$(k diff -f "$TMP/app.yaml" && echo same || true)
check_eq "diff with no change" "same" "$out"
sed -i 's/replicas: 1/replicas: 3/' "$TMP/app.yaml"
out=$(k diff -f "$TMP/app.yaml" || true)
check_match "diff shows the replicas change" '^\+  replicas: 3' "$out"
out=$(k apply --server-side -f "$TMP/app.yaml" 2>&1)
check_contains "server-side apply" "serverside-applied" "$out"
check_eq "server-side apply took" "3" "$(k get deploy shop-front -n shop -o jsonpath='{.spec.replicas}')"

# ---------------------------------------------------------------- patch ----

k patch deploy api -n shop --type merge -p '{"spec":{"replicas":4}}' >/dev/null
check_eq "patch --type merge" "4" "$(k get deploy api -n shop -o jsonpath='{.spec.replicas}')"
k patch deploy api -n shop --type json -p '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"busybox:1.37"}]' >/dev/null
check_eq "patch --type json" "busybox:1.37" "$(k get deploy api -n shop -o jsonpath='{.spec.template.spec.containers[0].image}')"
k patch deploy api -n shop --type strategic -p '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.34"}]}}}}' >/dev/null
out=$(k get deploy api -n shop -o jsonpath='{range .spec.template.spec.containers[*]}{.name}={.image};{end} {.spec.template.spec.containers[1].env[0].value}')
check_eq "patch --type strategic merges containers by name" "api=busybox:1.37;sidecar=busybox:1.34; side" "$out"
out=$(k patch deploy api -n shop --type json -p '[{"op":"test","path":"/spec/replicas","value":99}]' 2>&1 || true)
check_contains "a failing json patch test is a 422 naming the test" "The request is invalid: operation '/0' failed at path '/spec/replicas'" "$out"
check_eq "the failed json patch changed nothing" "4" "$(k get deploy api -n shop -o jsonpath='{.spec.replicas}')"

# ---------------------------------------------------------- scale, edit ----

k scale deploy api -n shop --replicas=5 >/dev/null
check_eq "scale" "5" "$(k get deploy api -n shop -o jsonpath='{.spec.replicas}')"
out=$(k get --raw /apis/apps/v1/namespaces/shop/deployments/api/scale)
check_py "scale subresource" 'd["kind"] == "Scale" and d["spec"]["replicas"] == 5 and d["status"]["selector"] == "app=api"' "$out"
cat >"$TMP/editor.sh" <<'EOF'
#!/bin/sh
sed -i 's/color: blue/color: green/' "$1"
EOF
chmod +x "$TMP/editor.sh"
EDITOR=$TMP/editor.sh k edit configmap settings -n shop >/dev/null
check_eq "edit" "green" "$(k get cm settings -n shop -o jsonpath='{.data.color}')"

# --------------------------------------------------------------- replace ----

k get cm settings -n shop -o yaml | sed 's/color: green/color: red/' >"$TMP/cm.yaml"
k replace -f "$TMP/cm.yaml" >/dev/null
check_eq "replace" "red" "$(k get cm settings -n shop -o jsonpath='{.data.color}')"
out=$(k replace -f "$TMP/cm.yaml" 2>&1 || true)
check_contains "replace with a stale resourceVersion: Conflict" "the object has been modified" "$out"

# ------------------------------------------------------ create, run, etc ----

out=$(printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: nosuchns}\n' | k create -f - 2>&1 || true)
check_contains "create in a missing namespace: NotFound" 'namespaces "nosuchns" not found' "$out"
out=$(printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name, namespace: shop}\nspec: {containers: [{name: c, image: busybox}]}\n' | k create -f - 2>&1 || true)
check_contains "invalid name: 422 with the field" "metadata.name: Invalid value" "$out"

# ------------------------------------------------------- raw API errors ----

python3 - "$KUBECONFIG" "$TMP" <<'PY'
import base64, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
u = c["users"][0]["user"]
for name, field in (("client.crt", "client-certificate-data"), ("client.key", "client-key-data")):
    open(f"{sys.argv[2]}/{name}", "wb").write(base64.b64decode(u[field]))
open(f"{sys.argv[2]}/ca.crt", "wb").write(base64.b64decode(c["clusters"][0]["cluster"]["certificate-authority-data"]))
PY
api() { curl -s --cacert "$TMP/ca.crt" --cert "$TMP/client.crt" --key "$TMP/client.key" "$@"; }
URL=https://127.0.0.1:$APORT
head -c $((3 * 1024 * 1024 + 10)) /dev/zero | tr '\0' 'a' >"$TMP/big"
out=$(api -X POST -H 'Content-Type: application/json' --data-binary @"$TMP/big" "$URL/api/v1/namespaces/shop/configmaps")
check_py "a body over 3 MiB: 413" 'd["code"] == 413 and d["reason"] == "RequestEntityTooLarge"' "$out"
out=$(api -X POST -H 'Content-Type: text/plain' --data 'x' "$URL/api/v1/namespaces/shop/configmaps")
check_py "an unknown content type: 415" 'd["code"] == 415' "$out"
out=$(api -X POST -H 'Content-Type: application/json' --data '{"metadata":{"name":"c"},"data":{"bad key":"v"}}' "$URL/api/v1/namespaces/shop/configmaps")
check_py "an invalid configmap key: 422 naming the field" 'd["code"] == 422 and d["details"]["causes"][0]["field"] == "data[bad key]"' "$out"
out=$(api -X POST -H 'Content-Type: application/json' --data '{"metadata":{"name":"strict"},"bogus":1}' "$URL/api/v1/namespaces/shop/configmaps?fieldValidation=Strict")
check_py "fieldValidation=Strict refuses an unknown field" 'd["code"] == 400 and "unknown field \"bogus\"" in d["message"]' "$out"
out=$(api -X POST -H 'Content-Type: application/json' --data '{"metadata":{"name":"dry"}}' "$URL/api/v1/namespaces/shop/configmaps?dryRun=All")
check_py "dryRun=All answers with the object" 'd["metadata"]["name"] == "dry"' "$out"
check_eq "dryRun=All stored nothing" "404" "$(api -o /dev/null -w '%{http_code}' "$URL/api/v1/namespaces/shop/configmaps/dry")"
out=$(api "$URL/api/v1/namespaces/shop/configmaps?limit=1")
check_py "limit=1 returns one item and a continue token" 'len(d["items"]) == 1 and d["metadata"]["continue"] != ""' "$out"
tok=$(pyj 'd["metadata"]["continue"]' <<<"$out")
out2=$(api "$URL/api/v1/namespaces/shop/configmaps?limit=1&continue=$tok")
check_py "the continue token reads the next page at the same revision" 'd["metadata"]["resourceVersion"] == '"$(pyj 'repr(d["metadata"]["resourceVersion"])' <<<"$out")" "$out2"
out=$(api "$URL/metrics")
check_contains "metrics: apiserver_request_total" 'apiserver_request_total{code="201",resource="pods",verb="CREATE"}' "$out"
check_contains "metrics: apiserver_request_duration_seconds" 'apiserver_request_duration_seconds_bucket{resource="pods",verb="GET"' "$out"

# ---------------------------------------------------------------- explain ----

out=$(k explain pods.spec.containers 2>&1 || true)
check_contains "explain pods.spec.containers" "image" "$out"

# ---------------------------------------------------------------- delete ----

printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: hello, namespace: shop}\nspec: {containers: [{name: c, image: busybox}]}\n' | k create -f - >/dev/null
out=$(k delete pod hello -n shop --wait=true)
check_contains "delete --wait" 'pod "hello" deleted' "$out"
out=$(k get pod hello -n shop 2>&1 || true)
check_contains "deleted pod is gone" 'pods "hello" not found' "$out"
k wait --for=delete pod/web-0 -n shop --timeout=20s >"$TMP/wait.out" 2>&1 &
WAITPID=$!
BG_PIDS+=($WAITPID)
sleep 1
k delete pod web-0 -n shop >/dev/null
if wait "$WAITPID"; then pass "wait --for=delete returns once the pod is deleted"; else fail "wait --for=delete" "$(cat "$TMP/wait.out")"; fi
k label cm settings -n shop purge=yes >/dev/null
out=$(k delete cm -n shop -l purge=yes)
check_eq "delete -l deletes what the selector matches" 'configmap "settings" deleted' "$out"
check_contains "delete -l leaves the rest" "configmap/watched" "$(k get cm -n shop -o name)"
out=$(k delete cm --all -n shop)
check_contains "delete --all" "deleted" "$out"
check_eq "no configmaps left" "" "$(k get cm -n shop -o name)"

# ------------------------------------------------------- another master ----

leader_kill=m1
kill -9 "${PID[$leader_kill]}"
"$SKIFF_BIN" kubeconfig --data-dir "$TMP/m2" --server "https://127.0.0.2:$APORT" >"$TMP/kubeconfig2"
export KUBECONFIG=$TMP/kubeconfig2
for _ in $(seq 1 50); do k get ns shop >/dev/null 2>&1 && break; sleep 0.2; done
out=$(printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after-kill, namespace: shop}\n' | k create -f -)
check_contains "a write through m2 after m1 died" "configmap/after-kill created" "$out"
check_eq "the data written through m1 is there" "api" "$(k get deploy api -n shop -o jsonpath='{.metadata.name}')"
# ------------------------------------------- generators (protobuf bodies) ----

out=$(k create configmap lit -n shop --from-literal=k1=v1 --from-literal=k2=v2)
check_contains "create configmap --from-literal" "configmap/lit created" "$out"
check_eq "configmap literal values" "v1 v2" "$(k get cm lit -n shop -o jsonpath='{.data.k1} {.data.k2}')"
k create secret generic gen -n shop --from-literal=token=s3cret >/dev/null
check_eq "create secret generic" "s3cret" "$(k get secret gen -n shop -o jsonpath='{.data.token}' | base64 -d)"
out=$(k run hello -n shop --image=busybox:1.36 --labels=run=hello -- sleep 100)
check_contains "run" "pod/hello created" "$out"
check_eq "run: image and labels" "busybox:1.36 hello" "$(k get pod hello -n shop -o jsonpath='{.spec.containers[0].image} {.metadata.labels.run}')"
k delete pod hello -n shop >/dev/null
k delete ns shop >/dev/null
out=$(k get ns shop 2>&1 || true)
check_contains "namespace deleted with its content" 'namespaces "shop" not found' "$out"
check_eq "nothing left in the namespace" "" "$(ETCDCTL_API=3 etcdctl --endpoints=127.0.0.2:$CPORT get --prefix /registry/deployments/shop/ --keys-only)"
out=$(curl -sk "https://127.0.0.2:$APORT/api/v1/namespaces")
check_py "anonymous requests get 401" 'd["code"] == 401 and d["reason"] == "Unauthorized"' "$out"

echo "kubectl: $PASSED passed, 0 failed"
