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
//!   and the reader that skips padding, partial records and duplicates;
//! - splitting writes and reads at chunk boundaries;
//! - a deadline on every operation, so nothing hangs, and resubmission with
//!   backoff when the actor gave up on a transient failure (no lease yet, a
//!   replica down): at-least-once append allows it, and the reader drops
//!   the duplicates it may leave.
//!
//! Concurrency: a [`Client`] is `Clone` and may be used from several tasks,
//! but its one actor runs one operation at a time, so they take turns. For
//! parallel appends give each appender its own client id (its own
//! [`Client`]), as the CLI's `append --workers` does.

use leasehold_model::master::path_problem;
use leasehold_model::msg::{ClientOp, Failure, LeaseInfo, Msg, OpResult};
use leasehold_model::types::{
    ChunkHandle, ChunkVersion, DataId, FileId, LeaseEpoch, Offset, Payload, Stamp,
};
use stateright::actor::Id;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

use crate::config::{ClusterConfig, Role};
use crate::host::{HostError, HostHandle, MsgObserver, Passage, RunningHost};
use crate::nodes::{self, NodeError, RealMsg};
use crate::payload::Bytes;
use crate::record::{self, RECORD_HEADER_BYTES};

/// The id the client actor reports to: the application in this process. It
/// is no node of any cluster (cluster ids are small; `usize::MAX` already
/// means "no primary" in `Located`).
pub const APP_ID: usize = usize::MAX - 1;
/// How long one operation may take, all retries included, beyond the
/// cluster's master lease period (see [`op_timeout_default`]).
pub const OP_TIMEOUT_MARGIN: Duration = Duration::from_secs(15);

/// The default deadline of one operation: a restarted master grants no
/// lease for one full master lease period ([0091]), so a mutation right
/// after a master restart must be able to wait that long.
pub fn op_timeout_default(cluster: &ClusterConfig) -> Duration {
    Duration::from_millis(cluster.leases.durations().master_lease_ms) + OP_TIMEOUT_MARGIN
}
/// Largest read asked of a replica at once; well inside the frame limit.
pub const READ_PIECE_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Largest single write mutation; longer writes are split (a write that
/// spans chunks is split at chunk boundaries anyway, [0093]).
pub const WRITE_PIECE_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Chunks one write may allocate past the file's end (the master allocates
/// only a file's next chunk, [00105], so a write far past the end would
/// allocate every chunk before it: a 1 TiB offset was 16,384 chunks).
/// 64 chunks are 4 GiB at the default chunk size.
pub const WRITE_NEW_CHUNKS_MAX: u64 = 64;
const RESUBMIT_BACKOFF_MS_MIN: u64 = 20;
const RESUBMIT_BACKOFF_MS_MAX: u64 = 1_000;
/// Low bits of a record id: a per-client sequence from a random start.
const RECORD_SEQ_BITS: u32 = 48;
const RECORD_SEQ_MASK: u64 = (1 << RECORD_SEQ_BITS) - 1;

const _: () = assert!(READ_PIECE_BYTES_MAX < crate::frame::FRAME_PAYLOAD_BYTES_MAX as u64);
const _: () = assert!(RESUBMIT_BACKOFF_MS_MIN <= RESUBMIT_BACKOFF_MS_MAX);

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
    #[error(
        "cannot start client {id}: {source} (another client may be using this id; pick \
         another with --client-id)"
    )]
    Start { id: u64, source: NodeError },
    #[error("client {0} is not in the cluster config as a client")]
    NotAClient(u64),
    #[error("the cluster config lists no client that could start: {0}")]
    NoFreeClient(String),
    #[error("the client has shut down")]
    Closed,
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

/// A file as the master knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub file: FileId,
    pub chunks: u32,
}

/// Where an acknowledged record append landed ([00106]: at the same offset
/// on every replica of that chunk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub chunk: ChunkHandle,
    /// The chunk's index in the file.
    pub index: u32,
    /// Where the record's framing starts in the chunk.
    pub offset: Offset,
    pub record_id: u64,
    pub stamp: Stamp,
}

