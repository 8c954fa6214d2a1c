#!/usr/bin/env bash
# The test command: installs what the tests need, builds, runs unit and multi-process tests,
# then drives stock etcdctl and kubectl against 3-master skiff clusters (API, Python client,
# RBAC and admission, scheduler, controllers, node agents running real containers, and services
# through netproxy).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build-essential libclang-dev clang protobuf-compiler pkg-config etcd-client etcd-server
scripts/deps.sh curl python3 python3-yaml openssl  # tests/kubectl.sh, tests/rbac.sh (CSRs) (kubectl itself: /usr/bin/kubectl, our compatibility target)
scripts/deps.sh nftables iproute2  # chaos-tests: netns hosts + nftables partitions (its tests run in the workspace tests)
scripts/deps.sh busybox-static docker-registry skopeo umoci  # node agent: a test image and a real registry
export CARGO_TERM_COLOR=never
cargo build --release --locked --bin skiff
cargo test --release --locked --workspace -- --test-threads=2
bash tests/etcdctl.sh
bash tests/kubectl.sh
bash tests/python-client.sh
bash tests/rbac.sh
bash tests/scheduler.sh
bash tests/controllers.sh
bash tests/agent.sh
bash tests/hollow.sh
bash tests/netproxy.sh
bash tests/e2e.sh
bash tests/ha.sh
bash tests/ops.sh
cargo run --release --locked -q -p skiff-chaos-tests --bin chaos -- --seed 7 --duration 40 --nemesis kill,pause,partition,power-loss
# Smoke run of the skiff-vs-etcd benchmark: checks that it works, asserts no times.
QUICK=1 SKIP_BUILD=1 bash bench/store-vs-etcd.sh
QUICK=1 bash bench/api.sh
QUICK=1 bash bench/scheduler.sh
QUICK=1 bash bench/agent.sh
QUICK=1 bash bench/hollow.sh
QUICK=1 bash bench/netproxy.sh
QUICK=1 bash bench/up.sh
echo "skiff: all tests passed"
