//! TRACE-1: each node's recorded inputs replayed through the model's own
//! actor, on a [`ReplayStore`], must give the recorded commands and state
//! digests, step by step, start after start. TRACE-3 is checked on the
//! way (clocks, timers), and so are the facts the requirements need: lease
//! intervals, applied mutations with their bytes, versions, acknowledgements.
//!
//! Each start of a node is replayed from its `Start` record: a chunkserver
//! restarts on the store its previous start left (the replay's, which must
//! show what the real one restored), the master on the durable state its
//! trace says it restored (which must be one it saved). A step whose replay
//! differs is reported once, with the difference; replay of that start
//! stops there, since every later state would differ for the same reason,
//! while the checks over recorded messages go on.
//!
//! The role handlers are called directly, as [`leasehold_model::Node`]
//! delegates to them, so that a state is handed over owned and not cloned
//! on every step.

use leasehold_model::chunkserver::{ChunkserverActor, ReplicaLease};
use leasehold_model::client::ClientActor;
use leasehold_model::master::{LeaseView, MasterActor, MasterDurable, MasterState, NodeStorage};
use leasehold_model::msg::{ApplyOp, ClientOp, Failure, LeaseInfo, Msg, OpResult, Timer};
use leasehold_model::types::{ChunkHandle, ChunkVersion, Offset, Stamp, StoreError, StoreView};
use leasehold_model::{Node, NodeState};
use stateright::actor::{Command, Id, Out};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::store::{FaultSwitch, ReplayStore, StoreEvent};
use super::{Check, Finding, Loc};
use crate::host::BATCH_MSGS_MAX;
use crate::payload::Bytes;
use crate::trace::{NodeTrace, TraceActor, TraceCommand, TraceInput, TraceStep, TraceStorage};

type ReplayNode = Node<ReplayStore>;
type ReplayOut = Out<ReplayNode>;

/// A timer may be seen firing this much before its recorded deadline: the
/// host reads the clock twice per step (nanoseconds for the trace, an
/// `Instant` for its timers), a few microseconds apart at worst.
pub const TIMER_SLACK_NS: u64 = 1_000_000;
/// Data calls of one step tried as the one a recorded store fault hit.
const FAULT_CALLS_TRIED_MAX: u32 = 256;
/// Steps replayed between progress reports.
const TICK_STEPS: u64 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Master,
    Chunkserver,
    Client,
}

/// A span of real time during which a node held (chunkserver) or granted
/// (master) lease `epoch` of `chunk`. `to_ns` is `None` when nothing in
/// the run ended it.
#[derive(Clone, Debug)]
pub struct Interval {
    pub chunk: ChunkHandle,
    pub epoch: u64,
    pub from_ns: u64,
    pub to_ns: Option<u64>,
    pub from: Loc,
    pub file: PathBuf,
}

/// The master's first grant of a lease epoch.
#[derive(Clone, Debug)]
pub struct Grant {
    pub chunk: ChunkHandle,
    pub epoch: u64,
    pub version: ChunkVersion,
    pub clock_ns: u64,
    pub at: Loc,
    pub file: PathBuf,
}

/// Replicas the master named to a client (act 1220, or a read's lookup).
#[derive(Clone, Debug)]
pub struct Named {
    pub clock_ns: u64,
    pub at: Loc,
    pub file: PathBuf,
    pub info: LeaseInfo,
}

/// A mutation a client was told succeeded and reported to its application.
#[derive(Clone, Debug)]
pub struct Ack {
    pub chunk: ChunkHandle,
    pub offset: Offset,
    pub stamp: Stamp,
    pub data: Bytes,
    pub append: bool,
    pub primary: u64,
    pub clock_ns: u64,
    /// When the client took up the operation (APPEND-2's real-time order).
    pub started_ns: u64,
    pub at: Loc,
    pub file: PathBuf,
}

/// One step's changes to what the always-properties read, for the global
/// states [`super::global`] rebuilds.
#[derive(Clone, Debug)]
pub enum Change {
    Store(StoreEvent),
    /// A chunkserver's leases after the step, each held one with the
    /// deadline of the timer that ends it.
    Leases(Vec<(ReplicaLease, Option<u64>)>),
    Master(Arc<MasterState>),
    /// A client's cached lease holders after the step.
    Cache(Vec<LeaseInfo>),
    /// `acks[i]` of this node.
    Ack(usize),
}

/// The changes one replayed step made.
#[derive(Clone, Debug)]
pub struct Observed {
    pub at: Loc,
    pub changes: Vec<Change>,
}

/// What replaying one node gave: its findings and the facts the
/// requirements are checked on.
pub struct NodeOutcome {
    pub node: u64,
    pub kind: Kind,
    pub findings: Vec<Finding>,
    pub notes: Vec<Finding>,
    pub steps_replayed: u64,
    pub primary: Vec<Interval>,
    pub master_leases: Vec<Interval>,
    pub grants: Vec<Grant>,
    pub named: Vec<Named>,
    /// (chunk, clock, version) whenever the store's version of a chunk was
    /// set.
    pub versions: Vec<(ChunkHandle, u64, ChunkVersion)>,
    pub acks: Vec<Ack>,
    /// Chunks this node, as primary, reported full (act 1440).
    pub full: Vec<(ChunkHandle, Loc, PathBuf)>,
    /// The chunkserver's store when its trace ends, and whether its bytes
    /// are all known (not if a replay stopped or a restart restored more
    /// than the replay had).
    pub final_store: Option<ReplayStore>,
    pub store_exact: bool,
    pub final_master: Option<MasterDurable>,
    /// Every replayed start reached its end.
    pub replayed_whole: bool,
    /// Steps that changed what the always-properties read, in order.
    pub observed: Vec<Observed>,
    /// The clock of the first step whose replay stopped, if one did: the
    /// global states after it are not known.
    pub stopped_ns: Option<u64>,
}

