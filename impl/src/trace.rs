//! Step traces of real nodes: what each node did, step by step, so that a
//! run can be validated against the model (`leasehold validate`, issue #9;
//! format in specs/trace-format.md).
//!
//! With tracing on (`trace_dir` in cluster.toml), every node writes one file
//! per start, `node-<id>.<start>.trace` in the trace directory: a header
//! with the actor's parameters, then one record per step the host took (see
//! [`crate::host::StepRecorder`]): the input (start with restored storage,
//! message with sender, timer), the node's `CLOCK_MONOTONIC` reading for
//! the step, the commands it emitted with timer deadlines as absolute
//! readings, and the digest of its protocol state after the step
//! ([`leasehold_model::NodeState::protocol_digest`]).
//!
//! Records are postcard, each framed as `[u32 length][u32 crc32c]` (little
//! endian) behind the file magic, and written before any command of their
//! step is carried out: a message that left a node is in its trace. Once a
//! batch's barrier has passed, a `Committed` record says so before its
//! commands are carried out, so the steps after the last one never acted
//! on the rest of the run. A node
//! killed in the middle of a write leaves a torn last record, which readers
//! report and skip. Each node's trace is bounded ([`TRACE_NODE_BYTES_MAX`]
//! over all its files); past the bound a `Truncated` record ends it.

use leasehold_model::config::ProtocolCfg;
use leasehold_model::master::{MasterDurable, NodeStorage};
use leasehold_model::msg::Timer;
use leasehold_model::types::StoreView;
use serde::{Deserialize, Serialize};
use stateright::actor::Actor;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::host::{Step, StepCommand, StepInput, StepRecorder};
use crate::nodes::{RealMsg, RealNode};

/// First bytes of every trace file; the digit is the format version.
pub const TRACE_MAGIC: &[u8; 8] = b"LHTRACE2";
/// Version 1 had no `Committed` records: read as if every step's commands
/// were carried out.
const TRACE_MAGIC_V1: &[u8; 8] = b"LHTRACE1";
/// Bytes one node may write to traces, over all its starts. Enough for
/// every test and benchmark run; a longer run ends its trace with
/// [`TraceRecord::Truncated`] and validation says so.
pub const TRACE_NODE_BYTES_MAX: u64 = 1 << 30;
/// Largest single record (a step that pushes a 16 MiB fragment, with room).
pub const TRACE_RECORD_BYTES_MAX: u32 = 64 << 20;
/// Initial capacity of the buffer one step's record is encoded into before
/// its write.
const TRACE_BUFFER_BYTES: usize = 1 << 20;

/// How to rebuild a node's actor for replay: the role's own parameters
/// besides the protocol's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceActor {
    Master,
    Chunkserver {
        chunk_bytes: u64,
    },
    Client {
        number: u32,
        report_to: Option<u64>,
        fragment_max: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceHeader {
    pub node: u64,
    /// Which start of this node the file records: 0, 1, ... in the order
    /// the files were made.
    pub start: u32,
    pub actor: TraceActor,
    pub protocol: ProtocolCfg,
    /// `CLOCK_MONOTONIC` when the node started, in nanoseconds.
    pub clock_ns: u64,
}

/// Saved storage as the protocol sees it: a chunkserver's store only as
/// its [`StoreView`] (its data lives in the chunk files).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceStorage {
    Master(MasterDurable),
    Chunkserver(StoreView),
    Client,
}

