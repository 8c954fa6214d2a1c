#!/usr/bin/env python3
"""Checks a rollout's bounds over the store's whole history, not just at the end.

    etcdctl get --prefix /registry/pods/NS/ --rev=R -w json >start.json
    etcdctl watch --rev=R+1 --prefix /registry/pods/NS/ -w json |
        rollout_bounds.py LABEL=VALUE MAX_PODS MIN_READY start.json END_REV

Starts from the pods as they were at revision R (etcdctl's JSON get), replays every later revision
of the pods' keys (its JSON watch responses, base64 keys and values) and, after each, counts the
pods carrying LABEL=VALUE that are not being deleted, and those of them that are Ready. Fails when
the count ever exceeds MAX_PODS or, once it first reached MIN_READY, the ready count ever falls
below MIN_READY; also when the watch did not get as far as END_REV (a truncated history proves
nothing). Prints the extremes it saw."""

import base64
import json
import sys

label, max_pods, min_ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
start_file, end_rev = sys.argv[4], int(sys.argv[5])
key, value = label.split("=", 1)
pods = {}
with open(start_file) as f:
    start = json.load(f)
for kv in start.get("kvs") or []:
    pods[base64.b64decode(kv["key"]).decode()] = json.loads(base64.b64decode(kv["value"]))
seen_rev = int(start.get("header", {}).get("revision", 0))
worst_pods, worst_ready, reached = 0, None, False
revisions = 0


def ready(p):
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in p.get("status", {}).get("conditions", []))


def check(rev):
    global worst_pods, worst_ready, reached
    live = [p for p in pods.values()
            if p.get("metadata", {}).get("labels", {}).get(key) == value and not p["metadata"].get("deletionTimestamp")]
    n, r = len(live), sum(1 for p in live if ready(p))
    worst_pods = max(worst_pods, n)
    if r >= min_ready:
        reached = True
    if reached:
        worst_ready = r if worst_ready is None else min(worst_ready, r)
    if n > max_pods:
        sys.exit(f"revision {rev}: {n} pods, above the bound {max_pods}")
    if reached and r < min_ready:
        sys.exit(f"revision {rev}: {r} ready pods, below the bound {min_ready}")


for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    resp = json.loads(line)
    header = resp.get("Header") or resp.get("header") or {}
    seen_rev = max(seen_rev, int(header.get("revision", 0)))
    by_rev = {}
    for ev in resp.get("Events") or resp.get("events") or []:
        kv = ev.get("kv", {})
        rev = int(kv.get("mod_revision", 0))
        by_rev.setdefault(rev, []).append(ev)
    for rev in sorted(by_rev):
        for ev in by_rev[rev]:
            kv = ev["kv"]
            k = base64.b64decode(kv["key"]).decode()
            if ev.get("type") == "DELETE" or ev.get("type") == 1:
                pods.pop(k, None)
            else:
                pods[k] = json.loads(base64.b64decode(kv["value"]))
        revisions += 1
        check(rev)

check("start")
if seen_rev < end_rev:
    sys.exit(f"the history read stops at revision {seen_rev}, before {end_rev}")
if revisions == 0:
    sys.exit("no history read")
print(f"{revisions} revisions: at most {worst_pods} pods (bound {max_pods}), "
      f"at least {worst_ready} ready once {min_ready} were (bound {min_ready})")
