//! The requirements over a run's global states, judged by the model's own
//! property code ([`leasehold_model::system::always_properties`]).
//!
//! The replay ([`super::replay`]) gives, per node, the steps that changed
//! what the properties read ([`Change`]). Here every node's recorded steps
//! are merged in clock order, which is happens-before order on one machine
//! (a node reads its clock before it takes a message, after the sender
//! read its own and sent it; TRACE-2 checks that each receive has its
//! send), and a global state is kept up to date step by step:
//! chunkservers' replicas with their regions, their leases, the master's
//! state, clients' caches and acknowledgements, the lease holders in
//! flight, and the model's [`History`], fed by every send as the checker
//! feeds it. After each step that changed something, the always-properties
//! are evaluated on that state through [`GlobalView`], looking at the
//! chunks the step changed (each property is a conjunction over chunks).
//!
//! A lease counts as held until its deadline on the holder's clock, though
//! the actor learns of the deadline only when its timer fires: the host
//! runs expired timers first, so no step acts under a lease past its
//! deadline (docs/model.md, "Time").
//!
//! Cost: properties compare records with replicas byte by byte, so a run
//! with many acknowledged records (a benchmark's) is checked at a sample
//! of its global states, evenly spaced and always including the last
//! (each sampled state looks at every chunk changed since the one before);
//! the report says how many were checked.

use crate::validate::store::StoreEvent;
use leasehold_model::chunkserver::ReplicaLease;
use leasehold_model::master::MasterState;
use leasehold_model::msg::{LeaseInfo, Msg};
use leasehold_model::system::{
    always_properties, Acked, GlobalView, History, ReadDone, StampedStore,
};
use leasehold_model::types::{ChunkHandle, Offset, Stamp};
use stateright::actor::{Envelope, Id};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::replay::{Ack, Change, NodeOutcome};
use super::{Check, Finding, Loc};
use crate::payload::Bytes;
use crate::trace::{NodeTrace, TraceCommand, TraceInput};

mod view_store;
use view_store::Touched;
pub use view_store::ViewStore;

/// How much checking a run gets in full: a state's check passes over
/// every acknowledgement (cheaply, but all of them), so a run costs about
/// its changed states times its acknowledgements. Up to this many, every
/// changed state is checked (every test run's); beyond, a sample of states
/// that costs about as much, so validation keeps its rate on a benchmark's
/// run. Each sampled state looks at everything changed since the last one,
/// so only a violation that a later step repaired can slip between them.
pub const ACK_PASSES_FULL_MAX: u64 = 500_000;
/// A sampled run is checked at no fewer states than this (and its last).
pub const GLOBAL_STATES_SAMPLED_MIN: u64 = 16;

/// One global state of the run.
struct RunState {
    chunk_size: u64,
    largest_append: u64,
    /// Chunkserver ids and their replicas, leases (with deadlines) and the
    /// leases held at `now`.
    servers: Vec<Id>,
    stores: BTreeMap<Id, ViewStore>,
    leases: BTreeMap<Id, Vec<(ReplicaLease, Option<u64>)>>,
    held: BTreeMap<Id, Vec<ReplicaLease>>,
    master: Option<Arc<MasterState>>,
    acks: Vec<Acked<Bytes>>,
    /// (started, acknowledged) clock of `acks[i]`.
    ack_times: Vec<(u64, u64)>,
    in_flight: Vec<(u64, LeaseInfo)>,
    caches: BTreeMap<u64, Vec<LeaseInfo>>,
    history: History,
    focus: Option<BTreeSet<ChunkHandle>>,
    /// Byte ranges changed since the last state checked, per chunk, and
    /// chunks changed as a whole (see `GlobalView::range_in_focus`).
    ranges: BTreeMap<ChunkHandle, Vec<(Offset, Offset)>>,
    whole: BTreeSet<ChunkHandle>,
    /// `acks[i]` for `i` from here on are new since the last state checked.
    new_acks_from: usize,
    /// Reads clients returned, when each started, and where the new ones
    /// (since the last state checked) begin: a read's verdict is settled
    /// when it returns, since READ-1 owes it only records acknowledged
    /// before it started.
    reads: Vec<ReadDone<Bytes>>,
    read_started: Vec<u64>,
    new_reads_from: usize,
}