impl NodeOutcome {
    /// Nothing found yet about `node`.
    pub fn new(node: u64, kind: Kind) -> Self {
        NodeOutcome {
            node,
            kind,
            findings: vec![],
            notes: vec![],
            steps_replayed: 0,
            primary: vec![],
            master_leases: vec![],
            grants: vec![],
            named: vec![],
            versions: vec![],
            acks: vec![],
            full: vec![],
            final_store: None,
            store_exact: true,
            final_master: None,
            replayed_whole: true,
            observed: vec![],
            stopped_ns: None,
        }
    }
}

/// Replays every node, `threads` at a time; `tick` hears of steps done.
pub fn replay_all(
    nodes: &[(&u64, &Vec<NodeTrace>)],
    threads: usize,
    tick: &(dyn Fn(u64) + Sync),
) -> Vec<NodeOutcome> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<NodeOutcome>>> =
        Mutex::new((0..nodes.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.min(nodes.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((&node, files)) = nodes.get(i) else {
                    break;
                };
                let outcome = replay_node(node, files, tick);
                results.lock().expect("results lock")[i] = Some(outcome);
            });
        }
    });
    results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|o| o.expect("every node replayed"))
        .collect()
}

enum Role {
    Master(MasterActor),
    Chunkserver(ChunkserverActor<ReplayStore>),
    Client(ClientActor<Bytes>),
}

/// What one node carries from start to start.
struct NodeCtx<'a> {
    out: NodeOutcome,
    tick: &'a (dyn Fn(u64) + Sync),
    untold: u64,
    journal: Arc<Mutex<Vec<StoreEvent>>>,
    faults: Arc<FaultSwitch>,
    /// The chunkserver's store as its last start left it.
    carried: Option<ReplayStore>,
    /// Chunkserver saves whose recorded view is the store after a later
    /// step of their batch (see [`compare`]).
    saves_from_later_steps: u64,
    /// The node's files before the one being replayed.
    earlier: &'a [NodeTrace],
    /// ORDER-2: the last stamp this node applied, per chunk, and at which
    /// step (a primary sends one stamp to each secondary in one step).
    last_applied: HashMap<ChunkHandle, (Stamp, Loc)>,
    /// This step's changes so far, and the last values recorded.
    changes: Vec<Change>,
    last_leases: Vec<(ReplicaLease, Option<u64>)>,
    last_master: Option<Arc<MasterState>>,
    last_cache: Vec<LeaseInfo>,
    /// A client's current operation: whether it had one after the last
    /// step, and when it took it up.
    had_op: bool,
    op_started_ns: u64,
}

impl NodeCtx<'_> {
    fn fail(&mut self, check: Check, at: Loc, file: &Path, explanation: String) {
        self.out.findings.push(Finding {
            check,
            at,
            file: file.to_path_buf(),
            explanation,
        });
    }

    fn note(&mut self, check: Check, at: Loc, file: &Path, explanation: String) {
        self.out.notes.push(Finding {
            check,
            at,
            file: file.to_path_buf(),
            explanation,
        });
    }
}

fn replay_node<'a>(
    node: u64,
    files: &'a [NodeTrace],
    tick: &'a (dyn Fn(u64) + Sync),
) -> NodeOutcome {
    let kind = match files[0].header.actor {
        TraceActor::Master => Kind::Master,
        TraceActor::Chunkserver { .. } => Kind::Chunkserver,
        TraceActor::Client { .. } => Kind::Client,
    };
    let mut ctx = NodeCtx {
        out: NodeOutcome::new(node, kind),
        tick,
        untold: 0,
        journal: Arc::default(),
        faults: Arc::default(),
        carried: None,
        earlier: &[],
        saves_from_later_steps: 0,
        last_applied: HashMap::new(),
        changes: vec![],
        last_leases: vec![],
        last_master: None,
        last_cache: vec![],
        had_op: false,
        op_started_ns: 0,
    };
    for (i, file) in files.iter().enumerate() {
        ctx.earlier = &files[..i];
        replay_file(&mut ctx, file, files.get(i + 1));
    }
    (ctx.tick)(ctx.untold);
    if ctx.saves_from_later_steps > 0 {
        let last = files.last().expect("a node has a file");
        ctx.note(
            Check::Trace1,
            Loc {
                node,
                start: last.header.start,
                step: 0,
            },
            &last.path,
            format!(
                "{} saved store views show the store after a later step of their batch (the host records a batch's steps after all of them ran)",
                ctx.saves_from_later_steps
            ),
        );
    }
    if kind == Kind::Chunkserver {
        ctx.out.final_store = ctx.carried.take();
    }
    ctx.out
}

/// A chunkserver's lease being held, as tracked step by step.
struct OpenLease {
    epoch: u64,
    from_ns: u64,
    from: Loc,
    /// The lease timer's deadline after the last step.
    deadline: Option<u64>,
    untimed_reported: bool,
}