impl TraceStorage {
    pub fn of<S: leasehold_model::types::ChunkStore>(storage: &NodeStorage<S>) -> TraceStorage {
        match storage {
            NodeStorage::Master(d) => TraceStorage::Master(MasterDurable::clone(d)),
            NodeStorage::Chunkserver(s) => TraceStorage::Chunkserver(StoreView::of(&**s)),
            NodeStorage::Client => TraceStorage::Client,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceInput {
    Start { restored: Option<TraceStorage> },
    Msg { src: u64, msg: RealMsg },
    Timer(Timer),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceCommand {
    Send {
        dst: u64,
        msg: RealMsg,
    },
    /// Armed until `deadline_ns` on the node's `CLOCK_MONOTONIC`.
    SetTimer {
        timer: Timer,
        deadline_ns: u64,
    },
    CancelTimer(Timer),
    Save(TraceStorage),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStep {
    /// The step's number in this file, from 0 (the start).
    pub n: u64,
    /// `CLOCK_MONOTONIC` before the handler ran, in nanoseconds.
    pub clock_ns: u64,
    pub input: TraceInput,
    pub commands: Vec<TraceCommand>,
    /// [`leasehold_model::NodeState::protocol_digest`] after the step.
    pub digest: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceRecord {
    Header(TraceHeader),
    Step(TraceStep),
    /// The node's trace budget ran out after `steps` steps of this file.
    Truncated {
        steps: u64,
    },
    /// The barrier of the first `steps` steps of this file has passed:
    /// their commands are being carried out (STORE-2).
    Committed {
        steps: u64,
    },
}

/// Why a trace could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("trace {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("trace {path}: not a Leasehold trace (bad magic)")]
    Magic { path: PathBuf },
    #[error("trace {path}: record at byte {offset}: {message}")]
    Record {
        path: PathBuf,
        offset: u64,
        message: String,
    },
    #[error("trace {path}: the first record is not a header")]
    NoHeader { path: PathBuf },
}

/// The file of start `start` of node `node`.
pub fn trace_path(dir: &Path, node: u64, start: u32) -> PathBuf {
    dir.join(format!("node-{node}.{start}.trace"))
}

/// Writes one node's trace; the host's [`StepRecorder`] for real nodes.
pub struct TraceWriter {
    path: PathBuf,
    file: Option<std::fs::File>,
    buf: Vec<u8>,
    steps: u64,
    /// Bytes this node may still write, over all its files.
    budget: u64,
}

impl TraceWriter {
    /// Opens the next trace file of `node` in `dir` (made if missing) and
    /// writes the header.
    pub fn create(
        dir: &Path,
        node: u64,
        actor: TraceActor,
        protocol: ProtocolCfg,
    ) -> Result<TraceWriter, TraceError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TraceError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut start = 0;
        let mut used = 0;
        loop {
            let path = trace_path(dir, node, start);
            match std::fs::metadata(&path) {
                Ok(m) => used += m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(io(&path)(e)),
            }
            start += 1;
        }
        let path = trace_path(dir, node, start);
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut w = TraceWriter {
            path,
            file: Some(file),
            buf: Vec::with_capacity(TRACE_BUFFER_BYTES),
            steps: 0,
            budget: TRACE_NODE_BYTES_MAX.saturating_sub(used),
        };
        w.buf.extend_from_slice(TRACE_MAGIC);
        w.push(&TraceRecord::Header(TraceHeader {
            node,
            start,
            actor,
            protocol,
            clock_ns: crate::host::monotonic_ns(),
        }));
        w.write_out();
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn push(&mut self, record: &TraceRecord) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 8]);
        let encoded = postcard::to_io(record, &mut self.buf).map(|_| ());
        let len = self.buf.len() - at - 8;
        if let Err(e) = encoded {
            tracing::error!(path = %self.path.display(), "trace record not encoded: {e}");
            self.buf.truncate(at);
            return;
        }
        let crc = crc32c::crc32c(&self.buf[at + 8..]);
        self.buf[at..at + 4].copy_from_slice(&(len as u32).to_le_bytes());
        self.buf[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    }

    fn write_out(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let Some(file) = &mut self.file else {
            self.buf.clear();
            return;
        };
        if let Err(e) = file.write_all(&self.buf) {
            // The run goes on; its trace ends here, and validation will
            // find the steps missing.
            tracing::error!(path = %self.path.display(), "trace write failed, tracing stops: {e}");
            self.file = None;
        }
        self.buf.clear();
    }
}

impl StepRecorder<RealNode> for TraceWriter {
    fn digest(&mut self, state: &<RealNode as Actor>::State) -> u64 {
        state.protocol_digest()
    }

    fn record(&mut self, step: &Step<RealNode>) {
        if self.file.is_none() {
            return;
        }
        let Some(input) = &step.input else { return };
        let input = match input {
            StepInput::Start(storage) => TraceInput::Start {
                restored: storage.as_ref().map(TraceStorage::of),
            },
            StepInput::Msg { src, msg } => TraceInput::Msg {
                src: usize::from(*src) as u64,
                msg: msg.clone(),
            },
            StepInput::Timer(t) => TraceInput::Timer(t.clone()),
            StepInput::Random(()) => return, // the protocol makes no random choices
        };
        let commands = step
            .commands
            .iter()
            .filter_map(|c| {
                Some(match c {
                    StepCommand::Send(dst, msg) => TraceCommand::Send {
                        dst: usize::from(*dst) as u64,
                        msg: msg.clone(),
                    },
                    StepCommand::SetTimer(timer, deadline) => TraceCommand::SetTimer {
                        timer: timer.clone(),
                        deadline_ns: deadline.ns,
                    },
                    StepCommand::CancelTimer(timer) => TraceCommand::CancelTimer(timer.clone()),
                    StepCommand::Save(s) => TraceCommand::Save(TraceStorage::of(s)),
                    StepCommand::ChooseRandom(..) => return None,
                })
            })
            .collect();
        let record = TraceRecord::Step(TraceStep {
            n: self.steps,
            clock_ns: step.clock.ns,
            input,
            commands,
            digest: step.digest,
        });
        let before = self.buf.len();
        self.push(&record);
        let size = (self.buf.len() - before) as u64;
        if size > self.budget {
            self.buf.truncate(before);
            self.push(&TraceRecord::Truncated { steps: self.steps });
            self.write_out();
            tracing::warn!(path = %self.path.display(), steps = self.steps, "trace budget used up, tracing stops");
            self.file = None;
            return;
        }
        self.budget -= size;
        self.steps += 1;
    }

    fn flush(&mut self) {
        self.write_out();
    }

    fn committed(&mut self) {
        if self.file.is_none() {
            return;
        }
        let before = self.buf.len();
        self.push(&TraceRecord::Committed { steps: self.steps });
        self.budget = self.budget.saturating_sub((self.buf.len() - before) as u64);
        // In the file before the first send: a send not covered by a
        // `Committed` record never happened.
        self.write_out();
    }
}

/// One trace file, read back.
#[derive(Clone, Debug)]
pub struct NodeTrace {
    pub path: PathBuf,
    pub header: TraceHeader,
    pub steps: Vec<TraceStep>,
    /// The budget ran out: steps after these were not recorded.
    pub truncated: bool,
    /// The last record was cut short (the node was killed while writing
    /// it); its step's commands were never carried out.
    pub torn_tail: bool,
    /// How many of `steps`, from the first, had their barrier passed and
    /// their commands carried out. The others (at most one batch, at the
    /// end) were recorded but never acted on the rest of the run: the node
    /// was killed, or its barrier failed, before their sends.
    pub committed: usize,
}

impl NodeTrace {
    /// Whether step `index` of this file had its commands carried out.
    pub fn carried_out(&self, index: usize) -> bool {
        index < self.committed
    }
}

/// Reads one trace file.
pub fn read_trace(path: &Path) -> Result<NodeTrace, TraceError> {
    let bytes = std::fs::read(path).map_err(|source| TraceError::Io {
        path: path.into(),
        source,
    })?;
    parse_trace(path, &bytes)
}

/// Parses the bytes of one trace file (`path` only names it in errors).
pub fn parse_trace(path: &Path, bytes: &[u8]) -> Result<NodeTrace, TraceError> {
    let magic = bytes.get(..TRACE_MAGIC.len());
    let v1 = magic == Some(&TRACE_MAGIC_V1[..]);
    if magic != Some(&TRACE_MAGIC[..]) && !v1 {
        return Err(TraceError::Magic { path: path.into() });
    }
    let mut committed = 0;
    let mut at = TRACE_MAGIC.len();
    let mut header = None;
    let mut steps = Vec::new();
    let mut truncated = false;
    let mut torn_tail = false;
    while at < bytes.len() {
        let fail = |message: String| TraceError::Record {
            path: path.into(),
            offset: at as u64,
            message,
        };
        let Some(frame) = bytes.get(at..at + 8) else {
            torn_tail = true;
            break;
        };
        let len = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(frame[4..].try_into().expect("4 bytes"));
        if len > TRACE_RECORD_BYTES_MAX {
            return Err(fail(format!("length {len} over the record limit")));
        }
        let Some(body) = bytes.get(at + 8..at + 8 + len as usize) else {
            torn_tail = true;
            break;
        };
        if crc32c::crc32c(body) != crc {
            // Only the last record can be torn; damage elsewhere is an error.
            if at + 8 + len as usize == bytes.len() {
                torn_tail = true;
                break;
            }
            return Err(fail("checksum mismatch".into()));
        }
        let record: TraceRecord =
            postcard::from_bytes(body).map_err(|e| fail(format!("cannot decode: {e}")))?;
        match record {
            TraceRecord::Header(h) if header.is_none() => header = Some(h),
            TraceRecord::Header(_) => return Err(fail("a second header".into())),
            _ if header.is_none() => return Err(TraceError::NoHeader { path: path.into() }),
            TraceRecord::Step(s) => steps.push(s),
            TraceRecord::Truncated { .. } => truncated = true,
            TraceRecord::Committed { steps: n } => {
                if n as usize > steps.len() || (n as usize) < committed {
                    return Err(fail(format!(
                        "commits {n} steps after {} recorded and {committed} committed",
                        steps.len()
                    )));
                }
                committed = n as usize;
            }
        }
        at += 8 + len as usize;
    }
    let header = header.ok_or_else(|| TraceError::NoHeader { path: path.into() })?;
    if v1 || truncated {
        // Past a trace's budget nothing more is recorded, commits included.
        committed = steps.len();
    }
    Ok(NodeTrace {
        path: path.into(),
        header,
        steps,
        truncated,
        torn_tail,
        committed,
    })
}

/// The paths of every trace file in `dir`, in no particular order.
pub fn trace_files(dir: &Path) -> Result<Vec<PathBuf>, TraceError> {
    let io = |source| TraceError::Io {
        path: dir.into(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "trace") {
            paths.push(path);
        }
    }
    Ok(paths)
}

/// Every trace file in `dir`, by node and then start.
pub fn read_run(dir: &Path) -> Result<Vec<NodeTrace>, TraceError> {
    let mut traces = trace_files(dir)?
        .iter()
        .map(|p| read_trace(p))
        .collect::<Result<Vec<_>, _>>()?;
    traces.sort_by_key(|t| (t.header.node, t.header.start));
    Ok(traces)
}
