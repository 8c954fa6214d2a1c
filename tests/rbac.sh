#!/usr/bin/env bash
# Authorization test: RBAC, access reviews and impersonation with the stock kubectl.
#
# Starts 3 skiff masters on loopback (API on API_PORT over HTTPS), issues client certificates
# for a few users (`skiff kubeconfig --user`), and checks what each may do: anonymous requests,
# a user without bindings (every verb on every served resource, each answered 403 with
# Kubernetes' message), a namespaced `edit` binding, `kubectl auth can-i` (also --list and --as),
# `kubectl auth whoami`, escalation attempts, and a binding made on one master honoured by another.
#
# Env: SKIFF_BIN, PORT_BASE (default 27790: client; +1 peer; +2 metrics; +3 API), KEEP_TMP=1.
set -euo pipefail

SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
PORT_BASE=${PORT_BASE:-27790}
CPORT=$PORT_BASE
PPORT=$((PORT_BASE + 1))
MPORT=$((PORT_BASE + 2))
APORT=$((PORT_BASE + 3))
KUBECTL=${KUBECTL:-/usr/bin/kubectl}

TMP=$(mktemp -d /tmp/skiff-rbac.XXXXXX)
BG_PIDS=()
PASSED=0
SUITE=rbac
# shellcheck source=tests/check.sh
source "$(dirname "$0")/check.sh"

trap cleanup EXIT
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND" >&2; echo "rbac: $PASSED passed, 1 failed"' ERR

require_free_ports "127.0.0.1 127.0.0.2 127.0.0.3" "$CPORT $PPORT $MPORT $APORT"

# Audit: configmaps with their bodies, secrets asked for the same (they must stay at Metadata),
# nothing for health probes, the rest at Metadata.
cat >"$TMP/audit-policy.yaml" <<'YAML'
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*"]
- level: Request
  resources:
  - group: ""
    resources: ["configmaps", "secrets"]
- level: Metadata
YAML
for i in 1 2 3; do
    ip=127.0.0.$i
    "$SKIFF_BIN" master --name "m$i" --data-dir "$TMP/m$i" \
        --audit-log "$TMP/m$i/audit.log" --audit-policy "$TMP/audit-policy.yaml" \
        --listen-peer "$ip:$PPORT" --listen-client "$ip:$CPORT" --listen-api "$ip:$APORT" --listen-metrics "$ip:$MPORT" \
        --initial-cluster "m1=127.0.0.1:$PPORT,m2=127.0.0.2:$PPORT,m3=127.0.0.3:$PPORT" \
        >>"$TMP/m$i.log" 2>&1 &
    BG_PIDS+=($!)
done
for i in 1 2 3; do
    for _ in $(seq 1 300); do
        [ -f "$TMP/m$i/admin.kubeconfig" ] && curl -sk --max-time 1 "https://127.0.0.$i:$APORT/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
done

# kubeconfig USER [GROUP...]: a kubeconfig for USER in GROUPs at $TMP/USER.kubeconfig
kubeconfig() {
    local user=$1 args=()
    shift
    local g
    for g in "$@"; do args+=(--group "$g"); done
    "$SKIFF_BIN" kubeconfig --data-dir "$TMP/m1" --server "https://127.0.0.1:$APORT" --user "$user" "${args[@]}" \
        >"$TMP/$user.kubeconfig"
}
kubeconfig admin system:masters
kubeconfig alice
kubeconfig bob devs
kubeconfig carol
admin() { "$KUBECTL" --kubeconfig "$TMP/admin.kubeconfig" --request-timeout=20s "$@"; }
as() {
    local user=$1
    shift
    "$KUBECTL" --kubeconfig "$TMP/$user.kubeconfig" --request-timeout=20s "$@"
}
# try CMD...: runs CMD, prints its stdout and stderr together, never fails the script
try() { "$@" 2>&1 || true; }

admin create namespace team >/dev/null
admin create namespace other >/dev/null

# ------------------------------------------------------------ anonymous ----

code=$(curl -sk -o "$TMP/anon.json" -w '%{http_code}' "https://127.0.0.1:$APORT/api/v1/namespaces/default/pods")
check_eq "anonymous list of pods: 401" 401 "$code"
check_py "anonymous: Status reason Unauthorized" 'd["reason"] == "Unauthorized" and d["code"] == 401' "$(cat "$TMP/anon.json")"
code=$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$APORT/version")
check_eq "anonymous /version: 200 (system:public-info-viewer)" 200 "$code"

# ---------------------------------------------- no bindings: the matrix ----