impl RunState {
    /// The leases held at `now`: a lease past its deadline is over.
    fn settle_leases(&mut self, now: u64) {
        for (id, ls) in &self.leases {
            let held = ls
                .iter()
                .map(|(l, deadline)| {
                    let mut l = l.clone();
                    l.holding &= deadline.is_none_or(|d| d > now);
                    l
                })
                .collect();
            self.held.insert(*id, held);
        }
    }
}

impl GlobalView for RunState {
    type Store = ViewStore;

    fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    fn largest_append(&self) -> u64 {
        self.largest_append
    }

    fn chunkservers(&self) -> impl Iterator<Item = Id> + Clone + '_ {
        self.servers.iter().copied()
    }

    fn store(&self, id: Id) -> &ViewStore {
        &self.stores[&id]
    }

    fn leases(&self, id: Id) -> Option<&[ReplicaLease]> {
        Some(self.held.get(&id).map_or(&[][..], |v| &v[..]))
    }

    fn master(&self) -> (&MasterState, bool) {
        (
            self.master
                .as_deref()
                .expect("checked only once the master ran"),
            true,
        )
    }

    fn acked(&self) -> impl Iterator<Item = Cow<'_, Acked<Bytes>>> + '_ {
        self.acks.iter().map(Cow::Borrowed)
    }

    fn started_after(&self, b: &Acked<Bytes>, a: &Acked<Bytes>) -> bool {
        self.ack_times[b.op].0 >= self.ack_times[a.op].1
    }

    fn op_instants(&self, a: &Acked<Bytes>) -> Option<(u64, u64)> {
        Some(self.ack_times[a.op])
    }

    fn named(&self) -> impl Iterator<Item = &LeaseInfo> + '_ {
        self.in_flight
            .iter()
            .map(|(_, i)| i)
            .chain(self.caches.values().flatten())
    }

    fn history(&self) -> &History {
        &self.history
    }

    fn in_focus(&self, chunk: ChunkHandle) -> bool {
        self.focus.as_ref().is_none_or(|f| f.contains(&chunk))
    }

    fn range_in_focus(&self, chunk: ChunkHandle, from: Offset, to: Offset) -> bool {
        // The ranges are sorted and merged before each check (`merge_ranges`).
        self.focus.is_none()
            || self.whole.contains(&chunk)
            || self.ranges.get(&chunk).is_some_and(|rs| {
                let i = rs.partition_point(|(_, end)| *end <= from);
                rs.get(i).is_some_and(|(start, _)| *start < to)
            })
    }

    fn ack_in_focus(&self, a: &Acked<Bytes>) -> bool {
        a.op >= self.new_acks_from
    }

    fn reads(&self) -> impl Iterator<Item = ReadDone<Bytes>> + '_ {
        self.reads[self.new_reads_from..].iter().cloned()
    }

    fn read_started_after(&self, r: &ReadDone<Bytes>, a: &Acked<Bytes>) -> bool {
        self.read_started[r.op] >= self.ack_times[a.op].1
    }

    /// The bytes where the range the read asked for overlaps the record
    /// must have come back, and be the record's. A region an acknowledged
    /// write also covers is not the record's alone: it is left to WRITE-1.
    fn read_returns(&self, r: &ReadDone<Bytes>, a: &Acked<Bytes>) -> bool {
        let record = a.record.as_slice();
        let from = r.offset.max(a.offset);
        let to = (r.offset + r.len).min(a.offset + record.len() as u64);
        if from >= to {
            return true;
        }
        let data = r.data.as_slice();
        let got = data.get((from - r.offset) as usize..(to - r.offset) as usize);
        // Looked for only on a mismatch: it passes over every acknowledgement.
        let overwritten = || {
            self.acks.iter().any(|w| {
                let end = w.offset + w.record.as_slice().len() as u64;
                !w.append && w.chunk == a.chunk && w.offset < to && from < end
            })
        };
        got == Some(&record[(from - a.offset) as usize..(to - a.offset) as usize]) || overwritten()
    }
}

