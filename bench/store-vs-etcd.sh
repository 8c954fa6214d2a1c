#!/usr/bin/env bash
# skiff vs etcd, side by side, on this machine, in one run.
#
# Starts a 3-member etcd 3.4 cluster (Debian etcd-server, default durability: fsync on) and a
# 3-member skiff cluster (fsync on: skiff's only mode) on loopback, data dirs in one temp dir
# on the same disk; runs every workload of `skiff bench store` against each, alternating
# (etcd, skiff, etcd, skiff, ...); prints a side-by-side table with the ratio skiff/etcd;
# stops both clusters and removes the temp dir on exit.
#
#   bash bench/store-vs-etcd.sh            # full run (12 workloads x 2 x DURATION s)
#   QUICK=1 bash bench/store-vs-etcd.sh    # smoke run: small sizes, 0.5 s per workload
#
# Env (defaults in brackets; QUICK=1 changes the marked ones):
#   DURATION [20; quick 0.5]     seconds per workload run
#   CLIENTS [1000; quick 50]   CONNS [100; quick 10]   clients and gRPC connections
#   KEY_SPACE [10000; quick 1000]                      keys for put/range/txn-cas/mixed
#   LIST_KEYS [10000; quick 1000]  LIST_CLIENTS [10; quick 4]  LIST_CONNS [10; quick 4]
#   WATCHERS [20; quick 4]  WATCH_WRITERS [100; quick 10]  WATCH_RATE [1000; quick 200] puts/s
#   ROUNDS [1]                 repeat the whole alternation; the table shows medians
#   WORKLOADS [put-seq put-rand txn-cas range-lin range-ser list watch mixed
#              put-rand@1 txn-cas@1 range-lin@1 range-ser@1]   NAME@N: N clients
#   ETCD_PORT_BASE [14790; quick 14890]  SKIFF_PORT_BASE [15790; quick 15890]
#                              client port; peer +1, metrics +2, on 127.0.0.1-3
#   SKIFF_BIN [/var/cache/skiff/target/release/skiff]  SKIP_BUILD=1 skips `cargo build`
#   OTHER_LOAD_MAX [0.3]       cores other processes may use during a run before it counts as
#                              disturbed (the machine may be shared: builds, other tests)
#   QUIET_WAIT [900; quick 0]  seconds to wait for other load to drop before each etcd/skiff pair
#   RETRIES [3; quick 0]       times a disturbed pair is run again (the table flags what remains)
#   BENCH_TMP [/tmp]           parent of the temp dir; KEEP_TMP=1 keeps it
#   OUT_DIR                    copy the per-run JSON reports and table.md there
#
# Exit status: non-zero when a cluster does not come up or any run failed (no operation
# succeeded, or the watch check lost events). Times are never asserted.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }
DURATION=${DURATION:-$(q 20 0.5)}
CLIENTS=${CLIENTS:-$(q 1000 50)}
CONNS=${CONNS:-$(q 100 10)}
KEY_SPACE=${KEY_SPACE:-$(q 10000 1000)}
LIST_KEYS=${LIST_KEYS:-$(q 10000 1000)}
LIST_CLIENTS=${LIST_CLIENTS:-$(q 10 4)}
LIST_CONNS=${LIST_CONNS:-$(q 10 4)}
WATCHERS=${WATCHERS:-$(q 20 4)}
WATCH_WRITERS=${WATCH_WRITERS:-$(q 100 10)}
WATCH_RATE=${WATCH_RATE:-$(q 1000 200)}
ROUNDS=${ROUNDS:-1}
WORKLOADS=${WORKLOADS:-put-seq put-rand txn-cas range-lin range-ser list watch mixed put-rand@1 txn-cas@1 range-lin@1 range-ser@1}
ETCD_PORT_BASE=${ETCD_PORT_BASE:-$(q 14790 14890)}
SKIFF_PORT_BASE=${SKIFF_PORT_BASE:-$(q 15790 15890)}
SKIFF_BIN=${SKIFF_BIN:-/var/cache/skiff/target/release/skiff}
OTHER_LOAD_MAX=${OTHER_LOAD_MAX:-0.3}
QUIET_WAIT=${QUIET_WAIT:-$(q 900 0)}
RETRIES=${RETRIES:-$(q 3 0)}

# ------------------------------------------------------------------ setup --