# Every served resource x every verb, as raw HTTPS with alice's certificate: all 403, each with
# Kubernetes' message naming user, verb, resource, group and scope.
python3 - "$TMP" "$APORT" <<'PY' >"$TMP/matrix.out" 2>&1 || { cat "$TMP/matrix.out"; fail "403 matrix for a user without bindings"; }
import base64, http.client, json, ssl, sys, tempfile, os
tmp, port = sys.argv[1], int(sys.argv[2])

def creds(user):
    import yaml
    cfg = yaml.safe_load(open(f"{tmp}/{user}.kubeconfig"))
    u = cfg["users"][0]["user"]
    files = []
    for k in ("client-certificate-data", "client-key-data"):
        f = tempfile.NamedTemporaryFile(delete=False, dir=tmp, suffix=".pem")
        f.write(base64.b64decode(u[k])); f.close(); files.append(f.name)
    ca = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    return files, ca

def conn(user):
    (cert, key), ca = creds(user)
    ctx = ssl.create_default_context(cadata=ca)
    ctx.load_cert_chain(cert, key)
    return lambda: http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)

admin, alice = conn("admin"), conn("alice")

def call(mk, method, path, body=None, ctype="application/json"):
    c = mk()
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = ctype
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data

resources = []
for gv_path in ["/api/v1"] + ["/apis/" + g["preferredVersion"]["groupVersion"]
                             for g in json.loads(call(admin, "GET", "/apis")[1])["groups"]]:
    for r in json.loads(call(admin, "GET", gv_path)[1])["resources"]:
        if "/" in r["name"]:
            continue
        group = "" if gv_path == "/api/v1" else gv_path.split("/")[2]
        resources.append((gv_path, group, r["name"], r["namespaced"], r["verbs"]))

checked = 0
for gv_path, group, plural, namespaced, verbs in resources:
    qual = plural if not group else f"{plural}.{group}"
    coll = f"{gv_path}/namespaces/team/{plural}" if namespaced else f"{gv_path}/{plural}"
    scope = 'in the namespace "team"' if namespaced else "at the cluster scope"
    item = f"{coll}/x"
    cases = {
        "get": ("GET", item, None, f'{qual} "x" is forbidden'),
        "list": ("GET", coll, None, f"{qual} is forbidden"),
        "watch": ("GET", coll + "?watch=true", None, f"{qual} is forbidden"),
        "create": ("POST", coll, b"{}", f"{qual} is forbidden"),
        "update": ("PUT", item, b"{}", f'{qual} "x" is forbidden'),
        "patch": ("PATCH", item, b"{}", f'{qual} "x" is forbidden'),
        "delete": ("DELETE", item, None, f'{qual} "x" is forbidden'),
        "deletecollection": ("DELETE", coll, None, f"{qual} is forbidden"),
    }
    for verb in verbs:
        if verb not in cases:
            continue
        method, path, body, prefix = cases[verb]
        ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
        status, data = call(alice, method, path, body, ctype)
        # As in kube-apiserver, a namespace object is addressed within itself.
        where = 'in the namespace "x"' if plural == "namespaces" and path.startswith(item) else scope
        want = (f'{prefix}: User "alice" cannot {verb} resource "{plural}" '
                f'in API group "{group}" {where}')
        try:
            msg = json.loads(data)["message"]
        except Exception:
            msg = data[:200]
        if status != 403 or msg != want:
            print(f"{verb} {path}: {status} {msg!r}\n  expected 403 {want!r}")
            sys.exit(1)
        checked += 1
if checked < 150:
    print(f"only {checked} requests checked")
    sys.exit(1)
print(f"{checked} requests over {len(resources)} resources: all 403")
PY
pass "no bindings: $(tail -1 "$TMP/matrix.out")"

out=$(try as alice get --raw /metrics)
check_contains "no bindings: non-resource /metrics refused" 'cannot get path "/metrics"' "$out"
out=$(as alice auth can-i list pods -n team || true)
check_eq "can-i list pods (no bindings): no" "no" "$out"
out=$(as alice auth whoami -o json)
check_py "whoami names alice in system:authenticated" \
    'd["status"]["userInfo"]["username"] == "alice" and "system:authenticated" in d["status"]["userInfo"]["groups"]' "$out"

# ------------------------------------------------- a namespaced edit role ----

admin create rolebinding alice-edit --clusterrole=edit --user=alice -n team >/dev/null
for _ in $(seq 1 50); do
    [ "$(as alice auth can-i create deployments -n team 2>/dev/null || true)" = yes ] && break
    sleep 0.1
