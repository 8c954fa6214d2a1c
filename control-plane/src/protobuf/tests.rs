use super::*;
use serde_json::json;

// ---- a tiny encoder, for building bodies by hand ----

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn key(number: u32, wire: u8) -> Vec<u8> {
    varint((u64::from(number) << 3) | u64::from(wire))
}

/// A varint field.
fn v(number: u32, value: i64) -> Vec<u8> {
    [key(number, 0), varint(value as u64)].concat()
}

/// A length-delimited field with raw bytes.
fn b(number: u32, bytes: &[u8]) -> Vec<u8> {
    [key(number, 2), varint(bytes.len() as u64), bytes.to_vec()].concat()
}

/// A string field.
fn s(number: u32, text: &str) -> Vec<u8> {
    b(number, text.as_bytes())
}

/// A message field made of the given fields.
fn m(number: u32, fields: &[Vec<u8>]) -> Vec<u8> {
    b(number, &fields.concat())
}

/// One entry of a map<string, ...> field; `value` is the encoded value field (number 2).
fn entry(number: u32, k: &str, value: Vec<u8>) -> Vec<u8> {
    m(number, &[s(1, k), value])
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    [MAGIC.to_vec(), m(1, &[s(1, api_version), s(2, kind)]), b(2, raw)].concat()
}

fn quantity(number: u32, q: &str) -> Vec<u8> {
    m(number, &[s(1, q)])
}

fn decode_ok(bytes: &[u8]) -> Value {
    match decode(bytes) {
        Ok((_, _, value)) => value,
        Err(e) => panic!("decode failed: {e}"),
    }
}

fn malformed_at(err: ProtobufError) -> (String, u32, String) {
    match err {
        ProtobufError::Malformed { message, field, reason } => (message, field, reason),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

// ---- bodies captured from kubectl v1.32 ----

/// Each fixture is a body `kubectl create ...` POSTed, next to what the same command printed
/// with `--dry-run=client -o json` (see tests/fixtures/protobuf/README.md).
macro_rules! fixture {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../tests/fixtures/protobuf/", $name, ".pb")) as &[u8],
            include_str!(concat!("../../tests/fixtures/protobuf/", $name, ".json")),
        )
    };
}

const FIXTURES: &[(&str, &[u8], &str)] = &[
    fixture!("configmap"),
    fixture!("configmap-binary"),
    fixture!("secret"),
    fixture!("secret-docker"),
    fixture!("namespace"),
    fixture!("serviceaccount"),
    fixture!("deployment"),
    fixture!("deployment-multi"),
    fixture!("deployment-replicas"),
    fixture!("service"),
    fixture!("service-nodeport"),
    fixture!("service-externalname"),
    fixture!("role"),
    fixture!("rolebinding"),
    fixture!("rolebinding-sa"),
    fixture!("clusterrole"),
    fixture!("clusterrole-rules"),
    fixture!("clusterrole-aggregate"),
    fixture!("clusterrolebinding"),
];

fn fixture(name: &str) -> Value {
    let (_, bytes, _) = FIXTURES.iter().find(|(n, _, _)| *n == name).expect("fixture");
    decode_ok(bytes)
}

