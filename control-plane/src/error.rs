//! API errors as Kubernetes reports them: a `metav1.Status` body with the HTTP code, a reason
//! (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...) and details naming the object.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One field problem of an `Invalid` (422) error, as in `metav1.StatusCause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, `FieldValueForbidden`...
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn required(field: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }

    pub fn invalid(field: impl Into<String>, value: &str, why: impl std::fmt::Display) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {value:?}: {why}"),
        }
    }

    pub fn forbidden(field: impl Into<String>, why: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {}", why.into()),
        }
    }

    pub fn unsupported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!("Unsupported value: {value:?}: supported values: {}", list.join(", ")),
        }
    }

    /// The text Kubernetes prints for the cause: `field: message`.
    pub fn text(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    /// Kubernetes' `StatusReason`; empty for 500s without one.
    pub reason: &'static str,
    pub message: String,
    /// `details.group`, `details.kind`, `details.name` when the error is about one object.
    pub group: String,
    pub kind: String,
    pub name: String,
    pub causes: Vec<Cause>,
    /// Seconds a client should wait before retrying (429, 503).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            group: String::new(),
            kind: String::new(),
            name: String::new(),
            causes: Vec::new(),
            retry_after: None,
        }
    }

    /// Attaches the object the error is about (`details`).
    pub fn about(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.group = group.to_string();
        self.kind = kind.to_string();
        self.name = name.to_string();
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// `plural` as in the URL, e.g. `pods "web" not found`.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, plural)),
        )
        .about(group, plural, name)
    }

    pub fn path_not_found() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource")
    }

    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, plural)),
        )
        .about(group, plural, name)
    }

    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, plural)
            ),
        )
        .about(group, plural, name)
    }

    /// Kubernetes' message for an update on a stale resourceVersion.
    pub fn stale(group: &str, plural: &str, name: &str) -> Self {
        Self::conflict(
            group,
            plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type:?})"))
    }

    /// 422 with field causes: `Kind "name" is invalid: [field: message, ...]`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let texts: Vec<String> = causes.iter().map(Cause::text).collect();
        let list = if texts.len() == 1 {
            texts[0].clone()
        } else {
            format!("[{}]", texts.join(", "))
        };
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut e = Self::new(422, "Invalid", format!("{gk} \"{name}\" is invalid: {list}")).about(group, kind, name);
        e.causes = causes;
        e
    }

    pub fn too_many_requests(message: impl Into<String>) -> Self {
        let mut e = Self::new(429, "TooManyRequests", message);
        e.retry_after = Some(1);
        e
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(503, "ServiceUnavailable", message);
        e.retry_after = Some(1);
        e
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        let mut e = Self::new(504, "Timeout", message);
        e.retry_after = Some(1);
        e
    }

    /// The `metav1.Status` object.
    pub fn status(&self) -> Value {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !self.kind.is_empty() || !self.name.is_empty() || !self.causes.is_empty() || self.retry_after.is_some() {
            let mut details = serde_json::Map::new();
            if !self.name.is_empty() {
                details.insert("name".into(), json!(self.name));
            }
            if !self.group.is_empty() {
                details.insert("group".into(), json!(self.group));
            }
            if !self.kind.is_empty() {
                details.insert("kind".into(), json!(self.kind));
            }
            if !self.causes.is_empty() {
                let causes: Vec<Value> = self
                    .causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                details.insert("causes".into(), Value::Array(causes));
            }
            if let Some(s) = self.retry_after {
                details.insert("retryAfterSeconds".into(), json!(s));
            }
            body["details"] = Value::Object(details);
        }
        if self.reason.is_empty() {
            if let Some(o) = body.as_object_mut() {
                o.remove("reason");
            }
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, axum::Json(self.status())).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = s.to_string().parse() {
                resp.headers_mut().insert("retry-after", v);
            }
        }
        resp
    }
}

impl From<raft_store::StoreError> for ApiError {
    fn from(e: raft_store::StoreError) -> Self {
        use raft_store::StoreError as E;
        match e {
            E::Compacted { .. } => ApiError::gone(format!("too old resource version: {e}")),
            E::FutureRevision { .. } => ApiError::timeout(format!("Too large resource version: {e}")),
            E::NotLeader { .. } | E::Unavailable(_) => ApiError::unavailable(format!("the store is unavailable: {e}")),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// `pods` in the core group, `deployments.apps` elsewhere, as Kubernetes names a resource.
pub fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_reads_like_kubernetes() {
        let s = ApiError::not_found("apps", "deployments", "web").status();
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["name"], "web");
        assert_eq!(s["details"]["group"], "apps");
    }

    #[test]
    fn invalid_lists_every_cause() {
        let e = ApiError::invalid(
            "",
            "Pod",
            "Bad_Name",
            vec![
                Cause::invalid("metadata.name", "Bad_Name", "a lowercase RFC 1123 subdomain"),
                Cause::required("spec.containers"),
            ],
        );
        let s = e.status();
        assert_eq!(s["code"], 422);
        assert!(s["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("Pod \"Bad_Name\" is invalid: [metadata.name: Invalid value"));
        assert_eq!(s["details"]["causes"][1]["field"], "spec.containers");
        assert_eq!(s["details"]["causes"][1]["reason"], "FieldValueRequired");
    }
}
