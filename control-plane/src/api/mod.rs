//! The Kubernetes API over HTTP: one router for discovery, OpenAPI, health, metrics and every
//! resource path. Resource requests are parsed into a `Target` and dispatched by verb:
//! `read.rs` (get, list), `watch.rs`, `write.rs` (create, update, patch), `delete.rs`,
//! `subresource.rs` (scale, binding, token), `logs.rs` (pods/log) and `exec.rs` (pods/exec,
//! proxied to the pod's node agent).

pub mod body;
pub mod delete;
pub mod exec;
pub mod logs;
pub mod metrics;
mod read;
pub mod request;
pub mod service_alloc;
mod subresource;
mod watch;
pub mod write;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;

use crate::audit;
use crate::auth::rbac::Attributes;
use crate::auth::review::Review;
use crate::auth::{self, attributes, impersonate, Authorizer};
use crate::error::{ApiError, ApiResult};
use crate::pki::UserInfo;
use crate::storage::Storage;
use crate::tls::{Authn, ServiceAccountToken};
use crate::{discovery, openapi};
use request::{Query, Target};

/// What every handler shares. Cheap to clone: leader-only components run the same write
/// pipeline with a fenced `storage` (`fenced`).
#[derive(Clone)]
pub struct ApiState {
    pub storage: Storage,
    /// host:port clients reach this server at (for /api's serverAddressByClientCIDRs).
    pub advertise: String,
    pub metrics: Arc<metrics::Metrics>,
    pub authz: Arc<Authorizer>,
    pub admission: Arc<crate::admission::Admission>,
    /// Signs service account tokens (TokenRequest).
    pub sa_key: Arc<crate::auth::token::SigningKey>,
    /// The cluster CA, published in every namespace's kube-root-ca.crt.
    pub ca_pem: String,
    /// Where requests are recorded, if anywhere (`--audit-log`).
    pub audit: Option<Arc<crate::audit::AuditLog>>,
    /// Calls node agents (pods/log) with this API server's client certificate.
    pub kubelet: Arc<crate::kubelet::KubeletClient>,
    /// Cancelled on shutdown: watches end.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl ApiState {
    /// The same server state, every store write fenced by `term` (leader-only components).
    pub fn fenced(&self, term: u64) -> Arc<ApiState> {
        Arc::new(ApiState {
            storage: self.storage.fenced(term),
            ..self.clone()
        })
    }
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// What the audit log needs of a request: its attributes, the authenticated user when it acted
/// as someone else, and the authorization decision.
type Audited = (Attributes, Option<(String, Vec<String>)>, &'static str);

async fn handle(
    State(st): State<Arc<ApiState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    mut req: axum::extract::Request,
) -> Response {
    let started = Instant::now();
    let received = chrono::Utc::now();
    let authn = req.extensions().get::<Authn>().cloned();
    let sa_token = req.extensions().get::<ServiceAccountToken>().cloned();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    // Taken before the body: an exec upgrade keeps the client's connection.
    let upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
    let mut body = req.into_body();
    let path = uri.path().to_string();
    // For the audit log: what was asked, by whom (and as whom), and the decision.
    let mut audit: Option<Audited> = None;
    let mut captured: Option<Vec<u8>> = None;
    let unauthorized = |audit: &mut Option<_>| {
        *audit = Some((
            attributes::for_path(&auth::user_of(&anonymous()), &method, &path),
            None,
            "forbid",
        ));
        (ApiError::unauthorized().into_response(), "", String::new())
    };
    let authenticated = match authn.and_then(|a| a.0) {
        Some(u) => Some(u),
        None => bootstrap_token_user(&st, &headers).await,
    };
    let (resp, verb, resource) = match authenticated {
        None if is_public(&path) => route(&st, &method, &uri, &headers, body, upgrade, &anonymous()).await,
        None => unauthorized(&mut audit),
        Some(_) if !service_account_live(&st, sa_token.as_ref()).await => unauthorized(&mut audit),
        Some(real) => {
            let real_id = (real.name.clone(), real.groups.clone());
            match authorize(&st, &method, &uri, &headers, real).await {
                Ok((user, attrs)) => {
                    let level = st.audit.as_ref().map_or(audit::Level::None, |l| l.level(&attrs));
                    let acting_as = headers.contains_key("impersonate-user").then_some(real_id);
                    audit = Some((attrs, acting_as, "allow"));
                    if level >= audit::Level::Request {
                        match body::read(body).await {
                            Ok(bytes) => {
                                captured = Some(bytes.clone());
                                body = Body::from(bytes);
                            }
                            Err(e) => return e.into_response(),
                        }
                    }
                    route(&st, &method, &uri, &headers, body, upgrade, &user).await
                }
                Err((e, attrs)) => {
                    audit = Some((attrs, None, "forbid"));
                    (e.into_response(), "", String::new())
                }
            }
        }
    };
    st.metrics.observe(
        verb,
        &resource,
        resp.status().as_u16(),
        started.elapsed(),
        method.as_str(),
    );
    if let (Some(log), Some((attrs, real_user, decision))) = (&st.audit, &audit) {
        let request_object = captured
            .as_deref()
            .filter(|b| !b.is_empty())
            .and_then(|b| body::decode_object(&headers, b).ok());
        let api_version = request::parse_path(&path)
            .ok()
            .flatten()
            .map(|t| t.res.version)
            .unwrap_or("v1");
        log.record(&audit::Record {
            level: log.level(attrs),
            attrs,
            real_user: real_user.as_ref(),
            uri: uri.path_and_query().map_or(path.as_str(), |p| p.as_str()),
            source_ip: peer,
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            code: resp.status().as_u16(),
            decision,
            received,
            completed: chrono::Utc::now(),
            request_object: request_object.as_ref(),
            api_version,
        });
    }
    resp
}

/// Paths anonymous clients may read, as Kubernetes' system:public-info-viewer allows.
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
}

/// A bearer token the listener did not know may be a bootstrap token (a secret in kube-system).
async fn bootstrap_token_user(st: &ApiState, headers: &HeaderMap) -> Option<UserInfo> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    crate::csr::authenticate_bootstrap(&st.storage, token.trim()).await
}