/// One chunk as the master reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkStat {
    pub index: u32,
    pub chunk: ChunkHandle,
    pub version: ChunkVersion,
    /// The lease holder, if a lease is granted now.
    pub primary: Option<u64>,
    pub epoch: LeaseEpoch,
    /// The up-to-date replicas, primary included: never a stale one.
    pub replicas: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub path: String,
    pub file: FileId,
    pub chunks: Vec<ChunkStat>,
}

/// A record found by the [`RecordReader`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub id: u64,
    pub index: u32,
    pub chunk: ChunkHandle,
    /// Where the record's framing starts in the chunk.
    pub offset: Offset,
    pub data: Vec<u8>,
}

/// Time the client actor spent pushing data ([0095]–[0098]): from sending
/// the first fragment of a push to the chain's acknowledgement that every
/// replica has all of it (`DataPushed`), summed over completed pushes.
/// Commits are not included, so this is the data flow alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushStats {
    pub pushes: u64,
    pub time: Duration,
}

/// Pushes started and not yet acknowledged, and the finished ones' sum.
#[derive(Default)]
struct PushClock {
    started: HashMap<DataId, std::time::Instant>,
    stats: PushStats,
}

/// Replica failures remembered for one read's error message.
const READ_FAILURES_KEPT_MAX: usize = 16;

/// Pushes that never complete (their operation failed) are forgotten when
/// this many are pending, so the clock's memory stays bounded.
const PUSHES_PENDING_MAX: usize = 4096;

impl PushClock {
    fn observer(clock: Arc<Mutex<PushClock>>) -> MsgObserver<RealMsg> {
        Box::new(move |passage, _src, _dst, msg| {
            // Every message passes here; only two kinds are timed.
            if !matches!(
                msg,
                Msg::PushData { fragment: 0, .. } | Msg::DataPushed { .. }
            ) {
                return;
            }
            let now = std::time::Instant::now();
            let mut c = clock.lock().expect("push clock lock");
            match (passage, msg) {
                (
                    Passage::Sent,
                    Msg::PushData {
                        data, fragment: 0, ..
                    },
                ) => {
                    if c.started.len() >= PUSHES_PENDING_MAX {
                        c.started.clear();
                    }
                    // A retry pushes again from fragment 0: the time counts
                    // from the first attempt.
                    c.started.entry(*data).or_insert(now);
                }
                (Passage::Delivered, Msg::DataPushed { data }) => {
                    if let Some(start) = c.started.remove(data) {
                        c.stats.pushes += 1;
                        c.stats.time += now - start;
                    }
                }
                _ => {}
            }
        })
    }
}

/// A client of one cluster, as one client id of its config.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    chunk_bytes: u64,
    handle: HostHandle<RealMsg>,
    session: tokio::sync::Mutex<Session>,
    host: Mutex<Option<RunningHost<RealMsg>>>,
    files: Mutex<HashMap<String, FileId>>,
    next_record: AtomicU64,
    op_timeout: Duration,
    push_clock: Arc<Mutex<PushClock>>,
    /// The failures replicas answered reads with since the current read
    /// began, so that a read that fails names them (a corrupt or stale
    /// replica) instead of only timing out.
    read_failures: Arc<Mutex<Vec<(u64, Failure)>>>,
}

/// The application side of the client actor: its answers, and how many
/// operations were given up on (timed out) whose answers are still due.
/// The actor runs operations in submission order and answers each once,
/// so skipping that many answers resynchronises.
struct Session {
    done: mpsc::Receiver<RealMsg>,
    abandoned: u32,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

enum SubmitError {
    Timeout,
    Closed,
}

impl Client {
    /// Starts client `client_id` of `cluster` in this process (it listens on
    /// its configured address, where the servers answer it).
    pub async fn connect(cluster: &ClusterConfig, client_id: u64) -> Result<Client> {
        Self::connect_with_timeout(cluster, client_id, op_timeout_default(cluster)).await
    }

