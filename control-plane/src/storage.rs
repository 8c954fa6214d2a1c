//! Objects in the replicated store: JSON under Kubernetes' etcd key layout, with
//! `resourceVersion` = the key's `mod_revision`. Every write is one store txn whose compares make
//! it safe against concurrent writers on any master: create needs the key absent (and its
//! namespace present), update and delete need the revision the caller read.

use raft_store::mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyValue, PutRequest, RangeRequest, RequestOp,
    ResponseOp, TxnRequest, WriteOp, WriteResult,
};
use raft_store::StoreHandle;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry::{self, Resource};

/// An object as stored, with its revision.
#[derive(Debug, Clone)]
pub struct Stored {
    pub obj: Value,
    pub rv: i64,
}

/// What a list reads.
#[derive(Debug, Clone, Copy)]
pub struct ListSpec<'a> {
    pub prefix: &'a str,
    pub start_after: Option<&'a str>,
    pub at: i64,
    pub limit: i64,
    pub serializable: bool,
}

impl<'a> ListSpec<'a> {
    /// Every object under `prefix`, at the current revision, linearizable.
    pub fn all(prefix: &'a str) -> Self {
        ListSpec {
            prefix,
            start_after: None,
            at: 0,
            limit: 0,
            serializable: false,
        }
    }
}

/// One page of a list.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Stored>,
    /// Store revision the page was read at.
    pub revision: i64,
    /// Key of the last object read (for the continue token) when more remain.
    pub next_key: Option<String>,
    /// Objects after this page, when known (unfiltered lists).
    pub remaining: Option<i64>,
}

#[derive(Clone)]
pub struct Storage {
    store: StoreHandle,
    /// Set for leader-only components: their writes apply only while the leader that appends
    /// them is still in this term (ARCHITECTURE.md, fenced leadership).
    fence: Option<u64>,
}

/// etcd's "every key with this prefix" range end.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn decode(kv: &KeyValue) -> ApiResult<Stored> {
    let obj: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        ApiError::internal(format!(
            "object at {} is not valid JSON: {e}",
            String::from_utf8_lossy(&kv.key)
        ))
    })?;
    Ok(Stored {
        obj,
        rv: kv.mod_revision,
    })
}

fn encode(obj: &Value) -> ApiResult<Vec<u8>> {
    let mut o = obj.clone();
    // resourceVersion is the key's revision, never stored in the value.
    if let Some(Value::Object(m)) = o.get_mut("metadata") {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&o).map_err(|e| ApiError::internal(format!("encoding object: {e}")))
}

fn get_op(key: &str) -> RequestOp {
    RequestOp::Range(RangeRequest {
        key: key.as_bytes().to_vec(),
        ..Default::default()
    })
}

fn cmp(key: &str, result: CompareResult, target: CompareTarget) -> Compare {
    Compare {
        key: key.as_bytes().to_vec(),
        range_end: Vec::new(),
        result,
        target,
    }
}