done
out=$(as alice auth can-i create deployments.apps -n team || true)
check_eq "edit in team: can-i create deployments there" yes "$out"
out=$(as alice auth can-i create deployments.apps -n other || true)
check_eq "edit in team: not in namespace other" no "$out"
out=$(as alice create deployment web --image=busybox -n team)
check_contains "edit in team: kubectl create deployment works" "deployment.apps/web created" "$out"
out=$(try as alice create deployment web --image=busybox -n other)
check_contains "edit in team: create in other is 403 with the Kubernetes message" \
    'deployments.apps is forbidden: User "alice" cannot create resource "deployments" in API group "apps" in the namespace "other"' "$out"
out=$(as alice create secret generic s1 --from-literal=k=v -n team)
check_contains "edit may create secrets" "secret/s1 created" "$out"
out=$(try as alice create role r1 --verb=get --resource=pods -n team)
check_contains "edit may not create roles" 'roles.rbac.authorization.k8s.io is forbidden: User "alice" cannot create resource "roles"' "$out"
out=$(try as alice get nodes)
check_contains "edit in a namespace reads no nodes" 'cannot list resource "nodes" in API group "" at the cluster scope' "$out"
out=$(as alice auth can-i --list -n team)
check_match "can-i --list shows the edit rules for deployments" '^deployments\.apps +\[\] +\[\] +\[.*create.*\]' "$out"
check_match "can-i --list shows selfsubjectaccessreviews (basic-user)" '^selfsubjectaccessreviews\.authorization\.k8s\.io +\[\] +\[\] +\[create\]' "$out"
check_not_contains "can-i --list in team shows no roles" "roles.rbac.authorization.k8s.io  " "$out"
out=$(as alice auth can-i --list -n other)
check_not_contains "can-i --list in other shows no deployments" "deployments.apps" "$out"

# A view binding for bob's group: reads but no secrets, no writes.
admin create rolebinding devs-view --clusterrole=view --group=devs -n team >/dev/null
for _ in $(seq 1 50); do
    [ "$(as bob auth can-i list pods -n team 2>/dev/null || true)" = yes ] && break
    sleep 0.1
done
out=$(as bob get deployments -n team -o name)
check_eq "view through a group binding lists deployments" "deployment.apps/web" "$out"
out=$(try as bob get secrets -n team)
check_contains "view reads no secrets" 'cannot list resource "secrets"' "$out"
out=$(try as bob delete deployment web -n team)
check_contains "view deletes nothing" 'cannot delete resource "deployments"' "$out"

# ------------------------------------------------------------ escalation ----

# carol administers team (admin may manage roles and bindings there) but holds nothing else.
admin create rolebinding carol-admin --clusterrole=admin --user=carol -n team >/dev/null
for _ in $(seq 1 50); do
    [ "$(as carol auth can-i create roles -n team 2>/dev/null || true)" = yes ] && break
    sleep 0.1
done
out=$(as carol create role pod-reader --verb=get --verb=list --resource=pods -n team)
check_contains "admin may create a role within its own permissions" "role.rbac.authorization.k8s.io/pod-reader created" "$out"
out=$(try as carol create role node-reader --verb=get --resource=nodes -n team)
check_contains "escalation: a role with permissions not held is refused" \
    "is attempting to grant RBAC permissions not currently held" "$out"
out=$(try as carol create rolebinding carol-root --clusterrole=cluster-admin --user=carol -n team)
check_contains "escalation: binding cluster-admin is refused" \
    "is attempting to grant RBAC permissions not currently held" "$out"
out=$(as carol create rolebinding alice-view --clusterrole=view --user=alice -n team)
check_contains "binding a role one holds is allowed" "rolebinding.rbac.authorization.k8s.io/alice-view created" "$out"
out=$(try as carol create rolebinding x --clusterrole=view --user=carol -n other)
check_contains "no binding outside one's namespace" 'cannot create resource "rolebindings"' "$out"

# A right to patch is no right to create: server-side apply of a new object needs `create`.
kubeconfig dave
admin create role cm-patcher --verb=get,patch --resource=configmaps -n team >/dev/null
admin create rolebinding dave-patch --role=cm-patcher --user=dave -n team >/dev/null
for _ in $(seq 1 50); do
    [ "$(as dave auth can-i patch configmaps -n team 2>/dev/null || true)" = yes ] && break
    sleep 0.1
done
out=$(printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sneaky, namespace: team}\n' |
    try as dave apply --server-side -f -)
check_contains "apply that would create needs create" 'cannot create resource "configmaps"' "$out"

