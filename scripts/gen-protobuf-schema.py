#!/usr/bin/env python3
"""Generates control-plane/src/protobuf/schema.rs: the Kubernetes protobuf wire schema (field
numbers, JSON names, wire kinds) of the kinds skiff serves, with their whole reachable message
graph.

Facts come from Kubernetes' published sources at one release tag:
- the field numbers, names and types from each package's `generated.proto`;
- the JSON shape (`json:"name,omitempty"`, `,inline`, pointer or not) from the Go types whose
  `protobuf:"..."` struct tags carry the same field numbers.

Usage: scripts/gen-protobuf-schema.py <kubernetes/api git dir> <kubernetes/apimachinery git dir> [tag] \
    > control-plane/src/protobuf/schema.rs
"""

import re
import subprocess
import sys

API, MACHINERY = sys.argv[1], sys.argv[2]
TAG = sys.argv[3] if len(sys.argv) > 3 else "v0.32.9"

# proto package -> (repo, directory, short prefix used in names, apiVersion or None)
PACKAGES = {
    "k8s.io.api.core.v1": (API, "core/v1", "core/v1", "v1"),
    "k8s.io.api.apps.v1": (API, "apps/v1", "apps/v1", "apps/v1"),
    "k8s.io.api.autoscaling.v1": (API, "autoscaling/v1", "autoscaling/v1", "autoscaling/v1"),
    "k8s.io.api.coordination.v1": (API, "coordination/v1", "coordination/v1", "coordination.k8s.io/v1"),
    "k8s.io.api.discovery.v1": (API, "discovery/v1", "discovery/v1", "discovery.k8s.io/v1"),
    "k8s.io.api.events.v1": (API, "events/v1", "events/v1", "events.k8s.io/v1"),
    "k8s.io.api.rbac.v1": (API, "rbac/v1", "rbac/v1", "rbac.authorization.k8s.io/v1"),
    "k8s.io.api.policy.v1": (API, "policy/v1", "policy/v1", "policy/v1"),
    "k8s.io.api.authorization.v1": (API, "authorization/v1", "authorization/v1", "authorization.k8s.io/v1"),
    "k8s.io.api.certificates.v1": (API, "certificates/v1", "certificates/v1", "certificates.k8s.io/v1"),
    "k8s.io.api.scheduling.v1": (API, "scheduling/v1", "scheduling/v1", "scheduling.k8s.io/v1"),
    "k8s.io.api.authentication.v1": (API, "authentication/v1", "authentication/v1", "authentication.k8s.io/v1"),
    "k8s.io.apimachinery.pkg.apis.meta.v1": (MACHINERY, "pkg/apis/meta/v1", "meta/v1", None),
}

# Types with their own JSON form, decoded by hand in mod.rs.
SPECIAL = {
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "FieldsV1",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawExtension",
}
SCALAR = {"string": "Str", "bytes": "Bytes", "bool": "Bool", "int32": "I32", "int64": "I64"}

# The kinds decoded at the top level (and their lists); everything they reach comes along.
ROOTS = {
    "k8s.io.api.core.v1": [
        "Namespace", "Pod", "Node", "Service", "Endpoints", "ConfigMap", "Secret", "ServiceAccount",
        "Event", "Binding", "PodTemplate", "PodTemplateSpec", "LimitRange", "ResourceQuota",
    ],
    "k8s.io.api.apps.v1": ["Deployment", "ReplicaSet", "DaemonSet", "StatefulSet"],
    "k8s.io.api.autoscaling.v1": ["Scale"],
    "k8s.io.api.coordination.v1": ["Lease"],
    "k8s.io.api.discovery.v1": ["EndpointSlice"],
    "k8s.io.api.events.v1": ["Event"],
    "k8s.io.api.rbac.v1": ["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"],
    "k8s.io.api.policy.v1": ["Eviction"],
    "k8s.io.api.authorization.v1": ["SelfSubjectAccessReview", "SubjectAccessReview", "LocalSubjectAccessReview",
                                    "SelfSubjectRulesReview"],
    "k8s.io.api.authentication.v1": ["SelfSubjectReview", "TokenRequest"],
    "k8s.io.api.scheduling.v1": ["PriorityClass"],
    "k8s.io.api.certificates.v1": ["CertificateSigningRequest"],
    "k8s.io.apimachinery.pkg.apis.meta.v1": ["DeleteOptions", "Status", "ListOptions", "GetOptions",
                                             "CreateOptions", "UpdateOptions", "PatchOptions", "List"],
}