#[test]
fn kubectl_bodies_decode_to_kubectls_own_json() {
    for (name, bytes, expected) in FIXTURES {
        let (api_version, kind, got) = decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut expected: Value = serde_json::from_str(expected).expect("fixture JSON");
        assert_eq!(expected["apiVersion"], json!(api_version), "{name}");
        assert_eq!(expected["kind"], json!(kind), "{name}");
        // Go prints a nil slice without omitempty as null; empty repeated fields are omitted here.
        if *name == "clusterrole-aggregate" {
            assert_eq!(expected["rules"], Value::Null);
            expected.as_object_mut().expect("object").remove("rules");
        }
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn kubectl_configmap_and_secret() {
    let cm = fixture("configmap");
    assert_eq!(cm["metadata"]["name"], "x");
    assert_eq!(cm["data"], json!({"a": "1", "b": "two"}));
    assert_eq!(cm["metadata"]["creationTimestamp"], Value::Null);
    assert!(cm["metadata"].get("namespace").is_none(), "empty strings are omitted");

    let bin = fixture("configmap-binary");
    assert_eq!(bin["binaryData"], json!({"bin.dat": "AAH/"}));
    assert_eq!(bin["data"], json!({"t": "x"}));

    let secret = fixture("secret");
    assert_eq!(secret["data"], json!({"a": "Yg=="}));
    let docker = fixture("secret-docker");
    assert_eq!(docker["type"], "kubernetes.io/dockerconfigjson");
}

#[test]
fn kubectl_deployment_and_service() {
    let d = fixture("deployment");
    assert_eq!(
        (d["apiVersion"].as_str(), d["kind"].as_str()),
        (Some("apps/v1"), Some("Deployment"))
    );
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["selector"]["matchLabels"], json!({"app": "web"}));
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "busybox");
    assert_eq!(c["ports"], json!([{"containerPort": 80}]));
    assert_eq!(c["resources"], json!({}));
    assert_eq!(d["status"], json!({}));
    // A pointer set to zero is kept.
    assert_eq!(fixture("deployment-replicas")["spec"]["replicas"], 0);
    assert_eq!(
        fixture("deployment-multi")["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    let svc = fixture("service");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}])
    );
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(fixture("service-nodeport")["spec"]["ports"][0]["nodePort"], 30080);
    assert_eq!(fixture("service-externalname")["spec"]["externalName"], "example.com");
}

#[test]
fn kubectl_rbac() {
    let role = fixture("role");
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
    );
    let rb = fixture("rolebinding");
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"})
    );
    assert_eq!(
        rb["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "u"}])
    );
    let sa = fixture("rolebinding-sa");
    assert_eq!(
        sa["subjects"][1],
        json!({"kind": "ServiceAccount", "name": "sa", "namespace": "default"})
    );
    let rules = fixture("clusterrole-rules");
    assert_eq!(rules["rules"][0]["resourceNames"], json!(["a", "b"]));
    assert_eq!(rules["rules"][1]["nonResourceURLs"], json!(["/healthz"]));
}

#[test]
fn no_fixture_prefix_or_corruption_panics() {
    for (name, bytes, _) in FIXTURES {
        for len in 0..bytes.len() {
            let _ = decode(&bytes[..len]);
        }
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut corrupt = bytes.to_vec();
                corrupt[i] ^= flip;
                let _ = decode(&corrupt);
            }
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err(), "{name} truncated");
    }
}

// ---- bodies built by hand ----

fn object_meta(name: &str, extra: &[Vec<u8>]) -> Vec<u8> {
    m(1, &[&[s(1, name)], extra].concat())
}

#[test]
fn configmap_by_hand() {
    let raw = [
        object_meta(
            "cm",
            &[s(3, "ns"), entry(11, "app", s(2, "web")), entry(11, "tier", s(2, "fe"))],
        ),
        entry(2, "k", s(2, "v")),
        entry(2, "empty", vec![]),
        entry(3, "bin", b(2, &[0, 1, 2, 255])),
        v(4, 1),
    ]
    .concat();
    let (api_version, kind, cm) = decode(&envelope("v1", "ConfigMap", &raw)).expect("decode");
    assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "ConfigMap"));
    assert_eq!(
        cm,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "ns", "labels": {"app": "web", "tier": "fe"}},
            "data": {"k": "v", "empty": ""},
            "binaryData": {"bin": "AAEC/w=="},
            "immutable": true
        })
    );
}