# ---------------------------------------------------------- impersonation ----

out=$(admin auth can-i create deployments -n other --as alice || true)
check_eq "admin --as alice: can-i follows alice's rules" no "$out"
out=$(admin auth can-i create deployments -n team --as alice || true)
check_eq "admin --as alice in team: yes" yes "$out"
out=$(admin auth whoami --as alice --as-group devs -o json)
check_py "whoami --as alice --as-group devs" \
    'd["status"]["userInfo"]["username"] == "alice" and "devs" in d["status"]["userInfo"]["groups"]' "$out"
out=$(try as alice get pods -n team --as bob)
check_contains "alice may not impersonate" 'users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope' "$out"

# SubjectAccessReview: admins ask about others; alice may not.
sar='{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"alice","resourceAttributes":{"namespace":"team","verb":"create","group":"apps","resource":"deployments"}}}'
out=$(admin create --raw /apis/authorization.k8s.io/v1/subjectaccessreviews -f - <<<"$sar")
check_py "SubjectAccessReview: alice may create deployments in team" 'd["status"]["allowed"] is True and "RoleBinding" in d["status"]["reason"]' "$out"
out=$(try as alice create --raw /apis/authorization.k8s.io/v1/subjectaccessreviews -f - <<<"$sar")
check_contains "SubjectAccessReview needs its own permission" 'cannot create resource "subjectaccessreviews"' "$out"

# --------------------------------------------- the cache on other masters ----

admin create clusterrole node-viewer --verb=get,list --resource=nodes >/dev/null
admin create clusterrolebinding alice-node-viewer --clusterrole=node-viewer --user=alice >/dev/null
ok=no
for _ in $(seq 1 50); do
    if as alice --server "https://127.0.0.3:$APORT" get nodes >/dev/null 2>&1; then ok=yes; break; fi
    sleep 0.1
done
check_eq "a binding made through master 1 is honoured by master 3 within 5 s" yes "$ok"
admin delete clusterrolebinding alice-node-viewer >/dev/null
ok=no
for _ in $(seq 1 50); do
    if ! as alice --server "https://127.0.0.2:$APORT" get nodes >/dev/null 2>&1; then ok=yes; break; fi
    sleep 0.1
done
check_eq "a deleted binding stops counting on master 2 within 5 s" yes "$ok"

# ------------------------------------------------------- service accounts ----

out=$(admin get serviceaccount default -n team -o name)
check_eq "a new namespace has its default service account" "serviceaccount/default" "$out"
out=$(admin get configmap kube-root-ca.crt -n team -o jsonpath='{.data.ca\.crt}')
check_contains "and the kube-root-ca.crt configmap" "BEGIN CERTIFICATE" "$out"
admin create serviceaccount ci -n team >/dev/null
token=$(admin create token ci -n team --duration=20m)
check_match "kubectl create token prints a JWT" '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' "$token"
python3 - "$TMP" <<'PY'
import base64, sys, yaml
cfg = yaml.safe_load(open(f"{sys.argv[1]}/admin.kubeconfig"))
open(f"{sys.argv[1]}/ca.crt", "wb").write(base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"]))
PY
sa() { "$KUBECTL" --kubeconfig /dev/null --server "https://127.0.0.1:$APORT" --certificate-authority "$TMP/ca.crt" --token "$token" --request-timeout=20s "$@"; }
out=$(sa auth whoami -o json)
check_py "the token authenticates as the service account, in its groups" \
    'd["status"]["userInfo"]["username"] == "system:serviceaccount:team:ci" and "system:serviceaccounts:team" in d["status"]["userInfo"]["groups"]' "$out"
out=$(try sa get pods -n team)
check_contains "a service account without bindings is refused" 'User "system:serviceaccount:team:ci" cannot list resource "pods"' "$out"
admin create rolebinding ci-view --clusterrole=view --serviceaccount=team:ci -n team >/dev/null
ok=no
for _ in $(seq 1 50); do
    if sa get deployments -n team >/dev/null 2>&1; then ok=yes; break; fi
    sleep 0.1
done
check_eq "a RoleBinding to the service account authorizes its token" yes "$ok"
admin run sa-pod --image=busybox -n team >/dev/null
out=$(admin get pod sa-pod -n team -o json)
check_py "ServiceAccount admission: default account and its token volume" \
    'd["spec"]["serviceAccountName"] == "default" and d["spec"]["volumes"][0]["name"].startswith("kube-api-access-") and d["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"' "$out"
out=$(try admin run nosa --image=busybox -n team --overrides='{"spec":{"serviceAccountName":"ghost"}}')
check_contains "a pod naming a missing service account is refused" \
    'pods "nosa" is forbidden: error looking up service account team/ghost: serviceaccount "ghost" not found' "$out"
# The last signature character altered (not just its unused low bits: A <-> Q differ in the top ones).
case "${token: -1}" in A) last=Q ;; *) last=A ;; esac
out=$(try sa --token "${token%?}$last" get deployments -n team)
check_contains "a tampered token is refused" "Unauthorized" "$out"
admin delete serviceaccount ci -n team >/dev/null
out=$(try sa get deployments -n team)
check_contains "a deleted service account's token no longer authenticates" "Unauthorized" "$out"