fn replay_file(ctx: &mut NodeCtx, file: &NodeTrace, next: Option<&NodeTrace>) {
    let previous = ctx.earlier.last();
    let header = &file.header;
    let node = header.node;
    let start = header.start;
    let path = &file.path;
    let loc = |step: u64| Loc { node, start, step };
    let cfg = Arc::new(header.protocol.clone());
    let id = Id::from(node as usize);
    let kind_now = match header.actor {
        TraceActor::Master => Kind::Master,
        TraceActor::Chunkserver { .. } => Kind::Chunkserver,
        TraceActor::Client { .. } => Kind::Client,
    };
    if kind_now != ctx.out.kind {
        ctx.fail(
            Check::Trace1,
            loc(0),
            path,
            format!(
                "this start runs a {kind_now:?}, the node's first a {:?}",
                ctx.out.kind
            ),
        );
        ctx.out.replayed_whole = false;
        ctx.out.stopped_ns.get_or_insert(header.clock_ns);
        return;
    }
    let role = match &header.actor {
        TraceActor::Master => Role::Master(MasterActor {
            cfg,
            initial: MasterDurable::default(),
        }),
        TraceActor::Chunkserver { chunk_bytes } => {
            let store = ctx.carried.take().unwrap_or_else(|| {
                ReplayStore::new(*chunk_bytes)
                    .with_journal(ctx.journal.clone())
                    .with_faults(ctx.faults.clone())
            });
            Role::Chunkserver(ChunkserverActor {
                cfg,
                initial_store: store,
            })
        }
        TraceActor::Client {
            number,
            report_to,
            fragment_max,
        } => Role::Client(ClientActor {
            cfg,
            number: *number,
            script: vec![],
            report_to: report_to.map(|r| Id::from(r as usize)),
            fragment_max: *fragment_max,
        }),
    };
    let report_to = match &header.actor {
        TraceActor::Client { report_to, .. } => *report_to,
        _ => None,
    };

    let mut state: Option<NodeState<ReplayStore>> = None;
    let mut diverged = false;
    let mut armed: HashMap<Timer, u64> = HashMap::new();
    let mut last_clock = header.clock_ns;
    let mut open_primary: BTreeMap<ChunkHandle, OpenLease> = BTreeMap::new();
    let mut open_master: BTreeMap<ChunkHandle, (u64, u64, Loc)> = BTreeMap::new();
    let mut pending_saves: Vec<(StoreView, u64)> = vec![];
    let mut numbering_reported = false;

    for (index, step) in file.steps.iter().enumerate() {
        let at = loc(step.n);
        let clock = step.clock_ns;
        if step.n != index as u64 && !numbering_reported {
            numbering_reported = true;
            ctx.fail(
                Check::Trace1,
                at,
                path,
                format!(
                    "record {index} is numbered step {}: steps are missing",
                    step.n
                ),
            );
        }
        // TRACE-3: one clock, read before each step, never goes back.
        if clock < last_clock {
            ctx.fail(
                Check::Trace3,
                at,
                path,
                format!(
                    "clock reading {} ms before the previous step's",
                    ms(last_clock - clock)
                ),
            );
        }
        last_clock = last_clock.max(clock);
        let is_start = matches!(step.input, TraceInput::Start { .. });
        if is_start != (index == 0) {
            ctx.fail(
                Check::Trace1,
                at,
                path,
                if is_start {
                    "a start record inside a trace file (each start has its own file)".into()
                } else {
                    "the file does not begin with the node's start".into()
                },
            );
            if index == 0 {
                diverged = true;
                ctx.out.replayed_whole = false;
                ctx.out.stopped_ns.get_or_insert(clock);
            }
            if is_start {
                continue;
            }
        }
        // TRACE-3: the host fires only armed timers, at or after their
        // deadlines, and disarms them first.
        if let TraceInput::Timer(t) = &step.input {
            match armed.remove(t) {
                None => ctx.fail(
                    Check::Trace3,
                    at,
                    path,
                    format!("timer {t:?} fired but no step armed it (or it was cancelled)"),
                ),
                Some(deadline) if clock + TIMER_SLACK_NS < deadline => ctx.fail(
                    Check::Trace3,
                    at,
                    path,
                    format!(
                        "timer {t:?} fired {} ms before its deadline",
                        ms(deadline - clock)
                    ),
                ),
                Some(_) => {}
            }
        }
        // A chunkserver's recorded save shows its store when the batch was
        // recorded; a batch holds messages only.
        if !pending_saves.is_empty() && !matches!(step.input, TraceInput::Msg { .. }) {
            for (_, k) in pending_saves.drain(..) {
                ctx.fail(
                    Check::Trace1,
                    loc(k),
                    path,
                    "a saved store view matches no replayed store up to the end of its batch"
                        .into(),
                );
            }
        }
        recorded_checks(ctx, step, at, path, &open_primary);
        if let (Some(NodeState::Client(c)), false) = (&state, diverged) {
            note_ack(ctx, c, step, report_to, at, path);
        }

        if !diverged {
            match replay_step(ctx, &role, id, &mut state, step, previous, at, path) {
                Ok(pending) => {
                    ctx.out.steps_replayed += 1;
                    pending_saves.extend(pending.into_iter().map(|v| (v, step.n)));
                }
                Err(why) => {
                    diverged = true;
                    ctx.out.replayed_whole = false;
                    ctx.out.stopped_ns.get_or_insert(clock);
                    // What the step showed before it diverged (an
                    // acknowledgement) still counts, up to here.
                    if !ctx.changes.is_empty() {
                        let changes = std::mem::take(&mut ctx.changes);
                        ctx.out.observed.push(Observed { at, changes });
                    }
                    let rest = file.steps.len() - index - 1;
                    ctx.fail(
                        Check::Trace1,
                        at,
                        path,
                        format!(
                            "on {}: {why} (replay of this start stops; {rest} later steps not replayed)",
                            describe_input(&step.input)
                        ),
                    );
                }
            }
        }
        for c in &step.commands {
            match c {
                TraceCommand::SetTimer { timer, deadline_ns } => {
                    armed.insert(timer.clone(), *deadline_ns);
                }
                TraceCommand::CancelTimer(timer) => {
                    armed.remove(timer);
                }
                _ => {}
            }
        }
        if !diverged {
            after_step(
                ctx,
                &state,
                step,
                at,
                path,
                &armed,
                &mut open_primary,
                &mut open_master,
                &mut pending_saves,
            );
        }
        ctx.untold += 1;
        if ctx.untold >= TICK_STEPS {
            (ctx.tick)(ctx.untold);
            ctx.untold = 0;
        }
    }
    for (_, k) in pending_saves.drain(..) {
        ctx.fail(
            Check::Trace1,
            loc(k),
            path,
            "a saved store view matches no replayed store up to the end of the trace".into(),
        );
    }

    // The node's leases end with this start: a held one at its deadline
    // (or when the node came back, if sooner); the master's view of one at
    // the end of the quiet period its next start waits out (LEASE-3).
    let next_start_ns = next.map(|n| n.header.clock_ns);
    for (chunk, l) in std::mem::take(&mut open_primary) {
        let to = match (l.deadline, next_start_ns) {
            (Some(d), Some(n)) => Some(d.min(n)),
            (d, n) => d.or(n),
        };
        ctx.out.primary.push(Interval {
            chunk,
            epoch: l.epoch,
            from_ns: l.from_ns,
            to_ns: to,
            from: l.from,
            file: path.to_path_buf(),
        });
    }
    let quiet_end = next.map(|n| {
        n.steps
            .iter()
            .find(|s| matches!(s.input, TraceInput::Timer(Timer::StartupQuiet)))
            .map_or(n.header.clock_ns, |s| s.clock_ns)
    });
    for (chunk, (epoch, from_ns, from)) in std::mem::take(&mut open_master) {
        ctx.out.master_leases.push(Interval {
            chunk,
            epoch,
            from_ns,
            to_ns: quiet_end,
            from,
            file: path.to_path_buf(),
        });
    }

    if file.steps.is_empty() {
        ctx.note(
            Check::Trace1,
            loc(0),
            path,
            "this start recorded no step: the node never ran it (e.g. its address was in use)"
                .into(),
        );
    }
    if file.torn_tail {
        ctx.note(
            Check::Trace1,
            loc(file.steps.len() as u64),
            path,
            "the last record is torn (the node was killed while writing it); its step's commands never ran"
                .into(),
        );
    }
    if file.truncated {
        ctx.note(
            Check::Trace1,
            loc(file.steps.len() as u64),
            path,
            "the node's trace budget ran out here: later steps were not recorded".into(),
        );
    }
    match state {
        Some(NodeState::Chunkserver(s)) => {
            if diverged {
                ctx.out.store_exact = false;
            }
            ctx.carried = Some(s.store);
        }
        Some(NodeState::Master(m)) if !diverged => ctx.out.final_master = Some(m.durable),
        None if matches!(role, Role::Chunkserver(_)) => {
            // A start that never ran leaves the store as it found it.
            if let Role::Chunkserver(a) = &role {
                ctx.carried = Some(a.initial_store.clone());
            }
        }
        _ => {
            if ctx.out.kind == Kind::Master {
                if let Some(d) = master_saves(std::slice::from_ref(file)).next() {
                    ctx.out.final_master = Some(d.clone());
                }
            }
        }
    }
}

