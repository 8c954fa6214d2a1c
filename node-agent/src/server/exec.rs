//! `/exec/{namespace}/{pod}/{container}`: a command in a running container, its streams over a
//! WebSocket in Kubernetes' channel protocol (see `channel`).
//!
//! The request is checked before the upgrade (a pod or container that is not here, or not
//! running, is a plain 404 or 400 the API server passes on); the command is started after it,
//! so a command that cannot start is reported on the error stream, as kubelet does. The
//! session ends when the command has ended and its output is drained (at most
//! [`DRAIN_GRACE`] after the end: a background process may hold stdout open), or when the
//! client goes away, which kills the command.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::body::ResponseBody;
use super::channel::{self, Inbound, Outcome};
use super::route::{ExecQuery, Rejection};
use super::PodIndex;
use crate::runtime::exec_client::{ExecProcess, Writer};
use crate::runtime::{ExecEnd, ExecRequest, Phase, RuntimeClient};

/// How long output may still come after the command ended.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long a terminal session waits for the client's window size before starting anyway.
const INITIAL_SIZE_WAIT: Duration = Duration::from_millis(500);
/// Largest read from the command's output per message.
const CHUNK: usize = 32 * 1024;

/// What the exec handler needs of the agent.
#[derive(Clone)]
pub struct ExecSource {
    pub pods: PodIndex,
    pub runtime: Arc<RuntimeClient>,
    pub stop: CancellationToken,
}

/// Checks the request, answers the upgrade and runs the session in a task of its own.
pub async fn serve(
    src: &ExecSource,
    q: ExecQuery,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Rejection> {
    let upgrade = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if upgrade.starts_with("spdy") {
        return Err(Rejection::bad_request(
            "exec speaks WebSocket (v5.channel.k8s.io, v4.channel.k8s.io), not SPDY",
        ));
    }
    let key = req.headers().get(SEC_WEBSOCKET_KEY).cloned();
    let (true, Some(key)) = (upgrade == "websocket", key) else {
        return Err(Rejection::bad_request("Upgrade request required (WebSocket)"));
    };
    let protocol = channel::negotiate(
        req.headers()
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
    .ok_or_else(|| Rejection::bad_request("no supported subprotocol: v5.channel.k8s.io or v4.channel.k8s.io"))?;
    let container_id = running_container(src, &q).await?;

    let exec = ExecRequest {
        container_id,
        command: q.command.clone(),
        stdin: q.stdin,
        tty: q.tty,
        size: None,
    };
    let src = src.clone();
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "exec upgrade");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        session(ws, protocol, &src, exec, q).await;
    });

    let mut resp = Response::new(ResponseBody::text(""));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok(resp)
}

