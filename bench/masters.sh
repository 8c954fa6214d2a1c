# Sourced by the API-level benchmarks: starts 3 skiff masters on 127.0.0.1-3 in a temp dir,
# each with its client, peer and API port, waits until their APIs answer, and stops them and
# removes the temp dir on exit (keeps it with KEEP_TMP=1; prints the masters' log tails when
# the script fails). Needs SKIFF_BIN and PORT_BASE; sets TMP, EPS (API URLs) and KC (admin
# kubeconfig). Extra master flags: MASTER_ARGS.

CPORT=$PORT_BASE PPORT=$((PORT_BASE + 1)) APORT=$((PORT_BASE + 3))
TMP=$(mktemp -d /tmp/skiff-bench.XXXXXX)
PIDS=()
cleanup() {
    local rc=$?
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    [ "$rc" -ne 0 ] && for f in "$TMP"/m*.log; do echo "--- $f" >&2; tail -n 20 "$f" >&2; done
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT

for i in 1 2 3; do
    for port in $CPORT $PPORT $APORT; do
        if (exec 3<>"/dev/tcp/127.0.0.$i/$port") 2>/dev/null; then
            echo "port 127.0.0.$i:$port is taken; set PORT_BASE" >&2
            exit 1
        fi
    done
done
for i in 1 2 3; do
    # shellcheck disable=SC2086
    "$SKIFF_BIN" master --name "m$i" --data-dir "$TMP/m$i" --listen-peer "127.0.0.$i:$PPORT" \
        --listen-client "127.0.0.$i:$CPORT" --listen-api "127.0.0.$i:$APORT" ${MASTER_ARGS:-} \
        --initial-cluster "m1=127.0.0.1:$PPORT,m2=127.0.0.2:$PPORT,m3=127.0.0.3:$PPORT" >"$TMP/m$i.log" 2>&1 &
    PIDS+=($!)
done
for i in 1 2 3; do
    for _ in $(seq 1 300); do
        [ -f "$TMP/m$i/admin.kubeconfig" ] && curl -sk --max-time 1 "https://127.0.0.$i:$APORT/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
done
EPS=https://127.0.0.1:$APORT,https://127.0.0.2:$APORT,https://127.0.0.3:$APORT
KC=$TMP/m1/admin.kubeconfig