    pub async fn connect_with_timeout(
        cluster: &ClusterConfig,
        client_id: u64,
        op_timeout: Duration,
    ) -> Result<Client> {
        let is_client = cluster
            .node(Id::from(client_id as usize))
            .map(|n| n.role == Role::Client)
            .unwrap_or(false);
        if !is_client {
            return Err(ClientError::NotAClient(client_id));
        }
        let push_clock = Arc::new(Mutex::new(PushClock::default()));
        let read_failures: Arc<Mutex<Vec<(u64, Failure)>>> = Arc::default();
        let mut timing = PushClock::observer(push_clock.clone());
        let failures = read_failures.clone();
        let observer: MsgObserver<RealMsg> = Box::new(move |passage, src, dst, msg| {
            if let (
                Passage::Delivered,
                Msg::ReadReply {
                    result: Err(reason),
                    ..
                },
            ) = (passage, msg)
            {
                let mut f = failures.lock().expect("read failures lock");
                // Bounded: a read asks each replica a few times at most.
                if f.len() < READ_FAILURES_KEPT_MAX {
                    f.push((usize::from(src) as u64, reason.clone()));
                }
            }
            timing(passage, src, dst, msg)
        });
        let mut host = nodes::start_client(cluster, client_id, Id::from(APP_ID), Some(observer))
            .await
            .map_err(|source| ClientError::Start {
                id: client_id,
                source,
            })?;
        let done = host
            .take_app_receiver()
            .expect("a client host has an application channel");
        // Record ids: the client id in the high bits, a sequence from a
        // random start in the low bits, so that two runs with the same
        // client id do not reuse ids (the reader would drop real records
        // as duplicates).
        let start = rand::random::<u64>() & (RECORD_SEQ_MASK >> 1);
        Ok(Client {
            inner: Arc::new(Inner {
                id: client_id,
                chunk_bytes: cluster.chunk_bytes,
                handle: host.handle(),
                session: tokio::sync::Mutex::new(Session { done, abandoned: 0 }),
                host: Mutex::new(Some(host)),
                files: Mutex::new(HashMap::new()),
                next_record: AtomicU64::new(start),
                op_timeout,
                push_clock,
                read_failures,
            }),
        })
    }

    /// Starts the first client id of the config that is free in this
    /// machine (its address can be bound).
    pub async fn connect_any(cluster: &ClusterConfig, op_timeout: Duration) -> Result<Client> {
        let mut last = String::from("the config has no client nodes");
        for id in cluster.ids_with_role(Role::Client) {
            let id = usize::from(id) as u64;
            match Self::connect_with_timeout(cluster, id, op_timeout).await {
                Ok(c) => return Ok(c),
                Err(ClientError::Start {
                    source:
                        NodeError::Host {
                            source: HostError::Bind { .. },
                            ..
                        },
                    ..
                }) => last = format!("client {id}'s address is in use"),
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::NoFreeClient(last))
    }

    pub fn id(&self) -> u64 {
        self.inner.id
    }

    pub fn chunk_bytes(&self) -> u64 {
        self.inner.chunk_bytes
    }

    /// Pushes completed so far and the time they took (see [`PushStats`]).
    pub fn push_stats(&self) -> PushStats {
        self.inner.push_clock.lock().expect("push clock lock").stats
    }

    /// The largest record data [`Client::record_append`] accepts: a quarter
    /// chunk ([00104]) less the framing.
    pub fn record_data_bytes_max(&self) -> u64 {
        (self.inner.chunk_bytes / 4).saturating_sub(RECORD_HEADER_BYTES)
    }

    /// Stops the client actor and waits until its port is free.
    pub async fn shutdown(self) {
        let host = self.inner.host.lock().expect("host lock").take();
        if let Some(host) = host {
            let _ = host.shutdown().await;
        }
    }

    /// Submits one operation and waits for its answer until `deadline`.
    async fn submit(
        &self,
        op: ClientOp<Bytes>,
        deadline: Instant,
    ) -> Result<OpResult<Bytes>, SubmitError> {
        let mut s = timeout_at(deadline, self.inner.session.lock())
            .await
            .map_err(|_| SubmitError::Timeout)?;
        while s.abandoned > 0 {
            match timeout_at(deadline, s.done.recv()).await {
                Ok(Some(Msg::Done { .. })) => s.abandoned -= 1,
                Ok(Some(_)) => {}
                Ok(None) => return Err(SubmitError::Closed),
                Err(_) => return Err(SubmitError::Timeout),
            }
        }
        let inject = self
            .inner
            .handle
            .inject(Id::from(APP_ID), Msg::Submit { op });
        match timeout_at(deadline, inject).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(SubmitError::Closed),
            Err(_) => return Err(SubmitError::Timeout),
        }
        loop {
            match timeout_at(deadline, s.done.recv()).await {
                Ok(Some(Msg::Done { result })) => return Ok(result),
                Ok(Some(_)) => {}
                Ok(None) => return Err(SubmitError::Closed),
                Err(_) => {
                    s.abandoned += 1;
                    return Err(SubmitError::Timeout);
                }
            }
        }
    }

