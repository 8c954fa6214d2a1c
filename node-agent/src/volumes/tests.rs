//! [`prepare`] with a fake [`VolumeSource`] in a temporary directory.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde_json::json;

use super::*;
use crate::spec::NodeResources;

#[derive(Default)]
struct Fake {
    config_maps: BTreeMap<String, ConfigMap>,
    secrets: BTreeMap<String, Secret>,
    token_requests: Mutex<Vec<(Option<String>, i64)>>,
}

impl VolumeSource for Fake {
    fn config_map<'a>(&'a self, ns: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<ConfigMap>, SourceError>> {
        Box::pin(async move { Ok(self.config_maps.get(&format!("{ns}/{name}")).cloned()) })
    }
    fn secret<'a>(&'a self, ns: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<Secret>, SourceError>> {
        Box::pin(async move { Ok(self.secrets.get(&format!("{ns}/{name}")).cloned()) })
    }
    fn service_account_token<'a>(
        &'a self,
        pod: &'a Pod,
        audience: Option<&'a str>,
        expiration_seconds: i64,
    ) -> BoxFuture<'a, Result<String, SourceError>> {
        Box::pin(async move {
            self.token_requests
                .lock()
                .unwrap()
                .push((audience.map(str::to_string), expiration_seconds));
            Ok(format!("jwt-for-{}", pod.metadata.name.clone().unwrap_or_default()))
        })
    }
    fn root_ca(&self) -> BoxFuture<'_, Result<String, SourceError>> {
        Box::pin(async { Ok("CA PEM".to_string()) })
    }
    fn node_resources(&self) -> NodeResources {
        NodeResources {
            allocatable_cpu_milli: 4000,
            allocatable_memory_bytes: 1 << 30,
            memory_capacity_bytes: 1 << 30,
        }
    }
}

fn fake() -> Fake {
    let mut f = Fake::default();
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "app"}, "data": {"k": "v", "x": "y"}})).unwrap();
    f.config_maps.insert("prod/app".into(), cm);
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": "creds"}, "data": {"pw": "aHVudGVyMg=="}})).unwrap();
    f.secrets.insert("prod/creds".into(), s);
    f
}

fn pod(volumes: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}], "volumes": volumes}
    }))
    .unwrap()
}

#[tokio::test]
async fn empty_dir_config_map_secret_downward() {
    let dir = tempfile::tempdir().unwrap();
    let host_dir = dir.path().join("host");
    let p = pod(json!([
        {"name": "scratch", "emptyDir": {}},
        {"name": "mem", "emptyDir": {"medium": "Memory"}},
        {"name": "cfg", "configMap": {"name": "app", "items": [{"key": "k", "path": "conf/k.txt", "mode": 0o600}]}},
        {"name": "sec", "secret": {"secretName": "creds", "defaultMode": 0o400}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}]}},
        {"name": "host", "hostPath": {"path": host_dir.to_str().unwrap(), "type": "DirectoryOrCreate"}},
    ]));
    let got = prepare(&p, dir.path(), &fake()).await.unwrap();
    assert_eq!(got["scratch"], dir.path().join("volumes/empty-dir/scratch"));
    assert_eq!(fs::metadata(&got["scratch"]).unwrap().mode() & 0o777, 0o777);
    assert!(got["mem"].is_dir());
    assert_eq!(fs::read_to_string(got["cfg"].join("conf/k.txt")).unwrap(), "v");
    assert_eq!(
        fs::metadata(got["cfg"].join("conf/k.txt")).unwrap().mode() & 0o777,
        0o600
    );
    assert!(!got["cfg"].join("x").exists(), "items limit the keys");
    assert_eq!(fs::read_to_string(got["sec"].join("pw")).unwrap(), "hunter2");
    assert_eq!(fs::metadata(got["sec"].join("pw")).unwrap().mode() & 0o777, 0o400);
    assert_eq!(fs::read_to_string(got["info"].join("labels")).unwrap(), "app=\"web\"");
    assert_eq!(fs::read_to_string(got["info"].join("mem")).unwrap(), "64");
    assert_eq!(got["host"], host_dir);
    assert!(host_dir.is_dir());

    cleanup(dir.path()).unwrap();
    assert!(!dir.path().join("volumes").exists());
    assert!(host_dir.is_dir(), "hostPath survives cleanup");
    cleanup(dir.path()).unwrap();
}

