//! Trace validation (`leasehold validate DIR`): does a real run's step
//! trace ([`crate::trace`]) show the checked protocol, and do the
//! requirements hold over it in real time? Format and checks are in
//! specs/trace-format.md; in short:
//!
//! - **TRACE-1, replay** ([`replay`]): every node's recorded inputs, fed
//!   through the model's own actor on an in-memory [`ReplayStore`], give
//!   the recorded commands and state digests. So the node ran the checked
//!   code, and the replayed states stand for the real ones.
//! - **TRACE-2, provenance** ([`provenance`]): every message a node
//!   received was sent to it, earlier, by the node it names, with the same
//!   value, and no send is received twice.
//! - **TRACE-3, timers**: clock readings never go back within a file, and
//!   a timer fires only while armed and not before its deadline.
//! - **Requirements** ([`props`]): LEASE-1 in real time, ORDER-1, ORDER-2,
//!   APPEND-1..4, WRITE-1, VERSION-1 and VERSION-2, over the replayed
//!   states, the stores' real bytes and the recorded messages; and the
//!   model's step rules a trace shows, at their steps (LEASE-2's grant,
//!   PUSH-1, PUSH-2's age-out, APPEND-5, WRITE-2, CLIENT-1): a node that ran the checked
//!   code with a seeded bug passes TRACE-1, so TRACE-1 alone does not
//!   show them.
//!
//! Messages between a client node and its application (the client
//! library's in-process caller, the client's `report_to`) never cross the
//! network and have no sender's trace: they are exempt from TRACE-2, and
//! they are what the requirements take as the operations asked for.

pub mod global;
pub mod live;
pub mod props;
pub mod provenance;
pub mod replay;
pub mod store;

pub use store::ReplayStore;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::trace::{read_trace, ForeignTrace, NodeTrace, TraceError, TraceRecord, TRACE_MAGIC};

/// What a finding is about: a check of the trace itself or a requirement
/// of specs/requirements.md, by its ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// The node ran the checked code: replay gives the recorded commands
    /// and digests.
    Trace1,
    /// Every received message was sent, earlier, once.
    Trace2,
    /// Clocks and timers behave as the host promises.
    Trace3,
    Lease1,
    Lease2,
    Lease4,
    /// A replica that acknowledged a revocation no longer holds or asks
    /// for that lease.
    Lease5,
    /// A replica has a mutation in flight only under the lease it holds.
    Lease6,
    Order1,
    Order2,
    /// A replica holds back only mutations that can still be in turn.
    Order3,
    /// A primary skips only a serial it no longer waits for.
    Order4,
    Append1,
    Append2,
    Append3,
    Append4,
    Append5,
    Write1,
    Write2,
    Push1,
    Push2,
    Version1,
    Version2,
    /// A snapshot holds what its file held when it was taken.
    Snap1,
    /// A mutation is acknowledged only in a chunk of the file it named.
    File1,
    /// A rename is made only when no replica holds a lease of the file.
    Rename1,
    /// A replica is deleted only where the master no longer places it.
    Gc1,
    /// A read goes to the closest replica and returns what was
    /// acknowledged before it started.
    Read1,
    /// A result answers the operation under way.
    Client1,
    /// A replica that reported a failed change of a chunk's current
    /// version is no longer counted up to date.
    Fault2,
    /// Without faults, every client's operations all succeed (judged by a
    /// time bound: [`ValidateOptions::liveness`]).
    Live1,
    /// After the last fault, every client's operations all succeed within
    /// the bound.
    Live2,
    /// LIVE-2, and the master counts every placed replica up to date.
    Repl1,
}