/// The running container of that name in that pod (its current attempt).
async fn running_container(src: &ExecSource, q: &ExecQuery) -> Result<String, Rejection> {
    let pod = src
        .pods
        .get(&q.namespace, &q.pod)
        .ok_or_else(|| Rejection::not_found(format!("pod {}/{} is not on this node", q.namespace, q.pod)))?;
    if !pod.containers.contains(&q.container) {
        return Err(Rejection::not_found(format!(
            "container {:?} is not in pod {}/{}",
            q.container, q.namespace, q.pod
        )));
    }
    let prefix = format!("{}_{}_", pod.uid, q.container);
    let all = src.runtime.list().await.map_err(|e| Rejection {
        status: 503,
        message: format!("the container runtime did not answer: {e}"),
    })?;
    all.into_iter()
        .filter(|c| c.id.starts_with(&prefix) && c.phase == Phase::Running)
        .max_by_key(|c| c.created_at)
        .map(|c| c.id)
        .ok_or_else(|| {
            Rejection::bad_request(format!(
                "container {:?} in pod {}/{} is not running",
                q.container, q.namespace, q.pod
            ))
        })
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

async fn session(ws: Ws, protocol: &'static str, src: &ExecSource, mut req: ExecRequest, q: ExecQuery) {
    let (mut tx, mut rx) = ws.split();
    // kubectl sends its window size first thing; a command that asks for it at once must find
    // it set, so a terminal waits for it (briefly: a client may send none).
    let mut early = Vec::new();
    if req.tty {
        let wait = tokio::time::sleep(INITIAL_SIZE_WAIT);
        tokio::pin!(wait);
        while req.size.is_none() {
            tokio::select! {
                m = rx.next() => match m {
                    Some(Ok(Message::Binary(b))) => match channel::decode(protocol, &b) {
                        Ok(Inbound::Resize { width, height }) => req.size = Some((width, height)),
                        Ok(other) => early.push(other),
                        Err(why) => tracing::debug!(%why, "exec: bad message from the client"),
                    },
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => {}
                },
                _ = &mut wait => break,
            }
        }
    }
    let mut exec = match src.runtime.exec(&req).await {
        Ok(e) => e,
        Err(e) => {
            finish(&mut tx, &req.command, &Outcome::Failed(e.to_string())).await;
            return;
        }
    };
    let Some(mut end) = exec.take_end() else { return };
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(8);
    if q.stdout || q.tty {
        if let Some(r) = exec.stdout.take() {
            tokio::spawn(pump(r, channel::STDOUT, out_tx.clone()));
        }
    }
    if q.stderr && !q.tty {
        if let Some(r) = exec.stderr.take() {
            tokio::spawn(pump(r, channel::STDERR, out_tx.clone()));
        }
    }
    drop(out_tx);
    // Output nobody asked for is still read, so the command never blocks on a full pipe.
    for r in [exec.stdout.take(), exec.stderr.take()].into_iter().flatten() {
        tokio::spawn(discard(r));
    }
    let mut stdin = if q.stdin { exec.stdin.take() } else { None };
    for inbound in early {
        apply(inbound, &mut stdin, &mut exec, req.tty).await;
    }
    let mut outcome: Option<Outcome> = None;
    let mut drained = false;
    let grace = tokio::time::sleep(Duration::MAX);
    tokio::pin!(grace);
    loop {
        if drained && outcome.is_some() {
            break;
        }
        tokio::select! {
            m = rx.next() => match m {
                Some(Ok(Message::Binary(b))) => match channel::decode(protocol, &b) {
                    Ok(inbound) => apply(inbound, &mut stdin, &mut exec, req.tty).await,
                    Err(why) => tracing::debug!(%why, "exec: bad message from the client"),
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    // The client left: the command is not left running for nobody.
                    exec.stop();
                    return;
                }
                Some(Ok(_)) => {}
            },
            chunk = out_rx.recv(), if !drained => match chunk {
                Some(frame) => {
                    if tx.send(Message::binary(frame)).await.is_err() {
                        exec.stop();
                        return;
                    }
                }
                None => drained = true,
            },
            e = &mut end, if outcome.is_none() => {
                outcome = Some(match e {
                    Ok(ExecEnd::Exited(code)) => Outcome::Exited(code),
                    Ok(ExecEnd::Failed(why)) => Outcome::Failed(why),
                    Err(_) => Outcome::Failed("the exec helper went away".to_string()),
                });
                grace.as_mut().reset(tokio::time::Instant::now() + DRAIN_GRACE);
            },
            _ = &mut grace, if !drained => drained = true,
            _ = src.stop.cancelled() => {
                exec.stop();
                let _ = tx.send(normal_close()).await;
                return;
            }
        }
    }
    if let Some(o) = outcome {
        finish(&mut tx, &req.command, &o).await;
    }
}

/// Acts on one message from the client: input, its end, a window size.
// `&mut`: an `ExecProcess` is `Send` but not `Sync`, and the session runs on any thread.
async fn apply(inbound: Inbound, stdin: &mut Option<Writer>, exec: &mut ExecProcess, tty: bool) {
    match inbound {
        Inbound::Stdin(data) => {
            if let Some(w) = stdin.as_mut() {
                if w.write_all(&data).await.is_err() || w.flush().await.is_err() {
                    *stdin = None;
                }
            }
        }
        Inbound::CloseStdin => {
            if let Some(mut w) = stdin.take() {
                // A terminal has no end of file of its own: send its EOF character.
                if tty {
                    let _ = w.write_all(&[4]).await;
                    let _ = w.flush().await;
                } else {
                    let _ = w.shutdown().await;
                }
            }
        }
        Inbound::Resize { width, height } => exec.resize(width, height),
        Inbound::Ignore => {}
    }
}

/// Writes the final status on the error stream and closes the WebSocket.
async fn finish<S>(tx: &mut S, command: &[String], outcome: &Outcome)
where
    S: futures::Sink<Message> + Unpin,
{
    let status = channel::status(command, outcome).to_string();
    let _ = tx
        .send(Message::binary(channel::frame(channel::ERROR, status.as_bytes())))
        .await;
    let _ = tx.send(normal_close()).await;
}

/// A close frame with code 1000: client-go reads any other code (or none) as an error.
fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

async fn pump(mut r: crate::runtime::exec_client::Reader, id: u8, out: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if out.send(channel::frame(id, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn discard(mut r: crate::runtime::exec_client::Reader) {
    let mut buf = vec![0u8; CHUNK];
    while matches!(r.read(&mut buf).await, Ok(n) if n > 0) {}
}