/// The kvs of a txn's failure-branch range responses, in order.
fn ranges(result: &WriteResult) -> Vec<Option<KeyValue>> {
    match result {
        WriteResult::Txn(t) => t
            .responses
            .iter()
            .map(|r| match r {
                ResponseOp::Range(rr) => rr.kvs.first().cloned(),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn succeeded(result: &WriteResult) -> bool {
    matches!(result, WriteResult::Txn(t) if t.succeeded)
}

pub fn namespace_key(ns: &str) -> String {
    format!("{}/{ns}", registry::namespaces().prefix)
}

impl Storage {
    pub fn new(store: StoreHandle) -> Self {
        Storage { store, fence: None }
    }

    /// The same store, every write fenced by `term`.
    pub fn fenced(&self, term: u64) -> Self {
        Storage {
            store: self.store.clone(),
            fence: Some(term),
        }
    }

    async fn write(&self, op: WriteOp) -> Result<(i64, WriteResult), raft_store::StoreError> {
        self.store.write_fenced(op, self.fence).await
    }

    pub fn store(&self) -> &StoreHandle {
        &self.store
    }

    /// Current store revision (applied on this member).
    pub fn revision(&self) -> i64 {
        self.store.header().revision
    }

    /// One object, linearizable unless `serializable`.
    pub async fn get(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        serializable: bool,
    ) -> ApiResult<Option<Stored>> {
        let key = res.key(ns, name);
        let (_, resp) = self
            .store
            .range(RangeRequest {
                key: key.into_bytes(),
                serializable,
                ..Default::default()
            })
            .await?;
        resp.kvs.first().map(decode).transpose()
    }

    /// Like `get`, but a missing object is a 404.
    pub async fn must_get(&self, res: &Resource, ns: Option<&str>, name: &str) -> ApiResult<Stored> {
        self.get(res, ns, name, false)
            .await?
            .ok_or_else(|| ApiError::not_found(res.group, res.plural, name))
    }

    /// Up to `s.limit` objects (0: all) under `s.prefix` whose key is after `s.start_after`, at
    /// store revision `s.at` (0: the current revision, linearizable unless `s.serializable`),
    /// keeping only those `keep` accepts (`None`: all). Reads in chunks so that a filtered page
    /// still fills up.
    pub async fn list(&self, s: &ListSpec<'_>, keep: Option<&(dyn Fn(&Value) -> bool + Sync)>) -> ApiResult<Page> {
        let ListSpec {
            prefix,
            start_after,
            at,
            limit,
            serializable,
        } = *s;
        let filtered = keep.is_some();
        let end = prefix_end(prefix.as_bytes());
        let mut start: Vec<u8> = match start_after {
            Some(k) => {
                let mut s = k.as_bytes().to_vec();
                s.push(0);
                s
            }
            None => prefix.as_bytes().to_vec(),
        };
        let mut page = Page {
            revision: at,
            ..Default::default()
        };
        let chunk = if limit > 0 { (limit + 1).max(64) } else { 0 };
        let mut first = true;
        let mut last_pushed: Option<Vec<u8>> = None;
        loop {
            let (header_rev, resp) = self
                .store
                .range(RangeRequest {
                    key: start.clone(),
                    range_end: end.clone(),
                    limit: chunk,
                    revision: page.revision,
                    serializable: serializable || !first,
                    ..Default::default()
                })
                .await?;
            if first {
                if page.revision == 0 {
                    page.revision = header_rev;
                }
                first = false;
            }
            let n = resp.kvs.len();
            for (i, kv) in resp.kvs.iter().enumerate() {
                if limit > 0 && page.items.len() as i64 == limit {
                    // One more object exists: the page ends before it.
                    page.next_key = last_pushed.as_deref().map(key_of);
                    if !filtered {
                        page.remaining = Some(resp.count - i as i64);
                    }
                    return Ok(page);
                }
                let s = decode(kv)?;
                if keep.is_none_or(|f| f(&s.obj)) {
                    page.items.push(s);
                    last_pushed = Some(kv.key.clone());
                }
                start = kv.key.clone();
                start.push(0);
            }
            if !resp.more || n == 0 {
                return Ok(page);
            }
        }
    }

    /// Creates `obj` at its key. 409 AlreadyExists when the key is taken; 404 when its
    /// namespace does not exist.
    pub async fn create(&self, res: &Resource, ns: Option<&str>, name: &str, obj: &Value) -> ApiResult<Stored> {
        let key = res.key(ns, name);
        let value = encode(obj)?;
        let mut compare = vec![cmp(&key, CompareResult::Equal, CompareTarget::Create(0))];
        let mut failure = vec![get_op(&key)];
        if let (true, Some(ns)) = (res.namespaced, ns) {
            let nk = namespace_key(ns);
            compare.push(cmp(&nk, CompareResult::Greater, CompareTarget::Create(0)));
            failure.push(get_op(&nk));
        }
        let (rev, result) = self
            .write(WriteOp::Txn(TxnRequest {
                compare,
                success: vec![RequestOp::Put(PutRequest {
                    key: key.into_bytes(),
                    value,
                    ..Default::default()
                })],
                failure,
            }))
            .await?;
        // One write is one revision, so the revision after it is the key's mod_revision.
        if succeeded(&result) {
            return Ok(Stored {
                obj: obj.clone(),
                rv: rev,
            });
        }
        let found = ranges(&result);
        if found.first().is_some_and(Option::is_some) {
            return Err(ApiError::already_exists(res.group, res.plural, name));
        }
        match ns {
            Some(ns) => Err(ApiError::not_found("", "namespaces", ns)),
            None => Err(ApiError::internal("create refused for an unknown reason")),
        }
    }

    /// Writes many new objects of `res` in one txn (one revision), without checks: for records
    /// with unique names nobody updates, such as events.
    pub async fn put_many(&self, res: &Resource, objs: &[(String, String, Value)]) -> ApiResult<i64> {
        let mut success = Vec::with_capacity(objs.len());
        for (ns, name, obj) in objs {
            success.push(RequestOp::Put(PutRequest {
                key: res.key(Some(ns.as_str()).filter(|_| res.namespaced), name).into_bytes(),
                value: encode(obj)?,
                ..Default::default()
            }));
        }
        let (rev, _) = self
            .write(WriteOp::Txn(TxnRequest {
                compare: Vec::new(),
                success,
                failure: Vec::new(),
            }))
            .await?;
        Ok(rev)
    }

    /// Replaces the object if it is still at revision `expected`. 409 Conflict when it moved
    /// on, 404 when it is gone.
    pub async fn update(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        obj: &Value,
        expected: i64,
    ) -> ApiResult<Stored> {
        let key = res.key(ns, name);
        let value = encode(obj)?;
        let (rev, result) = self
            .write(WriteOp::Txn(TxnRequest {
                compare: vec![cmp(&key, CompareResult::Equal, CompareTarget::Mod(expected))],
                success: vec![RequestOp::Put(PutRequest {
                    key: key.clone().into_bytes(),
                    value,
                    ..Default::default()
                })],
                failure: vec![get_op(&key)],
            }))
            .await?;
        if succeeded(&result) {
            return Ok(Stored {
                obj: obj.clone(),
                rv: rev,
            });
        }
        match ranges(&result).into_iter().next().flatten() {
            Some(_) => Err(ApiError::stale(res.group, res.plural, name)),
            None => Err(ApiError::not_found(res.group, res.plural, name)),
        }
    }

    /// Deletes the object if it is still at revision `expected`; returns the deletion revision.
    pub async fn delete(&self, res: &Resource, ns: Option<&str>, name: &str, expected: i64) -> ApiResult<i64> {
        let key = res.key(ns, name);
        let (rev, result) = self
            .write(WriteOp::Txn(TxnRequest {
                compare: vec![cmp(&key, CompareResult::Equal, CompareTarget::Mod(expected))],
                success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                    key: key.clone().into_bytes(),
                    ..Default::default()
                })],
                failure: vec![get_op(&key)],
            }))
            .await?;
        if succeeded(&result) {
            return Ok(rev);
        }
        match ranges(&result).into_iter().next().flatten() {
            Some(_) => Err(ApiError::stale(res.group, res.plural, name)),
            None => Err(ApiError::not_found(res.group, res.plural, name)),
        }
    }

    /// Deletes a namespace and everything in it, in one txn, if the namespace is still at
    /// revision `expected`.
    pub async fn delete_namespace_tree(&self, ns: &str, expected: i64) -> ApiResult<i64> {
        let key = namespace_key(ns);
        let mut success = Vec::new();
        for r in registry::RESOURCES.iter().filter(|r| r.namespaced) {
            let p = r.list_prefix(Some(ns));
            success.push(RequestOp::DeleteRange(DeleteRangeRequest {
                key: p.as_bytes().to_vec(),
                range_end: prefix_end(p.as_bytes()),
                ..Default::default()
            }));
        }
        success.push(RequestOp::DeleteRange(DeleteRangeRequest {
            key: key.clone().into_bytes(),
            ..Default::default()
        }));
        let (rev, result) = self
            .write(WriteOp::Txn(TxnRequest {
                compare: vec![cmp(&key, CompareResult::Equal, CompareTarget::Mod(expected))],
                success,
                failure: vec![get_op(&key)],
            }))
            .await?;
        if succeeded(&result) {
            return Ok(rev);
        }
        match ranges(&result).into_iter().next().flatten() {
            Some(_) => Err(ApiError::stale("", "namespaces", ns)),
            None => Err(ApiError::not_found("", "namespaces", ns)),
        }
    }

    /// Puts a value unconditionally if the key is absent (bootstrap objects); true if written.
    pub async fn put_if_absent(&self, key: &str, value: Vec<u8>) -> ApiResult<bool> {
        let (_, result) = self
            .write(WriteOp::Txn(TxnRequest {
                compare: vec![cmp(key, CompareResult::Equal, CompareTarget::Create(0))],
                success: vec![RequestOp::Put(PutRequest {
                    key: key.as_bytes().to_vec(),
                    value,
                    ..Default::default()
                })],
                failure: vec![],
            }))
            .await?;
        Ok(succeeded(&result))
    }

    /// Deletes `key` if it still holds `value` (a reservation released by its owner only).
    pub async fn delete_if_value(&self, key: &str, value: &[u8]) -> ApiResult<bool> {
        let (_, result) = self
            .write(WriteOp::Txn(TxnRequest {
                compare: vec![cmp(key, CompareResult::Equal, CompareTarget::Value(value.to_vec()))],
                success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                    key: key.as_bytes().to_vec(),
                    ..Default::default()
                })],
                failure: vec![],
            }))
            .await?;
        Ok(succeeded(&result))
    }

    /// The raw value at `key` (linearizable).
    pub async fn get_raw(&self, key: &str) -> ApiResult<Option<Vec<u8>>> {
        let (_, resp) = self
            .store
            .range(RangeRequest {
                key: key.as_bytes().to_vec(),
                ..Default::default()
            })
            .await?;
        Ok(resp.kvs.into_iter().next().map(|kv| kv.value))
    }
}

fn key_of(k: &[u8]) -> String {
    String::from_utf8_lossy(k).into_owned()
}

/// The name part of a stored key under `prefix`, e.g. `ns/name` or `name`.
pub fn name_in_key<'a>(key: &'a str, prefix: &str) -> &'a str {
    key.strip_prefix(prefix).unwrap_or(key)
}

/// Sets the type fields and resourceVersion on a stored object for a response.
pub fn for_response(res: &Resource, s: &Stored) -> Value {
    let mut o = s.obj.clone();
    meta::stamp_read(&mut o, res, s.rv);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b".to_vec());
        assert_eq!(prefix_end(&[0xff]), vec![0]);
    }

    #[test]
    fn stored_values_never_carry_a_resource_version() {
        let v = encode(&serde_json::json!({"metadata": {"name": "a", "resourceVersion": "9"}})).expect("encode");
        let back: Value = serde_json::from_slice(&v).expect("json");
        assert!(back["metadata"].get("resourceVersion").is_none());
    }
}
