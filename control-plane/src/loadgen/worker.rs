//! One client's view of a workload: which request op `n` is, on which object.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::Workload;
use super::conn::Conn;
use super::error::OpError;
use super::objects;
use super::op_kind::OpKind;
use super::ops;

/// What every worker of a run shares.
#[derive(Clone)]
pub struct Shared {
    pub workload: Workload,
    pub namespace: Arc<str>,
    /// Pre-populated pods (get and list).
    pub objects: u64,
    /// Names of objects written in this run start with it.
    pub run_prefix: Arc<str>,
    /// Timestamps in configmaps are nanoseconds since this instant.
    pub base: Instant,
    /// resourceVersions of acknowledged configmap writes (watch workload only).
    pub acked: Option<Arc<Mutex<Vec<i64>>>>,
}

/// A completed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    pub kind: OpKind,
    /// Items a whole list returned.
    pub items: Option<u64>,
}

impl From<OpKind> for Done {
    fn from(kind: OpKind) -> Self {
        Done { kind, items: None }
    }
}

pub struct Worker {
    conn: Conn,
    rng: StdRng,
    shared: Shared,
}

impl Worker {
    pub fn new(conn: Conn, seed: u64, shared: Shared) -> Self {
        Worker {
            conn,
            rng: StdRng::seed_from_u64(seed),
            shared,
        }
    }

    /// Drops the connection (after a timeout: the abandoned exchange may still hold it).
    pub fn reset(&mut self) {
        self.conn.reset();
    }

    pub async fn op(&mut self, n: u64) -> Result<Done, OpError> {
        let ns = self.shared.namespace.clone();
        let result = match self.shared.workload {
            Workload::Create => {
                let name = format!("{}{n}", self.shared.run_prefix);
                ops::create_pod(&mut self.conn, &ns, &name, false)
                    .await
                    .map(|()| OpKind::Create.into())
            }
            Workload::Get => {
                let i = self.rng.gen_range(0..self.shared.objects.max(1));
                ops::get_pod(&mut self.conn, &ns, &objects::pop_name(i))
                    .await
                    .map(|()| OpKind::Get.into())
            }
            Workload::List => match ops::list_pods(&mut self.conn, &ns).await {
                Ok((names, _pages)) => objects::check_list(&names, self.shared.objects)
                    .map(|()| Done {
                        kind: OpKind::List,
                        items: Some(names.len() as u64),
                    })
                    .map_err(OpError::Check),
                Err(e) => Err(e),
            },
            Workload::Watch => self.timestamped_write(&ns, n).await,
        };
        if matches!(&result, Err(e) if e.breaks_connection()) {
            self.conn.reset();
        }
        result
    }

    /// A configmap whose data carries the send time, for the watchers to compute
    /// write-to-event latency; its resourceVersion joins the acknowledged set.
    async fn timestamped_write(&mut self, ns: &str, n: u64) -> Result<Done, OpError> {
        let name = format!("{}{n}", self.shared.run_prefix);
        let sent = u64::try_from(self.shared.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let rv = ops::create_configmap(&mut self.conn, ns, &name, sent).await?;
        if let Some(acked) = &self.shared.acked {
            acked.lock().push(rv);
        }
        Ok(OpKind::Write.into())
    }
}
