"""Official Python client (`kubernetes` from PyPI) against a 3-master skiff cluster.

Run by tests/python-client.sh, which starts the masters and sets:
  KUBECONFIG        admin kubeconfig for one master (the raft leader)
  KUBECONFIG2       admin kubeconfig for another master
  SKIFF_KILL_PID    pid of the first master: this test kill -9s it and carries on through
                    the second

Every check asserts something concrete. Prints one PASS line per check and ends with
`python-client: N passed, 0 failed`; on the first failure prints FAIL with the details,
`python-client: N passed, 1 failed` and exits 1.
"""

import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from urllib.parse import urlparse

import kubernetes
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

SUITE = "python-client"
NS = "py-client"
TIMEOUT = 20  # seconds, for every non-watch request
PASSED = 0


class CheckFailed(Exception):
    pass


def passed(name):
    global PASSED
    PASSED += 1
    print(f"PASS: {name}", flush=True)


def check(name, cond, detail=""):
    if cond:
        passed(name)
    else:
        raise CheckFailed(f"{name}\n  {detail}" if detail else name)


def check_eq(name, expected, actual):
    check(name, expected == actual, f"expected: {expected!r}\n  actual:   {actual!r}")


def expect_api_error(name, status, fn, *args, **kwargs):
    """fn(*args) must raise ApiException with `status`; returns the exception."""
    try:
        got = fn(*args, **kwargs)
    except ApiException as e:
        check(name, e.status == status, f"expected HTTP {status}, got {e.status}: {e.body}")
        return e
    raise CheckFailed(f"{name}\n  expected HTTP {status}, the call succeeded: {got!r}")


def rv_int(obj):
    rv = obj.metadata.resource_version if hasattr(obj, "metadata") else obj["metadata"]["resourceVersion"]
    return int(rv)


def cm(name, data, labels=None):
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels), data=data
    )


def retry_unavailable(what, fn, deadline_s=30):
    """Calls fn until it stops failing with a server-side or connection error (a master was
    killed: the survivors may be electing a leader). 4xx answers are returned as errors."""
    deadline = time.monotonic() + deadline_s
    attempts = 0
    while True:
        attempts += 1
        try:
            r = fn()
            if attempts > 1:
                print(f"  ({what}: succeeded on attempt {attempts})", flush=True)
            return r
        except ApiException as e:
            if e.status is not None and e.status < 500 or time.monotonic() > deadline:
                raise
            last = f"HTTP {e.status}: {e.body}"
        except Exception as e:  # urllib3 connection errors and timeouts
            if time.monotonic() > deadline:
                raise
            last = repr(e)
        print(f"  ({what}: attempt {attempts} failed, retrying: {last[:200]})", flush=True)
        time.sleep(0.5)


