#!/usr/bin/env bash
# Builds a tiny two-layer OCI image from the host's static busybox, and
# optionally pushes it to a registry.
#
# Usage: tests/busybox-image.sh LAYOUT_DIR [REGISTRY_HOST:PORT/REPO:TAG]
#
# LAYOUT_DIR becomes an OCI image layout with the tag "latest":
#   layer 1: /bin/busybox, /bin/sh -> busybox, /etc/skiff-old
#   layer 2: /etc/skiff-release ("skiff test image"), and a whiteout for /etc/skiff-old
#   config:  Entrypoint ["/bin/sh", "-c"], Cmd ["echo hello from skiff"],
#            Env += SKIFF_TEST=1, WorkingDir /, label skiff.test=busybox
# With a second argument the image is also pushed (plain HTTP, no TLS check,
# for test registries on loopback) and its manifest digest is printed on the
# last line of stdout as "digest: sha256:...".
#
# Needs root (umoci unpack keeps ownership), umoci, skopeo (only to push) and a
# statically linked busybox (Debian: busybox-static). A missing tool is an
# error, never a silent skip: the callers are tests.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 LAYOUT_DIR [REGISTRY_HOST:PORT/REPO:TAG]" >&2
    exit 2
fi
layout=$1
dest=${2:-}

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "busybox-image.sh: required tool '$1' not found ($2)" >&2
        exit 1
    }
}
need umoci "apt-get install umoci"
[ -n "$dest" ] && need skopeo "apt-get install skopeo"
busybox=$(command -v busybox || true)
if [ -z "$busybox" ]; then
    echo "busybox-image.sh: busybox not found (apt-get install busybox-static)" >&2
    exit 1
fi
# A dynamically linked busybox would not run in an image without libc.
if command -v file >/dev/null 2>&1 && ! file -L "$busybox" | grep -q 'statically linked'; then
    echo "busybox-image.sh: $busybox is not statically linked (apt-get install busybox-static)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rm -rf "$layout"
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci unpack --image "$layout:latest" "$work/bundle" >/dev/null
rootfs=$work/bundle/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc"
cp "$busybox" "$rootfs/bin/busybox"
chmod 0755 "$rootfs/bin/busybox"
ln -s busybox "$rootfs/bin/sh"
echo "removed in layer 2" >"$rootfs/etc/skiff-old"
umoci repack --refresh-bundle --image "$layout:latest" "$work/bundle" >/dev/null

# Second layer: umoci repack turns the deletion into an OCI whiteout.
rm "$rootfs/etc/skiff-old"
echo "skiff test image" >"$rootfs/etc/skiff-release"
umoci repack --refresh-bundle --image "$layout:latest" "$work/bundle" >/dev/null

umoci config --image "$layout:latest" \
    --config.entrypoint /bin/sh --config.entrypoint -c \
    --config.cmd "echo hello from skiff" \
    --config.env SKIFF_TEST=1 \
    --config.workingdir / \
    --config.label skiff.test=busybox
umoci gc --layout "$layout"

if [ -n "$dest" ]; then
    skopeo copy --quiet --dest-tls-verify=false "oci:$layout:latest" "docker://$dest"
    digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$dest")
    echo "digest: $digest"
fi
