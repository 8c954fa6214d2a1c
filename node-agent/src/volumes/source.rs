//! [`VolumeSource`]: the API reads volume preparation needs, behind a trait so tests (and the
//! hollow node) can fake them.

use std::future::Future;
use std::pin::Pin;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};

use crate::spec::NodeResources;

/// A boxed, sendable future (what `futures::future::BoxFuture` is, without the dependency).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why the API could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The request failed; worth retrying.
    #[error("API request failed: {0}")]
    Unavailable(String),
    /// The node is not allowed to read it (e.g. the node authorizer refused).
    #[error("forbidden: {0}")]
    Forbidden(String),
}

/// Reads of API objects on behalf of a pod. `Ok(None)` means "does not exist".
pub trait VolumeSource: Send + Sync {
    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigMap>, SourceError>>;
    fn secret<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<Secret>, SourceError>>;
    /// A bound service-account token for `pod` (TokenRequest).
    fn service_account_token<'a>(
        &'a self,
        pod: &'a Pod,
        audience: Option<&'a str>,
        expiration_seconds: i64,
    ) -> BoxFuture<'a, Result<String, SourceError>>;
    /// The cluster CA bundle, used for `kube-root-ca.crt` when that configMap is not
    /// (yet) published in the pod's namespace.
    fn root_ca(&self) -> BoxFuture<'_, Result<String, SourceError>>;
    /// Node allocatable, the default for downward-API limits a container does not set.
    fn node_resources(&self) -> NodeResources {
        NodeResources::default()
    }
}
