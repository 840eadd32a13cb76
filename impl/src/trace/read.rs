//! Reading trace files back: every format version, torn tails, and a
//! run's files in node order.

use super::*;

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

    /// Whether command `command` of step `index` may have left the node:
    /// any of a step carried out, and of one that was not, a send the
    /// protocol lets leave before the barrier (`Msg::leaves_before_barrier`:
    /// the host sends those first, so a node stopped before its barrier
    /// may have sent them).
    pub fn may_have_sent(&self, index: usize, command: &TraceCommand) -> bool {
        self.carried_out(index)
            || matches!(command, TraceCommand::Send { msg, .. }
                if msg.leaves_before_barrier(self.header.protocol.bug))
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
    if let Some(m) = magic.filter(|m| TRACE_MAGIC_FORMER.iter().any(|f| &f[..] == *m)) {
        return Err(TraceError::OlderFormat {
            path: path.into(),
            format: m[7] as char,
        });
    }
    if magic != Some(&TRACE_MAGIC[..]) {
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
        if len == 0 {
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
    if truncated {
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
