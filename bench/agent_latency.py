#!/usr/bin/env python3
"""Pod start latency through a node agent: creates COUNT pods already bound to NODE
(spec.nodeName set, so creation is the binding), CONCURRENCY at a time, and measures for each
the time from its creation being acknowledged to a watch event showing its container running.
Prints p50/p90/p99/max and a JSON line; deletes the pods at the end. Bounded: gives up after
TIMEOUT seconds.

    agent_latency.py KUBECONFIG SERVER IMAGE NODE COUNT CONCURRENCY TIMEOUT
"""

import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import kube_tls  # noqa: E402  (tests/kube_tls.py)


kubeconfig, server, image, node = sys.argv[1:5]
count, concurrency, timeout = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])

ctx = kube_tls.ssl_context(kubeconfig, "agent-latency.")
u = urllib.parse.urlparse(server)


def conn(t=20):
    return http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=t)


created, running = {}, {}
lock = threading.Lock()
prefix = "lat-%d-" % os.getpid()


def watcher(stop):
    c = conn(timeout + 30)
    c.request("GET", "/api/v1/namespaces/default/pods?watch=1&labelSelector=bench%3Dagent-latency")
    r = c.getresponse()
    buf = b""
    while not stop.is_set():
        chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.strip():
                continue
            ev = json.loads(line)
            pod = ev.get("object", {})
            name = pod.get("metadata", {}).get("name", "")
            for cs in pod.get("status", {}).get("containerStatuses", []) or []:
                if "running" in (cs.get("state") or {}):
                    with lock:
                        running.setdefault(name, time.monotonic())


def create(i):
    name = "%s%d" % (prefix, i)
    body = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "agent-latency"}},
        "spec": {"nodeName": node, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": image, "command": ["busybox", "sleep", "3600"]}]},
    }
    c = conn()
    c.request("POST", "/api/v1/namespaces/default/pods", body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    if r.status != 201:
        raise SystemExit("create %s: HTTP %d" % (name, r.status))
    with lock:
        created[name] = time.monotonic()


stop = threading.Event()
threading.Thread(target=watcher, args=(stop,), daemon=True).start()
time.sleep(0.5)
deadline = time.monotonic() + timeout
for start in range(0, count, concurrency):
    batch = [threading.Thread(target=create, args=(i,)) for i in range(start, min(count, start + concurrency))]
    for t in batch:
        t.start()
    for t in batch:
        t.join()
    # Wait for this batch to run before the next: the figure is start latency, not queueing.
    while time.monotonic() < deadline:
        with lock:
            if all(n in running for n in created):
                break
        time.sleep(0.005)
stop.set()
with lock:
    lat = sorted((running[n] - created[n]) * 1000 for n in created if n in running)
missing = count - len(lat)


def pct(p):
    return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] if lat else float("nan")


print("pods %d running %d  bound->running ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f"
      % (count, len(lat), pct(50), pct(90), pct(99), lat[-1] if lat else float("nan")))
print(json.dumps({"pods": count, "running": len(lat), "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": lat[-1] if lat else None}))
c = conn(60)
c.request("DELETE", "/api/v1/namespaces/default/pods?labelSelector=bench%3Dagent-latency")
c.getresponse().read()
sys.exit(1 if missing else 0)