/// The master storage `files` saved, latest first.
fn master_saves(files: &[NodeTrace]) -> impl Iterator<Item = &MasterDurable> {
    files
        .iter()
        .rev()
        .flat_map(|f| f.steps.iter().rev())
        .flat_map(|s| s.commands.iter().rev())
        .filter_map(|c| match c {
            TraceCommand::Save(TraceStorage::Master(d)) => Some(d),
            _ => None,
        })
}

/// Checks over what the node recorded, whether or not its replay got here.
fn recorded_checks(
    ctx: &mut NodeCtx,
    step: &TraceStep,
    at: Loc,
    path: &Path,
    open_primary: &BTreeMap<ChunkHandle, OpenLease>,
) {
    let mut late_reported: Vec<ChunkHandle> = vec![];
    let answers_gap_report = matches!(
        step.input,
        TraceInput::Msg {
            msg: Msg::ApplyGap { .. },
            ..
        }
    );
    for c in &step.commands {
        let TraceCommand::Send { msg, .. } = c else {
            continue;
        };
        let (chunk, stamp, as_primary) = match msg {
            // A skip uses up a serial that failed: nothing is applied.
            Msg::Apply {
                op: ApplyOp::Skip, ..
            } => continue,
            // Applies sent again in answer to a gap report were ordered
            // (and checked) when first sent.
            Msg::Apply { .. } if answers_gap_report => continue,
            Msg::Apply { chunk, stamp, .. } => (*chunk, *stamp, true),
            Msg::Applied {
                chunk,
                stamp,
                result: Ok(()),
            } => (*chunk, *stamp, false),
            Msg::ChunkFull { chunk, .. } => {
                ctx.out.full.push((*chunk, at, path.to_path_buf()));
                continue;
            }
            Msg::LeaseHolder { info, .. }
            | Msg::Located {
                info: Some(info), ..
            } => {
                ctx.out.named.push(Named {
                    clock_ns: step.clock_ns,
                    at,
                    file: path.to_path_buf(),
                    info: info.clone(),
                });
                continue;
            }
            _ => continue,
        };
        // ORDER-2 ([00100]): stamps applied on one replica only grow; a
        // primary sends one stamp to each secondary in one step.
        if let Some((last, last_at)) = ctx.last_applied.get(&chunk).copied() {
            let in_order = stamp > last || (as_primary && stamp == last && last_at == at);
            if !in_order {
                ctx.fail(
                    Check::Order2,
                    at,
                    path,
                    format!("applies {stamp:?} of chunk {chunk} after {last:?} (at {last_at})"),
                );
            }
        }
        let e = ctx.last_applied.entry(chunk).or_insert((stamp, at));
        if stamp >= e.0 {
            *e = (stamp, at);
        }
        // LEASE-1: a primary orders mutations only within its lease (once
        // per step: it sends one stamp to every secondary).
        if as_primary && !late_reported.contains(&chunk) {
            late_reported.push(chunk);
            if let Some(l) = open_primary.get(&chunk) {
                if let Some(d) = l.deadline.filter(|d| *d <= step.clock_ns) {
                    ctx.fail(
                        Check::Lease1,
                        at,
                        path,
                        format!(
                            "orders {stamp:?} of chunk {chunk} as primary {} ms after its lease ran out",
                            ms(step.clock_ns - d)
                        ),
                    );
                }
            }
        }
    }
}

/// Notes a mutation the client acknowledges to its application in this
/// step, with the data its current operation carries.
fn note_ack(
    ctx: &mut NodeCtx,
    c: &leasehold_model::client::ClientState<Bytes>,
    step: &TraceStep,
    report_to: Option<u64>,
    at: Loc,
    path: &Path,
) {
    let TraceInput::Msg {
        src,
        msg:
            Msg::MutationDone {
                chunk,
                data,
                offset,
                stamp,
            },
    } = &step.input
    else {
        return;
    };
    let reported = step.commands.iter().any(|cmd| {
        matches!(cmd, TraceCommand::Send { dst, msg: Msg::Done { result: OpResult::Mutated { .. } } } if Some(*dst) == report_to)
    });
    if !reported {
        return;
    }
    let Some(cur) = c.current.as_ref().filter(|cur| cur.data == *data) else {
        return;
    };
    let (bytes, append) = match &cur.op {
        ClientOp::Append { data, .. } => (data.clone(), true),
        ClientOp::Write { data, .. } => (data.clone(), false),
        _ => return,
    };
    ctx.out.acks.push(Ack {
        chunk: *chunk,
        offset: *offset,
        stamp: *stamp,
        data: bytes,
        append,
        primary: *src,
        clock_ns: step.clock_ns,
        started_ns: ctx.op_started_ns,
        at,
        file: path.to_path_buf(),
    });
    ctx.changes.push(Change::Ack(ctx.out.acks.len() - 1));
}

