//! etcd's Watch service: one bidirectional stream carries many watchers. Requests are handled
//! in order by one task per stream; every response (created, events, progress, canceled) goes
//! through one bounded channel, so a client that stops reading slows only its own stream (its
//! watchers drop to the hub's unsynced group) and never the store.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use prost::Message;
use proto::etcdserverpb as pb;
use proto::etcdserverpb::watch_server::Watch;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use crate::handle::StoreHandle;
use crate::handle_types::Header;
use crate::watch::{WatchMsg, WatchStream};

/// Messages buffered per stream before its watchers fall behind (etcd's `chanBufLen`).
const STREAM_BUFFER: usize = 128;

/// A response larger than this is split when the watcher asked for fragments (etcd's max
/// request bytes plus gRPC overhead).
const FRAGMENT_BYTES: usize = 2 * 1024 * 1024;

pub struct WatchService {
    pub handle: StoreHandle,
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ResponseStream;

    async fn watch(&self, request: Request<Streaming<pb::WatchRequest>>) -> Result<Response<ResponseStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let stream = self.handle.watch_hub().open_stream(tx.clone());
        tokio::spawn(serve_requests(inbound, stream, tx));
        let handle = self.handle.clone();
        let out = ReceiverStream::new(rx)
            .flat_map(move |msg| futures::stream::iter(responses(msg, handle.header()).into_iter().map(Ok)));
        Ok(Response::new(Box::pin(out)))
    }
}

/// Handles one stream's requests until the client ends it or stops listening; then the
/// stream's watchers are removed (dropping `stream`) and the response stream ends.
async fn serve_requests(mut inbound: Streaming<pb::WatchRequest>, stream: WatchStream, tx: mpsc::Sender<WatchMsg>) {
    use pb::watch_request::RequestUnion;
    loop {
        let req = tokio::select! {
            _ = tx.closed() => break,
            m = inbound.message() => match m {
                Ok(Some(req)) => req,
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(%status, "watch stream receive failed");
                    break;
                }
            },
        };
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => {
                let (watch_id, spec) = convert::watch_create(c);
                // Reserve the slot for the created response before registering, so it
                // precedes the watcher's events.
                let Ok(permit) = tx.reserve().await else {
                    break;
                };
                if let Err(e) = stream.watch(permit, watch_id, spec) {
                    tracing::debug!(error = %e, watch_id, "watch create refused");
                }
            }
            Some(RequestUnion::CancelRequest(c)) => {
                // etcd answers only cancels of watchers that exist.
                if let Some(revision) = stream.cancel(c.watch_id) {
                    let msg = WatchMsg::Canceled {
                        watch_id: c.watch_id,
                        revision,
                        compact_revision: 0,
                        reason: String::new(),
                    };
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                }
            }
            Some(RequestUnion::ProgressRequest(_)) => stream.request_progress(),
            None => {}
        }
    }
    drop(stream);
}

/// The responses for one hub message: usually one; several fragments when the watcher asked
/// for them and the message is too large.
fn responses(msg: WatchMsg, h: Header) -> Vec<pb::WatchResponse> {
    let fragment = matches!(msg, WatchMsg::Events { fragment: true, .. });
    let resp = convert::watch_response(msg, h);
    if fragment {
        fragments(resp, FRAGMENT_BYTES)
    } else {
        vec![resp]
    }
}

/// Splits a response's events over responses of at most `max` bytes (each holding at least
/// one event); all but the last have `fragment` set, as etcd's `sendFragments` does.
fn fragments(mut resp: pb::WatchResponse, max: usize) -> Vec<pb::WatchResponse> {
    if resp.encoded_len() < max || resp.events.len() < 2 {
        return vec![resp];
    }
    let events = std::mem::take(&mut resp.events);
    let base = resp.encoded_len();
    let mut out: Vec<pb::WatchResponse> = Vec::new();
    let mut cur = Vec::new();
    let mut size = base;
    for ev in events {
        let n = ev.encoded_len() + 8;
        if !cur.is_empty() && size + n >= max {
            out.push(pb::WatchResponse {
                events: std::mem::take(&mut cur),
                fragment: true,
                ..resp.clone()
            });
            size = base;
        }
        size += n;
        cur.push(ev);
    }
    out.push(pb::WatchResponse {
        events: cur,
        fragment: false,
        ..resp
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::mvccpb;

    fn ev(n: usize) -> mvccpb::Event {
        mvccpb::Event {
            r#type: 0,
            kv: Some(mvccpb::KeyValue {
                key: b"k".to_vec(),
                value: vec![1; n],
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    #[test]
    fn small_responses_are_not_fragmented() {
        let r = pb::WatchResponse {
            events: vec![ev(10), ev(10)],
            ..Default::default()
        };
        let out = fragments(r, 1000);
        assert_eq!(out.len(), 1);
        assert!(!out[0].fragment);
    }

    #[test]
    fn large_responses_are_split_in_order() {
        let r = pb::WatchResponse {
            watch_id: 3,
            events: (0..10).map(|_| ev(300)).collect(),
            ..Default::default()
        };
        let out = fragments(r, 1000);
        assert!(out.len() > 1);
        assert!(out[..out.len() - 1].iter().all(|f| f.fragment && f.watch_id == 3));
        assert!(!out[out.len() - 1].fragment);
        assert_eq!(out.iter().map(|f| f.events.len()).sum::<usize>(), 10);
        assert!(out.iter().all(|f| f.encoded_len() < 1000));
    }
}