/// A service account token counts only while its account (and pod) exist.
async fn service_account_live(st: &ApiState, token: Option<&ServiceAccountToken>) -> bool {
    match token {
        None => true,
        Some(t) => crate::serviceaccount::token_still_valid(&st.storage, &t.0)
            .await
            .unwrap_or(false),
    }
}

fn anonymous() -> UserInfo {
    UserInfo {
        name: "system:anonymous".to_string(),
        groups: vec!["system:unauthenticated".to_string()],
        uid: String::new(),
    }
}

/// What a request asks of RBAC, for `user`.
fn request_attributes(method: &Method, uri: &Uri, user: &UserInfo) -> Attributes {
    let rbac_user = auth::user_of(user);
    let path = uri.path();
    match (Review::parse(path), request::parse_path(path)) {
        (Some(r), _) => r.attributes(&rbac_user),
        (None, Ok(Some(t))) => {
            let watch = Query::parse(uri.query()).map(|q| q.flag("watch")).unwrap_or(false);
            attributes::for_target(&rbac_user, method, &t, watch)
        }
        // Unknown resources get their 404 from the router once the path itself is allowed.
        (None, _) => attributes::for_path(&rbac_user, method, path),
    }
}

/// Impersonation, then RBAC: the identity the request acts as and what it asks, or the 400/403
/// that stops it (with what was asked, for the audit log).
async fn authorize(
    st: &Arc<ApiState>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    real: UserInfo,
) -> Result<(UserInfo, Attributes), (ApiError, Attributes)> {
    // Writes this master applied before the request arrived must count (see Authorizer).
    let applied = st.storage.revision();
    let user = match impersonate::resolve(&st.authz, real.clone(), headers, applied).await {
        Ok(u) => u,
        Err(e) => return Err((e, request_attributes(method, uri, &real))),
    };
    let attrs = request_attributes(method, uri, &user);
    match st.authz.authorize(&attrs, applied).await {
        Ok(()) => Ok((user, attrs)),
        Err(e) => Err((e, attrs)),
    }
}

fn ok_json(v: &Value) -> Response {
    body::json(StatusCode::OK, v, &[])
}

fn raw(content_type: &'static str, bytes: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        Body::from(bytes),
    )
        .into_response()
}