/// Replays one step and compares it with the record; a recorded store
/// fault the replay cannot produce is taken from the trace and the step
/// run again with it.
#[allow(clippy::too_many_arguments)]
fn replay_step(
    ctx: &mut NodeCtx,
    role: &Role,
    id: Id,
    state: &mut Option<NodeState<ReplayStore>>,
    step: &TraceStep,
    previous: Option<&NodeTrace>,
    at: Loc,
    path: &Path,
) -> Result<Vec<StoreView>, String> {
    let mut pending = vec![];
    if let TraceInput::Start { restored } = &step.input {
        let out = start(ctx, role, id, state, restored.as_ref(), previous, at, path);
        compare(&out, &step.commands, &mut pending)?;
        compare_digest(state, step)?;
        return Ok(pending);
    }
    let recorded_faults = store_errors(step.commands.iter().filter_map(|c| match c {
        TraceCommand::Send { msg, .. } => Some(msg),
        _ => None,
    }));
    let before = (!recorded_faults.is_empty()).then(|| {
        (
            state.clone(),
            ctx.journal.lock().expect("journal lock").len(),
        )
    });
    ctx.faults.arm(&[]);
    let out = handle(role, id, state, &step.input);
    let first =
        compare(&out, &step.commands, &mut pending).and_then(|()| compare_digest(state, step));
    let Err(why) = first else {
        return Ok(pending);
    };
    let Some((snapshot, journal_len)) = before else {
        return Err(why);
    };
    // Search, fault by fault, for the data call each recorded fault hit.
    let restore = |ctx: &mut NodeCtx, state: &mut Option<NodeState<ReplayStore>>| {
        *state = snapshot.clone();
        ctx.journal
            .lock()
            .expect("journal lock")
            .truncate(journal_len);
    };
    let mut chosen: Vec<(u32, StoreError)> = vec![];
    for (j, e) in recorded_faults.iter().enumerate() {
        let from = chosen.last().map_or(0, |(k, _)| k + 1);
        let mut found = false;
        let mut k = from;
        while k < FAULT_CALLS_TRIED_MAX {
            restore(ctx, state);
            let mut trial = chosen.clone();
            trial.push((k, e.clone()));
            ctx.faults.arm(&trial);
            let out = handle(role, id, state, &step.input);
            let calls = ctx.faults.calls();
            let got = store_errors(out.iter().filter_map(|c| match c {
                Command::Send(_, m) => Some(m),
                _ => None,
            }));
            if got.len() > j && got[..=j] == recorded_faults[..=j] {
                chosen = trial;
                found = true;
                break;
            }
            if k >= calls {
                break;
            }
            k += 1;
        }
        if !found {
            break;
        }
    }
    restore(ctx, state);
    ctx.faults.arm(&chosen);
    let out = handle(role, id, state, &step.input);
    ctx.faults.arm(&[]);
    pending.clear();
    compare(&out, &step.commands, &mut pending)
        .and_then(|()| compare_digest(state, step))
        .map_err(|again| {
            if chosen.is_empty() {
                why.clone()
            } else {
                format!("{again} (even with the store faults the trace records)")
            }
        })?;
    let faults: Vec<String> = chosen.iter().map(|(_, e)| e.to_string()).collect();
    ctx.note(
        Check::Trace1,
        at,
        path,
        format!(
            "store fault taken from the trace: {} (the replay's store cannot fail by itself)",
            faults.join("; ")
        ),
    );
    Ok(pending)
}

/// Store errors carried in failure replies, in command order.
fn store_errors<'a>(msgs: impl Iterator<Item = &'a Msg<Bytes>>) -> Vec<StoreError> {
    msgs.filter_map(|m| match m {
        Msg::MutationFailed {
            reason: Failure::Store(e),
            ..
        }
        | Msg::Applied {
            result: Err(Failure::Store(e)),
            ..
        }
        | Msg::ReadReply {
            result: Err(Failure::Store(e)),
            ..
        } => Some(e.clone()),
        _ => None,
    })
    .collect()
}