/// What the global pass found.
#[derive(Default)]
pub struct Global {
    pub states_checked: u64,
    pub states_total: u64,
    pub findings: Vec<Finding>,
    pub notes: Vec<Finding>,
}

fn check_of(id: &str) -> Check {
    match id {
        "LEASE-1" => Check::Lease1,
        "LEASE-2" => Check::Lease2,
        "LEASE-4" => Check::Lease4,
        "ORDER-1" => Check::Order1,
        "ORDER-2" => Check::Order2,
        "APPEND-1" => Check::Append1,
        "APPEND-2" => Check::Append2,
        "APPEND-3" => Check::Append3,
        "APPEND-4" => Check::Append4,
        "APPEND-5" => Check::Append5,
        "WRITE-1" => Check::Write1,
        "WRITE-2" => Check::Write2,
        "PUSH-1" => Check::Push1,
        "PUSH-2" => Check::Push2,
        "VERSION-1" => Check::Version1,
        "VERSION-2" => Check::Version2,
        "SNAP-1" => Check::Snap1,
        "FILE-1" => Check::File1,
        "READ-1" => Check::Read1,
        other => unreachable!("no check for property {other}"),
    }
}

/// One recorded step in the merged order.
struct At<'a> {
    clock_ns: u64,
    node: u64,
    file: &'a NodeTrace,
    index: usize,
}