scripts/deps.sh etcd-server etcd-client
command -v python3 >/dev/null || { echo "bench: python3 is needed for the table" >&2; exit 1; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --locked --bin skiff
fi
[ -x "$SKIFF_BIN" ] || { echo "bench: no skiff binary at $SKIFF_BIN" >&2; exit 1; }

# Only our own settings reach etcdctl and etcd.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^ETCD(CTL)?_' || true)
export ETCDCTL_API=3

TMP=$(mktemp -d "${BENCH_TMP:-/tmp}/skiff-bench.XXXXXX")
RES=$TMP/results
mkdir -p "$RES"
PIDS=()

cleanup() {
    local rc=$?
    set +e
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ "$rc" -ne 0 ]; then
        local f
        for f in "$TMP"/*.log; do
            [ -f "$f" ] || continue
            echo "----- last 15 lines of $(basename "$f") -----" >&2
            tail -n 15 "$f" >&2
        done
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

eps() { echo "127.0.0.1:$1,127.0.0.2:$1,127.0.0.3:$1"; }
ETCD_EPS=$(eps "$ETCD_PORT_BASE")
SKIFF_EPS=$(eps "$SKIFF_PORT_BASE")

start_etcd() {
    local n=$1 ip=127.0.0.$1 c=$ETCD_PORT_BASE p=$((ETCD_PORT_BASE + 1)) m=$((ETCD_PORT_BASE + 2))
    etcd --name "m$n" --data-dir "$TMP/etcd-m$n" \
        --listen-peer-urls "http://$ip:$p" --initial-advertise-peer-urls "http://$ip:$p" \
        --listen-client-urls "http://$ip:$c" --advertise-client-urls "http://$ip:$c" \
        --listen-metrics-urls "http://$ip:$m" \
        --initial-cluster "m1=http://127.0.0.1:$p,m2=http://127.0.0.2:$p,m3=http://127.0.0.3:$p" \
        --initial-cluster-state new --initial-cluster-token skiff-bench \
        >>"$TMP/etcd-m$n.log" 2>&1 &
    PIDS+=("$!")
}

start_skiff() {
    local n=$1 ip=127.0.0.$1 c=$SKIFF_PORT_BASE p=$((SKIFF_PORT_BASE + 1)) m=$((SKIFF_PORT_BASE + 2))
    "$SKIFF_BIN" master --name "m$n" --data-dir "$TMP/skiff-m$n" \
        --listen-peer "$ip:$p" --listen-client "$ip:$c" --listen-metrics "$ip:$m" --listen-api off \
        --initial-cluster "m1=127.0.0.1:$p,m2=127.0.0.2:$p,m3=127.0.0.3:$p" \
        >>"$TMP/skiff-m$n.log" 2>&1 &
    PIDS+=("$!")
}

wait_healthy() {
    local name=$1 eps=$2 deadline=$((SECONDS + 60))
    until timeout 10 etcdctl --dial-timeout=2s --command-timeout=3s --endpoints="$eps" endpoint health >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "bench: $name cluster not healthy after 60 s" >&2
            exit 1
        fi
        sleep 0.5
    done
}

# ------------------------------------------------------------ other load --
# CPU used by anything but the six members and the load generator, in cores: all busy time
# from /proc/stat minus the members' time and the time of this script's reaped children (the
# load generator runs as one). Kernel work on our behalf (loopback softirqs, flush workers)
# counts as other load too, so a quiet machine reads a little above 0.
CLK_TCK=$(getconf CLK_TCK)
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
our_ticks() {
    local s=0 p t
    for p in "${PIDS[@]}"; do
        t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || t=0
        s=$((s + ${t:-0}))
    done
    t=$(awk '{print $16 + $17}' "/proc/$$/stat")
    echo $((s + t))
}
# load_mark: remember now; other_load: cores used by others since the mark
load_mark() { MARK_BUSY=$(busy_ticks); MARK_OURS=$(our_ticks); MARK_T=$EPOCHREALTIME; }
other_load() {
    local busy ours now=$EPOCHREALTIME
    busy=$(busy_ticks)
    ours=$(our_ticks)
    python3 -c '
import sys
busy, ours, t0, t1, hz = map(float, sys.argv[1:])
print(f"{max(0.0, (busy - ours) / hz / max(0.001, t1 - t0)):.2f}")' \
        "$((busy - MARK_BUSY))" "$((ours - MARK_OURS))" "$MARK_T" "$now" "$CLK_TCK"
}
over_max() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)' "$1" "$OTHER_LOAD_MAX"; }
# wait_quiet: up to QUIET_WAIT seconds until others use at most OTHER_LOAD_MAX cores (3 s samples)
wait_quiet() {
    local deadline=$((SECONDS + QUIET_WAIT)) load said=0
    while [ "$SECONDS" -lt "$deadline" ]; do
        load_mark
        sleep 3
        load=$(other_load)
        over_max "$load" || return 0
        if [ "$said" = 0 ]; then
            echo "   other processes use $load cores: waiting (up to ${QUIET_WAIT}s) for a quiet machine"
            said=1
        fi
    done
}

# workload_args NAME[@N]: the `skiff bench store` flags of a workload; `@N` runs it with N
# clients over ceil(N/10) connections instead of CLIENTS over CONNS (e.g. put-rand@1).
workload_args() {
    local name=${1%@*} c=$CLIENTS n=$CONNS
    if [[ "$1" == *@* ]]; then
        c=${1#*@}
        n=$(((c + 9) / 10))
    fi
    local common="--clients $c --conns $n --key-space $KEY_SPACE"
    case "$name" in
        put-seq) echo "--workload put --sequential $common" ;;
        put-rand) echo "--workload put $common" ;;
        range-lin) echo "--workload range $common" ;;
        range-ser) echo "--workload range --serializable $common" ;;
        txn-cas) echo "--workload txn-cas $common" ;;
        list) echo "--workload list --clients $LIST_CLIENTS --conns $LIST_CONNS --key-space $LIST_KEYS" ;;
        watch) echo "--workload watch --clients $WATCH_WRITERS --conns $CONNS --watchers $WATCHERS --rate $WATCH_RATE --key-space $KEY_SPACE" ;;
        mixed) echo "--workload mixed $common" ;;
        *) echo "bench: unknown workload $1" >&2; return 1 ;;
    esac
}

# ------------------------------------------------------------------- run --

echo "== skiff vs etcd: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, tmp $TMP"
echo "   etcd $(etcd --version | awk '/^etcd Version/ {print $3}') on $ETCD_EPS; skiff $("$SKIFF_BIN" --version | awk '{print $2}') on $SKIFF_EPS"
echo "   duration ${DURATION}s, clients $CLIENTS, conns $CONNS, key space $KEY_SPACE, rounds $ROUNDS"
# Another benchmark (or anything) on our ports would mix its members with ours: refuse.
for n in 1 2 3; do
    for port in $ETCD_PORT_BASE $((ETCD_PORT_BASE + 1)) $SKIFF_PORT_BASE $((SKIFF_PORT_BASE + 1)); do
        if (exec 3<>"/dev/tcp/127.0.0.$n/$port") 2>/dev/null; then
            echo "bench: 127.0.0.$n:$port is in use (another benchmark running?); set ETCD_PORT_BASE/SKIFF_PORT_BASE" >&2
            exit 1
        fi
    done
done
for n in 1 2 3; do start_etcd "$n"; start_skiff "$n"; done
wait_healthy etcd "$ETCD_EPS"
wait_healthy skiff "$SKIFF_EPS"
echo "   both clusters healthy"

# run_one WORKLOAD TARGET ROUND: one `skiff bench store` run; its report in $RES, the other
# load during it in $RES/*.load
run_one() {
    local w=$1 target=$2 round=$3 ep args out started rc=0 load
    if [ "$target" = etcd ]; then ep=$ETCD_EPS; else ep=$SKIFF_EPS; fi
    args=$(workload_args "$w")
    out=$RES/$w.$target.$round
    started=$(date -u +%T)
    rm -f "$out.json"
    load_mark
    # shellcheck disable=SC2086 # $args is a list of flags
    timeout $((${DURATION%.*} + 180)) "$SKIFF_BIN" bench store --endpoints "$ep" $args \
        --duration "$DURATION" --label "$target" --json "$out.json" >"$out.txt" 2>"$out.err" || rc=$?
    load=$(other_load)
    echo "$load" >"$out.load"
    if [ "$rc" -ne 0 ] || [ ! -s "$out.json" ]; then
        RUN_FAILED=1
        echo "   FAILED $w $target (exit $rc):" >&2
        sed 's/^/     /' "$out.txt" "$out.err" | tail -n 12 >&2
    fi
    python3 - "$out.json" "$w" "$target" "$started" "$load" <<'EOF' || true
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(0)
l = d["latency"]
print(f"   {sys.argv[4]} {sys.argv[2]:<11} {sys.argv[3]:<6} {d['ops_per_sec']:>10.1f} ops/s  p50 {l['p50_ms']:.2f} ms  "
      f"p99 {l['p99_ms']:.2f} ms  errors {d['errors']}  conflicts {d['conflicts']}  other load {sys.argv[5]}")
EOF
}

FAILED=()
for round in $(seq "$ROUNDS"); do
    for w in $WORKLOADS; do
        workload_args "$w" >/dev/null
        for attempt in $(seq 0 "$RETRIES"); do
            [ "$QUIET_WAIT" -gt 0 ] && wait_quiet
            RUN_FAILED=0
            run_one "$w" etcd "$round"
            e_failed=$RUN_FAILED
            RUN_FAILED=0
            run_one "$w" skiff "$round"
            s_failed=$RUN_FAILED
            disturbed=0
            for t in etcd skiff; do over_max "$(cat "$RES/$w.$t.$round.load")" && disturbed=1; done
            if [ "$disturbed" = 0 ] || [ "$attempt" = "$RETRIES" ]; then break; fi
            echo "   $w: other processes used more than $OTHER_LOAD_MAX cores; running the pair again"
        done
        [ "$e_failed" = 0 ] || FAILED+=("$w/etcd")
        [ "$s_failed" = 0 ] || FAILED+=("$w/skiff")
    done
done

# ----------------------------------------------------------------- table --

python3 - "$RES" "$ROUNDS" "$OTHER_LOAD_MAX" $WORKLOADS >"$RES/table.md" <<'EOF'
import json, os, statistics, sys
res, rounds, load_max, workloads = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
disturbed = []

def load(w, t):
    out = []
    for r in range(1, rounds + 1):
        p = os.path.join(res, f"{w}.{t}.{r}.json")
        if os.path.exists(p):
            out.append(json.load(open(p)))
        lp = os.path.join(res, f"{w}.{t}.{r}.load")
        if os.path.exists(lp) and float(open(lp).read()) > load_max:
            disturbed.append(f"{w}/{t}/round {r} ({float(open(lp).read()):.2f} cores)")
    return out

def med(runs, f):
    v = [f(d) for d in runs]
    return statistics.median(v) if v else None

def num(x, fmt):
    return "-" if x is None else format(x, fmt)

def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"

print("| workload | etcd ops/s | etcd p50 ms | etcd p99 ms | etcd p99.9 ms | skiff ops/s | skiff p50 ms | skiff p99 ms | skiff p99.9 ms | ops/s skiff/etcd | p99 skiff/etcd |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for w in workloads:
    row = {}
    for t in ("etcd", "skiff"):
        runs = load(w, t)
        row[t] = dict(
            ops=med(runs, lambda d: d["ops_per_sec"]),
            p50=med(runs, lambda d: d["latency"]["p50_ms"]),
            p99=med(runs, lambda d: d["latency"]["p99_ms"]),
            p999=med(runs, lambda d: d["latency"]["p999_ms"]),
        )
    e, s = row["etcd"], row["skiff"]
    print(f"| {w} | {num(e['ops'], '.0f')} | {num(e['p50'], '.2f')} | {num(e['p99'], '.2f')} | {num(e['p999'], '.2f')} "
          f"| {num(s['ops'], '.0f')} | {num(s['p50'], '.2f')} | {num(s['p99'], '.2f')} | {num(s['p999'], '.2f')} "
          f"| {ratio(s['ops'], e['ops'])} | {ratio(s['p99'], e['p99'])} |")
if disturbed:
    print()
    print(f"Disturbed (other processes above {load_max} cores): " + ", ".join(disturbed))
EOF
echo
echo "== results (median of $ROUNDS round(s); watch: put-to-event latency, ops/s = puts/s)"
cat "$RES/table.md"
if [ -n "${OUT_DIR:-}" ]; then
    mkdir -p "$OUT_DIR"
    cp "$RES"/*.json "$RES"/*.txt "$RES"/*.err "$RES"/*.load "$RES/table.md" "$OUT_DIR"/
    echo "reports copied to $OUT_DIR"
fi
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "bench: ${#FAILED[@]} run(s) failed: ${FAILED[*]}" >&2
    exit 1
fi
