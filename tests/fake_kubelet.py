#!/usr/bin/env python3
"""A test stand-in for the node agent (the real one is issue 9): every pod bound to a node is
reported Running and Ready shortly after it is bound, and a bound pod marked for graceful deletion
is removed (gracePeriodSeconds=0) as a kubelet does once its containers stopped. Nothing runs.

    fake_kubelet.py KUBECONFIG SERVERS SECONDS [STOP_FILE]

SERVERS: comma-separated https://host:port, tried in order (a master may be killed mid-test).
Stops after SECONDS or when STOP_FILE exists. Only talks to the given loopback API servers."""

import http.client
import json
import os
import sys
import time
import urllib.parse
from datetime import datetime, timezone

import kube_tls


kubeconfig, servers, seconds = sys.argv[1], sys.argv[2].split(","), float(sys.argv[3])
stop_file = sys.argv[4] if len(sys.argv) > 4 else None

ctx = kube_tls.ssl_context(kubeconfig, "fake-kubelet.")


def call(method, path, body=None):
    """The first server that answers; (status, parsed body) or (None, None)."""
    for s in servers:
        u = urllib.parse.urlparse(s)
        try:
            c = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=5)
            headers = {"Accept": "application/json"}
            data = None
            if body is not None:
                headers["Content-Type"] = "application/json"
                data = json.dumps(body)
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            raw = r.read()
            c.close()
            return r.status, (json.loads(raw) if raw else None)
        except (OSError, http.client.HTTPException, ValueError):
            continue
    return None, None


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready(pod):
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in pod.get("status", {}).get("conditions", []))


deadline = time.time() + seconds
n = 0
while time.time() < deadline and not (stop_file and os.path.exists(stop_file)):
    status, pods = call("GET", "/api/v1/pods")
    for pod in (pods or {}).get("items", []) if status == 200 else []:
        meta, spec = pod["metadata"], pod.get("spec", {})
        if not spec.get("nodeName"):
            continue
        base = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        if meta.get("deletionTimestamp"):
            call("DELETE", base, {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
            continue
        if ready(pod):
            continue
        n += 1
        t = now()
        pod["status"] = {
            "phase": "Running",
            "podIP": f"10.244.{(n >> 8) % 250}.{n % 250 + 1}",
            "hostIP": "10.0.0.1",
            "startTime": t,
            "conditions": [
                {"type": c, "status": "True", "lastProbeTime": None, "lastTransitionTime": t}
                for c in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [
                {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": True, "started": True,
                 "restartCount": 0, "state": {"running": {"startedAt": t}}}
                for c in spec.get("containers", [])
            ],
        }
        call("PUT", base + "/status", pod)
    time.sleep(0.2)
