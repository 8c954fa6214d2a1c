#!/usr/bin/env bash
# The README's main command: installs what skiff needs from Debian (skipped when present),
# builds skiff, and starts a local cluster with `skiff up`: 3 masters and 2 agents, each in its
# own network namespace on a bridge made for it, a kubeconfig, and a sample image. It prints
# what to try next; `skiff down` (or `scripts/up.sh down`) removes everything it made.
#
# Env: SKIFF_UP_DIR (default /var/lib/skiff-up), SKIFF_UP_ARGS (extra `skiff up` flags).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "skiff: run as root: skiff up makes network namespaces, a bridge, mounts and cgroups" >&2
    exit 1
fi
scripts/deps.sh iproute2 util-linux nftables busybox-static etcd-client curl
scripts/build.sh
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/skiff
DIR=${SKIFF_UP_DIR:-/var/lib/skiff-up}
if [ "${1:-}" = down ]; then
    exec "$BIN" down --dir "$DIR"
fi
# shellcheck disable=SC2086
exec "$BIN" up --dir "$DIR" ${SKIFF_UP_ARGS:-}
