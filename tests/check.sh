# Shared checks of the shell test suites (tests/etcdctl.sh, tests/kubectl.sh).
# The sourcing script sets SUITE (its name in the summary line) and PASSED=0; scripts that start
# servers also set TMP (their temp dir) and BG_PIDS (what they started), then `trap cleanup EXIT`.
# shellcheck shell=bash

# --------------------------------------------------------------- checking --

fail() {
    local name=$1
    shift
    echo "FAIL: $name" >&2
    local l
    for l in "$@"; do printf '%s\n' "$l" | sed 's/^/  /' >&2; done
    echo "$SUITE: $PASSED passed, 1 failed"
    exit 1
}

pass() {
    PASSED=$((PASSED + 1))
    echo "PASS: $1"
}

# check_eq NAME EXPECTED ACTUAL
check_eq() {
    if [ "$2" == "$3" ]; then
        pass "$1"
    else
        fail "$1" "expected:" "$(printf '%s' "$2" | sed 's/^/| /')" \
            "actual:" "$(printf '%s' "$3" | sed 's/^/| /')"
    fi
}

# check_contains NAME NEEDLE HAYSTACK
check_contains() {
    if [[ "$3" == *"$2"* ]]; then
        pass "$1"
    else
        fail "$1" "expected to contain: $2" "actual:" "$(printf '%s' "$3" | sed 's/^/| /')"
    fi
}

# check_not_contains NAME NEEDLE HAYSTACK
check_not_contains() {
    if [[ "$3" != *"$2"* ]]; then
        pass "$1"
    else
        fail "$1" "expected not to contain: $2" "actual:" "$(printf '%s' "$3" | sed 's/^/| /')"
    fi
}

# check_match NAME ERE TEXT: some line of TEXT matches the extended regex ERE
check_match() {
    if grep -Eq -- "$2" <<<"$3"; then
        pass "$1"
    else
        fail "$1" "expected a line matching: $2" "actual:" "$(printf '%s' "$3" | sed 's/^/| /')"
    fi
}

# check_py NAME PYEXPR JSON: PYEXPR (over the parsed JSON `d`) must be true
check_py() {
    local r
    r=$(pyj "bool($2)" <<<"$3" 2>&1) || r="python error: $r"
    if [ "$r" = True ]; then
        pass "$1"
    else
        fail "$1" "expected true: $2 ($r)" "json: $3"
    fi
}

# pyj EXPR: print EXPR evaluated with `d` = JSON read from stdin
pyj() {
    python3 -c '
import base64, json, sys
d = json.load(sys.stdin)
b64 = lambda s: base64.b64decode(s).decode()
print(eval(sys.argv[1]))' "$1"
}

# wait_for SECONDS CMD...: until CMD succeeds (quietly), at most SECONDS however long each try
# takes; returns 1 after that (the caller fails with its own message).
wait_for() {
    local end=$((SECONDS + $1))
    shift
    while [ "$SECONDS" -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    return 1
}

# ------------------------------------------------------------- teardown --

# cleanup: stops every background process, prints the member logs on failure, removes TMP
# (KEEP_TMP=1 keeps it), and exits with the script's status.
cleanup() {
    local rc=$?
    set +e
    local p
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${BG_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    if [ "$rc" -ne 0 ]; then
        local f
        for f in "$TMP"/m*.log; do
            [ -f "$f" ] || continue
            echo "----- last 40 lines of $(basename "$f") -----" >&2
            tail -n 40 "$f" >&2
        done
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}

# require_free_ports "IP..." "PORT...": exits when any IP:PORT already accepts connections.
require_free_ports() {
    local ip port
    for ip in $1; do
        for port in $2; do
            if (exec 3<>"/dev/tcp/$ip/$port") 2>/dev/null; then
                echo "port $ip:$port is taken; set PORT_BASE" >&2
                exit 1
            fi
        done
    done
}