#[test]
fn deployment_by_hand() {
    let container = [
        s(1, "app"),
        s(2, "nginx:1.27"),
        s(3, "sh"),
        s(3, "-c"),
        m(6, &[s(1, "http"), v(3, 8080), s(4, "TCP")]),
        m(7, &[s(1, "MODE"), s(2, "prod")]),
        m(7, &[s(1, "POD"), m(3, &[m(1, &[s(1, "v1"), s(2, "metadata.name")])])]),
        m(
            7,
            &[
                s(1, "CFG"),
                m(3, &[m(3, &[m(1, &[s(1, "cfg")]), s(2, "key"), v(3, 0)])]),
            ],
        ),
        m(19, &[s(1, "PRE_"), m(2, &[m(1, &[s(1, "cm")])])]),
        m(
            8,
            &[
                entry(1, "cpu", quantity(2, "500m")),
                entry(1, "memory", quantity(2, "128Mi")),
                entry(2, "cpu", quantity(2, "100m")),
            ],
        ),
        m(9, &[s(1, "data"), s(3, "/data"), v(2, 1)]),
        m(
            10,
            &[
                m(1, &[m(2, &[s(1, "/healthz"), m(2, &[v(1, 1), s(3, "http")])])]),
                v(2, 3),
                v(4, 0),
            ],
        ),
        m(11, &[m(1, &[m(3, &[m(1, &[v(2, 8080)])])])]),
        m(12, &[m(2, &[m(1, &[s(1, "sleep"), s(1, "5")])])]),
        m(15, &[v(4, 1000), v(7, 0), m(1, &[s(1, "ALL")])]),
        s(14, "IfNotPresent"),
    ]
    .concat();
    let pod_spec = [
        m(1, &[s(1, "data"), m(2, &[m(2, &[s(1, "Memory"), quantity(2, "1Gi")])])]),
        m(1, &[s(1, "cfg"), m(2, &[m(19, &[m(1, &[s(1, "cm")]), v(3, 420)])])]),
        b(2, &container),
        s(3, "Always"),
        v(11, 0),
        m(22, &[s(1, "node-role"), s(2, "Exists"), s(4, "NoSchedule")]),
    ]
    .concat();
    let raw = [
        object_meta("web", &[]),
        m(
            2,
            &[
                v(1, 3),
                m(2, &[entry(1, "app", s(2, "web"))]),
                m(3, &[m(1, &[entry(11, "app", s(2, "web"))]), m(2, &[pod_spec])]),
                m(
                    4,
                    &[
                        s(1, "RollingUpdate"),
                        m(2, &[m(1, &[v(1, 1), s(3, "25%")]), m(2, &[v(1, 0), v(2, 1)])]),
                    ],
                ),
                v(5, 0),
            ],
        ),
        m(3, &[]),
    ]
    .concat();
    let d = decode_ok(&envelope("apps/v1", "Deployment", &raw));
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 3);
    assert!(
        spec.get("minReadySeconds").is_none(),
        "zero non-pointer omitempty is omitted"
    );
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}})
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert!(pod.get("hostNetwork").is_none());
    assert_eq!(
        pod["volumes"],
        json!([
            {"name": "data", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
            {"name": "cfg", "configMap": {"name": "cm", "defaultMode": 420}}
        ])
    );
    assert_eq!(
        pod["tolerations"],
        json!([{"key": "node-role", "operator": "Exists", "effect": "NoSchedule"}])
    );
    let c = &pod["containers"][0];
    assert_eq!(c["command"], json!(["sh", "-c"]));
    assert_eq!(
        c["ports"],
        json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        c["env"],
        json!([
            {"name": "MODE", "value": "prod"},
            {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            {"name": "CFG", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "key", "optional": false}}}
        ])
    );
    assert_eq!(
        c["envFrom"],
        json!([{"prefix": "PRE_", "configMapRef": {"name": "cm"}}])
    );
    assert_eq!(
        c["resources"],
        json!({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}})
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data", "readOnly": true}])
    );
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 3})
    );
    assert_eq!(c["readinessProbe"], json!({"tcpSocket": {"port": 8080}}));
    assert_eq!(
        c["lifecycle"],
        json!({"preStop": {"exec": {"command": ["sleep", "5"]}}})
    );
    assert_eq!(
        c["securityContext"],
        json!({"runAsUser": 1000, "allowPrivilegeEscalation": false, "capabilities": {"add": ["ALL"]}})
    );
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(d["status"], json!({}));
}

