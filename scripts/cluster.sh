#!/usr/bin/env bash
# Builds skiff and starts a local 3-master cluster on 127.0.0.1-3 (store ports 2379/2380,
# metrics on 2381, Kubernetes API on 6443). Data and logs under ${SKIFF_DIR:-.skiff}. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/skiff
DIR=${SKIFF_DIR:-.skiff}
mkdir -p "$DIR"
CLUSTER=m1=127.0.0.1:2380,m2=127.0.0.2:2380,m3=127.0.0.3:2380
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for i in 1 2 3; do
  "$BIN" master --name m$i --data-dir "$DIR/m$i" --listen-peer 127.0.0.$i:2380 \
    --listen-client 127.0.0.$i:2379 --listen-metrics 127.0.0.$i:2381 --listen-api 127.0.0.$i:6443 \
    --initial-cluster "$CLUSTER" >"$DIR/m$i.log" 2>&1 &
  pids+=($!)
done
echo "skiff: 3 masters starting; logs in $DIR/m*.log"
for _ in $(seq 1 300); do [ -f "$DIR/m1/admin.kubeconfig" ] && break; sleep 0.1; done
echo "try:  ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379,127.0.0.2:2379,127.0.0.3:2379 member list"
echo "      etcdctl --endpoints=127.0.0.1:2379 put hello world && etcdctl --endpoints=127.0.0.2:2379 get hello"
echo "      export KUBECONFIG=$DIR/m1/admin.kubeconfig; kubectl get namespaces; kubectl create deployment hello --image=busybox:1.36"
wait
