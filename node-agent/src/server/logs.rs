//! `GET /containerLogs/...`: which file holds a container's logs, and streaming it.
//!
//! A pod worker writes each run of a container to `<pod dir>/logs/<container>/<restart>.log`
//! and keeps the files until the pod is deleted, so the current run is the highest number and
//! `previous` the one below it. A follower stops when the client goes away, when the agent
//! stops, or once its run is over (no live container of that name, or a newer run's file
//! exists) and the file is drained: [`read_logs`] finishes the file after its stop future.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::body::{ChannelWriter, ResponseBody};
use super::route::{LogRequest, Rejection};
use super::PodIndex;
use crate::logs::read_logs;

/// How often a follower checks whether its container is still running.
const LIVENESS_POLL: Duration = Duration::from_secs(1);

/// Whether a container whose id starts with the given prefix (`<uid>_<name>_`) is still alive
/// (created or running). An unknown answer (the runtime did not reply) must be `true`.
pub type RunningFn = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// What the log handler needs of the agent.
#[derive(Clone)]
pub struct LogSource {
    pub pods: PodIndex,
    pub pods_dir: PathBuf,
    pub running: RunningFn,
    pub stop: CancellationToken,
}

/// The runs of a container that have a log file, oldest first.
fn runs(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut out: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name();
                    let n = name.to_str()?.strip_suffix(".log")?.parse().ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The file to read: the last run, or with `previous` the one before it.
fn pick(runs: &[(u32, PathBuf)], req: &LogRequest) -> Result<(u32, PathBuf), Rejection> {
    let found = if req.previous {
        runs.len().checked_sub(2).and_then(|i| runs.get(i))
    } else {
        runs.last()
    };
    found.cloned().ok_or_else(|| {
        Rejection::bad_request(if req.previous {
            format!(
                "previous terminated container {:?} in pod {:?} not found",
                req.container, req.pod
            )
        } else {
            format!("container {:?} in pod {:?} is waiting to start", req.container, req.pod)
        })
    })
}

/// Starts streaming the requested logs; the body carries them as they are read.
pub fn serve(src: &LogSource, req: LogRequest) -> Result<ResponseBody, Rejection> {
    let pod = src
        .pods
        .get(&req.namespace, &req.pod)
        .ok_or_else(|| Rejection::not_found(format!("pod {}/{} is not on this node", req.namespace, req.pod)))?;
    if !pod.containers.contains(&req.container) {
        return Err(Rejection::not_found(format!(
            "container {:?} is not in pod {}/{}",
            req.container, req.namespace, req.pod
        )));
    }
    let dir = src.pods_dir.join(&pod.uid).join("logs").join(&req.container);
    let (run, path) = pick(&runs(&dir), &req)?;
    let (mut writer, body) = ChannelWriter::new();
    let client_gone = writer.closed();
    let agent_stops = src.stop.clone();
    // A previous run is over: read it to its end. The current one may still be writing.
    let live = (!req.previous).then(|| {
        let running = src.running.clone();
        let prefix = format!("{}_{}_", pod.uid, req.container);
        async move {
            loop {
                tokio::time::sleep(LIVENESS_POLL).await;
                if runs(&dir).last().is_some_and(|(n, _)| *n > run) || !running(prefix.clone()).await {
                    return;
                }
            }
        }
    });
    tokio::spawn(async move {
        let over = async move {
            if let Some(live) = live {
                live.await;
            }
        };
        let stop = async move {
            tokio::select! {
                _ = client_gone => {}
                _ = agent_stops.cancelled() => {}
                _ = over => {}
            }
        };
        if let Err(e) = read_logs(&path, &req.opts, &mut writer, stop).await {
            tracing::debug!(path = %path.display(), error = %e, "log stream ended");
        }
    });
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::LogOptions;
    use hyper::body::Body;
    use std::future::poll_fn;

    fn req(container: &str, previous: bool, follow: bool) -> LogRequest {
        LogRequest {
            namespace: "default".into(),
            pod: "web".into(),
            container: container.into(),
            previous,
            opts: LogOptions {
                follow,
                poll_interval: Duration::from_millis(10),
                ..LogOptions::default()
            },
        }
    }

    fn source(dir: &Path, running: bool) -> LogSource {
        let pods = PodIndex::default();
        pods.insert("default", "web", "uid1", vec!["app".into(), "side".into()]);
        LogSource {
            pods,
            pods_dir: dir.to_path_buf(),
            running: Arc::new(move |_| Box::pin(async move { running })),
            stop: CancellationToken::new(),
        }
    }

    fn write_run(dir: &Path, run: u32, lines: &[&str]) {
        let d = dir.join("uid1/logs/app");
        std::fs::create_dir_all(&d).unwrap();
        let text: String = lines
            .iter()
            .map(|l| format!("2025-01-01T00:00:00.000000000Z stdout F {l}\n"))
            .collect();
        std::fs::write(d.join(format!("{run}.log")), text).unwrap();
    }

    async fn collect(mut body: ResponseBody) -> String {
        let mut out = Vec::new();
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            if let Ok(data) = frame.unwrap().into_data() {
                out.extend_from_slice(&data);
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn current_and_previous_runs() {
        let tmp = tempfile::tempdir().unwrap();
        write_run(tmp.path(), 0, &["first run"]);
        write_run(tmp.path(), 1, &["second run"]);
        let src = source(tmp.path(), false);
        assert_eq!(
            collect(serve(&src, req("app", false, false)).unwrap()).await,
            "second run\n"
        );
        assert_eq!(
            collect(serve(&src, req("app", true, false)).unwrap()).await,
            "first run\n"
        );
    }

    #[tokio::test]
    async fn unknown_pod_or_container_is_404_and_no_file_is_400() {
        let tmp = tempfile::tempdir().unwrap();
        let src = source(tmp.path(), true);
        let mut other = req("app", false, false);
        other.pod = "nosuch".into();
        assert_eq!(serve(&src, other).err().map(|e| e.status), Some(404));
        assert_eq!(
            serve(&src, req("nosuch", false, false)).err().map(|e| e.status),
            Some(404)
        );
        let e = serve(&src, req("side", false, false)).err().unwrap();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("waiting to start"), "{}", e.message);
        write_run(tmp.path(), 0, &["only run"]);
        let e = serve(&src, req("app", true, false)).err().unwrap();
        assert!(e.message.contains("previous terminated container"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_follower_ends_when_its_container_has_ended_and_the_file_is_drained() {
        let tmp = tempfile::tempdir().unwrap();
        write_run(tmp.path(), 0, &["a", "b"]);
        let src = source(tmp.path(), false);
        let out = tokio::time::timeout(
            Duration::from_secs(10),
            collect(serve(&src, req("app", false, true)).unwrap()),
        )
        .await
        .expect("the follower must end");
        assert_eq!(out, "a\nb\n");
    }
}
