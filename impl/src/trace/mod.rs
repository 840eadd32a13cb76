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
//!
//! The file is written through a shared memory mapping ([`MappedTrace`]):
//! a record is in the page cache, where it survives a killed process, as
//! soon as it is copied, with no system call per step (one `write` per
//! step cost the cluster about a tenth of its append rate, issue #9). The
//! file grows by allocated segments, so a node killed before it closes
//! its trace leaves a tail of zeros, which ends the records.

use leasehold_model::config::ProtocolCfg;
use leasehold_model::master::{MasterDurable, NodeStorage};
use leasehold_model::msg::Timer;
use leasehold_model::types::{ChunkHandle, Offset, StoreView};
use serde::{Deserialize, Serialize};
use stateright::actor::Actor;
use std::path::{Path, PathBuf};

use crate::host::{Step, StepCommand, StepInput, StepRecorder};
use crate::nodes::{RealMsg, RealNode};
use crate::payload::Bytes;
use leasehold_model::msg::ClientOp;

/// First bytes of every trace file; the digit is the format version.
/// Format 4: the master's saved chunk records gained the last grant's
/// version and replicas (issue #12). Format 5: the header says what a node
/// of a model configuration starts with ([`TraceInitial`], `leasehold
/// replay`). Record bodies are postcard, which has
/// no field names, so an older file's records would not decode (or, worse,
/// decode shifted): formats 1-3 are refused by name instead.
pub const TRACE_MAGIC: &[u8; 8] = b"LHTRACE5";
/// The first bytes of the formats before [`TRACE_MAGIC`].
const TRACE_MAGIC_FORMER: [&[u8; 8]; 4] = [b"LHTRACE1", b"LHTRACE2", b"LHTRACE3", b"LHTRACE4"];
/// How much a trace file grows at a time: allocated on disk at once, so
/// that a store into the mapping never meets a full disk (which would be
/// a `SIGBUS`, not an error), and mapped as one segment.
const TRACE_SEGMENT_BYTES: u64 = 4 << 20;
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum TraceActor {
    Master,
    Chunkserver {
        chunk_bytes: u64,
    },
    Client {
        number: u64,
        report_to: Option<u64>,
        fragment_max: u64,
    },
}

/// What a node starts with besides its protocol and storage, where that
/// is not what a node of a cluster file starts with: a node of a model
/// configuration run by `leasehold replay` has the configuration's files
/// (master) or script (client). Replay of the trace starts the actor with
/// the same.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceInitial {
    #[default]
    Empty,
    /// The master's files and chunks when nothing was saved yet.
    Master(MasterDurable),
    /// The client's operations, run in order from its start.
    Script(Vec<ClientOp<Bytes>>),
    /// Data in the chunkserver's chunks before its first start (a
    /// configuration's prefilled chunk), each written as by a mutation
    /// with the null stamp.
    Chunks(Vec<(ChunkHandle, Offset, Bytes)>),
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
    pub initial: TraceInitial,
}

/// Saved storage as the protocol sees it: a chunkserver's store only as
/// its [`StoreView`] (its data lives in the chunk files).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum TraceInput {
    Start { restored: Option<TraceStorage> },
    Msg { src: u64, msg: RealMsg },
    Timer(Timer),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    #[error(
        "trace {path}: written by an older Leasehold (trace format {format}, this one reads {}): \
         validate it with the Leasehold that recorded it",
        TRACE_MAGIC[7] as char
    )]
    OlderFormat { path: PathBuf, format: char },
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
    out: Option<MappedTrace>,
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
        let now = crate::host::monotonic_ns();
        Self::create_with(dir, node, actor, protocol, TraceInitial::Empty, now)
    }

    /// [`TraceWriter::create`] for a node that starts with `initial`, at
    /// `clock_ns` (a scheduled node's reading of its virtual clock).
    pub fn create_with(
        dir: &Path,
        node: u64,
        actor: TraceActor,
        protocol: ProtocolCfg,
        initial: TraceInitial,
        clock_ns: u64,
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
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        let out = MappedTrace::new(file, TRACE_MAGIC).map_err(io(&path))?;
        let mut w = TraceWriter {
            path,
            out: Some(out),
            buf: Vec::with_capacity(TRACE_BUFFER_BYTES),
            steps: 0,
            budget: TRACE_NODE_BYTES_MAX.saturating_sub(used),
        };
        w.push(&TraceRecord::Header(TraceHeader {
            node,
            start,
            actor,
            protocol,
            clock_ns,
            initial,
        }));
        w.write_out();
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Encodes `record`, framed, at the end of the buffer.
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

    /// Copies the buffer's record (one: each is written as it is made)
    /// into the file.
    fn write_out(&mut self) {
        let Some(out) = &mut self.out else {
            self.buf.clear();
            return;
        };
        if !self.buf.is_empty() {
            debug_assert_eq!(
                u32::from_le_bytes(self.buf[..4].try_into().expect("4 bytes")) as usize + 8,
                self.buf.len(),
                "one record at a time"
            );
            if let Err(e) = out.append(&self.buf) {
                // The run goes on; its trace ends here, and validation will
                // find the steps missing.
                tracing::error!(path = %self.path.display(), "trace write failed, tracing stops: {e}");
                self.out = None;
            }
        }
        self.buf.clear();
    }
}

impl StepRecorder<RealNode> for TraceWriter {
    fn digest(&mut self, state: &<RealNode as Actor>::State) -> u64 {
        state.protocol_digest()
    }

    fn record(&mut self, step: &Step<RealNode>) {
        if self.out.is_none() {
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
            self.out = None;
            return;
        }
        self.budget -= size;
        self.steps += 1;
    }

    fn flush(&mut self) {
        self.write_out();
    }

    fn committed(&mut self) {
        if self.out.is_none() {
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

mod foreign;
mod mapped;
mod read;
#[cfg(test)]
mod tests;

pub use foreign::*;
pub use mapped::MappedTrace;
pub use read::*;