    /// Runs one operation to its end within the operation timeout. With
    /// `resubmit`, a transient failure (the actor ran out of retries while
    /// no lease could be had or a replica was down) is submitted again
    /// after a backoff.
    async fn run(
        &self,
        op_name: &'static str,
        path: &str,
        op: ClientOp<Bytes>,
        resubmit: bool,
    ) -> Result<OpResult<Bytes>> {
        let started = Instant::now();
        self.run_until(
            op_name,
            path,
            op,
            resubmit,
            started,
            started + self.inner.op_timeout,
        )
        .await
    }

    /// [`Client::run`] within a deadline of an operation that began at
    /// `started` (a write of several pieces has one deadline for all).
    async fn run_until(
        &self,
        op_name: &'static str,
        path: &str,
        op: ClientOp<Bytes>,
        resubmit: bool,
        started: Instant,
        deadline: Instant,
    ) -> Result<OpResult<Bytes>> {
        let mut backoff = Duration::from_millis(RESUBMIT_BACKOFF_MS_MIN);
        loop {
            let result = match self.submit(op.clone(), deadline).await {
                Ok(r) => r,
                Err(SubmitError::Closed) => return Err(ClientError::Closed),
                Err(SubmitError::Timeout) => {
                    return Err(ClientError::Timeout {
                        op: op_name,
                        path: path.into(),
                        ms: started.elapsed().as_millis() as u64,
                    })
                }
            };
            match result {
                OpResult::Failed(reason)
                    if resubmit && reason.is_transient() && Instant::now() + backoff < deadline =>
                {
                    tracing::debug!(
                        op = op_name,
                        path,
                        reason = %reason,
                        "resubmitting"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(RESUBMIT_BACKOFF_MS_MAX));
                }
                OpResult::Failed(reason) => {
                    return Err(ClientError::Failed {
                        op: op_name,
                        path: path.into(),
                        reason,
                    })
                }
                other => return Ok(other),
            }
        }
    }

    async fn open_op(&self, path: &str, create: bool) -> Result<FileInfo> {
        // PATH-1: the master's own rule, checked here first so that a bad
        // path costs no round trip and gets a precise reason.
        if let Some(why) = path_problem(path) {
            return Err(ClientError::BadPath {
                path: path.into(),
                why,
            });
        }
        let op = ClientOp::Open {
            path: path.into(),
            create,
        };
        match self.run("open", path, op, true).await {
            Ok(OpResult::Opened { file, chunks }) => {
                self.inner
                    .files
                    .lock()
                    .expect("file cache lock")
                    .insert(path.into(), file);
                Ok(FileInfo { file, chunks })
            }
            Ok(other) => unreachable!("open answered with {other:?}"),
            Err(ClientError::Failed {
                reason: Failure::NotFound,
                ..
            }) => Err(ClientError::NoSuchFile(path.into())),
            Err(e) => Err(e),
        }
    }

    /// Creates `path` if it does not exist (creating an existing file is
    /// not an error, so concurrent appenders may all create it).
    pub async fn create(&self, path: &str) -> Result<FileInfo> {
        self.open_op(path, true).await
    }

    /// Looks `path` up: its file id and current chunk count.
    pub async fn open(&self, path: &str) -> Result<FileInfo> {
        self.open_op(path, false).await
    }