pub fn check(by_node: &BTreeMap<u64, Vec<NodeTrace>>, outcomes: &[NodeOutcome]) -> Global {
    let mut g = Global::default();
    let Some(first) = by_node.values().flatten().next() else {
        return g;
    };
    let at0 = Loc {
        node: first.header.node,
        start: 0,
        step: 0,
    };
    // The global states are known up to the first step whose replay
    // stopped (TRACE-1 reports it); they are checked up to there.
    let replay_stopped = outcomes
        .iter()
        .filter_map(|o| o.stopped_ns.map(|ns| (ns, o.node)))
        .min();
    // Nor is a node's state known past the last step its trace recorded
    // once the trace budget ran out: its later steps happened unrecorded
    // (a benchmark's servers run out first), and the clients' records of
    // what those steps did would be judged against replicas that seem
    // not to have done it.
    let budget_spent = by_node
        .iter()
        .flat_map(|(&node, files)| {
            files
                .iter()
                .filter(|f| f.truncated)
                .map(move |f| (f.steps.last().map_or(0, |s| s.clock_ns), node))
        })
        .min();
    let stopped = replay_stopped.into_iter().chain(budget_spent).min();
    let protocol = &first.header.protocol;
    let by_id: BTreeMap<u64, &NodeOutcome> = outcomes.iter().map(|o| (o.node, o)).collect();

    let mut steps: Vec<At> = by_node
        .iter()
        .flat_map(|(&node, files)| {
            files.iter().flat_map(move |file| {
                file.steps.iter().enumerate().map(move |(index, s)| At {
                    clock_ns: s.clock_ns,
                    node,
                    file,
                    index,
                })
            })
        })
        .collect();
    steps.sort_by_key(|a| (a.clock_ns, a.node, a.file.header.start, a.index));

    let all_acks: Vec<(u64, &Ack)> = outcomes
        .iter()
        .flat_map(|o| o.acks.iter().map(move |a| (o.node, a)))
        .collect();
    let changed_steps: u64 = outcomes.iter().map(|o| o.observed.len() as u64).sum();
    let acks = all_acks.len() as u64;
    let passes = changed_steps.saturating_mul(acks) / 2;
    let sampled = passes > ACK_PASSES_FULL_MAX;
    let samples = (ACK_PASSES_FULL_MAX / acks.max(1)).max(GLOBAL_STATES_SAMPLED_MIN);
    let every = if sampled {
        changed_steps.div_ceil(samples).max(1)
    } else {
        1
    };
    let size = protocol.chunk_size;
    let mut st = RunState {
        chunk_size: size,
        largest_append: all_acks
            .iter()
            .filter(|(_, a)| a.append)
            .map(|(_, a)| a.data.as_slice().len() as u64)
            .filter(|l| *l <= size / 4)
            .max()
            .unwrap_or(0)
            // A record that padded a chunk may have failed everywhere
            // after: bound it by the limit, which keeps APPEND-4 sound.
            .max(size / 4),
        servers: protocol.chunkservers.clone(),
        stores: protocol
            .chunkservers
            .iter()
            .map(|id| (*id, ViewStore::new(size)))
            .collect(),
        leases: BTreeMap::new(),
        held: BTreeMap::new(),
        master: None,
        acks: vec![],
        ack_times: vec![],
        in_flight: vec![],
        caches: BTreeMap::new(),
        history: History::default(),
        focus: Some(BTreeSet::new()),
        ranges: BTreeMap::new(),
        whole: BTreeSet::new(),
        new_acks_from: 0,
        reads: vec![],
        read_started: vec![],
        new_reads_from: 0,
    };
    let mut cursor: BTreeMap<u64, usize> = BTreeMap::new();
    let mut failed: BTreeSet<&'static str> = BTreeSet::new();
    let properties = always_properties::<RunState>();
    let distance = |a: Id, b: Id| protocol.distance(a, b);
    let is_chunkserver = |id: Id| protocol.chunkservers.contains(&id);
    let mut seen_changes = 0u64;
    let mut pending = false;

    let mut beyond = vec![];
    if let Some((ns, _)) = stopped {
        let (before, after): (Vec<At>, Vec<At>) = steps.into_iter().partition(|s| s.clock_ns <= ns);
        steps = before;
        beyond = after;
    }
    let total = steps.len();
    for (k, s) in steps.iter().enumerate() {
        let step = &s.file.steps[s.index];
        let here = Loc {
            node: s.node,
            start: s.file.header.start,
            step: step.n,
        };
        let id = Id::from(s.node as usize);
        let mut changed = false;
        // The replay's changes of this step, if any.
        let o = by_id[&s.node];
        let c = cursor.entry(s.node).or_default();
        if let Some(obs) = o.observed.get(*c).filter(|x| x.at == here) {
            *c += 1;
            changed = true;
            seen_changes += 1;
            let master_before = st.master.clone();
            for ch in &obs.changes {
                if let Some(why) = deleted_placed_replica(&st, id, ch) {
                    g.findings.push(Finding {
                        check: Check::Gc1,
                        at: here,
                        file: s.file.path.clone(),
                        explanation: why,
                    });
                }
                apply_change(&mut st, id, ch, o);
            }
            let master_step = obs.changes.iter().any(|c| matches!(c, Change::Master(_)));
            let renamed = master_step
                .then(|| renamed_under_lease(&st, master_before.as_deref(), step.clock_ns))
                .flatten();
            if let Some(why) = renamed {
                g.findings.push(Finding {
                    check: Check::Rename1,
                    at: here,
                    file: s.file.path.clone(),
                    explanation: why,
                });
            }
        }
        // The sends, as the checker's history sees them: only those that
        // may have left the node (see `NodeTrace::committed`).
        for cmd in crate::validate::replay::commands_in_apply_order(step) {
            let TraceCommand::Send { dst, msg } = cmd else {
                continue;
            };
            if !s.file.may_have_sent(s.index, cmd) {
                continue;
            }
            let env = Envelope {
                src: id,
                dst: Id::from(*dst as usize),
                msg,
            };
            if let Some(mut h) = st.history.after_send(env, distance, is_chunkserver) {
                if st.history.snapshot.is_none() && h.snapshot.is_some() {
                    // As the checker does (`History::settle_snapshot`).
                    h.settle_snapshot(st.stores.values());
                }
                st.history = h;
                changed = true;
            }
            if let Msg::LeaseHolder { info, .. } = msg {
                st.in_flight.push((*dst, info.clone()));
                whole(&mut st, info.chunk);
                changed = true;
            }
            if let Msg::ChunkFull { chunk, .. } = msg {
                focus(&mut st, *chunk);
            }
        }
        if let TraceInput::Msg {
            msg: Msg::LeaseHolder { info, .. },
            ..
        } = &step.input
        {
            if let Some(i) = st
                .in_flight
                .iter()
                .position(|(dst, x)| *dst == s.node && x == info)
            {
                st.in_flight.remove(i);
            }
        }
        pending |= changed;
        if changed && st.master.is_some() {
            g.states_total += 1;
        }
        let last = k + 1 == total;
        let due = pending && (seen_changes.is_multiple_of(every) || !sampled || last);
        if !due || st.master.is_none() {
            continue;
        }
        if last && sampled {
            st.focus = None;
        }
        st.settle_leases(step.clock_ns);
        merge_ranges(&mut st.ranges);
        g.states_checked += 1;
        for (name, holds) in properties.iter() {
            if failed.contains(name) || holds(&st) {
                continue;
            }
            failed.insert(name);
            g.findings.push(Finding {
                check: check_of(name),
                at: here,
                file: s.file.path.clone(),
                explanation: format!(
                    "the model's property {name} fails on the global state after this step ({}){}",
                    describe(&st),
                    if sampled { "; the run was checked at a sample of its states, so an earlier state may fail it first" } else { "" }
                ),
            });
        }
        st.focus = Some(BTreeSet::new());
        st.ranges.clear();
        st.whole.clear();
        st.new_acks_from = st.acks.len();
        st.new_reads_from = st.reads.len();
        pending = false;
    }
    if !failed.contains("READ-1") {
        read_1_past_the_stop(&mut st, &mut g, &beyond, &by_id, &mut cursor);
    }
    if let Some((ns, node)) = stopped {
        let why = if replay_stopped == Some((ns, node)) {
            format!("where node {node}'s replay stopped (see TRACE-1)")
        } else {
            format!("node {node}'s last recorded step, where its trace budget ran out")
        };
        g.notes.push(Finding {
            check: Check::Trace1,
            at: Loc { node, ..at0 },
            file: PathBuf::new(),
            explanation: format!(
                "the model's properties were checked on the global states up to {why}, not after"
            ),
        });
    }
    if sampled {
        g.notes.push(Finding {
            check: Check::Append1,
            at: at0,
            file: PathBuf::new(),
            explanation: format!(
                "a large run ({changed_steps} changing steps, {acks} acknowledgements): the model's properties were checked at {} of its global states, every {every}th and the last",
                g.states_checked
            ),
        });
    }
    g
}

