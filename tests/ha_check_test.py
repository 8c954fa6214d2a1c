#!/usr/bin/env python3
"""Self-test of tests/ha_check.py on made-up histories: a clean one passes, and each kind of
violation it claims to catch is caught (so the HA suite's pass cannot be a checker that never
fails). Run by tests/ha.sh before the cluster starts."""

import base64
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def kv(rev, key, obj):
    ev = {"kv": {"key": base64.b64encode(key.encode()).decode(), "mod_revision": rev}}
    if obj is None:
        ev["type"] = 1
    else:
        ev["kv"]["value"] = base64.b64encode(json.dumps(obj).encode()).decode()
    return ev


def rs(replicas):
    return {"metadata": {"name": "web-1", "uid": "rs1"}, "spec": {"replicas": replicas}}


def pod(name, uid, node=None, owner="rs1", deleting=False):
    meta = {"name": name, "uid": uid, "ownerReferences": [{"uid": owner, "controller": True}]}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}, "status": {"phase": "Running"}}


LEDGER_OK = 'skiff_fenced_writes_admitted_total{fence_term="2",commit_term="2"} 5\n'
LEDGER_BAD = LEDGER_OK + 'skiff_fenced_writes_admitted_total{fence_term="2",commit_term="3"} 1\n'
R, P = "/registry/replicasets/default/web-1", "/registry/pods/default/"


def run(events, ledger=LEDGER_OK, acks="", final=None, end=None):
    with tempfile.TemporaryDirectory() as d:
        h, m, a, f = (os.path.join(d, x) for x in ("h.json", "m.prom", "acks", "final.json"))
        with open(h, "w") as out:
            for e in events:
                out.write(json.dumps({"Events": [e]}) + "\n")
        with open(m, "w") as out:
            out.write(ledger)
        args = [sys.executable, os.path.join(HERE, "ha_check.py"), "--history", h, "--metrics", m,
                "--end-rev", str(end if end is not None else max(e["kv"]["mod_revision"] for e in events))]
        if acks:
            with open(a, "w") as out:
                out.write(acks)
            with open(f, "w") as out:
                json.dump({"items": final or []}, out)
            args += ["--acks", a, "--final", f]
        r = subprocess.run(args, capture_output=True, text=True)
        return r.returncode, r.stdout


clean = [kv(1, R, rs(2)), kv(2, P + "a", pod("a", "u1")), kv(3, P + "a", pod("a", "u1", "n1")),
         kv(4, P + "b", pod("b", "u2", "n2")), kv(5, R, rs(1)), kv(6, P + "b", pod("b", "u2", "n2", deleting=True)),
         kv(7, P + "b", None)]
cases = [
    ("a clean history passes", clean, {}, 0, ""),
    ("a pod bound to two nodes", clean + [kv(8, P + "a", pod("a", "u1", "n2"))], {}, 1, "bound to n1, then to n2"),
    ("a ReplicaSet above its replicas", clean + [kv(8, P + "c", pod("c", "u3")), kv(9, P + "d", pod("d", "u4"))], {}, 1,
     "above its bound 1"),
    ("a deposed leader's write in the ledger", clean, {"ledger": LEDGER_BAD}, 1, "a deposed leader's components wrote"),
    ("a truncated history", clean, {"end": 20}, 1, "stops at revision 7"),
    ("an acknowledged create lost", clean, {"acks": "create a u1\n", "final": []}, 1, "its create was acknowledged"),
    ("a create whose delete got no answer may be gone", clean, {"acks": "create a u1\ntry-delete a\n", "final": []}, 0, ""),
]
failed = 0
for name, events, kw, want_rc, want_text in cases:
    rc, out = run(events, **kw)
    ok = rc == want_rc and want_text in out
    failed += not ok
    print(("ok  " if ok else "BAD ") + name + ("" if ok else f": rc {rc}, output:\n{out}"))
sys.exit(1 if failed else 0)
