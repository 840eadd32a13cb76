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
use leasehold_model::types::StoreView;
use serde::{Deserialize, Serialize};
use stateright::actor::Actor;
use std::path::{Path, PathBuf};

use crate::host::{Step, StepCommand, StepInput, StepRecorder};
use crate::nodes::{RealMsg, RealNode};

/// First bytes of every trace file; the digit is the format version.
pub const TRACE_MAGIC: &[u8; 8] = b"LHTRACE3";
/// Version 2 never ended in zeros (it was written with `write`).
const TRACE_MAGIC_V2: &[u8; 8] = b"LHTRACE2";
/// Version 1 had no `Committed` records: read as if every step's commands
/// were carried out.
const TRACE_MAGIC_V1: &[u8; 8] = b"LHTRACE1";
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

/// A trace file written through shared memory mappings, a segment at a
/// time. What is copied into a mapping is in the page cache at once: a
/// killed process cannot lose it (a crashed machine can, as with `write`).
pub struct MappedTrace {
    file: std::fs::File,
    /// Bytes of records written, from the start of the file.
    len: u64,
    /// Bytes allocated on disk: whole segments.
    allocated: u64,
    /// The mapped segments from the one holding `len`'s last record start
    /// onwards, with the file offset each starts at.
    segments: Vec<(u64, memmap2::MmapMut)>,
}

impl MappedTrace {
    fn new(file: std::fs::File) -> MappedTrace {
        MappedTrace {
            file,
            len: 0,
            allocated: 0,
            segments: Vec::new(),
        }
    }

    /// Appends one framed record: `framed` is `[length][crc][body]`. The
    /// body goes in first and the frame last, so a process killed in the
    /// middle leaves the frame's length zero, which ends the records.
    fn append(&mut self, framed: &[u8]) -> std::io::Result<()> {
        let at = self.len;
        let end = at + framed.len() as u64;
        while self.allocated < end {
            self.grow()?;
        }
        self.copy_at(at + 8, &framed[8..]);
        // A kill stops the process at one instruction: every store before
        // it is in the page cache, none after. The fence keeps the compiler
        // from moving the frame's stores before the body's.
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        self.copy_at(at, &framed[..8]);
        self.len = end;
        let keep = self.len / TRACE_SEGMENT_BYTES * TRACE_SEGMENT_BYTES;
        self.segments.retain(|(start, _)| *start >= keep);
        Ok(())
    }

    fn grow(&mut self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let start = self.allocated;
        // SAFETY: posix_fallocate on our own open descriptor, with a range
        // past every byte mapped so far.
        let rc = unsafe {
            libc::posix_fallocate(
                self.file.as_raw_fd(),
                start as libc::off_t,
                TRACE_SEGMENT_BYTES as libc::off_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        // SAFETY: the file is this writer's own (made with `create_new`);
        // nothing else in the process maps or truncates it while mapped,
        // and readers of a live trace only read.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(start)
                .len(TRACE_SEGMENT_BYTES as usize)
                .map_mut(&self.file)?
        };
        self.segments.push((start, map));
        self.allocated = start + TRACE_SEGMENT_BYTES;
        Ok(())
    }

    fn copy_at(&mut self, mut at: u64, mut bytes: &[u8]) {
        for (start, map) in &mut self.segments {
            if bytes.is_empty() {
                break;
            }
            let seg_end = *start + TRACE_SEGMENT_BYTES;
            if at >= seg_end {
                continue;
            }
            let from = (at - *start) as usize;
            let n = bytes.len().min((seg_end - at) as usize);
            map[from..from + n].copy_from_slice(&bytes[..n]);
            at += n as u64;
            bytes = &bytes[n..];
        }
        debug_assert!(bytes.is_empty(), "copied past the allocated segments");
    }
}

impl Drop for MappedTrace {
    /// Cuts the unused part of the last segment off, so that a trace
    /// closed in order ends with its last record.
    fn drop(&mut self) {
        self.segments.clear();
        if let Err(e) = self.file.set_len(self.len) {
            tracing::warn!("trace file not cut to its length: {e}");
        }
    }
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
        let mut out = MappedTrace::new(file);
        // The magic is a frame-less prefix; written on its own.
        while out.allocated < TRACE_MAGIC.len() as u64 {
            out.grow().map_err(io(&path))?;
        }
        out.copy_at(0, TRACE_MAGIC);
        out.len = TRACE_MAGIC.len() as u64;
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
            clock_ns: crate::host::monotonic_ns(),
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