/// READ-1's data half asks only what clients recorded: which records
/// were acknowledged where, and what each read returned. Those stay known
/// past the step where some node's replay stopped (the clients' own
/// replays go on), so the reads and acknowledgements after it are checked
/// too: a replica that served bytes its replayed store does not hold stops
/// its replay there, and READ-1 is what its clients saw.
fn read_1_past_the_stop(
    st: &mut RunState,
    g: &mut Global,
    beyond: &[At],
    by_id: &BTreeMap<u64, &NodeOutcome>,
    cursor: &mut BTreeMap<u64, usize>,
) {
    let mut last = None;
    for s in beyond {
        let step = &s.file.steps[s.index];
        let here = Loc {
            node: s.node,
            start: s.file.header.start,
            step: step.n,
        };
        let o = by_id[&s.node];
        let c = cursor.entry(s.node).or_default();
        let Some(obs) = o.observed.get(*c).filter(|x| x.at == here) else {
            continue;
        };
        *c += 1;
        for ch in &obs.changes {
            if matches!(ch, Change::Ack(_) | Change::Read(_)) {
                apply_change(st, Id::from(s.node as usize), ch, o);
                last = Some((here, s.file.path.clone()));
            }
        }
    }
    let Some((at, file)) = last else {
        return;
    };
    st.focus = None;
    if !leasehold_model::system::read_1(st) {
        g.findings.push(Finding {
            check: Check::Read1,
            at,
            file,
            explanation: "the model's property READ-1 fails on the clients' recorded \
                          acknowledgements and reads, checked past where the global states \
                          stop (see the note): a read returned bytes that are not a record \
                          acknowledged before it started"
                .into(),
        });
    }
}