    async fn file_id(&self, path: &str) -> Result<FileId> {
        let cached = self
            .inner
            .files
            .lock()
            .expect("file cache lock")
            .get(path)
            .copied();
        match cached {
            Some(file) => Ok(file),
            None => Ok(self.open(path).await?.file),
        }
    }

    fn next_record_id(&self) -> u64 {
        let seq = self.inner.next_record.fetch_add(1, Ordering::Relaxed) & RECORD_SEQ_MASK;
        ((self.inner.id & 0xffff) << RECORD_SEQ_BITS) | seq
    }

    /// Record append ([00103]–[00109]): frames `data` and appends it at an
    /// offset the primary chooses. Returns the chunk and the offset of the
    /// record's framing. At least once: after a failure the record may also
    /// be in the file, and a retry may leave duplicates, which
    /// [`Client::records`] drops.
    pub async fn record_append(&self, path: &str, data: &[u8]) -> Result<(ChunkHandle, Offset)> {
        let a = self.record_append_detailed(path, data).await?;
        Ok((a.chunk, a.offset))
    }

    /// [`Client::record_append`] with the chunk index, record id and stamp.
    pub async fn record_append_detailed(&self, path: &str, data: &[u8]) -> Result<Appended> {
        // [00104]: records are at most a quarter chunk, framing included;
        // refused here so nothing is pushed.
        let framed_bytes = RECORD_HEADER_BYTES + data.len() as u64;
        let max_bytes = self.inner.chunk_bytes / 4;
        if framed_bytes > max_bytes || u32::try_from(data.len()).is_err() {
            return Err(ClientError::RecordTooLarge {
                data_bytes: data.len() as u64,
                framed_bytes,
                max_bytes,
            });
        }
        let file = self.file_id(path).await?;
        let record_id = self.next_record_id();
        let framed = Bytes::from(record::frame(record_id, data));
        let op = ClientOp::Append { file, data: framed };
        match self.run("record append", path, op, true).await? {
            OpResult::Mutated {
                chunk,
                index,
                offset,
                stamp,
            } => Ok(Appended {
                chunk,
                index,
                offset,
                record_id,
                stamp,
            }),
            other => unreachable!("append answered with {other:?}"),
        }
    }