def git_show(repo, path):
    return subprocess.run(["git", "-C", repo, "show", f"{TAG}:{path}"], check=True, capture_output=True,
                          text=True).stdout


def git_ls(repo, path):
    out = subprocess.run(["git", "-C", repo, "ls-tree", "--name-only", TAG, path + "/"], check=True,
                         capture_output=True, text=True).stdout
    return [line for line in out.split("\n") if line]


FIELD_RE = re.compile(r"^\s*(optional|repeated|required)\s+(\S+)\s+(\w+)\s*=\s*(\d+)\s*;")
MAP_RE = re.compile(r"^\s*map<\s*(\S+)\s*,\s*(\S+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")


def parse_proto(text, package):
    """message name -> list of (label, type, name, number); label is optional/repeated/map."""
    messages, current, depth = {}, None, 0
    for line in text.split("\n"):
        stripped = line.split("//")[0].strip()
        if not stripped:
            continue
        m = re.match(r"^message\s+(\w+)\s*\{", stripped)
        if m and depth == 0:
            current = m.group(1)
            messages[current] = []
            depth = 1
            continue
        if current is None:
            continue
        if stripped.startswith("message ") or stripped.startswith("enum ") or stripped.startswith("oneof "):
            raise SystemExit(f"nested {stripped} in {package}.{current}: not supported")
        if stripped == "}":
            depth -= 1
            if depth == 0:
                current = None
            continue
        m = MAP_RE.match(stripped)
        if m:
            if m.group(1) != "string":
                raise SystemExit(f"map key {m.group(1)} in {package}.{current}")
            messages[current].append(("map", qualify(m.group(2), package), m.group(3), int(m.group(4))))
            continue
        m = FIELD_RE.match(stripped)
        if m:
            label = "repeated" if m.group(1) == "repeated" else "optional"
            messages[current].append((label, qualify(m.group(2), package), m.group(3), int(m.group(4))))
            continue
        if stripped.startswith("reserved") or stripped.startswith("option"):
            continue
        raise SystemExit(f"unparsed line in {package}.{current}: {stripped}")
    return messages


def qualify(typ, package):
    if typ in SCALAR:
        return typ
    if typ.startswith("."):
        return typ[1:]
    if "." in typ:
        return typ
    return f"{package}.{typ}"


TAG_RE = re.compile(r"`(.*)`")


def parse_go(repo, directory):
    """struct name -> {field number: (go type, json name, omitempty, inline)}"""
    structs = {}
    for name in git_ls(repo, directory):
        base = name.rsplit("/", 1)[-1]
        if not base.endswith(".go") or base.endswith("_test.go") or base.startswith("zz_generated") \
                or base.startswith("generated"):
            continue
        text = git_show(repo, name)
        current = None
        for line in text.split("\n"):
            m = re.match(r"^type\s+(\w+)\s+struct\s*\{", line)
            if m:
                current = m.group(1)
                structs.setdefault(current, {})
                continue
            if current is None:
                continue
            if line.startswith("}"):
                current = None
                continue
            body = line.strip()
            if body.startswith("//") or "protobuf:\"" not in body:
                continue
            tm = TAG_RE.search(body)
            if not tm:
                continue
            decl = body[: tm.start()].split()
            go_type = decl[-1]
            tags = dict(re.findall(r'(\w+):"([^"]*)"', tm.group(1)))
            proto = tags["protobuf"].split(",")
            if len(proto) < 2:
                continue
            number = int(proto[1])
            json_parts = tags.get("json", "").split(",")
            structs[current][number] = (go_type, json_parts[0], "omitempty" in json_parts[1:],
                                        "inline" in json_parts[1:])
    return structs


def static_name(full):
    package, name = full.rsplit(".", 1)
    prefix = PACKAGES[package][2].replace("/", "_").upper()
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).upper()
    return f"{prefix}_{snake}"


