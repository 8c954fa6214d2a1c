//! openraft glue: the type configuration, the RocksDB log store, the state machine over the
//! MVCC keyspace, and the gRPC network between members.
//!
//! # Layout
//! - `types`: `TypeConfig`, `MemberNode`, `Command`, `CommandResponse`.
//! - `log_store`: `RocksLogStore` (entries, vote, committed; synced appends; checksummed).
//! - `state_machine`: `StateMachine` (applied id + membership + keyspace in one batch; snapshots).
//! - `network`: `GrpcNetwork`, the client side of member-to-member RPC.
//! - `db`: opening the data directory's RocksDB with its column families.

pub mod db;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod types;

pub use types::*;
