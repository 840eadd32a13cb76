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
//!
//! Files: this one holds the outcome types and the per-node driver;
//! [`file`] replays one start's steps, [`step`] one step (and how findings
//! describe it), [`start`] a start's restored state, and [`facts`] what a
//! replayed step shows the requirements.

use leasehold_model::chunkserver::{ChunkserverActor, ReplicaLease};
use leasehold_model::client::ClientActor;
use leasehold_model::master::{LeaseView, MasterActor, MasterDurable, MasterState, NodeStorage};
use leasehold_model::msg::{ApplyOp, ClientOp, Failure, LeaseInfo, Msg, OpResult, Timer};
use leasehold_model::system::{
    age_out_unmatched, awaits_replica, batch_break, failed_replica_still_counted,
    grant_taken_unasked, held_drop_misanswered, held_passed, held_with_meta, holds_push,
    holds_whole_push, in_flight_without_lease, keeps_in_flight, push_for_failed_chunk,
    read_not_closest, rearmed_lease_clock, result_answers, skipped_chunk, skips_in_flight,
};
use leasehold_model::types::{
    ChunkHandle, ChunkStore, ChunkVersion, FileId, Offset, Stamp, StoreError, StoreView,
};
use leasehold_model::{Node, NodeState};
use stateright::actor::{Command, Id, Out};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::store::{FaultSwitch, ReplayStore, StoreEvent};
use super::{Check, Finding, Loc};
use crate::host::BATCH_MSGS_MAX;
use crate::payload::Bytes;
use crate::trace::{
    Applied, NodeTrace, TraceActor, TraceCommand, TraceInitial, TraceInput, TraceStep, TraceStorage,
};

mod facts;
mod file;
mod start;
mod step;

pub(crate) use facts::commands_in_apply_order;
use facts::*;
use file::*;
use start::*;
use step::*;
pub use step::{describe_input, ms, short};

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
    /// A primary's lease that ended at its timer's deadline: it ran out on
    /// the primary's clock, which the master cannot see, rather than being
    /// given up at a step the master learns of (a revocation's answer).
    /// The master's view of a lease: it ended on the master's own clock (a
    /// timer: the lease's expiry, or a restarted master's quiet period),
    /// rather than on a message that told the master the lease was over.
    pub ran_out: bool,
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
    /// The GFS file the client asked to mutate.
    pub file_id: FileId,
}

/// A read a client answered its application with (READ-1).
#[derive(Clone, Debug)]
pub struct Read {
    pub chunk: ChunkHandle,
    /// The range asked for: `len` bytes at `offset`; `data` is what came.
    pub offset: Offset,
    pub len: u64,
    pub data: Bytes,
    /// When the client took up the read (READ-1 owes it every record
    /// acknowledged before).
    pub started_ns: u64,
    pub at: Loc,
}

/// What LIVE-1, LIVE-2 and REPL-1 read ([`crate::validate::live`]),
/// recorded at a client's or the master's step that changes it.
#[derive(Clone, Debug)]
pub struct Progress {
    pub clock_ns: u64,
    pub at: Loc,
    pub file: PathBuf,
    /// A client: no operation under way or waiting after the step.
    pub idle: bool,
    /// A client: the step told its application an operation failed.
    pub failed: bool,
    /// The master's state after the step (REPL-1 reads its counts).
    pub master: Option<Arc<MasterState>>,
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
    /// `reads[i]` of this node.
    Read(usize),
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
    pub reads: Vec<Read>,
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
    /// Steps that changed what the liveness requirements read, in order.
    pub progress: Vec<Progress>,
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
            reads: vec![],
            full: vec![],
            final_store: None,
            store_exact: true,
            final_master: None,
            replayed_whole: true,
            observed: vec![],
            progress: vec![],
            stopped_ns: None,
        }
    }
}

/// The chunk mutations each step of a foreign trace recorded, by (node,
/// start) and step index. Present only when the run's traces are foreign
/// ([`crate::trace::ForeignTrace`]): its replay compares behaviour only.
pub type ForeignApplied = HashMap<(u64, u32), Vec<Option<Vec<Applied>>>>;

/// Replays every node, `threads` at a time; `tick` hears of steps done.
pub fn replay_all(
    nodes: &[(&u64, &Vec<NodeTrace>)],
    foreign: Option<&ForeignApplied>,
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
                let outcome = replay_node(node, files, foreign, tick);
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
    /// Of the start being replayed (then of the last one, for the next
    /// start): the chunks the store held when the node passed its last
    /// barrier, and those whose data a later step wrote, never synced. A
    /// kill during that batch's sync may tear it (docs/model.md, "Torn
    /// syncs"), and the next start then finds such a replica damaged.
    synced_chunks: BTreeSet<ChunkHandle>,
    unsynced_writes: BTreeSet<ChunkHandle>,
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
    /// A client's idleness after its last step ([`Progress::idle`]).
    was_idle: Option<bool>,
    /// The run's traces are foreign: compare behaviour, not digests.
    foreign: Option<&'a ForeignApplied>,
    /// The master's storage as the replay last saved it: a foreign
    /// master's restart that names none restores this (the model's
    /// durable state is what survives a crash).
    replayed_master_save: Option<MasterDurable>,
}

impl<'a> NodeCtx<'a> {
    fn new(
        node: u64,
        kind: Kind,
        foreign: Option<&'a ForeignApplied>,
        tick: &'a (dyn Fn(u64) + Sync),
    ) -> Self {
        NodeCtx {
            out: NodeOutcome::new(node, kind),
            tick,
            untold: 0,
            journal: Arc::default(),
            faults: Arc::default(),
            carried: None,
            synced_chunks: BTreeSet::new(),
            unsynced_writes: BTreeSet::new(),
            earlier: &[],
            saves_from_later_steps: 0,
            last_applied: HashMap::new(),
            changes: vec![],
            last_leases: vec![],
            last_master: None,
            last_cache: vec![],
            had_op: false,
            op_started_ns: 0,
            was_idle: None,
            foreign,
            replayed_master_save: None,
        }
    }

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
    foreign: Option<&'a ForeignApplied>,
    tick: &'a (dyn Fn(u64) + Sync),
) -> NodeOutcome {
    let kind = match files[0].header.actor {
        TraceActor::Master => Kind::Master,
        TraceActor::Chunkserver { .. } => Kind::Chunkserver,
        TraceActor::Client { .. } => Kind::Client,
    };
    let mut ctx = NodeCtx::new(node, kind, foreign, tick);
    for (i, file) in files.iter().enumerate() {
        ctx.earlier = &files[..i];
        replay_file(&mut ctx, file, &files[i + 1..]);
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
