//! Tests of [`read_logs`] against files made by [`LogWriter`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{TimeZone, Utc};

use super::*;
use crate::logs::{rotated_files, LogWriter, LogWriterConfig};

fn t(sec: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + sec, 0).unwrap()
}

/// A log with stdout lines a..e at t=0..4, one stderr line at t=2 and a split line at t=5.
fn sample(dir: &Path) -> PathBuf {
    let path = dir.join("0.log");
    let mut w = LogWriter::open_with(
        &path,
        LogWriterConfig {
            max_line: 4,
            ..Default::default()
        },
    )
    .unwrap();
    for (i, s) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        w.write_at(Stream::Stdout, format!("{s}\n").as_bytes(), t(i as i64))
            .unwrap();
        if i == 2 {
            w.write_at(Stream::Stderr, b"err\n", t(2)).unwrap();
        }
    }
    w.write_at(Stream::Stdout, b"0123456789\n", t(5)).unwrap();
    path
}

async fn read(path: &Path, opts: LogOptions) -> String {
    let mut out = Vec::new();
    read_logs(path, &opts, &mut out, std::future::pending()).await.unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn whole_file_joins_fragments() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    assert_eq!(
        read(&path, LogOptions::default()).await,
        "a\nb\nc\nerr\nd\ne\n0123456789\n"
    );
}

#[tokio::test]
async fn timestamps_prefix_each_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let got = read(
        &path,
        LogOptions {
            timestamps: true,
            tail_lines: Some(1),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got, "2023-11-14T22:13:25.000000000Z 0123456789\n");
}

#[tokio::test]
async fn tail_since_streams_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    assert_eq!(
        read(
            &path,
            LogOptions {
                tail_lines: Some(3),
                ..Default::default()
            }
        )
        .await,
        "d\ne\n0123456789\n"
    );
    assert_eq!(
        read(
            &path,
            LogOptions {
                tail_lines: Some(0),
                ..Default::default()
            }
        )
        .await,
        ""
    );
    assert_eq!(
        read(
            &path,
            LogOptions {
                tail_lines: Some(100),
                ..Default::default()
            }
        )
        .await
        .lines()
        .count(),
        7
    );
    assert_eq!(
        read(
            &path,
            LogOptions {
                since: Some(t(3)),
                ..Default::default()
            }
        )
        .await,
        "d\ne\n0123456789\n"
    );
    let stderr = LogOptions {
        streams: StreamFilter::Stderr,
        ..Default::default()
    };
    assert_eq!(read(&path, stderr).await, "err\n");
    let tail_stdout = LogOptions {
        streams: StreamFilter::Stdout,
        tail_lines: Some(2),
        ..Default::default()
    };
    assert_eq!(read(&path, tail_stdout).await, "e\n0123456789\n");
    assert_eq!(
        read(
            &path,
            LogOptions {
                limit_bytes: Some(5),
                ..Default::default()
            }
        )
        .await,
        "a\nb\nc"
    );
}

#[tokio::test]
async fn skips_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    std::fs::write(
        &path,
        "junk\n2023-11-14T22:13:20Z stdout F ok\n2023-11-14T22:13:20Z stdout F no-newline-yet",
    )
    .unwrap();
    assert_eq!(read(&path, LogOptions::default()).await, "ok\n");
}

async fn read_until(client: &mut tokio::io::DuplexStream, got: &mut Vec<u8>, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(got).contains(want) {
        let mut b = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, client.read(&mut b))
            .await
            .expect("timed out")
            .unwrap();
        got.extend_from_slice(&b[..n]);
    }
}

#[tokio::test]
async fn follow_sees_appends_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let config = LogWriterConfig {
        max_size: 300,
        max_files: 2,
        max_line: 1024,
    };
    let mut w = LogWriter::open_with(&path, config).unwrap();
    w.write(Stream::Stdout, b"before\n").unwrap();

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (mut client, mut server) = tokio::io::duplex(1 << 20);
    let reader_path = path.clone();
    let reader = tokio::spawn(async move {
        let opts = LogOptions {
            follow: true,
            poll_interval: Duration::from_millis(5),
            ..Default::default()
        };
        read_logs(&reader_path, &opts, &mut server, async {
            let _ = stop_rx.await;
        })
        .await
    });

    let mut got = Vec::new();
    read_until(&mut client, &mut got, "before\n").await;
    w.write(Stream::Stdout, b"par").unwrap();
    w.flush().unwrap();
    w.write(Stream::Stdout, b"tial\n").unwrap();
    read_until(&mut client, &mut got, "partial\n").await;
    // Enough lines to rotate several times while the reader follows.
    for i in 0..30 {
        w.write(Stream::Stderr, format!("rotating line {i:02}\n").as_bytes())
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    read_until(&mut client, &mut got, "rotating line 29\n").await;
    stop_tx.send(()).unwrap();
    reader.await.unwrap().unwrap();
    let text = String::from_utf8(got).unwrap();
    let expected: String = ["before\n".to_string(), "partial\n".to_string()]
        .into_iter()
        .chain((0..30).map(|i| format!("rotating line {i:02}\n")))
        .collect();
    assert_eq!(text, expected, "every line exactly once, in order, across rotations");
    assert!(!rotated_files(&path).unwrap().is_empty());
}