fn focus(st: &mut RunState, chunk: ChunkHandle) {
    if let Some(f) = &mut st.focus {
        f.insert(chunk);
    }
}

/// Sorts each chunk's changed ranges and merges those that overlap or
/// touch (appends write one after another: most merge into one).
fn merge_ranges(ranges: &mut BTreeMap<ChunkHandle, Vec<(Offset, Offset)>>) {
    for rs in ranges.values_mut() {
        rs.sort_unstable();
        let mut merged: Vec<(Offset, Offset)> = Vec::with_capacity(rs.len());
        for &(a, b) in rs.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *rs = merged;
    }
}

fn whole(st: &mut RunState, chunk: ChunkHandle) {
    focus(st, chunk);
    st.whole.insert(chunk);
}

/// The bytes a clone installed at `target` came from a current replica:
/// the one that holds the same bytes there at the highest version (the
/// source holds the clone's version, which the stale ones do not). Its
/// regions say which mutations wrote them.
fn copy_clone_regions(
    st: &mut RunState,
    target: Id,
    e: &StoreEvent,
    chunk: ChunkHandle,
    from: Offset,
    to: Offset,
) {
    let StoreEvent::Cloned { data, .. } = e else {
        return;
    };
    let source = st
        .stores
        .iter()
        .filter(|(id, s)| **id != target && s.holds_bytes(chunk, from, data.as_slice()))
        .max_by_key(|(_, s)| s.version(chunk))
        .map(|(id, s)| (*id, s.clone()));
    if let (Some((_, source)), Some(store)) = (source, st.stores.get_mut(&target)) {
        store.copy_regions(&source, chunk, from, to);
    }
}

fn apply_change(st: &mut RunState, id: Id, ch: &Change, o: &NodeOutcome) {
    match ch {
        Change::Store(e) => {
            if let Some(store) = st.stores.get_mut(&id) {
                for t in store.apply(e) {
                    match t {
                        Touched::Cloned(c, from, to) => {
                            copy_clone_regions(st, id, e, c, from, to);
                            focus(st, c);
                            st.ranges.entry(c).or_default().push((from, to));
                        }
                        Touched::Range(c, from, to) => {
                            focus(st, c);
                            st.ranges.entry(c).or_default().push((from, to));
                            // A stamp somewhere else on a replica (a
                            // serial used twice, a region cut) is checked
                            // over the whole chunk: ORDER-1 compares a
                            // stamp's regions wherever they are.
                            let stamp = match e {
                                StoreEvent::Wrote { stamp, .. }
                                | StoreEvent::Padded { stamp, .. } => *stamp,
                                _ => Stamp::default(),
                            };
                            let elsewhere = stamp != Stamp::default()
                                && st.stores.values().any(|b| {
                                    b.has_stamp(c, stamp) && !b.stamp_only_at(c, stamp, from)
                                });
                            if elsewhere {
                                whole(st, c);
                            }
                        }
                        Touched::Meta(c) => focus(st, c),
                        Touched::Whole(c) => whole(st, c),
                    }
                }
            }
        }
        Change::Leases(ls) => {
            let before = st.leases.insert(id, ls.clone()).unwrap_or_default();
            for (l, _) in before.iter().chain(ls) {
                focus(st, l.chunk);
            }
        }
        Change::Master(m) => {
            // The chunks whose metadata or view changed.
            let changed: Vec<ChunkHandle> = match &st.master {
                None => (0..m.views.len().max(m.durable.chunks.len()) as ChunkHandle).collect(),
                Some(old) => (0..m.views.len().max(old.views.len()) as ChunkHandle)
                    .filter(|c| {
                        let i = *c as usize;
                        old.views.get(i) != m.views.get(i)
                            || old.durable.chunks.get(i) != m.durable.chunks.get(i)
                    })
                    .collect(),
            };
            for c in changed {
                whole(st, c);
            }
            st.master = Some(m.clone());
        }
        Change::Cache(infos) => {
            let before = st.caches.insert(o.node, infos.clone()).unwrap_or_default();
            for i in before.iter().chain(infos) {
                whole(st, i.chunk);
            }
        }
        Change::Ack(i) => {
            let a = &o.acks[*i];
            let op = st.acks.len();
            st.acks.push(Acked {
                client: o.node as usize,
                op,
                file: a.file_id,
                record: a.data.clone(),
                append: a.append,
                chunk: a.chunk,
                offset: a.offset,
                stamp: a.stamp,
            });
            st.ack_times.push((a.started_ns, a.clock_ns));
            focus(st, a.chunk);
        }
        Change::Read(i) => {
            let r = &o.reads[*i];
            st.reads.push(ReadDone {
                client: o.node as usize,
                op: st.read_started.len(),
                chunk: r.chunk,
                offset: r.offset,
                len: r.len,
                data: r.data.clone(),
            });
            st.read_started.push(r.started_ns);
            focus(st, r.chunk);
        }
    }
}