impl Check {
    pub fn id(self) -> &'static str {
        match self {
            Check::Trace1 => "TRACE-1",
            Check::Trace2 => "TRACE-2",
            Check::Trace3 => "TRACE-3",
            Check::Lease1 => "LEASE-1",
            Check::Lease2 => "LEASE-2",
            Check::Lease4 => "LEASE-4",
            Check::Lease5 => "LEASE-5",
            Check::Lease6 => "LEASE-6",
            Check::Order1 => "ORDER-1",
            Check::Order2 => "ORDER-2",
            Check::Order3 => "ORDER-3",
            Check::Order4 => "ORDER-4",
            Check::Append1 => "APPEND-1",
            Check::Append2 => "APPEND-2",
            Check::Append3 => "APPEND-3",
            Check::Append4 => "APPEND-4",
            Check::Append5 => "APPEND-5",
            Check::Write1 => "WRITE-1",
            Check::Write2 => "WRITE-2",
            Check::Push1 => "PUSH-1",
            Check::Push2 => "PUSH-2",
            Check::Version1 => "VERSION-1",
            Check::Version2 => "VERSION-2",
            Check::Snap1 => "SNAP-1",
            Check::File1 => "FILE-1",
            Check::Rename1 => "RENAME-1",
            Check::Gc1 => "GC-1",
            Check::Read1 => "READ-1",
            Check::Client1 => "CLIENT-1",
            Check::Fault2 => "FAULT-2",
            Check::Live1 => "LIVE-1",
            Check::Live2 => "LIVE-2",
            Check::Repl1 => "REPL-1",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Where in the run: a step of one start of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    pub node: u64,
    pub start: u32,
    pub step: u64,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {} start {} step {}",
            self.node, self.start, self.step
        )
    }
}

/// One failed check (or, among [`Report::notes`], something validation
/// had to assume or could not check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub check: Check,
    pub at: Loc,
    /// The trace file of `at`.
    pub file: PathBuf,
    pub explanation: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.check, self.at, self.explanation)
    }
}

/// The outcome of validating one run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Failed checks, in check order, then by place.
    pub failures: Vec<Finding>,
    /// Failures past [`ValidateOptions::findings_per_check_max`] for one
    /// check and node, counted but not listed.
    pub failures_unlisted: u64,
    /// Assumptions validation made (store faults taken from the trace, a
    /// torn tail) and parts it could not check.
    pub notes: Vec<Finding>,
    pub nodes: usize,
    pub files: usize,
    pub steps_recorded: u64,
    pub steps_replayed: u64,
    /// Messages received from cluster nodes, and how many of them matched
    /// a send (TRACE-2).
    pub messages_received: u64,
    pub messages_matched: u64,
    /// Messages between clients and their applications (exempt).
    pub messages_from_application: u64,
    /// Sends nobody received: lost, or in flight when the run ended.
    pub messages_unreceived: u64,
    /// Acknowledged mutations checked against the replicas' bytes.
    pub acks_checked: u64,
    /// Primary lease intervals checked against the master's.
    pub leases_checked: u64,
    /// Global states the always-properties were evaluated on, of the
    /// states some step changed.
    pub global_states_checked: u64,
    pub global_states: u64,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.failures.is_empty() && self.failures_unlisted == 0
    }

    /// For a run that caused some findings on purpose (a test that forged
    /// a frame): how many failures `foreseen` covers, or every other one,
    /// one a line after the summary, if any is left (unlisted ones count).
    pub fn unforeseen(&self, foreseen: impl Fn(&Finding) -> bool) -> Result<usize, String> {
        let (expected, others): (Vec<&Finding>, Vec<&Finding>) =
            self.failures.iter().partition(|f| foreseen(f));
        if others.is_empty() && self.failures_unlisted == 0 {
            return Ok(expected.len());
        }
        let lines: Vec<String> = others.iter().map(|f| f.to_string()).collect();
        Err(format!("{}\n{}", self.summary(), lines.join("\n")))
    }

    /// Whether some failure is of `check`.
    pub fn fails(&self, check: Check) -> bool {
        self.failures.iter().any(|f| f.check == check)
    }

    pub fn summary(&self) -> String {
        format!(
            "{} nodes, {} trace files, {} of {} recorded steps replayed, {} of {} messages matched \
             ({} from applications, {} never received), {} acknowledged mutations and {} leases \
             checked, the model's properties on {} of {} global states: {} failures",
            self.nodes,
            self.files,
            self.steps_replayed,
            self.steps_recorded,
            self.messages_matched,
            self.messages_received,
            self.messages_from_application,
            self.messages_unreceived,
            self.acks_checked,
            self.leases_checked,
            self.global_states_checked,
            self.global_states,
            self.failures.len() as u64 + self.failures_unlisted,
        )
    }
}

/// How [`validate_dir`] reports progress: called now and then with the
/// steps replayed so far and the steps recorded in all.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

