#!/usr/bin/env bash
# The test command: installs what the tests need, builds, runs unit and multi-process tests,
# then drives stock etcdctl against a 3-member skiff cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build-essential libclang-dev clang protobuf-compiler pkg-config etcd-client etcd-server
export CARGO_TERM_COLOR=never
cargo build --release --locked --bin skiff
cargo test --release --locked --workspace -- --test-threads=2
bash tests/etcdctl.sh
echo "skiff: all tests passed"
