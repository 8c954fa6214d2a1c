#!/usr/bin/env python3
"""Issue 11's figures on a running `skiff up` cluster (bench/up.sh starts it):

1. deployment: create a Deployment of REPLICAS pods of IMAGE (present on the agents) and
   measure, from a watch, each pod's start latency (its ADDED event to the event showing all
   its containers running) and the time from the create request to all of them running.
2. failover: kill -9 the leader master (its pid from the cluster's state.json), then every
   50 ms try to create a pod through the surviving masters; report the time from the kill to
   the first acknowledged write and to that pod being bound by the new leader's scheduler.

Bounded: every wait gives up after TIMEOUT seconds. Prints a table and one JSON line.

    up_figures.py STATE_DIR IMAGE REPLICAS TIMEOUT
"""

import collections
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import kube_tls  # noqa: E402  (tests/kube_tls.py)

state_dir, image = sys.argv[1], sys.argv[2]
replicas, timeout = int(sys.argv[3]), float(sys.argv[4])
state = json.load(open(os.path.join(state_dir, "state.json")))
masters = [h for h in state["hosts"] if h["master"]]
ctx = kube_tls.ssl_context(os.path.join(state_dir, "admin.kubeconfig"), "up-figures.")


def conn(addr, t=10):
    return http.client.HTTPSConnection(addr, 6443, context=ctx, timeout=t)


def call(addr, method, path, body=None, t=10):
    c = conn(addr, t)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    return r.status, data


def pct(xs, p):
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


# ------------------------------------------------------------------ deployment --
added, running = {}, {}
lock = threading.Lock()
stop = threading.Event()


def watcher(addr):
    try:
        watch(addr)
    except (OSError, http.client.HTTPException):
        pass  # the watched master was killed by the failover part: nothing more to see


def watch(addr):
    c = conn(addr, timeout + 30)
    c.request("GET", "/api/v1/namespaces/default/pods?watch=1&labelSelector=app%3Dfigures")
    r = c.getresponse()
    buf = b""
    while not stop.is_set():
        chunk = r.read1(65536)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.strip():
                continue
            now = time.monotonic()
            pod = json.loads(line).get("object", {})
            name = pod.get("metadata", {}).get("name", "")
            with lock:
                added.setdefault(name, now)
                css = (pod.get("status") or {}).get("containerStatuses") or []
                if css and all("running" in (cs.get("state") or {}) for cs in css):
                    running.setdefault(name, now)


first = masters[0]["addr"]
threading.Thread(target=watcher, args=(first,), daemon=True).start()
time.sleep(0.5)
deploy = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "figures"},
    "spec": {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "figures"}},
        "template": {
            "metadata": {"labels": {"app": "figures"}},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": image}]},
        },
    },
}
t0 = time.monotonic()
status, data = call(first, "POST", "/apis/apps/v1/namespaces/default/deployments", deploy)
if status != 201:
    raise SystemExit("create deployment: HTTP %d %s" % (status, data[:200]))
deadline = t0 + timeout
while time.monotonic() < deadline:
    with lock:
        if len(running) >= replicas:
            break
    time.sleep(0.01)
stop.set()
with lock:
    lat = sorted((running[n] - added[n]) * 1000 for n in running if n in added)
    all_ms = (max(running.values()) - t0) * 1000 if len(running) >= replicas else float("nan")
print("deployment of %d replicas: all running %.0f ms after the create; per pod (ADDED -> running) "
      "p50 %.0f p90 %.0f p99 %.0f max %.0f ms" % (replicas, all_ms, pct(lat, 50), pct(lat, 90), pct(lat, 99),
                                                   lat[-1] if lat else float("nan")))
call(first, "DELETE", "/apis/apps/v1/namespaces/default/deployments/figures")


# -------------------------------------------------------------------- failover --
def leader(among):
    """The member a majority of `among` names as leader (etcdctl endpoint status), with its
    raft term: openraft may briefly let a deposed leader still believe it leads."""
    eps = ",".join("%s:2379" % m["addr"] for m in among)
    out = subprocess.run(["etcdctl", "--endpoints=" + eps, "--command-timeout=2s", "endpoint", "status", "-w", "json"],
                         capture_output=True, text=True, env=dict(os.environ, ETCDCTL_API="3"))
    try:
        views = {e["Endpoint"]: e["Status"] for e in json.loads(out.stdout or "[]")}
    except (ValueError, KeyError):
        return None, None
    votes = collections.Counter(v.get("leader") for v in views.values() if v.get("leader"))
    if not votes or votes.most_common(1)[0][1] * 2 <= len(among):
        return None, None
    lid = votes.most_common(1)[0][0]
    for m in among:
        v = views.get("%s:2379" % m["addr"])
        if v and v["header"]["member_id"] == lid:
            return m, v.get("raftTerm", v["header"].get("raft_term"))
    return None, None


lead = term = None
for _ in range(50):
    lead, term = leader(masters)
    if lead is not None:
        break
    time.sleep(0.1)
if lead is None:
    raise SystemExit("no leader found on the masters' metrics")
others = [m["addr"] for m in masters if m is not lead]
os.kill(lead["pid"], signal.SIGKILL)
killed = time.monotonic()
write_ms = bind_ms = float("nan")
name = None
i = 0
while time.monotonic() < killed + timeout and name is None:
    for addr in others:
        i += 1
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "failover-%d" % i},
               "spec": {"terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "c", "image": image}]}}
        try:
            status, _ = call(addr, "POST", "/api/v1/namespaces/default/pods", pod, t=1)
        except (OSError, http.client.HTTPException):
            continue
        if status == 201:
            write_ms = (time.monotonic() - killed) * 1000
            name = (addr, "failover-%d" % i)
            break
    else:
        time.sleep(0.05)
while name is not None and time.monotonic() < killed + timeout:
    try:
        status, data = call(name[0], "GET", "/api/v1/namespaces/default/pods/" + name[1], t=1)
        if status == 200 and json.loads(data).get("spec", {}).get("nodeName"):
            bind_ms = (time.monotonic() - killed) * 1000
            break
    except (OSError, http.client.HTTPException, ValueError):
        pass
    time.sleep(0.02)
new, new_term = leader([m for m in masters if m is not lead])
print("leader master %s (term %s) killed (-9): first write acknowledged after %.0f ms, that pod bound after "
      "%.0f ms; new leader %s, term %s" % (lead["name"], term, write_ms, bind_ms, new and new["name"], new_term))
print(json.dumps({"replicas": replicas, "all_running_ms": all_ms, "pod_p50_ms": pct(lat, 50),
                  "pod_p99_ms": pct(lat, 99), "pod_max_ms": lat[-1] if lat else None,
                  "failover_write_ms": write_ms, "failover_bind_ms": bind_ms}))
# NaN (never reached) compares unequal to itself: every figure must have been measured.
sys.exit(0 if lat and all_ms == all_ms and write_ms == write_ms and bind_ms == bind_ms else 1)