pub struct ValidateOptions<'a> {
    /// Failures listed per check and node; the rest are only counted.
    pub findings_per_check_max: usize,
    /// Threads replaying nodes at once (nodes are independent until the
    /// requirements are checked over all of them).
    pub threads: usize,
    pub progress: Option<Progress<'a>>,
    /// Judge LIVE-1, LIVE-2 or REPL-1 too: the run is one whose faults
    /// ended at a known time (a replay's path), and went on past the bound.
    pub liveness: Option<live::Window>,
    /// The run's network duplicated messages on purpose (a replay of a
    /// duplicating configuration's path): a second copy of a message
    /// received is a note, not a TRACE-2 failure.
    pub network_duplicates: bool,
}

impl Default for ValidateOptions<'_> {
    fn default() -> Self {
        ValidateOptions {
            findings_per_check_max: 20,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            progress: None,
            liveness: None,
            network_duplicates: false,
        }
    }
}

/// Why a directory could not be validated at all (as opposed to a run that
/// fails its checks, which is a [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("{0}: no such directory")]
    NoDir(PathBuf),
    #[error("{0}: no trace files (node-<id>.<start>.trace); was trace_dir set in cluster.toml?")]
    NoTraces(PathBuf),
    #[error("{0}: no foreign trace files (node-<id>.<start>.jsonl, specs/foreign-trace.md)")]
    NoForeignTraces(PathBuf),
    #[error("node {node}: trace files of starts {missing:?} are missing (found {found:?})")]
    MissingStart {
        node: u64,
        missing: Vec<u32>,
        found: Vec<u32>,
    },
    #[error(transparent)]
    Trace(#[from] TraceError),
}

/// Validates every trace in `dir`. See the module doc for the checks.
pub fn validate_dir(dir: &Path, opts: &ValidateOptions) -> Result<Report, ValidateError> {
    if !dir.is_dir() {
        return Err(ValidateError::NoDir(dir.into()));
    }
    let traces = read_dir(dir, opts.threads.max(1))?;
    if traces.is_empty() {
        return Err(ValidateError::NoTraces(dir.into()));
    }
    validate_traces(traces, opts)
}

/// Every trace file in `dir`, as [`crate::trace::read_run`] reads them, but
/// `threads` files at a time: reading and decoding is a good part of a
/// validation's time.
fn read_dir(dir: &Path, threads: usize) -> Result<Vec<NodeTrace>, TraceError> {
    let mut paths = crate::trace::trace_files(dir)?;
    // Largest first, so one big file does not start last.
    paths.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).map_or(0, |m| m.len())));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let read: std::sync::Mutex<Vec<Result<NodeTrace, TraceError>>> = Default::default();
    std::thread::scope(|scope| {
        for _ in 0..threads.min(paths.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = paths.get(i) else { break };
                let t = read_trace(path);
                read.lock().expect("read lock").push(t);
            });
        }
    });
    let mut traces = read
        .into_inner()
        .expect("read lock")
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    traces.sort_by_key(|t| (t.header.node, t.header.start));
    Ok(traces)
}

/// Validates every foreign trace (`*.jsonl`, specs/foreign-trace.md) in
/// `dir`: behaviour only, since a foreign trace has no state digests.
pub fn validate_foreign_dir(dir: &Path, opts: &ValidateOptions) -> Result<Report, ValidateError> {
    if !dir.is_dir() {
        return Err(ValidateError::NoDir(dir.into()));
    }
    let traces = crate::trace::read_foreign_run(dir)?;
    if traces.is_empty() {
        return Err(ValidateError::NoForeignTraces(dir.into()));
    }
    validate_foreign(traces, opts)
}

/// What [`export_foreign`] wrote.
#[derive(Debug, Default)]
pub struct ExportReport {
    pub files: usize,
    pub steps: u64,
    /// Failures the replay found on the way (TRACE-1, TRACE-3). A node
    /// whose replay stopped is exported without mutations (`applied`
    /// absent: not recorded).
    pub replay_failures: Vec<Finding>,
}

