//! Kubernetes' channel protocol for exec over WebSocket (pure): `v5.channel.k8s.io` and
//! `v4.channel.k8s.io`, as client-go's remotecommand speaks them.
//!
//! Every binary message starts with a stream id: 0 stdin (client to server), 1 stdout, 2
//! stderr, 3 error (the server's final `metav1.Status`, JSON), 4 resize (client to server,
//! `{"Width":w,"Height":h}`). v5 adds 255, "close": `[255, id]` ends stream `id`, which is how a
//! client says its stdin reached EOF (v4 has no way to). Older protocols (v1-v3, where the error
//! stream is plain text) and the base64 variants are not offered.

use serde::Deserialize;
use serde_json::{json, Value};

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

/// The protocol to answer with, from a `Sec-WebSocket-Protocol` header (a comma-separated list,
/// possibly in several headers): v5 if offered, else v4.
pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
    let offered: Vec<String> = offered
        .into_iter()
        .flat_map(|h| h.split(','))
        .map(|p| p.trim().to_string())
        .collect();
    [V5, V4].into_iter().find(|p| offered.iter().any(|o| o == p))
}

/// What a client's message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Stdin(Vec<u8>),
    /// The client's stdin reached EOF (v5 only).
    CloseStdin,
    Resize {
        width: u16,
        height: u16,
    },
    /// Nothing to do: an empty message, or one for a stream the client does not write.
    Ignore,
}

#[derive(Deserialize)]
struct Size {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

/// Reads one binary message from the client; `Err` says why it is malformed.
pub fn decode(protocol: &str, msg: &[u8]) -> Result<Inbound, String> {
    let Some((&id, payload)) = msg.split_first() else {
        return Ok(Inbound::Ignore);
    };
    match id {
        STDIN if payload.is_empty() => Ok(Inbound::Ignore),
        STDIN => Ok(Inbound::Stdin(payload.to_vec())),
        RESIZE => {
            let s: Size = serde_json::from_slice(payload).map_err(|e| format!("resize message: {e}"))?;
            Ok(Inbound::Resize {
                width: s.width,
                height: s.height,
            })
        }
        CLOSE if protocol == V5 => match payload.first() {
            Some(&STDIN) => Ok(Inbound::CloseStdin),
            Some(_) => Ok(Inbound::Ignore),
            None => Err("close message without a stream id".to_string()),
        },
        STDOUT | STDERR | ERROR => Ok(Inbound::Ignore),
        other => Err(format!("unknown stream {other}")),
    }
}

/// A message carrying `data` on stream `id`.
pub fn frame(id: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(id);
    out.extend_from_slice(data);
    out
}

/// How an exec ended, for the error stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    /// The command could not be started (libcontainer's reason), or the exec failed otherwise.
    Failed(String),
}

/// The `metav1.Status` kubelet writes on the error stream: Success, `NonZeroExitCode` with the
/// code as an `ExitCode` cause (kubectl exits with it), or an internal error.
pub fn status(command: &[String], outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Exited(0) => json!({"metadata": {}, "status": "Success"}),
        Outcome::Exited(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                command.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Failed(why) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: error executing command in container: {why}"),
            "reason": "InternalError",
            "code": 500,
            "details": {"causes": [{"message": why}]},
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v5_preferred_then_v4_and_nothing_older() {
        assert_eq!(
            negotiate(["v4.channel.k8s.io, v5.channel.k8s.io", "channel.k8s.io"]),
            Some(V5)
        );
        assert_eq!(negotiate(["v4.channel.k8s.io,v3.channel.k8s.io"]), Some(V4));
        assert_eq!(negotiate(["v3.channel.k8s.io", "base64.channel.k8s.io"]), None);
        assert_eq!(negotiate(Vec::<&str>::new()), None);
    }

    #[test]
    fn client_messages() {
        assert_eq!(decode(V5, b"\x00hi\n"), Ok(Inbound::Stdin(b"hi\n".to_vec())));
        assert_eq!(decode(V5, b"\x00"), Ok(Inbound::Ignore));
        assert_eq!(decode(V5, b""), Ok(Inbound::Ignore));
        assert_eq!(
            decode(V5, b"\x04{\"Width\":120,\"Height\":40}"),
            Ok(Inbound::Resize { width: 120, height: 40 })
        );
        assert_eq!(decode(V5, &[255, 0]), Ok(Inbound::CloseStdin));
        assert_eq!(decode(V5, &[255, 1]), Ok(Inbound::Ignore));
        // v4 has no close stream: 255 is unknown there.
        assert!(decode(V4, &[255, 0]).is_err());
        assert!(decode(V5, &[255]).is_err());
        assert!(decode(V5, b"\x04{\"Width\":-1}").unwrap_err().contains("resize"));
        assert!(decode(V5, b"\x07x").unwrap_err().contains("stream 7"));
    }

    #[test]
    fn frames_carry_their_stream_first() {
        assert_eq!(frame(STDOUT, b"ok"), b"\x01ok");
        assert_eq!(frame(ERROR, b""), b"\x03");
    }

    #[test]
    fn exit_codes_reach_kubectl_as_exit_code_causes() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(status(&cmd, &Outcome::Exited(0))["status"], "Success");
        let s = status(&cmd, &Outcome::Exited(3));
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert!(s["message"].as_str().unwrap().contains("[sh -c exit 3]"));
        let s = status(&cmd, &Outcome::Failed("executable file not found".into()));
        assert_eq!(s["reason"], "InternalError");
        assert!(s["message"].as_str().unwrap().contains("executable file not found"));
    }
}