#[tokio::test]
async fn default_projected_service_account_volume() {
    let dir = tempfile::tempdir().unwrap();
    let p = pod(
        json!([{"name": "kube-api-access-x", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            {"serviceAccountToken": {"path": "vault-token", "audience": "vault"}},
        ]}}]),
    );
    let source = fake();
    let got = prepare(&p, dir.path(), &source).await.unwrap();
    let v = &got["kube-api-access-x"];
    assert_eq!(fs::read_to_string(v.join("token")).unwrap(), "jwt-for-web");
    assert_eq!(
        fs::read_to_string(v.join("ca.crt")).unwrap(),
        "CA PEM",
        "root CA fallback"
    );
    assert_eq!(fs::read_to_string(v.join("namespace")).unwrap(), "prod");
    assert_eq!(fs::metadata(v.join("token")).unwrap().mode() & 0o777, 0o644);
    assert_eq!(
        *source.token_requests.lock().unwrap(),
        [(None, 3607), (Some("vault".to_string()), 3600)]
    );
}

#[tokio::test]
async fn missing_objects() {
    let dir = tempfile::tempdir().unwrap();
    let p = pod(json!([{"name": "cfg", "configMap": {"name": "absent"}}]));
    let err = prepare(&p, dir.path(), &fake()).await.unwrap_err();
    assert!(err.is_config_error());
    assert!(
        err.to_string().contains("\"absent\"") && err.to_string().contains("\"cfg\""),
        "{err}"
    );

    let p = pod(
        json!([{"name": "cfg", "configMap": {"name": "absent", "optional": true}},
                       {"name": "sec", "secret": {"secretName": "absent", "optional": true}}]),
    );
    let got = prepare(&p, dir.path(), &fake()).await.unwrap();
    assert!(got["cfg"].is_dir() && got["sec"].is_dir());

    let p = pod(json!([{"name": "sec", "secret": {"secretName": "absent"}}]));
    assert!(matches!(
        prepare(&p, dir.path(), &fake()).await,
        Err(VolumeError::SecretNotFound { .. })
    ));
    let p = pod(json!([{"name": "cfg", "configMap": {"name": "app", "items": [{"key": "nope", "path": "n"}]}}]));
    assert!(matches!(
        prepare(&p, dir.path(), &fake()).await,
        Err(VolumeError::MissingKey { .. })
    ));
    let p = pod(json!([{"name": "pvc", "persistentVolumeClaim": {"claimName": "c"}}]));
    let err = prepare(&p, dir.path(), &fake()).await.unwrap_err();
    assert!(
        matches!(
            err,
            VolumeError::Unsupported {
                kind: "persistentVolumeClaim",
                ..
            }
        ),
        "{err}"
    );
    let p = pod(json!([{"name": "h", "hostPath": {"path": "/nonexistent/skiff-test", "type": "Directory"}}]));
    assert!(matches!(
        prepare(&p, dir.path(), &fake()).await,
        Err(VolumeError::HostPathType { .. })
    ));
}

#[tokio::test]
async fn update_is_atomic_swap() {
    let dir = tempfile::tempdir().unwrap();
    let p = pod(json!([{"name": "cfg", "configMap": {"name": "app"}}]));
    let mut source = fake();
    let got = prepare(&p, dir.path(), &source).await.unwrap();
    assert_eq!(fs::read_to_string(got["cfg"].join("k")).unwrap(), "v");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "app"}, "data": {"k": "v2"}})).unwrap();
    source.config_maps.insert("prod/app".into(), cm);
    let got = prepare(&p, dir.path(), &source).await.unwrap();
    assert_eq!(fs::read_to_string(got["cfg"].join("k")).unwrap(), "v2");
    assert!(!got["cfg"].join("x").exists());
    assert!(fs::symlink_metadata(got["cfg"].join(DATA_DIR_NAME))
        .unwrap()
        .file_type()
        .is_symlink());
}