/// Writes the Leasehold traces in `dir` as foreign traces in `out`
/// (specs/foreign-trace.md): the same steps, without state digests, with
/// each chunkserver step's mutations as the replay applied them (the node
/// ran the same code, which the replay's digests show step by step).
pub fn export_foreign(
    dir: &Path,
    out: &Path,
    opts: &ValidateOptions,
) -> Result<ExportReport, ValidateError> {
    if !dir.is_dir() {
        return Err(ValidateError::NoDir(dir.into()));
    }
    let traces = read_dir(dir, opts.threads.max(1))?;
    if traces.is_empty() {
        return Err(ValidateError::NoTraces(dir.into()));
    }
    std::fs::create_dir_all(out).map_err(|source| TraceError::Io {
        path: out.into(),
        source,
    })?;
    let mut by_node: BTreeMap<u64, Vec<NodeTrace>> = BTreeMap::new();
    for t in traces {
        by_node.entry(t.header.node).or_default().push(t);
    }
    for files in by_node.values_mut() {
        files.sort_by_key(|t| t.header.start);
    }
    let nodes: Vec<(&u64, &Vec<NodeTrace>)> = by_node.iter().collect();
    let outcomes = replay::replay_all(&nodes, None, opts.threads.max(1), &|_| {});
    let mut applied: std::collections::HashMap<Loc, Vec<crate::trace::Applied>> =
        Default::default();
    let mut report = ExportReport::default();
    // A node whose replay stopped has no mutations known past that step:
    // its steps say "not recorded" rather than "applied nothing".
    let mut unknown: std::collections::BTreeSet<u64> = Default::default();
    for o in &outcomes {
        report.replay_failures.extend(o.findings.iter().cloned());
        if !o.replayed_whole {
            unknown.insert(o.node);
        }
        if o.kind != replay::Kind::Chunkserver {
            continue;
        }
        for obs in &o.observed {
            let list = applied.entry(obs.at).or_default();
            list.extend(obs.changes.iter().filter_map(|c| match c {
                replay::Change::Store(e) => e.applied(),
                _ => None,
            }));
        }
    }
    for files in by_node.values() {
        for t in files {
            let h = &t.header;
            let chunkserver = matches!(h.actor, crate::trace::TraceActor::Chunkserver { .. })
                && !unknown.contains(&h.node);
            let per_step: Vec<Option<Vec<crate::trace::Applied>>> = t
                .steps
                .iter()
                .map(|s| {
                    let at = Loc {
                        node: h.node,
                        start: h.start,
                        step: s.n,
                    };
                    chunkserver.then(|| applied.get(&at).cloned().unwrap_or_default())
                })
                .collect();
            crate::trace::write_foreign(out, t, &per_step)?;
            report.files += 1;
            report.steps += t.committed as u64;
        }
    }
    Ok(report)
}

/// Validates foreign traces already read. Each node's replay compares what
/// it observably did (messages sent, timers, chunk mutations applied) with
/// what the model's actor does on the same inputs; every check over the
/// run is the same as for Leasehold's own traces.
pub fn validate_foreign(
    traces: Vec<ForeignTrace>,
    opts: &ValidateOptions,
) -> Result<Report, ValidateError> {
    let mut applied = replay::ForeignApplied::new();
    let mut plain = Vec::with_capacity(traces.len());
    for t in traces {
        applied.insert((t.trace.header.node, t.trace.header.start), t.applied);
        plain.push(t.trace);
    }
    validate_inner(plain, Some(&applied), opts)
}

/// Validates traces already read (tests corrupt them in memory first).
pub fn validate_traces(
    traces: Vec<NodeTrace>,
    opts: &ValidateOptions,
) -> Result<Report, ValidateError> {
    validate_inner(traces, None, opts)
}