/// Runs the node's start handler on the storage the trace says it found.
#[allow(clippy::too_many_arguments)]
fn start(
    ctx: &mut NodeCtx,
    role: &Role,
    id: Id,
    state: &mut Option<NodeState<ReplayStore>>,
    restored: Option<&TraceStorage>,
    previous: Option<&NodeTrace>,
    at: Loc,
    path: &Path,
) -> ReplayOut {
    let mut out = ReplayOut::new();
    match role {
        Role::Master(a) => {
            let durable = match restored {
                Some(TraceStorage::Master(d)) => Some(d.clone()),
                Some(other) => {
                    ctx.fail(
                        Check::Trace1,
                        at,
                        path,
                        format!("the master restored {other:?}"),
                    );
                    None
                }
                None => None,
            };
            // A restart finds what the previous start saved last, or an
            // earlier save if it was killed after recording its step but
            // before carrying out the save.
            if let Some(prev) = previous {
                let mut saves = master_saves(ctx.earlier);
                let explained = match &durable {
                    None => saves.next().is_none(),
                    Some(d) => saves.next() == Some(d),
                };
                if !explained {
                    // Saves that were recorded but never carried out are
                    // at most one batch's.
                    let skipped = durable.as_ref().and_then(|d| {
                        master_saves(ctx.earlier)
                            .take(2 * BATCH_MSGS_MAX)
                            .position(|s| s == d)
                    });
                    match skipped {
                        Some(i) => ctx.note(
                            Check::Trace1,
                            at,
                            path,
                            format!(
                                "restored the master's storage as saved {i} saves before the last of start {}: the later ones were recorded but not carried out (the node stopped in between)",
                                prev.header.start
                            ),
                        ),
                        None => ctx.fail(
                            Check::Trace1,
                            at,
                            path,
                            format!(
                                "restored master storage that start {} never saved",
                                prev.header.start
                            ),
                        ),
                    }
                }
            }
            *state = Some(NodeState::Master(
                a.on_start::<ReplayStore>(&durable, &mut out),
            ));
        }
        Role::Chunkserver(a) => {
            let storage = match restored {
                Some(TraceStorage::Chunkserver(_)) => {
                    Some(NodeStorage::Chunkserver(Arc::new(a.initial_store.clone())))
                }
                Some(other) => {
                    ctx.fail(
                        Check::Trace1,
                        at,
                        path,
                        format!("a chunkserver restored {other:?}"),
                    );
                    None
                }
                None => None,
            };
            let mut s = a.on_start(&storage, &mut out);
            if let Some(TraceStorage::Chunkserver(view)) = restored {
                // The trace shows the restored store as it was once the
                // start step ran (the restart already counted).
                let mine = StoreView::of(&s.store);
                if mine != *view {
                    let why = describe_view_difference(&mine, view);
                    match previous {
                        None => ctx.note(
                            Check::Trace1,
                            at,
                            path,
                            format!("the node's store predates its trace ({why}); its earlier bytes are unknown"),
                        ),
                        Some(p) if p.torn_tail || p.truncated => ctx.note(
                            Check::Trace1,
                            at,
                            path,
                            format!(
                                "restored store differs from the replay of start {} ({why}); that start's trace ends {}, so steps whose records were lost may have changed it",
                                p.header.start,
                                if p.torn_tail { "with a torn record" } else { "truncated" }
                            ),
                        ),
                        Some(p) if within_one_batch(&mine, view) => ctx.note(
                            Check::Trace1,
                            at,
                            path,
                            format!(
                                "restored store differs from the replay of start {} by no more than one batch of mutations ({why}): that start was killed with a batch of chunk writes written but not yet synced, or synced but not yet recorded",
                                p.header.start
                            ),
                        ),
                        Some(p) => ctx.fail(
                            Check::Trace1,
                            at,
                            path,
                            format!(
                                "restored store differs from what start {} left ({why})",
                                p.header.start
                            ),
                        ),
                    }
                    ctx.out.store_exact = false;
                    s.store.adopt_view(view);
                    for (chunk, meta, _) in &view.chunks {
                        ctx.out
                            .versions
                            .push((*chunk, at_clock(previous), meta.version));
                    }
                }
            }
            *state = Some(NodeState::Chunkserver(s));
        }
        Role::Client(a) => {
            *state = Some(NodeState::Client(a.on_start::<ReplayStore>(id, &mut out)));
        }
    }
    out
}

fn at_clock(previous: Option<&NodeTrace>) -> u64 {
    previous
        .and_then(|p| p.steps.last())
        .map_or(0, |s| s.clock_ns)
}

/// Whether two store views differ by what one batch of steps could leave
/// half done when the process is killed: the host records each step as its
/// handler returns and syncs the chunk files once per batch of at most
/// `BATCH_MSGS_MAX` messages, so a kill keeps chunk writes only partly
/// (data, metadata and their syncs are separate calls; the page cache
/// survives the kill). That differs by at most a batch of serials and one
/// version step on any chunk; more is a failure.
fn within_one_batch(mine: &StoreView, theirs: &StoreView) -> bool {
    let batch = crate::host::BATCH_MSGS_MAX as u64;
    let close = |a: &(u64, leasehold_model::types::ReplicaMeta, u64),
                 b: &(u64, leasehold_model::types::ReplicaMeta, u64)| {
        let (ma, mb) = (a.1, b.1);
        if ma == mb {
            // The same mutations applied leave the same data.
            return a.2 == b.2;
        }
        ma.version.abs_diff(mb.version) <= 1
            && (ma.applied.epoch != mb.applied.epoch
                || ma.applied.serial.abs_diff(mb.applied.serial) <= batch)
    };
    mine.incarnation == theirs.incarnation
        && theirs.chunks.iter().all(|t| {
            mine.chunks
                .iter()
                .find(|m| m.0 == t.0)
                .is_none_or(|m| close(m, t))
        })
}

fn describe_view_difference(mine: &StoreView, theirs: &StoreView) -> String {
    if mine.incarnation != theirs.incarnation {
        return format!(
            "restart count {} where the trace has {}",
            mine.incarnation, theirs.incarnation
        );
    }
    for (h, meta, len) in &theirs.chunks {
        match mine.chunks.iter().find(|(m, ..)| m == h) {
            None => return format!("chunk {h} missing from the replay"),
            Some((_, m, l)) if m != meta || l != len => {
                return format!(
                    "chunk {h}: replay has v{} {:?} {l} bytes, the trace v{} {:?} {len} bytes",
                    m.version, m.applied, meta.version, meta.applied
                )
            }
            _ => {}
        }
    }
    "the replay holds chunks the trace does not".into()
}

/// Calls the handler for one recorded input (not a start).
fn handle(
    role: &Role,
    id: Id,
    state: &mut Option<NodeState<ReplayStore>>,
    input: &TraceInput,
) -> ReplayOut {
    let mut out = ReplayOut::new();
    let Some(s) = state.take() else {
        return out;
    };
    let next = match (role, s) {
        (Role::Master(a), NodeState::Master(s)) => {
            let mut cow = Cow::Owned(s);
            match input {
                TraceInput::Msg { src, msg } => a.on_msg::<ReplayStore>(
                    &mut cow,
                    Id::from(*src as usize),
                    msg.clone(),
                    &mut out,
                ),
                TraceInput::Timer(t) => a.on_timeout::<ReplayStore>(&mut cow, t, &mut out),
                TraceInput::Start { .. } => {}
            }
            NodeState::Master(cow.into_owned())
        }
        (Role::Chunkserver(a), NodeState::Chunkserver(s)) => {
            let mut cow = Cow::Owned(s);
            match input {
                TraceInput::Msg { src, msg } => {
                    a.on_msg(id, &mut cow, Id::from(*src as usize), msg.clone(), &mut out)
                }
                TraceInput::Timer(t) => a.on_timeout(&mut cow, t, &mut out),
                TraceInput::Start { .. } => {}
            }
            NodeState::Chunkserver(cow.into_owned())
        }
        (Role::Client(a), NodeState::Client(s)) => {
            let mut cow = Cow::Owned(s);
            match input {
                TraceInput::Msg { src, msg } => a.on_msg::<ReplayStore>(
                    id,
                    &mut cow,
                    Id::from(*src as usize),
                    msg.clone(),
                    &mut out,
                ),
                TraceInput::Timer(t) => a.on_timeout::<ReplayStore>(id, &mut cow, t, &mut out),
                TraceInput::Start { .. } => {}
            }
            NodeState::Client(cow.into_owned())
        }
        (_, s) => s,
    };
    *state = Some(next);
    out
}