# ------------------------------------------------------------------ nodes ----

# A node's certificate (system:node:<name>, group system:nodes): the Node authorizer and
# NodeRestriction let it read only what pods bound to it use, and write only itself.
kubeconfig system:node:n1 system:nodes
n1() { "$KUBECTL" --kubeconfig "$TMP/system:node:n1.kubeconfig" --request-timeout=20s "$@"; }
admin create namespace work >/dev/null
for n in n1 n2; do
    printf 'apiVersion: v1\nkind: Node\nmetadata: {name: %s}\n' "$n" | admin create -f - >/dev/null
    admin create secret generic "secret-$n" --from-literal=k=v -n work >/dev/null
    admin create -n work -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: pod-$n}
spec:
  nodeName: $n
  containers: [{name: c, image: busybox, envFrom: [{secretRef: {name: secret-$n}}]}]
YAML
done
ok=no
for _ in $(seq 1 50); do
    if n1 get secret secret-n1 -n work >/dev/null 2>&1; then ok=yes; break; fi
    sleep 0.1
done
check_eq "a node reads the secret of a pod bound to it" yes "$ok"
out=$(try n1 get secret secret-n2 -n work)
check_contains "a node cannot read another node's pod's secret" \
    "secrets \"secret-n2\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"work\": no relationship found between node 'n1' and this object" "$out"
out=$(try n1 get secrets -n work)
check_contains "a node cannot list secrets" 'cannot list resource "secrets"' "$out"
out=$(n1 get pods -n work -o name)
check_contains "a node lists pods (system:node rules)" "pod/pod-n2" "$out"
out=$(n1 label node n1 skiff.test/seen=yes)
check_contains "a node labels its own Node" "node/n1 labeled" "$out"
out=$(try n1 label node n2 skiff.test/seen=yes)
check_contains "a node cannot change another node" 'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"' "$out"
out=$(try n1 delete pod pod-n2 -n work --wait=false)
check_contains "a node cannot delete another node's pod" 'node "n1" can only delete pods for pods with spec.nodeName set to itself' "$out"
out=$(try n1 run stray -n work --image=busybox)
check_contains "a node creates only mirror pods" 'node "n1" can only create mirror pods' "$out"
out=$(try n1 create configmap c -n work --from-literal=a=b)
check_contains "a node creates no configmaps" 'cannot create resource "configmaps"' "$out"

# ------------------------------------------------------- node credentials ----

# kubeadm's TLS bootstrap: a bootstrap token gets a node certificate through the CSR API.
admin create -n kube-system -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Secret
metadata: {name: bootstrap-token-abcdef}
type: bootstrap.kubernetes.io/token
stringData: {token-id: abcdef, token-secret: 0123456789abcdef, usage-bootstrap-authentication: "true"}
YAML
boot() {
    "$KUBECTL" --kubeconfig /dev/null --server "https://127.0.0.1:$APORT" --certificate-authority "$TMP/ca.crt" \
        --token abcdef.0123456789abcdef --request-timeout=20s "$@"
}
out=$(boot auth whoami -o json)
check_py "a bootstrap token authenticates as system:bootstrap:<id> in system:bootstrappers" \
    'd["status"]["userInfo"]["username"] == "system:bootstrap:abcdef" and "system:bootstrappers" in d["status"]["userInfo"]["groups"]' "$out"
out=$(try boot get secrets -n kube-system)
check_contains "a bootstrap token reads no secrets" 'cannot list resource "secrets"' "$out"
# csr FILE CN O: a key and a PKCS#10 request for CN in O
csr() {
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$TMP/$1.key" \
        -subj "/O=$3/CN=$2" -out "$TMP/$1.csr" 2>/dev/null
}
csr n3 system:node:n3 system:nodes
boot create -f - >/dev/null <<YAML
apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {name: node-n3}
spec:
  request: $(base64 -w0 "$TMP/n3.csr")
  signerName: kubernetes.io/kube-apiserver-client-kubelet
  usages: [digital signature, client auth]
