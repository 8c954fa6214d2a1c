//! Pure checkers: they take a history and return a verdict, with no IO.

pub mod linear;
pub mod watch;

use serde::Serialize;

/// A checker's answer. `Unknown` when the search hit its bound: never a hang.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    Invalid { reason: String },
    Unknown { reason: String },
}

impl Verdict {
    pub fn is_valid(&self) -> bool {
        matches!(self, Verdict::Valid)
    }
}
