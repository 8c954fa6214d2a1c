//! The error type of the `spec` module.
//!
//! Every variant names the pod-level thing a user has to fix (a volume, an env var, a user
//! name), because the agent reports these verbatim as `CreateContainerConfigError` /
//! `CreateContainerError` messages.

use oci_spec::OciSpecError;

/// Why a container's OCI spec could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A Kubernetes quantity (`100m`, `128Mi`, ...) that does not parse.
    #[error("invalid quantity {value:?}: {reason}")]
    InvalidQuantity { value: String, reason: &'static str },
    /// Neither the container nor the image says what to run.
    #[error("no command specified")]
    NoCommand,
    /// A `fieldRef` path this agent does not know.
    #[error("unsupported fieldRef path {path:?} in {context}")]
    UnsupportedFieldPath { path: String, context: String },
    /// A `resourceFieldRef` resource this agent does not know.
    #[error("unsupported resourceFieldRef resource {resource:?} in {context}")]
    UnsupportedResource { resource: String, context: String },
    /// A `resourceFieldRef` divisor of zero.
    #[error("resourceFieldRef divisor must be positive in {context}")]
    ZeroDivisor { context: String },
    /// A non-optional configMapKeyRef/secretKeyRef the caller did not resolve.
    #[error("couldn't find key {key} in {kind} {namespace}/{name} for env var {env}")]
    MissingEnvSource {
        env: String,
        kind: &'static str,
        namespace: String,
        name: String,
        key: String,
    },
    /// An env var with neither value nor a known valueFrom.
    #[error("env var {env} has an empty valueFrom")]
    EmptyValueFrom { env: String },
    /// An image or pod user that cannot be turned into numeric ids.
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UnknownUser { user: String },
    /// An image group that cannot be turned into a numeric gid.
    #[error("unable to find group {group}: no matching entries in group file")]
    UnknownGroup { group: String },
    /// A uid/gid outside u32.
    #[error("invalid {what} {value}: out of range")]
    IdOutOfRange { what: &'static str, value: i64 },
    /// runAsNonRoot was asked for but the container would run as uid 0.
    #[error("container has runAsNonRoot and image will run as root (pod: {pod}, container: {container})")]
    RunAsRoot { pod: String, container: String },
    /// A capability name that is not a Linux capability.
    #[error("unknown capability {name:?}")]
    UnknownCapability { name: String },
    /// A volumeMount naming a volume the caller did not prepare.
    #[error("volumeMount {mount_path:?} refers to volume {volume:?} which is not prepared")]
    UnknownVolume { volume: String, mount_path: String },
    /// A subPath that is absolute or climbs out of its volume with `..`.
    #[error("subPath {sub_path:?} of volume {volume:?} must be a relative path without '..'")]
    SubPathEscape { volume: String, sub_path: String },
    /// A mountPath that is not absolute.
    #[error("mountPath {mount_path:?} must be an absolute path")]
    RelativeMountPath { mount_path: String },
    /// An unknown mountPropagation value.
    #[error("invalid mountPropagation {value:?} for mount {mount_path:?}")]
    InvalidPropagation { value: String, mount_path: String },
    /// Reading the image's /etc/passwd or /etc/group failed for another reason than absence.
    #[error("reading {path}: {source}")]
    ReadUserDb { path: String, source: std::io::Error },
    /// oci-spec's builders refused a value.
    #[error("building OCI spec: {0}")]
    Oci(#[from] OciSpecError),
}
