//! The client library: files, record append, writes, reads and a record
//! reader, over one client actor hosted in this process.
//!
//! The protocol decisions (whom to ask, where to push, when to retry,
//! which replica to read) are the client actor's ([0093]–[00109]); this
//! library submits operations to it (`Msg::Submit`) and waits for its
//! answer (`Msg::Done`). What the library adds is what an application
//! needs around the protocol:
//!
//! - record framing (magic, length, CRC32C, unique id; see [`crate::record`])
//!   and the reader that skips padding, partial records and duplicates
//!   (`records.rs`);
//! - splitting writes and reads at chunk boundaries (`write.rs`, `read.rs`);
//! - a deadline on every operation, so nothing hangs (`submit.rs`, the one
//!   place that waits for the actor). Retries are the actor's: it retries
//!   a transient failure (no lease yet, a replica down) with backoff, with
//!   a budget that outlasts the default deadline; at-least-once append
//!   allows it, and the reader drops the duplicates it may leave.
//!
//! Starting the actor is `connect.rs`; what the library learns by watching
//! the actor's messages rather than from its answers (push times, the
//! failures replicas answered a read with) is `observe.rs`; the operations
//! only the master answers (open, create, stat) are `files.rs`; what a
//! caller can get wrong or meet is `error.rs`.
//!
//! Concurrency: a [`Client`] is `Clone` and may be used from several tasks
//! at once. It keeps up to its window of operations in flight (one by
//! default; [`Client::connect_with_window`]), each on a client actor of its
//! own (`lanes.rs`), so concurrent `record_append`s overlap: one's push with
//! another's commit. Beyond the window, callers wait their turn.

use leasehold_model::types::FileId;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod connect;
mod error;
mod files;
mod lanes;
mod observe;
mod read;
mod records;
mod submit;
mod write;

pub use connect::{op_timeout_default, APP_ID, OP_TIMEOUT_MARGIN};
pub use error::{ClientError, Result};
pub use files::{ChunkStat, FileInfo, FileStat};
pub use observe::PushStats;
pub use read::READ_PIECE_BYTES_MAX;
pub use records::{Appended, Record, RecordReader};
pub use write::{WRITE_NEW_CHUNKS_MAX, WRITE_PIECE_BYTES_MAX};

use lanes::Lanes;

/// A client of one cluster: client actors in this process (one per
/// operation in flight, up to its window), each under an id it drew when it
/// started.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    /// The first lane's actor id, which names the client.
    id: u64,
    chunk_bytes: u64,
    lanes: Lanes,
    files: Mutex<HashMap<String, FileId>>,
    next_record: AtomicU64,
    op_timeout: Duration,
}

impl Client {
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// How many operations this client keeps in flight at most.
    pub fn window(&self) -> usize {
        self.inner.lanes.window()
    }

    /// How many client actors this client has started so far: one more
    /// each time an operation found all of them busy, up to the window.
    pub fn actors_started(&self) -> usize {
        self.inner.lanes.started()
    }

    pub fn chunk_bytes(&self) -> u64 {
        self.inner.chunk_bytes
    }
}
