#!/usr/bin/env bash
# Builds the release binary (the target dir lives outside the clone, see .cargo/config.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build-essential libclang-dev clang protobuf-compiler pkg-config
cargo build --release --locked --bin skiff