YAML
cert=
for _ in $(seq 1 100); do
    cert=$(admin get csr node-n3 -o jsonpath='{.status.certificate}' 2>/dev/null || true)
    [ -n "$cert" ] && break
    sleep 0.1
done
check_match "the node's CSR is approved and signed automatically" '^[A-Za-z0-9+/=]{100,}$' "$cert"
out=$(admin get csr node-n3 -o jsonpath='{.spec.username} {.status.conditions[0].type}/{.status.conditions[0].reason}')
check_eq "the CSR records its requester and the auto-approval" "system:bootstrap:abcdef Approved/AutoApproved" "$out"
base64 -d <<<"$cert" >"$TMP/n3.crt"
n3() {
    "$KUBECTL" --kubeconfig /dev/null --server "https://127.0.0.1:$APORT" --certificate-authority "$TMP/ca.crt" \
        --client-certificate "$TMP/n3.crt" --client-key "$TMP/n3.key" --request-timeout=20s "$@"
}
out=$(n3 auth whoami -o json)
check_py "the signed certificate is the node's identity" \
    'd["status"]["userInfo"]["username"] == "system:node:n3" and "system:nodes" in d["status"]["userInfo"]["groups"]' "$out"
out=$(printf 'apiVersion: v1\nkind: Node\nmetadata: {name: n3}\n' | n3 create -f -)
check_contains "with it, the node registers its own Node" "node/n3 created" "$out"
# A client certificate for a person waits for an administrator.
csr eve eve devs
admin create -f - >/dev/null <<YAML
apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {name: eve}
spec:
  request: $(base64 -w0 "$TMP/eve.csr")
  signerName: kubernetes.io/kube-apiserver-client
  usages: [digital signature, client auth]
YAML
sleep 1.5
out=$(admin get csr eve -o jsonpath='{.status.certificate}')
check_eq "a person's CSR is not approved automatically" "" "$out"
out=$(admin certificate approve eve)
check_contains "kubectl certificate approve" "certificatesigningrequest.certificates.k8s.io/eve approved" "$out"
cert=
for _ in $(seq 1 100); do
    cert=$(admin get csr eve -o jsonpath='{.status.certificate}' 2>/dev/null || true)
    [ -n "$cert" ] && break
    sleep 0.1
done
base64 -d <<<"$cert" >"$TMP/eve.crt"
out=$("$KUBECTL" --kubeconfig /dev/null --server "https://127.0.0.1:$APORT" --certificate-authority "$TMP/ca.crt" \
    --client-certificate "$TMP/eve.crt" --client-key "$TMP/eve.key" auth whoami -o json)
check_py "once approved, the certificate authenticates eve in devs" \
    'd["status"]["userInfo"]["username"] == "eve" and "devs" in d["status"]["userInfo"]["groups"]' "$out"

# ------------------------------------------------------------------ audit ----

admin create configmap audited -n team --from-literal=colour=teal >/dev/null
python3 - "$TMP/m1/audit.log" <<'PY' >"$TMP/audit.out" 2>&1 || { cat "$TMP/audit.out"; fail "the audit log records who did what"; }
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
def find(**want):
    for e in events:
        if all(eval(f"e{k}", {"e": e}) == v for k, v in want.items()):
            return e
    raise SystemExit(f"no event with {want}; {len(events)} events")
ok = find(**{'["user"]["username"]': "alice", '["verb"]': "create", '["objectRef"]["resource"]': "deployments",
             '["objectRef"].get("namespace")': "team", '["responseStatus"]["code"]': 201})
assert ok["annotations"]["authorization.k8s.io/decision"] == "allow", ok
assert ok["level"] == "Metadata" and "requestObject" not in ok, ok
assert ok["stageTimestamp"] >= ok["requestReceivedTimestamp"], ok
no = find(**{'["user"]["username"]': "alice", '["verb"]': "create", '["objectRef"].get("namespace")': "other",
             '["responseStatus"]["code"]': 403})
assert no["annotations"]["authorization.k8s.io/decision"] == "forbid", no
imp = find(**{'["user"]["username"]': "admin", '.get("impersonatedUser", {}).get("username")': "alice"})
cm = [e for e in events if e["verb"] == "create" and e.get("objectRef", {}).get("resource") == "configmaps"
      and e.get("requestObject", {}).get("metadata", {}).get("name") == "audited"]
