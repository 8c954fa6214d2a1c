#!/usr/bin/env python3
"""The HA suite's checker: the whole control plane's history, read back from the store.

    etcdctl watch --rev=1 --prefix /registry/ -w json >history.json
    ha_check.py --history history.json --end-rev R --metrics m1.prom m2.prom m3.prom \
        [--deployment default/web] [--acks acks.txt] [--final final.json]

Replays every revision of every object since revision 1 (the store is never compacted in the
test) and, after each revision, checks:

- binding: a pod (by uid) is never bound to one node and later to another;
- ReplicaSets: a ReplicaSet's active pods (owned by it, not being deleted, not finished) never
  exceed its spec.replicas, except while a lowered replicas count is being reconciled (the old
  count holds until the pods first come down to the new one: "one reconcile");
- the Deployment (--deployment NS/NAME, RollingUpdate): its active pods never exceed
  replicas + maxSurge, with the same allowance for a lowered replicas count;

and from the masters' /metrics (the state machine's fence ledger, replicated with the log):

- fencing: every fenced write (of the scheduler or a controller) applied was appended by the
  leader of the term it was fenced by: no component of a deposed leader ever wrote;

and, given --acks (lines "create NAME UID" / "delete NAME", written by the client only after
the API acknowledged) and --final (`kubectl get pods -o json` at the end):

- every acknowledged create is still there with its uid unless its delete was acknowledged,
  and no acknowledged delete left its pod live.

Also fails when the history does not reach --end-rev (a truncated history proves nothing).
Prints what it saw; exits 1 listing every violation."""

import argparse
import base64
import json
import re
import sys


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--history", default="")
    p.add_argument("--end-rev", type=int, default=0)
    p.add_argument("--metrics", nargs="*", default=[])
    p.add_argument("--deployment", default="")
    p.add_argument("--acks", default="")
    p.add_argument("--final", default="")
    p.add_argument("--ledger-only", action="store_true", help="check only the fence ledgers of --metrics")
    return p.parse_args()


KINDS = ("pods", "replicasets", "deployments")


def events(path):
    """(revision, [(key, object-or-None)]) for the kinds checked, in revision order, and the last
    revision seen (of any key)."""
    by_rev, seen = {}, 0
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            resp = json.loads(line)
            # Only the events' own revisions count: a watch catching up gives every part of a
            # split batch the header revision of the whole batch.
            for ev in resp.get("Events") or resp.get("events") or []:
                kv = ev.get("kv", {})
                rev = int(kv.get("mod_revision", 0))
                seen = max(seen, rev)
                key = base64.b64decode(kv["key"]).decode()
                parts = key.split("/")
                if len(parts) < 4 or parts[1] != "registry" or parts[2] not in KINDS:
                    continue
                deleted = ev.get("type") in ("DELETE", 1)
                value = None if deleted else json.loads(base64.b64decode(kv["value"]))
                by_rev.setdefault(rev, []).append((key, value))
    return sorted(by_rev.items()), seen


def active(pod):
    return not pod["metadata"].get("deletionTimestamp") and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def controller_uid(obj):
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


class Bound:
    """A replicas bound that allows one reconcile after the count is lowered."""

    def __init__(self):
        self.allowed = {}

    def check(self, key, want, have):
        allowed = want if have <= want else max(want, self.allowed.get(key, want))
        self.allowed[key] = allowed
        return have <= allowed, allowed


LEDGER = re.compile(r'^skiff_fenced_writes_(admitted|refused)_total\{fence_term="(\d+)",commit_term="(\d+)"\} (\d+)')


def ledgers(paths, violations):
    """Each master's fence ledger (admitted, refused by (fence term, commit term)); an admitted
    pair of two different terms is a violation."""
    out = []
    for path in paths:
        admitted, refused = {}, {}
        with open(path) as f:
            for line in f:
                m = LEDGER.match(line)
                if m:
                    (admitted if m[1] == "admitted" else refused)[(int(m[2]), int(m[3]))] = int(m[4])
        out.append((path, admitted, refused))
        for (fence, term), n in sorted(admitted.items()):
            if fence != term:
                violations.append(
                    f"{path}: {n} writes of term {fence}'s leader-only components were applied in term {term}: "
                    "a deposed leader's components wrote (two leaders' components wrote in one term)")
    if paths and not any(adm for _, adm, _ in out):
        violations.append("no master's fence ledger holds any fenced write (were the metrics read?)")
    return out


