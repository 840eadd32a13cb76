//! What a caller of the client library can get wrong or meet: one error
//! type that every operation returns, kept in a file of its own so that
//! its messages (a path cut short, each replica's report) are shaped once.

use leasehold_model::msg::Failure;

use crate::nodes::NodeError;

/// What can go wrong for a caller of the client library.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "record of {data_bytes} bytes is {framed_bytes} bytes with its framing, more than a \
         quarter chunk ({max_bytes} bytes, [00104]); nothing was sent"
    )]
    RecordTooLarge {
        data_bytes: u64,
        framed_bytes: u64,
        max_bytes: u64,
    },
    #[error("no such file: {0}")]
    NoSuchFile(String),
    #[error("a file named {0} exists")]
    FileExists(String),
    #[error("bad path {}: {why}; nothing was sent", shown_path(.path))]
    BadPath { path: String, why: &'static str },
    #[error("{path}: offset {offset} + {len} bytes is past the largest file size")]
    OutOfRange { path: String, offset: u64, len: u64 },
    #[error(
        "{path}: a write at offset {offset} would allocate {chunks} chunks past the file's end; \
         one write allocates at most {most} (WRITE_NEW_CHUNKS_MAX); nothing was sent"
    )]
    TooFarPastEnd {
        path: String,
        offset: u64,
        chunks: u64,
        most: u64,
    },
    #[error(
        "{op} of chunk {index} of {path} failed: {}{}",
        describe_reports(.reports),
        .timed_out_ms.map_or(String::new(), |ms| format!("; no other replica answered within {ms} ms"))
    )]
    ReplicasFailed {
        op: &'static str,
        path: String,
        index: u32,
        /// What each replica that answered said, in the order they did.
        reports: Vec<(u64, Failure)>,
        timed_out_ms: Option<u64>,
    },
    #[error("{op} on {path} failed: {reason}")]
    Failed {
        op: &'static str,
        path: String,
        reason: Failure,
    },
    #[error(
        "{op} on {path} timed out after {ms} ms: is the cluster running, and does this \
         client's config match it?"
    )]
    Timeout {
        op: &'static str,
        path: String,
        ms: u64,
    },
    #[error("cannot start client {id}: {source}")]
    Start { id: u64, source: NodeError },
    #[error("the cluster config has no client place {0} (a node with role = \"client\")")]
    NotAClient(u64),
    #[error("the client has shut down")]
    Closed,
    #[error("a client needs a window of at least one operation in flight")]
    NoWindow,
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

fn describe_reports(reports: &[(u64, Failure)]) -> String {
    let each: Vec<String> = reports
        .iter()
        .map(|(replica, reason)| format!("chunkserver {replica}: {reason}"))
        .collect();
    each.join("; ")
}

/// A path for an error message: quoted, and cut short if it is long (a
/// refused path may be megabytes).
fn shown_path(path: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 64;
    let mut shown: String = path.chars().take(SHOWN_CHARS_MAX).collect();
    if shown.len() < path.len() {
        shown.push_str(&format!("... ({} bytes)", path.len()));
    }
    format!("{shown:?}")
}