/// Compares replayed commands with recorded ones (timer deadlines aside).
/// A chunkserver's saved store view that differs from the replay's at
/// this step goes to `pending`: the host records it when the whole batch
/// has run, so it may show a later step's store.
fn compare(
    out: &ReplayOut,
    rec: &[TraceCommand],
    pending: &mut Vec<StoreView>,
) -> Result<(), String> {
    for (i, (c, r)) in out.iter().zip(rec).enumerate() {
        let same = match (c, r) {
            (Command::Send(dst, m), TraceCommand::Send { dst: d, msg }) => {
                usize::from(*dst) as u64 == *d && m == msg
            }
            (Command::SetTimer(t, _), TraceCommand::SetTimer { timer, .. }) => t == timer,
            (Command::CancelTimer(t), TraceCommand::CancelTimer(r)) => t == r,
            (
                Command::Save(NodeStorage::Master(d)),
                TraceCommand::Save(TraceStorage::Master(r)),
            ) => **d == *r,
            (
                Command::Save(NodeStorage::Chunkserver(s)),
                TraceCommand::Save(TraceStorage::Chunkserver(v)),
            ) => {
                if StoreView::of(&**s) != *v {
                    pending.push(v.clone());
                }
                true
            }
            (Command::Save(NodeStorage::Client), TraceCommand::Save(TraceStorage::Client)) => true,
            _ => false,
        };
        if !same {
            return Err(format!(
                "command {i}: the replay {} where the trace {}",
                describe_command(c),
                describe_recorded(r)
            ));
        }
    }
    if out.len() != rec.len() {
        let extra = if out.len() > rec.len() {
            format!("the replay also {}", describe_command(&out[rec.len()]))
        } else {
            format!("the trace also {}", describe_recorded(&rec[out.len()]))
        };
        return Err(format!(
            "the replay gives {} commands, the trace {}: {extra}",
            out.len(),
            rec.len()
        ));
    }
    Ok(())
}

fn compare_digest(state: &Option<NodeState<ReplayStore>>, step: &TraceStep) -> Result<(), String> {
    let digest = state.as_ref().map_or(0, |s| s.protocol_digest());
    if digest == step.digest {
        return Ok(());
    }
    let detail = match state {
        Some(NodeState::Chunkserver(s)) => {
            format!(" (replayed store: {:?})", StoreView::of(&s.store))
        }
        _ => String::new(),
    };
    Err(format!(
        "same commands, but the state after the step differs (digest {digest:016x}, trace {:016x}){detail}",
        step.digest
    ))
}

type ReplayCommand = Command<Msg<Bytes>, Timer, (), NodeStorage<ReplayStore>>;

fn describe_command(c: &ReplayCommand) -> String {
    match c {
        Command::Send(dst, m) => {
            format!("sends {} to {}", short(m), peer(usize::from(*dst) as u64))
        }
        Command::SetTimer(t, _) => format!("sets timer {t:?}"),
        Command::CancelTimer(t) => format!("cancels timer {t:?}"),
        Command::Save(NodeStorage::Master(_)) => "saves the master's storage".into(),
        Command::Save(NodeStorage::Chunkserver(s)) => {
            format!("saves store {:?}", StoreView::of(&**s))
        }
        Command::Save(NodeStorage::Client) => "saves client storage".into(),
        Command::ChooseRandom(k, _) => format!("chooses at random ({k})"),
    }
}

fn describe_recorded(c: &TraceCommand) -> String {
    match c {
        TraceCommand::Send { dst, msg } => format!("sends {} to {}", short(msg), peer(*dst)),
        TraceCommand::SetTimer { timer, .. } => format!("sets timer {timer:?}"),
        TraceCommand::CancelTimer(t) => format!("cancels timer {t:?}"),
        TraceCommand::Save(TraceStorage::Master(_)) => "saves the master's storage".into(),
        TraceCommand::Save(TraceStorage::Chunkserver(v)) => format!("saves store {v:?}"),
        TraceCommand::Save(TraceStorage::Client) => "saves client storage".into(),
    }
}

/// A destination by name: the client library's application id is no node.
fn peer(id: u64) -> String {
    if id == crate::client::APP_ID as u64 {
        "the application".into()
    } else {
        id.to_string()
    }
}

pub fn describe_input(input: &TraceInput) -> String {
    match input {
        TraceInput::Start { restored: None } => "start (nothing restored)".into(),
        TraceInput::Start { restored: Some(_) } => "restart".into(),
        TraceInput::Msg { src, msg } => format!("{} from {}", short(msg), peer(*src)),
        TraceInput::Timer(t) => format!("timer {t:?}"),
    }
}

/// A message's Debug, cut to a line.
pub fn short(m: &Msg<Bytes>) -> String {
    let mut s = format!("{m:?}");
    if s.len() > 240 {
        let mut cut = 240;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("..");
    }
    s
}

pub fn ms(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e6)
}

