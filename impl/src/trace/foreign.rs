//! Foreign traces (issue #11): the step traces of any implementation of
//! the protocol, as JSON lines, so that `leasehold validate --foreign`
//! can check a system that is not Leasehold's. Format:
//! specs/foreign-trace.md; schema: specs/foreign-trace.schema.json.
//!
//! A foreign trace says what a node observably did: the input of each
//! step, the messages and timers it commanded, and the chunk mutations it
//! applied. It carries no state digest (another implementation's state is
//! its own), so validation judges behaviour only: the model's actor, fed
//! the same inputs, must send the same messages and apply the same
//! mutations. Leasehold's own traces convert to this format
//! ([`export_run`]) and must pass as foreign ones.
//!
//! Files: `node-<id>.<start>.jsonl`, one JSON object per line: a
//! `{"header": ...}` line, then one `{"step": ...}` line per step.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use super::{
    NodeTrace, TraceActor, TraceCommand, TraceError, TraceHeader, TraceInitial, TraceInput,
    TraceStep,
};
use leasehold_model::config::ProtocolCfg;
use leasehold_model::types::{ChunkHandle, ChunkVersion, LeaseEpoch, Offset, Serial};

/// The `format` every foreign header names; the number is the version.
pub const FOREIGN_FORMAT: &str = "leasehold-foreign-trace/1";
/// Longest line a reader takes: a step that pushes a 16 MiB fragment,
/// written as a JSON array of byte values (up to four characters a byte).
pub const FOREIGN_LINE_BYTES_MAX: usize = 80 << 20;

/// One line of a foreign trace file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ForeignLine {
    Header(ForeignHeader),
    Step(ForeignStep),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForeignHeader {
    /// [`FOREIGN_FORMAT`].
    pub format: String,
    pub node: u64,
    pub start: u32,
    pub actor: TraceActor,
    pub protocol: ProtocolCfg,
    pub clock_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForeignStep {
    pub n: u64,
    pub clock_ns: u64,
    pub input: TraceInput,
    /// Sends and timers, in any order; saves, if given, are not compared
    /// (a foreign node's durable state is its own).
    pub commands: Vec<TraceCommand>,
    /// The chunk mutations the step applied, in order; absent: not
    /// recorded (the node applies none, or its tracer cannot tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Vec<Applied>>,
}

/// A change a step made to a chunk replica, as the protocol sees it.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Applied {
    /// Data written at `offset` by mutation (`epoch`, `serial`).
    Write {
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
        serial: Serial,
        offset: Offset,
        length: u64,
        crc32c: u32,
    },
    /// The chunk padded up to `end` ([00105]).
    Pad {
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
        serial: Serial,
        end: Offset,
    },
    /// A serial used up without changing data ([00100], a gap answered
    /// `Skip`).
    Skip {
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
        serial: Serial,
    },
    /// The replica's chunk version set.
    Version {
        chunk: ChunkHandle,
        version: ChunkVersion,
    },
    /// Part of a clone installed from `from` (re-replication); `done` ends
    /// the clone.
    Clone {
        chunk: ChunkHandle,
        from: Offset,
        length: u64,
        crc32c: u32,
        done: bool,
    },
    /// The replica deleted (garbage collection, GFS §4.4): afterwards the
    /// node holds nothing of the chunk.
    Delete { chunk: ChunkHandle },
}

/// A foreign trace file, read back: the trace (every step counts as
/// carried out) and each step's recorded mutations.
#[derive(Clone, Debug)]
pub struct ForeignTrace {
    pub trace: NodeTrace,
    pub applied: Vec<Option<Vec<Applied>>>,
}

/// The file of start `start` of node `node`.
pub fn foreign_path(dir: &Path, node: u64, start: u32) -> PathBuf {
    dir.join(format!("node-{node}.{start}.jsonl"))
}

/// Reads one foreign trace file.
pub fn read_foreign(path: &Path) -> Result<ForeignTrace, TraceError> {
    let file = std::fs::File::open(path).map_err(|source| TraceError::Io {
        path: path.into(),
        source,
    })?;
    parse_foreign(path, std::io::BufReader::new(file))
}