def main():
    a = parse_args()
    violations = []
    if a.ledger_only:
        ledgers(a.metrics, violations)
        for v in violations:
            print("VIOLATION: " + v)
        sys.exit(1 if violations else 0)
    if not a.history or a.end_rev <= 0:
        sys.exit("--history and --end-rev are needed (or --ledger-only)")
    revs, seen = events(a.history)
    pods, rss, deploys = {}, {}, {}
    node_of = {}  # pod uid -> first node it was bound to
    rs_bound, dep_bound = Bound(), Bound()
    worst_rs, worst_dep = {}, 0
    for rev, evs in revs:
        for key, value in evs:
            kind = key.split("/")[2]
            table = {"pods": pods, "replicasets": rss, "deployments": deploys}[kind]
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
            if kind == "pods" and value is not None:
                uid, node = value["metadata"].get("uid"), value.get("spec", {}).get("nodeName")
                if node:
                    first = node_of.setdefault(uid, node)
                    if first != node:
                        violations.append(f"revision {rev}: pod {key} (uid {uid}) bound to {first}, then to {node}")
        owned = {}
        for p in pods.values():
            if active(p):
                owner = controller_uid(p)
                if owner:
                    owned[owner] = owned.get(owner, 0) + 1
        for key, rs in rss.items():
            uid = rs["metadata"]["uid"]
            want, have = int(rs.get("spec", {}).get("replicas", 1)), owned.get(uid, 0)
            ok, allowed = rs_bound.check(uid, want, have)
            worst_rs[key] = max(worst_rs.get(key, 0), have)
            if not ok:
                violations.append(f"revision {rev}: ReplicaSet {key} has {have} active pods, above its bound {allowed}")
        if a.deployment:
            ns, name = a.deployment.split("/", 1)
            d = deploys.get(f"/registry/deployments/{ns}/{name}")
            if d is not None:
                duid = d["metadata"]["uid"]
                mine = {rs["metadata"]["uid"] for rs in rss.values() if controller_uid(rs) == duid}
                have = sum(owned.get(u, 0) for u in mine)
                want = int(d["spec"].get("replicas", 1))
                surge = d["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", "25%")
                surge = -(-want * int(surge[:-1]) // 100) if isinstance(surge, str) else int(surge)
                ok, allowed = dep_bound.check(duid, want + surge, have)
                worst_dep = max(worst_dep, have)
                if not ok:
                    violations.append(
                        f"revision {rev}: Deployment {a.deployment} has {have} active pods, above replicas+maxSurge {allowed}")
    if seen < a.end_rev:
        violations.append(f"the history stops at revision {seen}, before {a.end_rev}")
    if not revs:
        violations.append("no history read")

    # The fence ledger, as each master's state machine holds it.
    found = ledgers(a.metrics, violations)

    acked = {"create": 0, "delete": 0, "tried": 0}
    if a.acks:
        final = {}
        with open(a.final) as f:
            for p in json.load(f)["items"]:
                final[p["metadata"]["name"]] = p
        created, deleted, tried = {}, set(), set()
        with open(a.acks) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[0] == "create":
                    created[parts[1]] = parts[2]
                elif len(parts) == 2 and parts[0] == "delete":
                    deleted.add(parts[1])
                elif len(parts) == 2 and parts[0] == "try-delete":
                    tried.add(parts[1])
        acked = {"create": len(created), "delete": len(deleted), "tried": len(tried)}
        for name, uid in created.items():
            p = final.get(name)
            if name in deleted:
                if p is not None and p["metadata"]["uid"] == uid and not p["metadata"].get("deletionTimestamp"):
                    violations.append(f"pod {name}: its delete was acknowledged, yet it is live")
            elif name in tried:
                # A delete that got no answer may have been applied or not: either is right.
                pass
            elif p is None or p["metadata"]["uid"] != uid:
                violations.append(f"pod {name} (uid {uid}): its create was acknowledged, and it is gone")

    terms = sorted({t for _, adm, _ in found for (_, t) in adm})
    refused = max((sum(r.values()) for _, _, r in found), default=0)
    print(f"{len(revs)} revisions up to {seen}; {len(node_of)} pods bound, none to two nodes"
          if not any("bound to" in v for v in violations) else f"{len(revs)} revisions up to {seen}")
    print(f"most active pods per ReplicaSet: {max(worst_rs.values(), default=0)}; "
          f"deployment {a.deployment or '-'}: at most {worst_dep} active pods")
    print(f"fenced writes applied in terms {terms}; refused by the fence: {refused}")
    if a.acks:
        print(f"acknowledged: {acked['create']} creates, {acked['delete']} deletes "
              f"(of {acked['tried']} tried)")
    if violations:
        for v in violations[:40]:
            print("VIOLATION: " + v)
        if len(violations) > 40:
            print(f"... and {len(violations) - 40} more")
        sys.exit(1)


if __name__ == "__main__":
    main()