#[test]
fn service_with_named_target_port() {
    let raw = [
        object_meta("svc", &[]),
        m(
            2,
            &[
                m(1, &[s(1, "web"), s(2, "TCP"), v(3, 80), m(4, &[v(1, 1), s(3, "http")])]),
                s(4, "ClusterIP"),
            ],
        ),
    ]
    .concat();
    let svc = decode_ok(&envelope("v1", "Service", &raw));
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "web", "protocol": "TCP", "port": 80, "targetPort": "http"}])
    );
}

#[test]
fn pod_with_affinity_and_status() {
    let term = m(1, &[m(1, &[s(1, "zone"), s(2, "In"), s(3, "a"), s(3, "b")])]);
    let affinity = m(
        18,
        &[
            m(1, &[m(1, &[term])]),
            m(
                3,
                &[m(
                    2,
                    &[
                        v(1, 100),
                        m(
                            2,
                            &[m(1, &[entry(1, "app", s(2, "web"))]), s(3, "kubernetes.io/hostname")],
                        ),
                    ],
                )],
            ),
        ],
    );
    let spec = [
        m(2, &[s(1, "c"), s(2, "busybox")]),
        affinity,
        m(
            33,
            &[
                v(1, 1),
                s(2, "zone"),
                s(3, "DoNotSchedule"),
                m(4, &[entry(1, "app", s(2, "web"))]),
            ],
        ),
        m(14, &[v(2, 1000), v(4, 5), v(4, 6), b(4, &[7, 8])]),
    ]
    .concat();
    let status = [
        s(1, "Running"),
        m(
            2,
            &[s(1, "Ready"), s(2, "True"), m(4, &[v(1, 1_700_000_000)]), m(3, &[])],
        ),
        m(7, &[v(1, 1_700_000_000), v(2, 500_000_000)]),
        m(
            8,
            &[
                s(1, "c"),
                m(2, &[m(2, &[m(1, &[v(1, 1_700_000_001)])])]),
                v(4, 1),
                v(5, 2),
                s(6, "busybox"),
            ],
        ),
        m(12, &[s(1, "10.0.0.5")]),
    ]
    .concat();
    let raw = [object_meta("p", &[]), m(2, &[spec]), m(3, &[status])].concat();
    let pod = decode_ok(&envelope("v1", "Pod", &raw));
    assert_eq!(
        pod["spec"]["affinity"]["nodeAffinity"],
        json!({"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}
        ]}})
    );
    assert_eq!(
        pod["spec"]["affinity"]["podAntiAffinity"],
        json!({"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
            "labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"
        }}]})
    );
    assert_eq!(
        pod["spec"]["topologySpreadConstraints"],
        json!([{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}}}])
    );
    // Repeated ints, unpacked and packed.
    assert_eq!(
        pod["spec"]["securityContext"],
        json!({"runAsUser": 1000, "supplementalGroups": [5, 6, 7, 8]})
    );
    let status = &pod["status"];
    assert_eq!(status["phase"], "Running");
    assert_eq!(
        status["conditions"],
        json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2023-11-14T22:13:20Z", "lastProbeTime": null}])
    );
    // metav1.Time has seconds precision in JSON.
    assert_eq!(status["startTime"], "2023-11-14T22:13:20Z");
    assert_eq!(
        status["containerStatuses"],
        json!([{"name": "c", "state": {"running": {"startedAt": "2023-11-14T22:13:21Z"}}, "ready": true,
                "restartCount": 2, "image": "busybox"}])
    );
    assert_eq!(status["podIPs"], json!([{"ip": "10.0.0.5"}]));
}