def main():
    protos, gos = {}, {}
    for package, (repo, directory, _, _) in PACKAGES.items():
        for name, fields in parse_proto(git_show(repo, directory + "/generated.proto"), package).items():
            protos[f"{package}.{name}"] = fields
        gos[package] = parse_go(repo, directory)

    # Closure of the roots (and their lists).
    order, seen = [], set()
    stack = []
    for package, names in ROOTS.items():
        for name in names:
            for candidate in (name, name + "List"):
                full = f"{package}.{candidate}"
                if full in protos:
                    stack.append(full)
    while stack:
        full = stack.pop()
        if full in seen:
            continue
        seen.add(full)
        order.append(full)
        for _, typ, _, _ in protos[full]:
            if typ in SCALAR or typ in SPECIAL:
                continue
            if typ not in protos:
                raise SystemExit(f"{full}: unknown type {typ}")
            stack.append(typ)

    def kind_of(typ):
        if typ in SCALAR:
            return SCALAR[typ]
        if typ in SPECIAL:
            return SPECIAL[typ]
        return f"Msg(&{static_name(typ)})"

    out = []
    out.append("// @generated by scripts/gen-protobuf-schema.py from kubernetes/api and kubernetes/apimachinery")
    out.append(f"// {TAG} (generated.proto field numbers; JSON names and omitempty from the Go struct tags).")
    out.append("// Do not edit by hand.")
    out.append("")
    out.append("use super::Kind::*;")
    out.append("use super::{inline, map, opt, rep, zero, Message};")
    out.append("")
    kinds = []
    for full in sorted(order, key=static_name):
        package, name = full.rsplit(".", 1)
        go_fields = gos[package].get(name, {})
        prefix = PACKAGES[package][2]
        out.append(f"pub(super) static {static_name(full)}: Message = Message {{")
        out.append(f'    name: "{prefix}.{name}",')
        out.append("    fields: &[")
        for label, typ, pname, number in sorted(protos[full], key=lambda f: f[3]):
            go = go_fields.get(number)
            json_name, omitempty, is_inline, pointer = pname, False, False, False
            if go is not None:
                go_type, gjson, omitempty, is_inline = go
                pointer = go_type.startswith("*")
                if gjson:
                    json_name = gjson
                if gjson and gjson != pname:
                    print(f"note: {full} field {number}: proto {pname}, json {gjson}", file=sys.stderr)
            else:
                print(f"note: {full} field {number} ({pname}) has no Go struct tag", file=sys.stderr)
            kind = kind_of(typ)
            if label == "map":
                out.append(f'        map({number}, "{json_name}", {kind}),')
            elif label == "repeated":
                out.append(f'        rep({number}, "{json_name}", {kind}),')
            elif is_inline:
                out.append(f"        inline({number}, {kind}),")
            elif typ in SCALAR and omitempty and not pointer:
                out.append(f'        zero({number}, "{json_name}", {kind}),')
            else:
                out.append(f'        opt({number}, "{json_name}", {kind}),')
        out.append("    ],")
        out.append("};")
        out.append("")
        api_version = PACKAGES[package][3]
        if api_version is not None and name in ROOTS.get(package, []) + [r + "List" for r in ROOTS.get(package, [])]:
            kinds.append((api_version, name, static_name(full)))
    out.append("/// The kinds decoded at the top level: (apiVersion, kind, message).")
    out.append("pub(super) static KINDS: &[(&str, &str, &Message)] = &[")
    for api_version, name, static in kinds:
        out.append(f'    ("{api_version}", "{name}", &{static}),')
    out.append("];")
    out.append("")
    out.append("/// meta/v1 kinds, registered in every group version.")
    out.append("pub(super) static META_KINDS: &[(&str, &Message)] = &[")
    for name in ROOTS["k8s.io.apimachinery.pkg.apis.meta.v1"]:
        full = f"k8s.io.apimachinery.pkg.apis.meta.v1.{name}"
        if full in protos:
            out.append(f'    ("{name}", &{static_name(full)}),')
    out.append("];")
    print("\n".join(out))


main()