/// RENAME-1 ([0091]): the step that changes a file's name (the master's)
/// is taken only while no chunkserver holds a lease of the file's chunks
/// at its clock (a lease past its timer's deadline is over: the model's
/// `STEP_RENAMED_UNDER_LEASE`, with real time). Why not, if it was.
fn renamed_under_lease(st: &RunState, before: Option<&MasterState>, now: u64) -> Option<String> {
    let (before, after) = (before?, st.master.as_deref()?);
    after
        .durable
        .files
        .iter()
        .enumerate()
        .find_map(|(f, file)| {
            let old = before
                .durable
                .files
                .get(f)
                .filter(|old| old.name != file.name)?;
            st.leases.iter().find_map(|(id, ls)| {
                let (l, _) = ls.iter().find(|(l, deadline)| {
                    l.holding && deadline.is_none_or(|d| d > now) && file.chunks.contains(&l.chunk)
                })?;
                Some(format!(
                    "renames {:?} to {:?} while chunkserver {} holds lease {} of its chunk {}",
                    old.name,
                    file.name,
                    usize::from(*id),
                    l.epoch,
                    l.chunk
                ))
            })
        })
}

/// GC-1 (GFS §4.4): a chunkserver deletes a replica only where the master
/// no longer places it (the model's `STEP_DELETED_PLACED_REPLICA`). Why
/// not, if `change` deletes one the master places on `id`.
fn deleted_placed_replica(st: &RunState, id: Id, change: &Change) -> Option<String> {
    let Change::Store(StoreEvent::Deleted { chunk }) = change else {
        return None;
    };
    let placed = st.master.as_ref()?.durable.chunks.get(*chunk as usize)?;
    placed.replicas.contains(&id).then(|| {
        format!(
            "deletes its replica of chunk {chunk}, which the master places on it (version {})",
            placed.version
        )
    })
}

/// The focused chunks' replicas and primaries, for a failure's message.
fn describe(st: &RunState) -> String {
    let chunks: Vec<ChunkHandle> = match &st.focus {
        Some(f) => f.iter().copied().collect(),
        None => st
            .stores
            .values()
            .flat_map(|s| s.handles())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let mut out = vec![];
    for c in chunks.iter().take(4) {
        let replicas: Vec<String> = st
            .servers
            .iter()
            .map(|id| {
                let s = &st.stores[id];
                let m = s.replica_meta(*c);
                let primary = st
                    .held
                    .get(id)
                    .is_some_and(|ls| ls.iter().any(|l| l.chunk == *c && l.holding));
                format!(
                    "{}{} v{} {} bytes applied {:?}",
                    usize::from(*id),
                    if primary { " (primary)" } else { "" },
                    m.version,
                    s.data_len(*c),
                    m.applied
                )
            })
            .collect();
        out.push(format!("chunk {c}: {}", replicas.join(", ")));
    }
    out.join("; ")
}
