#!/usr/bin/env bash
# The Kubernetes API through the full HTTPS stack, 3 masters on loopback.
#
# Starts 3 skiff masters (127.0.0.1-3), then runs `skiff bench api`: pod creates (as admin, and as
# a user authorized through RBAC) and gets at 1, 10 and 100 clients, the paged list of OBJECTS pods, and WATCHERS concurrent watches measuring
# write-to-event latency; prints each report (a table per run); stops the masters and removes
# the temp dir on exit. Times are never asserted; a run that fails (nothing succeeded, a watcher
# missed an event) makes the script fail.
#
#   bash bench/api.sh            # full run (~4 min on 2 cores)
#   QUICK=1 bash bench/api.sh    # smoke run: small sizes, 1 s per run
#
# Env: DURATION [10; quick 1] seconds per run; OBJECTS [10000; quick 200] pods for get/list;
# WATCHERS [1000; quick 20]; WATCH_RATE [20; quick 20] writes/s during the watch run;
# CLIENTS ["1 10 100"; quick "1 10"]; PORT_BASE [28790; quick 28890] (client; +1 peer; +3 API);
# SKIFF_BIN; OUT_DIR (copy JSON reports there); KEEP_TMP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }
DURATION=${DURATION:-$(q 10 1)}
OBJECTS=${OBJECTS:-$(q 10000 200)}
WATCHERS=${WATCHERS:-$(q 1000 20)}
WATCH_RATE=${WATCH_RATE:-20}
CLIENTS=${CLIENTS:-$(q "1 10 100" "1 10")}
PORT_BASE=${PORT_BASE:-$(q 28790 28890)}
SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
# shellcheck source=bench/masters.sh
source bench/masters.sh

run() {
    local name=$1
    shift
    echo "== $name"
    "$SKIFF_BIN" bench api --kubeconfig "${RUN_KC:-$KC}" --endpoints "$EPS" --duration "$DURATION" \
        --label "$name" --json "$TMP/$name.json" "$@"
}

# The cost of authorization: the same creates by admin (system:masters: no RBAC lookup, as
# kube-apiserver's privileged-group shortcut) and by a user whose rights come from RBAC (a
# RoleBinding to `edit` in the namespace, a ClusterRole to create namespaces).
"$SKIFF_BIN" kubeconfig --data-dir "$TMP/m1" --server "https://127.0.0.1:$APORT" --user bench >"$TMP/bench.kubeconfig"
kubectl --kubeconfig "$KC" create clusterrole bench-namespaces --verb=create --resource=namespaces >/dev/null
kubectl --kubeconfig "$KC" create clusterrolebinding bench-namespaces --clusterrole=bench-namespaces --user=bench >/dev/null
for c in $CLIENTS; do
    kubectl --kubeconfig "$KC" create namespace "bench-rbac-c$c" >/dev/null
    kubectl --kubeconfig "$KC" create rolebinding bench-edit --clusterrole=edit --user=bench -n "bench-rbac-c$c" >/dev/null
done
for c in $CLIENTS; do run "create-c$c" --workload create --clients "$c" --namespace "bench-create-c$c"; done
for c in $CLIENTS; do
    RUN_KC=$TMP/bench.kubeconfig run "create-rbac-c$c" --workload create --clients "$c" --namespace "bench-rbac-c$c"
done
for c in $CLIENTS; do run "get-c$c" --workload get --clients "$c" --objects "$OBJECTS" --namespace bench-read; done
run "list-$OBJECTS" --workload list --clients 1 --objects "$OBJECTS" --namespace bench-read
run "watch-$WATCHERS" --workload watch --clients 10 --watchers "$WATCHERS" --rate "$WATCH_RATE" --namespace bench-watch

if [ -n "${OUT_DIR:-}" ]; then mkdir -p "$OUT_DIR" && cp "$TMP"/*.json "$OUT_DIR"/; fi
