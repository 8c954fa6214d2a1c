# Shared checks of the shell test suites (tests/etcdctl.sh, tests/kubectl.sh).
# The sourcing script sets SUITE (its name in the summary line) and PASSED=0.
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
