//! Request bodies in, responses out: size limit (413), content types (JSON, YAML, the patch
//! types; anything else 415), and JSON or Table responses.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// Kubernetes refuses request bodies over 3 MiB.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub async fn read(body: Body) -> ApiResult<Vec<u8>> {
    match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => Ok(b.to_vec()),
        Err(e) => {
            // to_bytes reports the limit as a length-limit error in its source chain.
            let text = format!("{e:?}");
            if text.contains("LengthLimit") || text.contains("length limit") {
                Err(ApiError::too_large(MAX_BODY))
            } else {
                Err(ApiError::bad_request(format!("reading the request body: {e}")))
            }
        }
    }
}

pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

pub fn accept(headers: &HeaderMap) -> String {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// A JSON or YAML object body (create, update).
pub fn decode_object(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<Value> {
    let ct = content_type(headers);
    let v: Value = match ct.as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded as JSON: {e}")))?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded as YAML: {e}")))?,
        crate::protobuf::CONTENT_TYPE => {
            let (api_version, kind, obj) = crate::protobuf::decode(bytes).map_err(|e| {
                ApiError::bad_request(format!("the body of the request could not be decoded as protobuf: {e}"))
            })?;
            if api_version.is_empty() || kind.is_empty() {
                return Err(ApiError::bad_request("protobuf body without apiVersion and kind"));
            }
            obj
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !v.is_object() {
        return Err(ApiError::bad_request("the body of the request must be a JSON object"));
    }
    Ok(v)
}

/// A response with a JSON body and optional warning headers.
pub fn json(code: StatusCode, v: &Value, warnings: &[String]) -> Response {
    typed_json(code, v, "application/json", warnings)
}

/// A server-side Table, with the content type kubectl looks for.
pub fn table(v: &Value) -> Response {
    typed_json(StatusCode::OK, v, crate::table::TABLE_CONTENT_TYPE, &[])
}

fn typed_json(code: StatusCode, v: &Value, content_type: &'static str, warnings: &[String]) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = (code, [(header::CONTENT_TYPE, content_type)], Body::from(body)).into_response();
    for w in warnings {
        // RFC 7234 warning, as kube-apiserver sends for dropped fields.
        let text = format!("299 - {:?}", w);
        if let Ok(v) = text.parse() {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}