assert cm and cm[0]["level"] == "Request" and cm[0]["requestObject"]["data"]["colour"] == "teal", cm
sec = [e for e in events if e.get("objectRef", {}).get("resource") == "secrets" and e["verb"] == "create"]
assert sec and all(e["level"] == "Metadata" and "requestObject" not in e for e in sec), sec
assert not any(e.get("requestURI", "").startswith("/readyz") for e in events), "health probes are not audited"
text = open(sys.argv[1]).read()
assert '"k":"v"' not in text and "dg==" not in text, "secret data leaked"
print(f"{len(events)} events checked")
PY
pass "audit log: $(tail -1 "$TMP/audit.out")"

# Writes to subresources that are not views of their parent never reach the parent.
python3 - "$TMP" "$APORT" <<'PY' >"$TMP/sub.out" 2>&1 || { cat "$TMP/sub.out"; fail "subresource writes are confined"; }
import base64, http.client, ssl, sys, tempfile, yaml
tmp, port = sys.argv[1], int(sys.argv[2])
cfg = yaml.safe_load(open(f"{tmp}/admin.kubeconfig"))
u = cfg["users"][0]["user"]
files = []
for k in ("client-certificate-data", "client-key-data"):
    f = tempfile.NamedTemporaryFile(delete=False, dir=tmp, suffix=".pem")
    f.write(base64.b64decode(u[k])); f.close(); files.append(f.name)
ctx = ssl.create_default_context(cadata=base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"]).decode())
ctx.load_cert_chain(*files)
for method, sub in [("PATCH", "exec"), ("PUT", "binding"), ("PATCH", "eviction"), ("GET", "binding"), ("PUT", "log")]:
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
    c.request(method, f"/api/v1/namespaces/team/pods/sa-pod/{sub}", body=b'{"metadata":{"labels":{"x":"y"}}}' if method != "GET" else None,
              headers={"Content-Type": "application/merge-patch+json" if method == "PATCH" else "application/json"})
    r = c.getresponse(); r.read()
    if r.status != 405:
        print(f"{method} pods/sa-pod/{sub}: {r.status}, expected 405"); sys.exit(1)
print("5 subresource writes and reads refused with 405")
PY
pass "$(tail -1 "$TMP/sub.out")"
out=$(admin get pod sa-pod -n team -o jsonpath='{.metadata.labels.x}')
check_eq "the pod was not changed through a subresource" "" "$out"

out=$(admin get clusterroles -o name)
for r in cluster-admin admin edit view system:discovery system:basic-user system:public-info-viewer system:node system:kube-scheduler system:kube-controller-manager; do
    check_match "bootstrap clusterrole $r" "^clusterrole.rbac.authorization.k8s.io/$r\$" "$out"
done
out=$(admin get clusterrolebinding cluster-admin -o json)
check_py "cluster-admin is bound to system:masters" 'd["subjects"][0]["name"] == "system:masters" and d["roleRef"]["name"] == "cluster-admin"' "$out"

# -------------------------------------------------------------- admission ----

# NamespaceLifecycle: a namespace held by a finalizer stays Terminating; nothing new goes in.
admin apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Namespace
metadata:
  name: dying
  finalizers: ["example.com/hold"]
YAML
admin delete namespace dying --wait=false >/dev/null
out=$(admin get namespace dying -o jsonpath='{.status.phase}')
check_eq "a deleted namespace with a finalizer is Terminating" Terminating "$out"
out=$(try admin create configmap c1 -n dying --from-literal=a=b)
check_contains "no create in a terminating namespace" \
    'configmaps "c1" is forbidden: unable to create new content in namespace dying because it is being terminated' "$out"
out=$(try admin delete namespace kube-system)
check_contains "kube-system cannot be deleted" 'namespaces "kube-system" is forbidden: this namespace may not be deleted' "$out"

# DefaultTolerationSeconds: every pod tolerates not-ready and unreachable for 300 s.
admin run tol --image=busybox -n team >/dev/null
out=$(admin get pod tol -n team -o json)
check_py "DefaultTolerationSeconds adds the two 300 s tolerations" \
    'sorted((t["key"], t["tolerationSeconds"]) for t in d["spec"]["tolerations"]) == [("node.kubernetes.io/not-ready", 300), ("node.kubernetes.io/unreachable", 300)]' "$out"

# ResourceQuota: usage shows in describe; the pod past the limit is refused with Kubernetes' message.
admin create namespace quota >/dev/null
admin create quota q1 -n quota --hard=pods=2,configmaps=3 >/dev/null
used=
for _ in $(seq 1 100); do
    used=$(admin get quota q1 -n quota -o jsonpath='{.status.used.pods}' 2>/dev/null || true)
    [ -n "$used" ] && break
    sleep 0.1
done
check_eq "the quota's usage is computed" 0 "$used"
admin run p1 --image=busybox -n quota >/dev/null
admin run p2 --image=busybox -n quota >/dev/null
out=$(try admin run p3 --image=busybox -n quota)
check_contains "quota exceeded: refused with Kubernetes' message" \
    'pods "p3" is forbidden: exceeded quota: q1, requested: pods=1, used: pods=2, limited: pods=2' "$out"
out=$(admin describe quota q1 -n quota)
check_match "describe quota shows pods 2 of 2" '^pods +2 +2$' "$out"
admin delete pod p1 -n quota --grace-period=0 --force >/dev/null 2>&1
ok=no
for _ in $(seq 1 100); do
    if admin run p3 --image=busybox -n quota >/dev/null 2>&1; then ok=yes; break; fi
    sleep 0.1
done
check_eq "a deleted pod gives its quota back" yes "$ok"
admin create quota compute -n quota --hard=requests.cpu=1,limits.memory=1Gi >/dev/null
for _ in $(seq 1 100); do
    [ -n "$(admin get quota compute -n quota -o jsonpath='{.status.used.requests\.cpu}' 2>/dev/null || true)" ] && break
    sleep 0.1
done
out=$(try admin run p4 --image=busybox -n quota)
check_contains "a compute quota needs requests and limits" \
    'pods "p4" is forbidden: failed quota: compute: must specify limits.memory for: p4; requests.cpu for: p4' "$out"

# LimitRanger: defaults fill containers; a limit above the max is refused.
admin apply -n quota -f - >/dev/null <<'YAML'
apiVersion: v1
kind: LimitRange
metadata:
  name: limits
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 256Mi}
    defaultRequest: {cpu: 100m, memory: 128Mi}
    max: {cpu: "1"}
