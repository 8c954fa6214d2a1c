"""An SSL context from a kubeconfig's first cluster CA and first user's client certificate,
for the Python test tools (tests/fake_kubelet.py, bench/agent_latency.py)."""

import base64
import os
import ssl
import tempfile

import yaml


def ssl_context(kubeconfig, prefix):
    cfg = yaml.safe_load(open(kubeconfig))
    user = cfg["users"][0]["user"]
    tmp = tempfile.mkdtemp(prefix=prefix)
    files = []
    for k in ("client-certificate-data", "client-key-data"):
        path = os.path.join(tmp, k + ".pem")
        with open(path, "wb") as f:
            f.write(base64.b64decode(user[k]))
        files.append(path)
    ca = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    ctx = ssl.create_default_context(cadata=ca)
    ctx.load_cert_chain(files[0], files[1])
    return ctx