def main():
    kill_pid = int(os.environ["SKIFF_KILL_PID"])
    kubeconfig2 = os.environ["KUBECONFIG2"]
    config.load_kube_config()  # $KUBECONFIG: the first master
    host1 = client.Configuration.get_default_copy().host
    A = urlparse(host1).hostname  # the master killed mid-test
    v1 = client.CoreV1Api()
    apps = client.AppsV1Api()
    print(f"  (kubernetes client {kubernetes.__version__}, server {host1})", flush=True)

    # ------------------------------------------------------- namespaces ----
    nss = v1.list_namespace(_request_timeout=TIMEOUT)
    names = {n.metadata.name for n in nss.items}
    for want in ("default", "kube-system", "kube-public", "kube-node-lease"):
        check(f"list_namespace: {want} present", want in names, f"namespaces: {sorted(names)}")
    check("namespace list has a numeric resourceVersion", nss.metadata.resource_version.isdigit(),
          repr(nss.metadata.resource_version))

    created = v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)),
                                  _request_timeout=TIMEOUT)
    check_eq("create_namespace: name", NS, created.metadata.name)
    check("create_namespace: uid and creationTimestamp set",
          len(created.metadata.uid or "") == 36 and created.metadata.creation_timestamp is not None,
          repr(created.metadata))
    got = v1.read_namespace(NS, _request_timeout=TIMEOUT)
    check_eq("read_namespace: phase Active", "Active", got.status.phase)
    expect_api_error("create_namespace again: 409 AlreadyExists", 409, v1.create_namespace,
                     client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)), _request_timeout=TIMEOUT)

    # ------------------------------------------------------- configmaps ----
    c = v1.create_namespaced_config_map(
        NS, cm("settings", {"color": "blue", "size": "L"}, {"app": "shop", "tier": "front"}),
        _request_timeout=TIMEOUT)
    check("create_namespaced_config_map: uid, namespace, resourceVersion",
          len(c.metadata.uid or "") == 36 and c.metadata.namespace == NS and rv_int(c) > 0, repr(c.metadata))
    r = v1.read_namespaced_config_map("settings", NS, _request_timeout=TIMEOUT)
    check_eq("read back: data", {"color": "blue", "size": "L"}, r.data)
    check_eq("read back: labels", {"app": "shop", "tier": "front"}, r.metadata.labels)
    check_eq("read back: same uid and resourceVersion", (c.metadata.uid, c.metadata.resource_version),
             (r.metadata.uid, r.metadata.resource_version))
    v1.create_namespaced_config_map(NS, cm("other", {"color": "red"}, {"app": "shop", "tier": "back"}),
                                    _request_timeout=TIMEOUT)
    v1.create_namespaced_config_map(NS, cm("unlabeled", {"x": "1"}), _request_timeout=TIMEOUT)

    def names_for(selector):
        lst = v1.list_namespaced_config_map(NS, label_selector=selector, _request_timeout=TIMEOUT)
        return sorted(i.metadata.name for i in lst.items)

    check_eq("label_selector tier=front", ["settings"], names_for("tier=front"))
    check_eq("label_selector app=shop", ["other", "settings"], names_for("app=shop"))
    check_eq("label_selector tier in (back,middle)", ["other"], names_for("tier in (back,middle)"))
    # Every namespace also holds kube-root-ca.crt (no labels), as in Kubernetes.
    check_eq("label_selector !tier", ["kube-root-ca.crt", "unlabeled"], names_for("!tier"))
    check_eq("label_selector app=shop,tier!=front", ["other"], names_for("app=shop,tier!=front"))
    check_eq("label_selector with no match", [], names_for("app=nothing"))

    # patch with a dict body: the client sends it as a strategic merge patch
    stale = v1.read_namespaced_config_map("settings", NS, _request_timeout=TIMEOUT)
    p = v1.patch_namespaced_config_map(
        "settings", NS, {"metadata": {"labels": {"patched": "yes"}}, "data": {"color": "green"}},
        _request_timeout=TIMEOUT)
    check_eq("patch: returned data merged", {"color": "green", "size": "L"}, p.data)
    check("patch: resourceVersion increased", rv_int(p) > rv_int(stale), f"{rv_int(stale)} -> {rv_int(p)}")
    r = v1.read_namespaced_config_map("settings", NS, _request_timeout=TIMEOUT)
    check_eq("patch: stored data", {"color": "green", "size": "L"}, r.data)
    check_eq("patch: stored labels", {"app": "shop", "tier": "front", "patched": "yes"}, r.metadata.labels)
    p = v1.patch_namespaced_config_map("settings", NS, {"data": {"size": None}}, _request_timeout=TIMEOUT)
    check_eq("patch: a null value removes the key", {"color": "green"}, p.data)

    # replace with the stale resourceVersion: 409 Conflict, nothing changes
    stale.data = {"color": "purple"}
    e = expect_api_error("replace with a stale resource_version: 409", 409,
                         v1.replace_namespaced_config_map, "settings", NS, stale, _request_timeout=TIMEOUT)
    try:
        status = json.loads(e.body or "")
    except ValueError:
        status = {}
    check("409 body is a Status with reason Conflict",
          status.get("kind") == "Status" and status.get("reason") == "Conflict", e.body)
    r = v1.read_namespaced_config_map("settings", NS, _request_timeout=TIMEOUT)
    check_eq("the stale replace changed nothing", {"color": "green"}, r.data)
    r.data = {"color": "purple"}
    rep = v1.replace_namespaced_config_map("settings", NS, r, _request_timeout=TIMEOUT)
    check_eq("replace with the current resource_version succeeds", {"color": "purple"}, rep.data)
    check("replace: resourceVersion increased", rv_int(rep) > rv_int(r))

    # ------------------------------------------------------- deployment ----
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web", labels={"app": "web"}),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[
                    client.V1Container(name="web", image="busybox:1.36", command=["sleep", "3600"]),
                    client.V1Container(name="sidecar", image="busybox:1.36",
                                       env=[client.V1EnvVar(name="MODE", value="side")]),
                ]),
            ),
        ),
    )
    d = apps.create_namespaced_deployment(NS, dep, _request_timeout=TIMEOUT)
    check_eq("create_namespaced_deployment: replicas", 1, d.spec.replicas)
    gen0 = d.metadata.generation
    s = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}}, _request_timeout=TIMEOUT)
    check_eq("patch_namespaced_deployment_scale: returned Scale", ("Scale", 3), (s.kind, s.spec.replicas))
    s = apps.read_namespaced_deployment_scale("web", NS, _request_timeout=TIMEOUT)
    check_eq("read_namespaced_deployment_scale: replicas and selector", (3, "app=web"),
             (s.spec.replicas, s.status.selector))
    d = apps.read_namespaced_deployment("web", NS, _request_timeout=TIMEOUT)
    check_eq("the deployment's spec.replicas follows the scale", 3, d.spec.replicas)
    check_eq("scaling bumped the generation", (gen0 or 0) + 1, d.metadata.generation)
    d = apps.patch_namespaced_deployment(
        "web", NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:1.37"}]}}}},
        _request_timeout=TIMEOUT)
    got = [(ct.name, ct.image, [(e.name, e.value) for e in ct.env or []]) for ct in d.spec.template.spec.containers]
    check_eq("dict patch of a deployment merges containers by name (strategic merge)",
             [("web", "busybox:1.36", []), ("sidecar", "busybox:1.37", [("MODE", "side")])], got)

    # ------------------------------------------------------------ watch ----
    lst = v1.list_namespaced_config_map(NS, _request_timeout=TIMEOUT)
    list_rv = lst.metadata.resource_version

    def writer():
        time.sleep(0.5)
        v1.create_namespaced_config_map(NS, cm("watched", {"step": "1"}), _request_timeout=TIMEOUT)
        v1.patch_namespaced_config_map("watched", NS, {"data": {"step": "2"}}, _request_timeout=TIMEOUT)
        v1.delete_namespaced_config_map("watched", NS, _request_timeout=TIMEOUT)

    writer_err = []

    def run_writer():
        try:
            writer()
        except Exception as e:  # reported by the main thread
            writer_err.append(e)

    events = []
    others = []
    t = threading.Thread(target=run_writer)
    w = watch.Watch()
    started = time.monotonic()
    t.start()
    for ev in w.stream(v1.list_namespaced_config_map, NS, resource_version=list_rv, timeout_seconds=10):
        o = ev["raw_object"]
        name = o.get("metadata", {}).get("name")
        if name == "watched":
            events.append((ev["type"], (o.get("data") or {}).get("step"), int(o["metadata"]["resourceVersion"])))
            if ev["type"] == "DELETED":
                w.stop()
        else:
            others.append((ev["type"], name))
    t.join(TIMEOUT)
    check("writer thread: create, patch, delete succeeded", not writer_err, repr(writer_err))
    check_eq("watch from the list resourceVersion: exact event sequence",
             [("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "2")], [(a, b) for a, b, _ in events])
    rvs = [r for _, _, r in events]
    check("watch events' resourceVersions increase", rvs == sorted(rvs) and len(set(rvs)) == 3
          and rvs[0] > int(list_rv), f"list rv {list_rv}, events {events}")
    check_eq("watch saw no event for any other configmap", [], others)
    check("the watch ended at DELETED, not at its timeout", time.monotonic() - started < 9,
          f"took {time.monotonic() - started:.1f}s")

    # a watch from an old resource version replays what happened after it
    w = watch.Watch()
    replay = []
    for ev in w.stream(v1.list_namespaced_config_map, NS, resource_version=list_rv, timeout_seconds=3):
        replay.append((ev["type"], ev["raw_object"]["metadata"]["name"]))
        if len(replay) == 3:
            w.stop()
    check_eq("a second watch from the same resourceVersion replays the same events",
             [("ADDED", "watched"), ("MODIFIED", "watched"), ("DELETED", "watched")], replay)

    # -------------------------------- kill -9 the master, resume elsewhere ----
    base = v1.list_namespaced_config_map(NS, _request_timeout=TIMEOUT).metadata.resource_version
    w1 = watch.Watch()
    stream = w1.stream(v1.list_namespaced_config_map, NS, resource_version=base, timeout_seconds=60,
                       _request_timeout=90)
    before = v1.create_namespaced_config_map(NS, cm("k-before", {"v": "1"}), _request_timeout=TIMEOUT)
    ev = next(stream)
    check_eq(f"watch on {A} sees k-before ADDED", ("ADDED", "k-before", before.metadata.resource_version),
             (ev["type"], ev["raw_object"]["metadata"]["name"], ev["raw_object"]["metadata"]["resourceVersion"]))
    check_eq("the Watch tracks the last seen resourceVersion", before.metadata.resource_version,
             w1.resource_version)
    last_seen = w1.resource_version

    os.kill(kill_pid, signal.SIGKILL)
    u = urlparse(host1)
    down = False
    for _ in range(100):
        try:
            socket.create_connection((u.hostname, u.port), timeout=0.5).close()
            time.sleep(0.1)
        except OSError:
            down = True
            break
    check(f"{A} (pid {kill_pid}) is down after kill -9", down, f"{host1} still accepts connections")
    after_kill = []
    err = None
    t0 = time.monotonic()
    try:
        for ev in stream:
            after_kill.append((ev["type"], ev["raw_object"].get("metadata", {}).get("name")))
    except Exception as e:
        err = e
    check(f"the watch on {A} ends when {A} dies, with no further event",
          after_kill == [] and time.monotonic() - t0 < 10, f"events {after_kill}, error {err!r}")

    api2 = config.new_client_from_config(config_file=kubeconfig2)
    host2 = api2.configuration.host
    B = urlparse(host2).hostname
    check("the second kubeconfig points at another master", host2 != host1, f"{host1} vs {host2}")
    v1b = client.CoreV1Api(api2)

    # Written while no watch is open: a create (retried while the survivors may elect a
    # leader), an update and a delete.
    def create_during():
        try:
            return v1b.create_namespaced_config_map(NS, cm("k-during", {"v": "1"}), _request_timeout=TIMEOUT)
        except ApiException as e:
            if e.status == 409:  # an earlier attempt went through
                return v1b.read_namespaced_config_map("k-during", NS, _request_timeout=TIMEOUT)
            raise
    during = retry_unavailable(f"create k-during through {B}", create_during)
    check_eq(f"create through {B} after {A} died", {"v": "1"}, during.data)
    mod = v1b.patch_namespaced_config_map("k-before", NS, {"data": {"v": "2"}}, _request_timeout=TIMEOUT)
    check_eq(f"patch through {B}", {"v": "2"}, mod.data)
    v1b.delete_namespaced_config_map("other", NS, _request_timeout=TIMEOUT)

    lst2 = v1b.list_namespaced_config_map(NS, _request_timeout=TIMEOUT)
    check_eq(f"list through {B} shows everything written through {A} and {B}",
             ["k-before", "k-during", "kube-root-ca.crt", "settings", "unlabeled"], sorted(i.metadata.name for i in lst2.items))
    d = client.AppsV1Api(api2).read_namespaced_deployment("web", NS, _request_timeout=TIMEOUT)
    check_eq(f"the deployment scaled through {A} reads back through {B}", 3, d.spec.replicas)

    w2 = watch.Watch()
    resumed = []
    live_rv = None
    for ev in w2.stream(v1b.list_namespaced_config_map, NS, resource_version=last_seen, timeout_seconds=10):
        o = ev["raw_object"]
        resumed.append((ev["type"], o["metadata"]["name"], (o.get("data") or {}).get("v")))
        if len(resumed) == 3:
            # the replay is done: this write must arrive live
            live_rv = v1b.create_namespaced_config_map(NS, cm("k-after", {"v": "1"}),
                                                       _request_timeout=TIMEOUT).metadata.resource_version
        if len(resumed) == 4:
            w2.stop()
    check_eq(f"watch resumed through {B} from the last seen resourceVersion: nothing missed",
             [("ADDED", "k-during", "1"), ("MODIFIED", "k-before", "2"), ("DELETED", "other", None),
              ("ADDED", "k-after", "1")], resumed)
    check_eq("the resumed watch tracks the live event's resourceVersion", live_rv, w2.resource_version)

    # ------------------------------------------------------------ delete ----
    v1b.delete_namespace(NS, _request_timeout=TIMEOUT)
    gone = None
    for _ in range(60):
        try:
            v1b.read_namespace(NS, _request_timeout=TIMEOUT)
            time.sleep(0.5)
        except ApiException as e:
            gone = e.status
            if e.status == 404:
                break
    check_eq("delete_namespace: the namespace reads 404", 404, gone)
    left = v1b.list_namespaced_config_map(NS, _request_timeout=TIMEOUT)
    check_eq("no configmaps left in the deleted namespace", [], [i.metadata.name for i in left.items])
    left = client.AppsV1Api(api2).list_namespaced_deployment(NS, _request_timeout=TIMEOUT)
    check_eq("no deployments left in the deleted namespace", [], [i.metadata.name for i in left.items])
    names = {n.metadata.name for n in v1b.list_namespace(_request_timeout=TIMEOUT).items}
    check(f"list_namespace no longer has {NS}", NS not in names and "default" in names, repr(sorted(names)))


def on_sigterm(signum, frame):
    raise CheckFailed("terminated (SIGTERM): the test ran out of time")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        main()
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr, flush=True)
        print(f"{SUITE}: {PASSED} passed, 1 failed")
        sys.exit(1)
    except ApiException as e:
        print(f"FAIL: unexpected API error: HTTP {e.status} {e.reason}\n  body: {e.body}", file=sys.stderr)
        traceback.print_exc()
        print(f"{SUITE}: {PASSED} passed, 1 failed")
        sys.exit(1)
    except Exception:
        print("FAIL: unexpected error", file=sys.stderr)
        traceback.print_exc()
        print(f"{SUITE}: {PASSED} passed, 1 failed")
        sys.exit(1)
    print(f"{SUITE}: {PASSED} passed, 0 failed")