/// Parses a foreign trace from `reader` (`path` only names it in errors).
/// Fuzzed (`leasehold::fuzzing::foreign_trace`): another implementation's
/// tracer hands these bytes to `validate --foreign`.
pub fn parse_foreign(path: &Path, mut reader: impl BufRead) -> Result<ForeignTrace, TraceError> {
    let mut header: Option<TraceHeader> = None;
    let mut steps = vec![];
    let mut applied = vec![];
    let mut line = String::new();
    let mut offset = 0u64;
    loop {
        line.clear();
        let n = Read::by_ref(&mut reader)
            .take(FOREIGN_LINE_BYTES_MAX as u64 + 1)
            .read_line(&mut line)
            .map_err(|source| TraceError::Io {
                path: path.into(),
                source,
            })?;
        if n == 0 {
            break;
        }
        let at = offset;
        let fail = |message: String| TraceError::Record {
            path: path.into(),
            offset: at,
            message,
        };
        if n > FOREIGN_LINE_BYTES_MAX {
            return Err(fail(format!("a line over {FOREIGN_LINE_BYTES_MAX} bytes")));
        }
        offset += n as u64;
        if line.trim().is_empty() {
            continue;
        }
        let record: ForeignLine =
            serde_json::from_str(&line).map_err(|e| fail(format!("cannot decode: {e}")))?;
        match record {
            ForeignLine::Header(h) if header.is_none() => {
                if h.format != FOREIGN_FORMAT {
                    return Err(fail(format!(
                        "format {:?}, this build reads {FOREIGN_FORMAT:?}",
                        h.format
                    )));
                }
                header = Some(TraceHeader {
                    node: h.node,
                    start: h.start,
                    actor: h.actor,
                    protocol: h.protocol,
                    clock_ns: h.clock_ns,
                    initial: TraceInitial::Empty,
                });
            }
            ForeignLine::Header(_) => return Err(fail("a second header".into())),
            ForeignLine::Step(_) if header.is_none() => {
                return Err(TraceError::NoHeader { path: path.into() })
            }
            ForeignLine::Step(s) => {
                steps.push(TraceStep {
                    n: s.n,
                    clock_ns: s.clock_ns,
                    input: s.input,
                    commands: s.commands,
                    digest: 0,
                });
                applied.push(s.applied);
            }
        }
    }
    let header = header.ok_or_else(|| TraceError::NoHeader { path: path.into() })?;
    let committed = steps.len();
    Ok(ForeignTrace {
        trace: NodeTrace {
            path: path.into(),
            header,
            steps,
            truncated: false,
            torn_tail: false,
            committed,
        },
        applied,
    })
}

/// Every foreign trace file (`*.jsonl`) in `dir`, by node and start.
pub fn read_foreign_run(dir: &Path) -> Result<Vec<ForeignTrace>, TraceError> {
    let io = |source| TraceError::Io {
        path: dir.into(),
        source,
    };
    let mut traces = vec![];
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            traces.push(read_foreign(&path)?);
        }
    }
    traces.sort_by_key(|t| (t.trace.header.node, t.trace.header.start));
    Ok(traces)
}

/// Writes `trace` as a foreign trace file in `dir`, with `applied[i]` as
/// step `i`'s mutations. Steps the node recorded but never carried out
/// (after its last commit) are left out: to the rest of the run they did
/// not happen, and a foreign trace has no commits.
pub fn write_foreign(
    dir: &Path,
    trace: &NodeTrace,
    applied: &[Option<Vec<Applied>>],
) -> Result<PathBuf, TraceError> {
    let h = &trace.header;
    let path = foreign_path(dir, h.node, h.start);
    let io = |source| TraceError::Io {
        path: path.clone(),
        source,
    };
    let file = std::fs::File::create(&path).map_err(io)?;
    let mut out = std::io::BufWriter::new(file);
    let mut line = |record: &ForeignLine| -> Result<(), TraceError> {
        serde_json::to_writer(&mut out, record).map_err(|e| TraceError::Record {
            path: path.clone(),
            offset: 0,
            message: format!("cannot encode: {e}"),
        })?;
        out.write_all(b"\n").map_err(io)
    };
    line(&ForeignLine::Header(ForeignHeader {
        format: FOREIGN_FORMAT.into(),
        node: h.node,
        start: h.start,
        actor: h.actor.clone(),
        protocol: h.protocol.clone(),
        clock_ns: h.clock_ns,
    }))?;
    for (i, s) in trace.steps.iter().enumerate().take(trace.committed) {
        line(&ForeignLine::Step(ForeignStep {
            n: s.n,
            clock_ns: s.clock_ns,
            input: s.input.clone(),
            commands: s.commands.clone(),
            applied: applied.get(i).cloned().flatten(),
        }))?;
    }
    out.flush().map_err(io)?;
    Ok(path)
}

/// The JSON Schema of one line of a foreign trace
/// (specs/foreign-trace.schema.json), made from the types the reader
/// decodes, so the two cannot drift apart.
pub fn foreign_schema() -> String {
    let schema = schemars::schema_for!(ForeignLine);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}