    /// Copies the buffer's records into the file, one at a time (each
    /// with its frame last).
    fn write_out(&mut self) {
        let Some(out) = &mut self.out else {
            self.buf.clear();
            return;
        };
        let mut at = 0;
        while at + 8 <= self.buf.len() {
            let len = u32::from_le_bytes(self.buf[at..at + 4].try_into().expect("4 bytes"));
            let framed = &self.buf[at..at + 8 + len as usize];
            if let Err(e) = out.append(framed) {
                // The run goes on; its trace ends here, and validation will
                // find the steps missing.
                tracing::error!(path = %self.path.display(), "trace write failed, tracing stops: {e}");
                self.out = None;
                break;
            }
            at += framed.len();
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
    let mapped = magic == Some(&TRACE_MAGIC[..]);
    if !mapped && !v1 && magic != Some(&TRACE_MAGIC_V2[..]) {
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
        if len == 0 && mapped {
            // No record is empty: this is the unused, allocated tail of a
            // file whose writer never closed it. Anything but zeros in it
            // is a record whose body was copied but not its frame.
            torn_tail = bytes[at..].iter().any(|b| *b != 0);
            break;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClusterConfig;

    fn writer(dir: &Path) -> TraceWriter {
        let cluster = ClusterConfig::local(3, dir).expect("a local cluster");
        let protocol = crate::nodes::protocol_cfg(&cluster).expect("its protocol");
        TraceWriter::create(dir, 7, TraceActor::Master, protocol).expect("a trace file")
    }

    /// Enough (empty) `Committed` records to fill more than one segment;
    /// framed they are 10 bytes, so one straddles the segments' boundary.
    fn fill(w: &mut TraceWriter) -> u64 {
        let mut n = 0;
        while w.out.as_ref().expect("open").len < TRACE_SEGMENT_BYTES + 4096 {
            w.committed();
            n += 1;
        }
        n
    }

    #[test]
    fn a_closed_trace_ends_with_its_last_record() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut w = writer(dir.path());
        let path = w.path().to_path_buf();
        fill(&mut w);
        let len = w.out.as_ref().expect("open").len;
        drop(w);
        assert_eq!(std::fs::metadata(&path).expect("the file").len(), len);
        let t = read_trace(&path).expect("readable");
        assert!(!t.torn_tail && !t.truncated);
        assert_eq!(t.header.node, 7);
    }

    /// A killed writer never cuts its file: the allocated tail of zeros
    /// ends the records, and every record copied before the kill is read.
    #[test]
    fn a_trace_left_open_reads_to_its_last_record() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut w = writer(dir.path());
        let path = w.path().to_path_buf();
        let n = fill(&mut w);
        let len = w.out.as_ref().expect("open").len;
        std::mem::forget(w);
        let size = std::fs::metadata(&path).expect("the file").len();
        assert_eq!(size, 2 * TRACE_SEGMENT_BYTES, "whole segments");
        let bytes = std::fs::read(&path).expect("the file");
        assert!(bytes[len as usize..].iter().all(|b| *b == 0));
        // Every record is there: the last one, read alone, is a commit.
        let last = &bytes[len as usize - 10..len as usize];
        assert_eq!(&last[..4], &2u32.to_le_bytes());
        let t = read_trace(&path).expect("readable");
        assert!(!t.torn_tail);
        assert!(n > TRACE_SEGMENT_BYTES / 10);
    }

    /// A kill between a record's body and its frame leaves the body in the
    /// zero tail: a torn tail, not an error.
    #[test]
    fn a_body_without_its_frame_is_a_torn_tail() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut w = writer(dir.path());
        let path = w.path().to_path_buf();
        w.push(&TraceRecord::Committed { steps: 0 });
        let body = w.buf[8..].to_vec();
        w.buf.clear();
        let out = w.out.as_mut().expect("open");
        let at = out.len;
        out.copy_at(at + 8, &body);
        std::mem::forget(w);
        let t = read_trace(&path).expect("readable");
        assert!(t.torn_tail);
        assert_eq!(t.committed, 0);
    }
}