fn validate_inner(
    traces: Vec<NodeTrace>,
    foreign: Option<&replay::ForeignApplied>,
    opts: &ValidateOptions,
) -> Result<Report, ValidateError> {
    let mut by_node: BTreeMap<u64, Vec<NodeTrace>> = BTreeMap::new();
    for t in traces {
        by_node.entry(t.header.node).or_default().push(t);
    }
    for (&node, files) in &mut by_node {
        files.sort_by_key(|t| t.header.start);
        let found: Vec<u32> = files.iter().map(|t| t.header.start).collect();
        let missing: Vec<u32> = (0..found.last().map_or(0, |l| l + 1))
            .filter(|s| !found.contains(s))
            .collect();
        if !missing.is_empty() || found.windows(2).any(|w| w[0] == w[1]) {
            return Err(ValidateError::MissingStart {
                node,
                missing,
                found,
            });
        }
    }
    let mut report = Report {
        nodes: by_node.len(),
        files: by_node.values().map(Vec::len).sum(),
        steps_recorded: by_node
            .values()
            .flatten()
            .map(|t| t.steps.len() as u64)
            .sum(),
        ..Report::default()
    };
    let total = report.steps_recorded;
    let done = AtomicU64::new(0);
    let tick = |n: u64| {
        let before = done.fetch_add(n, Ordering::Relaxed);
        if let Some(p) = opts.progress {
            p(before + n, total);
        }
    };
    let nodes: Vec<(&u64, &Vec<NodeTrace>)> = by_node.iter().collect();
    // Provenance needs only the records: it runs beside the replay, which
    // leaves a core idle once only the longest node is still replaying.
    let (outcomes, prov) = std::thread::scope(|scope| {
        let prov = scope.spawn(|| provenance::check(&by_node, opts.network_duplicates));
        let outcomes = replay::replay_all(&nodes, foreign, opts.threads.max(1), &tick);
        (outcomes, prov.join().expect("provenance check panicked"))
    });
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    for o in &outcomes {
        report.steps_replayed += o.steps_replayed;
        findings.extend(o.findings.iter().cloned());
        notes.extend(o.notes.iter().cloned());
    }
    report.messages_received = prov.received;
    report.messages_matched = prov.matched;
    report.messages_from_application = prov.from_application;
    report.messages_unreceived = prov.unreceived;
    findings.extend(prov.findings);
    notes.extend(prov.notes);
    let props = props::check(&by_node, &outcomes);
    report.acks_checked = props.acks_checked;
    report.leases_checked = props.leases_checked;
    findings.extend(props.findings);
    notes.extend(props.notes);
    let global = global::check(&by_node, &outcomes);
    report.global_states_checked = global.states_checked;
    report.global_states = global.states_total;
    findings.extend(global.findings);
    notes.extend(global.notes);
    if let Some(window) = &opts.liveness {
        findings.extend(live::check(&outcomes, window));
    }

    findings.sort_by_key(|f| (f.check, f.at));
    let mut listed: BTreeMap<(Check, u64), usize> = BTreeMap::new();
    for f in findings {
        let n = listed.entry((f.check, f.at.node)).or_default();
        *n += 1;
        if *n <= opts.findings_per_check_max {
            report.failures.push(f);
        } else {
            report.failures_unlisted += 1;
        }
    }
    notes.sort_by_key(|f| (f.check, f.at));
    report.notes = notes;
    Ok(report)
}

/// Writes `records` as a trace file, framed as [`crate::trace::TraceWriter`]
/// frames them (tests rewrite real traces with it).
pub fn write_records(path: &Path, records: &[TraceRecord]) -> std::io::Result<()> {
    let out = encode_records(records).map_err(std::io::Error::other)?;
    let mut f = std::fs::File::create(path)?;
    f.write_all(&out)?;
    f.sync_all()
}

/// A trace file's bytes for `records`, framed as the writer frames them.
pub fn encode_records(records: &[TraceRecord]) -> Result<Vec<u8>, postcard::Error> {
    let mut out = Vec::from(&TRACE_MAGIC[..]);
    for r in records {
        let body = postcard::to_allocvec(r)?;
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        out.extend_from_slice(&body);
    }
    Ok(out)
}

/// The records of a trace read back, for [`write_records`].
pub fn records_of(trace: &NodeTrace) -> Vec<TraceRecord> {
    let mut r = vec![TraceRecord::Header(trace.header.clone())];
    // Batch boundaries are not kept: one mark covers what was committed.
    let (committed, rest) = trace.steps.split_at(trace.committed);
    r.extend(committed.iter().cloned().map(TraceRecord::Step));
    if !committed.is_empty() {
        r.push(TraceRecord::Committed {
            steps: committed.len() as u64,
        });
    }
    r.extend(rest.iter().cloned().map(TraceRecord::Step));
    if trace.truncated {
        r.push(TraceRecord::Truncated {
            steps: trace.steps.len() as u64,
        });
    }
    r
}