    /// Writes `data` at file offset `offset` ([0093]–[00101]), split at chunk
    /// boundaries (and into pieces of at most [`WRITE_PIECE_BYTES_MAX`]).
    /// Chunks before the one written are allocated (empty) as needed. Each
    /// piece is one mutation: a failure may leave the range undefined.
    ///
    /// One deadline (the operation timeout) covers the whole write, every
    /// piece included, and a write that would allocate more than
    /// [`WRITE_NEW_CHUNKS_MAX`] chunks past the file's end is refused
    /// before anything is sent.
    pub async fn write(&self, path: &str, offset: u64, data: &[u8]) -> Result<()> {
        let started = Instant::now();
        let deadline = started + self.inner.op_timeout;
        let info = self.open(path).await?;
        let cb = self.inner.chunk_bytes;
        let out_of_range = || ClientError::OutOfRange {
            path: path.into(),
            offset,
            len: data.len() as u64,
        };
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(out_of_range)?;
        if end.div_ceil(cb) > u64::from(u32::MAX) {
            return Err(out_of_range());
        }
        let new_chunks = end.div_ceil(cb).saturating_sub(u64::from(info.chunks));
        if new_chunks > WRITE_NEW_CHUNKS_MAX {
            return Err(ClientError::TooFarPastEnd {
                path: path.into(),
                offset,
                chunks: new_chunks,
                most: WRITE_NEW_CHUNKS_MAX,
            });
        }
        let piece = |index, in_chunk, bytes| {
            self.write_piece(path, info.file, index, in_chunk, bytes, started, deadline)
        };
        let mut chunks = info.chunks;
        let mut pos = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let index = (pos / cb) as u32;
            let in_chunk = pos % cb;
            let n = (rest.len() as u64)
                .min(cb - in_chunk)
                .min(WRITE_PIECE_BYTES_MAX) as usize;
            // The master allocates only the next chunk of a file ([00105]);
            // an empty write allocates each chunk before `index`.
            while chunks < index {
                piece(chunks, 0, Bytes::default()).await?;
                chunks += 1;
            }
            piece(index, in_chunk, Bytes::from(&rest[..n])).await?;
            chunks = chunks.max(index + 1);
            pos += n as u64;
            rest = &rest[n..];
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // a piece and its operation's deadline
    async fn write_piece(
        &self,
        path: &str,
        file: FileId,
        index: u32,
        offset: Offset,
        data: Bytes,
        started: Instant,
        deadline: Instant,
    ) -> Result<()> {
        let op = ClientOp::Write {
            file,
            index,
            offset,
            data,
        };
        match self
            .run_until("write", path, op, true, started, deadline)
            .await?
        {
            OpResult::Mutated { .. } => Ok(()),
            other => unreachable!("write answered with {other:?}"),
        }
    }

    /// Metadata of chunk `index` of `path`.
    pub async fn stat_chunk(&self, path: &str, index: u32) -> Result<ChunkStat> {
        let file = self.file_id(path).await?;
        match self
            .run("stat", path, ClientOp::Stat { file, index }, false)
            .await?
        {
            OpResult::Stat { info, .. } => Ok(chunk_stat(&info)),
            other => unreachable!("stat answered with {other:?}"),
        }
    }

    /// Every chunk of `path`: handle, version, primary, up-to-date replicas.
    pub async fn stat(&self, path: &str) -> Result<FileStat> {
        let info = self.open(path).await?;
        let mut chunks = Vec::with_capacity(info.chunks as usize);
        for index in 0..info.chunks {
            chunks.push(self.stat_chunk(path, index).await?);
        }
        Ok(FileStat {
            path: path.into(),
            file: info.file,
            chunks,
        })
    }

    /// Reads up to `len` bytes of chunk `index` at `offset` from an
    /// up-to-date replica (the actor tries the others if one fails). Short
    /// at the end of that replica's data; empty for a chunk never written.
    pub async fn read_chunk(
        &self,
        path: &str,
        index: u32,
        offset: Offset,
        len: u64,
    ) -> Result<Bytes> {
        let file = self.file_id(path).await?;
        let op = ClientOp::Read {
            file,
            index,
            offset,
            len,
        };
        self.inner
            .read_failures
            .lock()
            .expect("read failures lock")
            .clear();
        let result = self.run("read", path, op, false).await;
        let reports =
            std::mem::take(&mut *self.inner.read_failures.lock().expect("read failures lock"));
        match result {
            Ok(OpResult::Read { data }) => Ok(data),
            Ok(other) => unreachable!("read answered with {other:?}"),
            // A replica answered with a failure and none served the read:
            // say what the replicas said (a corrupt block, a stale
            // replica), which a timeout alone would hide.
            Err(ClientError::Timeout { ms, .. }) if !reports.is_empty() => {
                Err(ClientError::ReplicasFailed {
                    op: "read",
                    path: path.into(),
                    index,
                    reports,
                    timed_out_ms: Some(ms),
                })
            }
            Err(
                e @ ClientError::Failed {
                    reason: Failure::NotFound,
                    ..
                },
            ) => {
                // A chunk allocated but never leased has version 0 at the
                // master and on every replica, which refuse to serve it:
                // it holds nothing.
                match self.stat_chunk(path, index).await {
                    Ok(s) if s.version == 0 => Ok(Bytes::default()),
                    _ if !reports.is_empty() => Err(ClientError::ReplicasFailed {
                        op: "read",
                        path: path.into(),
                        index,
                        reports,
                        timed_out_ms: None,
                    }),
                    _ => Err(e),
                }
            }
            Err(ClientError::Failed { .. }) if !reports.is_empty() => {
                Err(ClientError::ReplicasFailed {
                    op: "read",
                    path: path.into(),
                    index,
                    reports,
                    timed_out_ms: None,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Reads up to `len` bytes at file offset `offset`. Within a chunk that
    /// is not the file's last, bytes past a replica's data read as zeros
    /// (like padding); the result is short at the end of the last chunk's
    /// data.
    pub async fn read(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let info = self.open(path).await?;
        let cb = self.inner.chunk_bytes;
        let size_max = u64::from(info.chunks) * cb;
        let end = offset.saturating_add(len).min(size_max);
        let mut out =
            Vec::with_capacity(end.saturating_sub(offset).min(READ_PIECE_BYTES_MAX) as usize);
        let mut pos = offset;
        while pos < end {
            let index = (pos / cb) as u32;
            let in_chunk = pos % cb;
            let want = (end - pos).min(cb - in_chunk).min(READ_PIECE_BYTES_MAX);
            let got = self.read_chunk(path, index, in_chunk, want).await?;
            out.extend_from_slice(&got);
            pos += got.len() as u64;
            if got.len() as u64 == want {
                continue;
            }
            if index + 1 >= info.chunks {
                break;
            }
            // Past this replica's data in a middle chunk: zeros to its end.
            let chunk_end = (u64::from(index) + 1) * cb;
            let fill = chunk_end.min(end) - pos;
            out.resize(out.len() + fill as usize, 0);
            pos += fill;
        }
        Ok(out)
    }

    /// All of chunk `index` as one up-to-date replica holds it.
    async fn read_whole_chunk(&self, path: &str, index: u32) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let got = self
                .read_chunk(path, index, out.len() as u64, READ_PIECE_BYTES_MAX)
                .await?;
            out.extend_from_slice(&got);
            if (got.len() as u64) < READ_PIECE_BYTES_MAX {
                return Ok(out);
            }
        }
    }

    /// A reader of `path`'s records, chunk by chunk, as the file is now.
    pub async fn records(&self, path: &str) -> Result<RecordReader> {
        let info = self.open(path).await?;
        Ok(RecordReader {
            client: self.clone(),
            path: path.into(),
            chunks: info.chunks,
            next_index: 0,
            pending: VecDeque::new(),
            seen: HashSet::new(),
            duplicates: 0,
        })
    }

    /// Every record of `path`, each once.
    pub async fn read_records(&self, path: &str) -> Result<Vec<Record>> {
        let mut reader = self.records(path).await?;
        let mut out = Vec::new();
        while let Some(r) = reader.next().await? {
            out.push(r);
        }
        Ok(out)
    }
}

fn chunk_stat(info: &LeaseInfo) -> ChunkStat {
    let primary =
        (usize::from(info.primary) != usize::MAX).then(|| usize::from(info.primary) as u64);
    let mut replicas: Vec<u64> = info
        .secondaries
        .iter()
        .map(|r| usize::from(*r) as u64)
        .chain(primary)
        .collect();
    replicas.sort();
    replicas.dedup();
    ChunkStat {
        index: info.index,
        chunk: info.chunk,
        version: info.version,
        primary,
        epoch: info.epoch,
        replicas,
    }
}

/// Iterates a file's records in file order, each record id once: padding,
/// partial records and garbage fail the framing and are skipped, and a
/// record appended again after a failure is returned only the first time.
pub struct RecordReader {
    client: Client,
    path: String,
    chunks: u32,
    next_index: u32,
    pending: VecDeque<Record>,
    seen: HashSet<u64>,
    duplicates: u64,
}

impl RecordReader {
    /// The next record, or `None` at the end of the file (as it was when the
    /// reader was made).
    pub async fn next(&mut self) -> Result<Option<Record>> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Ok(Some(r));
            }
            if self.next_index >= self.chunks {
                return Ok(None);
            }
            let index = self.next_index;
            self.next_index += 1;
            let stat = self.client.stat_chunk(&self.path, index).await?;
            if stat.version == 0 {
                continue; // never leased, so never written
            }
            let data = self.client.read_whole_chunk(&self.path, index).await?;
            let data_max = self.client.record_data_bytes_max();
            for found in record::scan(&data, data_max) {
                if !self.seen.insert(found.id) {
                    self.duplicates += 1;
                    continue;
                }
                self.pending.push_back(Record {
                    id: found.id,
                    index,
                    chunk: stat.chunk,
                    offset: found.at as u64,
                    data: found.data.to_vec(),
                });
            }
        }
    }

    /// Records skipped so far because their id was already returned.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}