/// After a replayed step: store events, lease intervals, saved views.
#[allow(clippy::too_many_arguments)]
fn after_step(
    ctx: &mut NodeCtx,
    state: &Option<NodeState<ReplayStore>>,
    step: &TraceStep,
    at: Loc,
    path: &Path,
    armed: &HashMap<Timer, u64>,
    open_primary: &mut BTreeMap<ChunkHandle, OpenLease>,
    open_master: &mut BTreeMap<ChunkHandle, (u64, u64, Loc)>,
    pending_saves: &mut Vec<(StoreView, u64)>,
) {
    let clock = step.clock_ns;
    match state {
        Some(NodeState::Chunkserver(s)) => {
            let events: Vec<StoreEvent> =
                std::mem::take(&mut *ctx.journal.lock().expect("journal lock"));
            for e in events {
                ctx.changes.push(Change::Store(e.clone()));
                if let StoreEvent::Version { chunk, version } = e {
                    ctx.out.versions.push((chunk, clock, version));
                }
            }
            let leases: Vec<(ReplicaLease, Option<u64>)> = s
                .leases
                .iter()
                .map(|l| {
                    let deadline = s.lease_timer(l.chunk).and_then(|t| armed.get(&t).copied());
                    (l.clone(), deadline)
                })
                .collect();
            if leases != ctx.last_leases {
                ctx.changes.push(Change::Leases(leases.clone()));
                ctx.last_leases = leases;
            }
            // LEASE-1: the lease ends at the step that stops holding it or
            // at its timer's deadline, whichever comes first.
            let ended: Vec<ChunkHandle> = open_primary
                .iter()
                .filter(|(chunk, l)| {
                    !s.lease(**chunk)
                        .is_some_and(|now| now.holding && now.epoch == l.epoch)
                })
                .map(|(c, _)| *c)
                .collect();
            for chunk in ended {
                let l = open_primary.remove(&chunk).expect("listed above");
                ctx.out.primary.push(Interval {
                    chunk,
                    epoch: l.epoch,
                    from_ns: l.from_ns,
                    to_ns: Some(l.deadline.map_or(clock, |d| d.min(clock))),
                    from: l.from,
                    file: path.to_path_buf(),
                });
            }
            for l in s.leases.iter().filter(|l| l.holding) {
                let deadline = s.lease_timer(l.chunk).and_then(|t| armed.get(&t).copied());
                let open = open_primary.entry(l.chunk).or_insert(OpenLease {
                    epoch: l.epoch,
                    from_ns: clock,
                    from: at,
                    deadline,
                    untimed_reported: false,
                });
                open.deadline = deadline;
                if deadline.is_none() && !open.untimed_reported {
                    open.untimed_reported = true;
                    ctx.fail(
                        Check::Lease1,
                        at,
                        path,
                        format!(
                            "holds lease {} of chunk {} with no timer armed to end it",
                            l.epoch, l.chunk
                        ),
                    );
                }
            }
            if !pending_saves.is_empty() {
                let view = StoreView::of(&s.store);
                let mut expired = vec![];
                pending_saves.retain(|(v, k)| {
                    if *v == view {
                        ctx.saves_from_later_steps += 1;
                        false
                    } else if step.n - *k + 1 >= BATCH_MSGS_MAX as u64 {
                        expired.push(*k);
                        false
                    } else {
                        true
                    }
                });
                for k in expired {
                    ctx.fail(
                        Check::Trace1,
                        Loc { step: k, ..at },
                        path,
                        "a saved store view matches no replayed store up to the end of its batch"
                            .into(),
                    );
                }
            }
        }
        Some(NodeState::Master(m)) => {
            if ctx.last_master.as_deref() != Some(m) {
                let m = Arc::new(m.clone());
                ctx.changes.push(Change::Master(m.clone()));
                ctx.last_master = Some(m);
            }
            master_leases(ctx, m, step, at, path, open_master)
        }
        Some(NodeState::Client(c)) => {
            if c.cache != ctx.last_cache {
                ctx.changes.push(Change::Cache(c.cache.clone()));
                ctx.last_cache = c.cache.clone();
            }
            // An operation starts when the client takes it up: with none
            // before, or in the step that reports the previous one done.
            let has = c.current.is_some();
            let reported = step.commands.iter().any(|cmd| {
                matches!(
                    cmd,
                    TraceCommand::Send {
                        msg: Msg::Done { .. },
                        ..
                    }
                )
            });
            if has && (!ctx.had_op || reported) {
                ctx.op_started_ns = clock;
            }
            ctx.had_op = has;
        }
        None => {}
    }
    if !ctx.changes.is_empty() {
        let changes = std::mem::take(&mut ctx.changes);
        ctx.out.observed.push(Observed { at, changes });
    }
}

/// LEASE-1 and VERSION-1 on the master's side: when its view of a lease
/// becomes and stops being `Granted`.
fn master_leases(
    ctx: &mut NodeCtx,
    m: &MasterState,
    step: &TraceStep,
    at: Loc,
    path: &Path,
    open: &mut BTreeMap<ChunkHandle, (u64, u64, Loc)>,
) {
    let clock = step.clock_ns;
    let granted = |chunk: ChunkHandle| match m.lease(chunk) {
        Some(LeaseView::Granted { epoch, .. }) => Some(*epoch),
        _ => None,
    };
    let ended: Vec<ChunkHandle> = open
        .iter()
        .filter(|(chunk, (epoch, ..))| granted(**chunk) != Some(*epoch))
        .map(|(c, _)| *c)
        .collect();
    for chunk in ended {
        let (epoch, from_ns, from) = open.remove(&chunk).expect("listed above");
        ctx.out.master_leases.push(Interval {
            chunk,
            epoch,
            from_ns,
            to_ns: Some(clock),
            from,
            file: path.to_path_buf(),
        });
    }
    for c in &step.commands {
        if let TraceCommand::Send {
            msg:
                Msg::LeaseGrant {
                    chunk,
                    epoch,
                    version,
                    ..
                },
            ..
        } = c
        {
            if open.get(chunk).map(|o| o.0) != Some(*epoch) && granted(*chunk) == Some(*epoch) {
                open.insert(*chunk, (*epoch, clock, at));
                ctx.out.grants.push(Grant {
                    chunk: *chunk,
                    epoch: *epoch,
                    version: *version,
                    clock_ns: clock,
                    at,
                    file: path.to_path_buf(),
                });
            }
        }
    }
}
