#!/usr/bin/env bash
# Installs what building and testing skiff needs from Debian, skipping what is present.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in "$@"; do
  have_pkg "$pkg" || need+=("$pkg")
done
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "skiff: missing Debian packages: ${need[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "skiff: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    apt-get install -y -q "${need[@]}" >/dev/null
  }
fi
if ! command -v cargo >/dev/null; then
  echo "skiff: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
fi
