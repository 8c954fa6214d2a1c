//! skiff's control plane: the Kubernetes API server over skiff's replicated store.
//!
//! A request reaches `api` over HTTPS (`tls`: client certificates from the cluster CA in `pki`,
//! or bearer tokens), is parsed into a resource `Target`, and runs a verb: objects are decoded
//! through their k8s-openapi type (`typed`), get Kubernetes' metadata rules (`meta`), defaults
//! (`defaults`) and validation (`validate`), and are stored as JSON under Kubernetes' etcd key
//! layout with resourceVersion = the key's mod_revision (`storage`). Watches are store watches
//! on the resource's prefix.
//!
//! # Layout
//! - `registry`: the served resources (names, scope, subresources, store prefix).
//! - `api/`: router and verbs (`read`, `write`, `delete`, `watch`, `subresource`, `logs`), request
//!   parsing (`request`), bodies (`body`), Prometheus metrics (`metrics`).
//! - `storage`: objects in the store, one txn per write.
//! - `meta`, `defaults`, `validate`, `typed`: the object pipeline, pure functions.
//! - `selector`: label and field selectors. `patch`: JSON, merge and strategic merge patches.
//! - `discovery`, `openapi`, `table`: what kubectl reads besides objects.
//! - `auth/`: authorization (RBAC over a watch-fed cache, impersonation, access reviews).
//! - `admission/`: the admission chain (namespace lifecycle, tolerations, limits, quota, pod
//!   security).
//! - `audit`: the audit log (policy, JSON lines).
//! - `csr`: bootstrap tokens and the CSR API's approver and signer (node credentials).
//! - `informer`: watch-fed local copies of a resource.
//! - `kubelet`: the API server's client for node agents (pods/log), with its own certificate.
//! - `serviceaccount`: service accounts' signing key, TokenRequest, namespace defaults.
//! - `pki`, `tls`: the cluster CA, certificates, kubeconfigs, HTTPS serving and authentication.
//! - `leader`: the leader-only runner (scheduler, controllers), writes fenced by the Raft term.
//! - `scheduler/`: kube-scheduler's framework, plugins, queue and preemption.
//! - `controllers/`: ReplicaSet and Deployment controllers, garbage collection of their dependents.
//! - `binding`: a pod's binding to a node (pods/binding and the scheduler).
//! - `server`: start-up on a master (CA adoption, system namespaces, serving).
//! - `master_endpoints`: the `kubernetes` service and its endpoints (the API servers).
//! - `error`: `metav1.Status` errors.

// `ApiError` carries the whole `metav1.Status` (details, causes) by value: it is built once per
// failed request, so its size costs nothing that matters, and boxing it would only add noise.
#![allow(clippy::result_large_err)]

pub mod admission;
pub mod api;
pub mod audit;
pub mod auth;
pub mod binding;
pub mod controllers;
pub mod csr;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod informer;
pub mod kubelet;
pub mod leader;
pub mod loadgen;
pub mod master_endpoints;
pub mod meta;
pub mod openapi;
pub mod patch;
pub mod pki;
pub mod protobuf;
pub mod registry;
pub mod scheduler;
pub mod selector;
pub mod server;
pub mod serviceaccount;
pub mod storage;
pub mod table;
pub mod tls;
pub mod typed;
pub mod validate;

pub use server::{kubeconfig_for, start, start_leader_components, ApiConfig};