YAML
admin delete quota q1 -n quota >/dev/null
out=
for _ in $(seq 1 50); do
    out=$(try admin run lr --image=busybox -n quota)
    [[ "$out" == *created* ]] && break
    sleep 0.1
done
check_contains "a pod fits once the LimitRange gives it requests and limits" "pod/lr created" "$out"
out=$(admin get pod lr -n quota -o json)
check_py "LimitRanger fills requests and limits from the LimitRange" \
    'd["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}' "$out"
out=$(try admin run big --image=busybox -n quota \
    --overrides='{"spec":{"containers":[{"name":"big","image":"busybox","resources":{"limits":{"cpu":"2","memory":"100Mi"},"requests":{"cpu":"2","memory":"100Mi"}}}]}}')
check_contains "LimitRanger refuses a limit above the max" 'maximum cpu usage per Container is 1, but limit is 2' "$out"

# Priority: pods take their PriorityClass's value; system- names are reserved.
out=$(admin get priorityclass system-node-critical -o jsonpath='{.value}')
check_eq "the built-in system-node-critical class" 2000001000 "$out"
admin create priorityclass high --value=1000 >/dev/null
for _ in $(seq 1 50); do
    out=$(try admin run prio -n team --image=busybox --overrides='{"spec":{"priorityClassName":"high"}}')
    [[ "$out" == *created* ]] && break
    sleep 0.1
done
check_contains "a pod naming a PriorityClass is created" "pod/prio created" "$out"
out=$(admin get pod prio -n team -o jsonpath='{.spec.priority}')
check_eq "a pod gets its PriorityClass's value" 1000 "$out"
out=$(try admin run ghost-prio -n team --image=busybox --overrides='{"spec":{"priorityClassName":"ghost"}}')
check_contains "an unknown PriorityClass is refused" 'no PriorityClass with name ghost was found' "$out"
out=$(try admin create priorityclass system-mine --value=5)
check_contains "system- PriorityClass names are reserved" "priority class names with 'system-' prefix are reserved" "$out"

# PodSecurity: a restricted namespace refuses a privileged pod, naming the violations.
admin create namespace locked >/dev/null
admin label namespace locked pod-security.kubernetes.io/enforce=restricted >/dev/null
out=$(try admin run priv -n locked --image=busybox --privileged)
check_contains "PodSecurity restricted refuses a privileged pod" \
    'pods "priv" is forbidden: violates PodSecurity "restricted:latest": ' "$out"
check_contains "PodSecurity names the privileged container" 'privileged (container "priv" must not set securityContext.privileged=true)' "$out"

echo "rbac: $PASSED passed, 0 failed"