#[test]
fn times_and_managed_fields() {
    let raw = [
        object_meta(
            "e",
            &[
                m(8, &[v(1, 0)]),
                m(9, &[v(1, 253_402_300_799)]),
                m(
                    17,
                    &[
                        s(1, "kubectl"),
                        s(2, "Update"),
                        m(4, &[v(1, 86_400)]),
                        s(6, "FieldsV1"),
                        m(7, &[s(1, r#"{"f:data":{}}"#)]),
                    ],
                ),
            ],
        ),
        m(2, &[v(1, 1_700_000_000), v(2, 123_456_789)]),
        s(7, "Started"),
        m(8, &[s(1, "Pod"), s(3, "p")]),
    ]
    .concat();
    let e = decode_ok(&envelope("events.k8s.io/v1", "Event", &raw));
    assert_eq!(e["eventTime"], "2023-11-14T22:13:20.123456Z");
    assert_eq!(e["metadata"]["creationTimestamp"], "1970-01-01T00:00:00Z");
    assert_eq!(e["metadata"]["deletionTimestamp"], "9999-12-31T23:59:59Z");
    assert_eq!(
        e["metadata"]["managedFields"],
        json!([{"manager": "kubectl", "operation": "Update", "time": "1970-01-02T00:00:00Z",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}])
    );
    assert_eq!(e["regarding"], json!({"kind": "Pod", "name": "p"}));
    assert_eq!(e["reason"], "Started");
}

#[test]
fn negative_ints_and_unknown_fields() {
    let raw = [
        object_meta(
            "d",
            &[
                v(10, -1),
                v(99, 7),
                s(98, "future"),
                [key(97, 1), vec![0; 8]].concat(),
                [key(96, 5), vec![0; 4]].concat(),
            ],
        ),
        m(2, &[v(4, -5), v(6, i64::from(i32::MIN))]),
    ]
    .concat();
    let d = decode_ok(&envelope("apps/v1", "DaemonSet", &raw));
    assert_eq!(d["metadata"], json!({"name": "d", "deletionGracePeriodSeconds": -1}));
    assert_eq!(
        d["spec"],
        json!({"minReadySeconds": -5, "revisionHistoryLimit": i32::MIN})
    );
}

#[test]
fn meta_kinds_and_embedded_objects() {
    let opts = [v(1, 30), m(2, &[s(1, "uid-1")]), s(4, "Foreground"), s(5, "All")].concat();
    let (_, kind, d) = decode(&envelope("v1", "DeleteOptions", &opts)).expect("decode");
    assert_eq!(kind, "DeleteOptions");
    assert_eq!(
        d,
        json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 30,
               "preconditions": {"uid": "uid-1"}, "propagationPolicy": "Foreground", "dryRun": ["All"]})
    );

    let inner = envelope("v1", "Namespace", &object_meta("n", &[]));
    let list = [m(2, &[b(1, &inner)]), m(2, &[s(1, r#"{"kind":"Pod"}"#)])].concat();
    let l = decode_ok(&envelope("v1", "List", &list));
    assert_eq!(
        l["items"],
        json!([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}, {"kind": "Pod"}])
    );
}

#[test]
fn scale_lease_endpointslice() {
    let scale = [
        object_meta("web", &[]),
        m(2, &[v(1, 4)]),
        m(3, &[v(1, 2), s(2, "app=web")]),
    ]
    .concat();
    assert_eq!(
        decode_ok(&envelope("autoscaling/v1", "Scale", &scale))["status"],
        json!({"replicas": 2, "selector": "app=web"})
    );

    let lease = [
        object_meta("l", &[]),
        m(2, &[s(1, "holder"), v(2, 15), m(3, &[v(1, 1_700_000_000), v(2, 1000)])]),
    ]
    .concat();
    assert_eq!(
        decode_ok(&envelope("coordination.k8s.io/v1", "Lease", &lease))["spec"],
        json!({"holderIdentity": "holder", "leaseDurationSeconds": 15, "acquireTime": "2023-11-14T22:13:20.000001Z"})
    );

    let slice = [
        object_meta("s", &[]),
        m(2, &[s(1, "10.0.0.1"), m(2, &[v(1, 1)])]),
        m(3, &[s(1, "http"), s(2, "TCP"), v(3, 80)]),
        s(4, "IPv4"),
    ]
    .concat();
    assert_eq!(
        decode_ok(&envelope("discovery.k8s.io/v1", "EndpointSlice", &slice)),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "s"},
               "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}}],
               "ports": [{"name": "http", "protocol": "TCP", "port": 80}], "addressType": "IPv4"})
    );
}

// ---- malformed input ----

#[test]
fn bad_magic() {
    assert_eq!(decode(b"{\"kind\":\"Pod\"}"), Err(ProtobufError::BadMagic));
    assert_eq!(decode(b"k8s"), Err(ProtobufError::BadMagic));
    assert_eq!(decode(b""), Err(ProtobufError::BadMagic));
}

#[test]
fn envelope_problems() {
    assert_eq!(decode(MAGIC), Err(ProtobufError::MissingTypeMeta));
    assert_eq!(
        decode(&envelope("v1", "Nope", &[])),
        Err(ProtobufError::UnknownKind {
            api_version: "v1".into(),
            kind: "Nope".into()
        })
    );
    let gz = [envelope("v1", "ConfigMap", &[]), s(3, "gzip")].concat();
    assert_eq!(decode(&gz), Err(ProtobufError::ContentEncoding("gzip".into())));
    // An empty object is fine.
    assert_eq!(
        decode_ok(&envelope("v1", "ConfigMap", &[])),
        json!({"apiVersion": "v1", "kind": "ConfigMap"})
    );
}

#[test]
fn truncated_varint() {
    // ObjectMeta.generation whose varint never ends.
    let raw = m(1, &[[key(7, 0), vec![0x80, 0x80]].concat()]);
    let (message, field, reason) = malformed_at(decode(&envelope("v1", "ConfigMap", &raw)).unwrap_err());
    assert_eq!((message.as_str(), field), ("meta/v1.ObjectMeta", 7));
    assert!(reason.contains("truncated varint"), "{reason}");
    // An 11-byte varint.
    let raw = [key(4, 0), vec![0xff; 10], vec![0x01]].concat();
    let (_, field, reason) = malformed_at(decode(&envelope("v1", "ConfigMap", &raw)).unwrap_err());
    assert_eq!(field, 4);
    assert!(reason.contains("overflows"), "{reason}");
    // A key cut short.
    let (_, field, _) = malformed_at(decode(&envelope("v1", "ConfigMap", &[0x80])).unwrap_err());
    assert_eq!(field, 0);
}

#[test]
fn wrong_wire_type() {
    // ConfigMap.immutable (bool) sent as a string.
    let err = decode(&envelope("v1", "ConfigMap", &s(4, "yes"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed protobuf in core/v1.ConfigMap field 4: wrong wire type 2, expected 0"
    );
    // ObjectMeta.name as a varint.
    let (message, field, _) = malformed_at(decode(&envelope("v1", "Secret", &m(1, &[v(1, 5)]))).unwrap_err());
    assert_eq!((message.as_str(), field), ("meta/v1.ObjectMeta", 1));
    // A quantity inside a map inside a container.
    let raw = m(
        2,
        &[m(3, &[m(2, &[m(2, &[m(8, &[entry(1, "cpu", m(2, &[v(1, 5)]))])])])])],
    );
    let (message, field, _) = malformed_at(decode(&envelope("apps/v1", "Deployment", &raw)).unwrap_err());
    assert_eq!((message.as_str(), field), ("resource.Quantity", 1));
}

#[test]
fn other_malformed_input() {
    let cases: Vec<Vec<u8>> = vec![
        // Length past the end.
        [key(2, 2), varint(100), b"ab".to_vec()].concat(),
        // Huge length.
        [key(2, 2), varint(u64::MAX)].concat(),
        // Field number 0.
        vec![0x02, 0x00],
        // Group wire types and invalid ones.
        [key(50, 3)].concat(),
        [key(50, 7)].concat(),
        // A truncated fixed64 in an unknown field.
        [key(50, 1), vec![0; 3]].concat(),
        // An IntOrString of an unknown type.
        m(2, &[m(1, &[m(4, &[v(1, 7)])])]),
        // Time nanos out of range, seconds out of range.
        m(1, &[m(8, &[v(1, 1), v(2, 2_000_000_000)])]),
        m(1, &[m(8, &[v(1, i64::MAX)])]),
    ];
    for (i, raw) in cases.iter().enumerate() {
        let kind = if i == 6 { "Service" } else { "ConfigMap" };
        let result = decode(&envelope("v1", kind, raw));
        assert!(
            matches!(result, Err(ProtobufError::Malformed { .. })),
            "case {i}: {result:?}"
        );
    }
    // Embedded JSON that is not JSON.
    let raw = m(1, &[m(17, &[m(7, &[s(1, "{not json")])])]);
    let (message, field, _) = malformed_at(decode(&envelope("v1", "ConfigMap", &raw)).unwrap_err());
    assert_eq!((message.as_str(), field), ("meta/v1.FieldsV1", 1));
}

#[test]
fn nesting_is_bounded() {
    let mut body = envelope("v1", "Namespace", &[]);
    for _ in 0..200 {
        body = envelope("v1", "List", &m(2, &[b(1, &body)]));
    }
    assert_eq!(decode(&body), Err(ProtobufError::TooDeep));
}

#[test]
fn go_durations() {
    for (nanos, text) in [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (1_000_000, "1ms"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (-5_000_000_000, "-5s"),
        (i64::MIN, "-2562047h47m16.854775808s"),
    ] {
        assert_eq!(go_duration(nanos), text);
    }
    assert_eq!(decode_duration(&v(1, 2_000_000_000)).ok(), Some(json!("2s")));
}

#[test]
fn schema_is_consistent() {
    fn check(message: &'static Message, seen: &mut Vec<&'static str>) {
        if seen.contains(&message.name) {
            return;
        }
        seen.push(message.name);
        for (i, field) in message.fields.iter().enumerate() {
            assert!(field.number > 0, "{}", message.name);
            assert!(
                message.fields[..i].iter().all(|f| f.number != field.number),
                "{} {}",
                message.name,
                field.number
            );
            assert_eq!(
                field.json.is_empty(),
                field.card == Card::Inline,
                "{} {}",
                message.name,
                field.number
            );
            if let Kind::Msg(inner) = field.kind {
                check(inner, seen);
            }
        }
    }
    let mut seen = Vec::new();
    for (api_version, kind, message) in schema::KINDS {
        assert!(supports(api_version, kind));
        check(message, &mut seen);
    }
    for (_, message) in schema::META_KINDS {
        check(message, &mut seen);
    }
    for kind in [
        "Namespace",
        "Pod",
        "Node",
        "Service",
        "Endpoints",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Event",
        "Binding",
    ] {
        assert!(supports("v1", kind), "{kind}");
    }
    for (api_version, kind) in [
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "DaemonSet"),
        ("autoscaling/v1", "Scale"),
        ("coordination.k8s.io/v1", "Lease"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("events.k8s.io/v1", "Event"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("policy/v1", "Eviction"),
        ("apps/v1", "DeleteOptions"),
    ] {
        assert!(supports(api_version, kind), "{api_version} {kind}");
    }
}