/// Returns the response and, for metrics, the verb and resource.
async fn route(
    st: &Arc<ApiState>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
    user: &UserInfo,
) -> (Response, &'static str, String) {
    let path = uri.path();
    if let Some(r) = Review::parse(path) {
        let resp = match *method {
            Method::POST => review(st, &r, headers, body, user).await,
            _ => Err(ApiError::method_not_allowed(method.as_str())),
        };
        return (
            resp.unwrap_or_else(IntoResponse::into_response),
            "create",
            r.kind.plural().to_string(),
        );
    }
    let accept = body::accept(headers);
    let aggregated = accept.contains("as=APIGroupDiscoveryList");
    let simple = |r: Response| (r, "get", String::new());
    if *method == Method::GET {
        match path.trim_end_matches('/') {
            "/healthz" | "/livez" | "/readyz" => return simple((StatusCode::OK, "ok").into_response()),
            "/version" => return simple(ok_json(&discovery::version_info())),
            "/metrics" => return simple(raw("text/plain; version=0.0.4", st.metrics.render().into_bytes())),
            "/api" if aggregated => return simple(aggregated_response(discovery::aggregated_discovery(true))),
            "/apis" if aggregated => return simple(aggregated_response(discovery::aggregated_discovery(false))),
            "/api" => return simple(ok_json(&discovery::core_versions(&st.advertise))),
            "/apis" => return simple(ok_json(&discovery::api_group_list())),
            "/openapi/v3" => return simple(ok_json(&openapi::v3_root())),
            "/openapi/v2" => return simple(openapi_v2(&accept)),
            _ => {}
        }
        if let Some(gv) = path.strip_prefix("/openapi/v3/") {
            let (group, version) = match gv.trim_end_matches('/').split('/').collect::<Vec<_>>().as_slice() {
                ["api", v] => ("", *v),
                ["apis", g, v] => (*g, *v),
                _ => return simple(ApiError::path_not_found().into_response()),
            };
            return simple(match openapi::v3_group_version_bytes(group, version) {
                Some(b) => raw("application/json", b.to_vec()),
                None => ApiError::path_not_found().into_response(),
            });
        }
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segs.as_slice() {
            ["api", v] => return simple(resource_list("", v)),
            ["apis", g] => {
                return simple(match discovery::api_group(g) {
                    Some(group) => ok_json(&group),
                    None => ApiError::path_not_found().into_response(),
                })
            }
            ["apis", g, v] => return simple(resource_list(g, v)),
            _ => {}
        }
    }
    let target = match request::parse_path(path) {
        Ok(Some(t)) => t,
        Ok(None) => return (ApiError::path_not_found().into_response(), "", String::new()),
        Err(e) => return (e.into_response(), "", String::new()),
    };
    let resource = target.res.plural.to_string();
    let query = match Query::parse(uri.query()) {
        Ok(q) => q,
        Err(e) => return (e.into_response(), "", resource),
    };
    let (verb, result) = match (method.as_str(), &target.name, target.subresource.as_deref()) {
        // RBAC sees exec as `create` on pods/exec, as Kubernetes does.
        ("GET" | "POST", Some(_), Some("exec")) if target.res.plural == "pods" => {
            ("create", exec::pod_exec(st, &target, &query, headers, upgrade).await)
        }
        _ => dispatch(st, method, &target, &query, headers, body, user).await,
    };
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            if e.code >= 500 {
                tracing::warn!(%method, path, error = %e, "request failed");
            }
            e.into_response()
        }
    };
    (resp, verb, resource)
}

async fn review(
    st: &Arc<ApiState>,
    r: &Review,
    headers: &HeaderMap,
    body: Body,
    user: &UserInfo,
) -> ApiResult<Response> {
    let bytes = body::read(body).await?;
    let obj = body::decode_object(headers, &bytes)?;
    let out = auth::review::run(&st.authz, r, user, &obj, st.storage.revision()).await?;
    Ok(body::json(StatusCode::CREATED, &out, &[]))
}

fn aggregated_response(v: Value) -> Response {
    let body = serde_json::to_vec(&v).unwrap_or_default();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        )],
        Body::from(body),
    )
        .into_response()
}

fn openapi_v2(accept: &str) -> Response {
    if accept.contains("protobuf") && !accept.contains("application/json") {
        return ApiError::new(406, "NotAcceptable", "only application/json is served for /openapi/v2").into_response();
    }
    raw("application/json", openapi::v2_json().to_vec())
}

fn resource_list(group: &str, version: &str) -> Response {
    match discovery::api_resource_list(group, version) {
        Some(v) => ok_json(&v),
        None => ApiError::path_not_found().into_response(),
    }
}

async fn dispatch(
    st: &Arc<ApiState>,
    method: &Method,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: Body,
    user: &UserInfo,
) -> (&'static str, ApiResult<Response>) {
    let sub = t.subresource.as_deref();
    match (method.as_str(), &t.name, sub) {
        ("GET", None, _) if q.flag("watch") => ("watch", watch::watch(st, t, q, headers).await),
        ("GET", None, _) => ("list", read::list(st, t, q, headers).await),
        ("GET", Some(_), Some("scale")) => ("get", subresource::get_scale(st, t).await),
        ("GET", Some(_), Some("log")) if t.res.plural == "pods" => ("get", logs::pod_log(st, t, q).await),
        ("GET", Some(_), None | Some("status")) => ("get", read::get(st, t, q, headers).await),
        ("POST", None, None) => ("create", write::create(st, t, q, headers, body, user).await),
        ("POST", Some(_), Some("token")) => ("create", subresource::token(st, t, q, headers, body, user).await),
        ("POST", Some(_), Some("binding")) => ("create", subresource::bind(st, t, q, headers, body).await),
        ("PUT", Some(_), Some("scale")) => ("update", subresource::put_scale(st, t, q, headers, body, user).await),
        // Only these subresources are views of their parent that a write may change; a write to
        // any other (exec, binding, token, ...) must never reach the parent object.
        ("PUT", Some(_), None | Some("status" | "finalize" | "approval")) => {
            ("update", write::update(st, t, q, headers, body, user).await)
        }
        ("PATCH", Some(_), None | Some("status" | "scale" | "finalize" | "approval")) => {
            ("patch", write::patch(st, t, q, headers, body, user).await)
        }
        ("DELETE", Some(_), None) => ("delete", delete::delete(st, t, q, body, user).await),
        ("DELETE", None, None) => (
            "deletecollection",
            delete::delete_collection(st, t, q, body, user).await,
        ),
        (m, _, _) => ("", Err(ApiError::method_not_allowed(m))),
    }
}
