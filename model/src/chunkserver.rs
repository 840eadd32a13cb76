//! The chunkserver: replica storage, push buffers, and the primary and
//! secondary roles of the mutation protocol.
//!
//! * Data push ([0095]–[0098]): pushed data is buffered until a mutation uses
//!   it or it ages out. Each fragment is forwarded at once to the closest
//!   server of the chain that has not had it, so a push is pipelined; the end
//!   of the chain tells the client that every replica has the data.
//! * Leases ([0090], [0091]): a replica offered a lease requests it and starts
//!   a lease clock at that moment; a grant that arrives after that clock ran
//!   out is ignored, and a grant in time makes that same clock the lease's,
//!   so the lease ends no later than `lease_ms` after its request left. While
//!   it mutates, the primary asks for extensions, each on a clock of its own
//!   started with its request; the lease keeps running on the old clock
//!   until the extension is granted (LEASE-2). A replica that has applied
//!   anything of a newer lease never writes as primary under an older one.
//! * Primary ([0099], [00104]–[00106]): assigns consecutive serial numbers,
//!   applies each mutation, forwards it to the secondaries, and answers the
//!   client only when every secondary applied it ([00101]). A record append
//!   goes at the primary's end of the chunk; one that does not fit pads the
//!   chunk on every replica and sends the client to the next chunk.
//! * Secondary ([00100]): applies strictly in serial order, holding back
//!   mutations that arrive early; writes exactly at the primary's offset.

use crate::config::{Bug, Durations, ProtocolCfg};
use crate::master::NodeStorage;
use crate::msg::*;
use crate::types::*;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use stateright::actor::{Id, Out};
use std::borrow::Cow;
use std::sync::Arc;

/// A chunkserver's view of its lease on one chunk.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaLease {
    pub chunk: ChunkHandle,
    /// The epoch of the lease held, or being requested.
    pub epoch: LeaseEpoch,
    /// Granted and its clock has not run out: this replica is the primary.
    pub holding: bool,
    /// A request (new lease or extension) whose clock is still running.
    pub requested: bool,
    /// Which of the two lease clocks ([`Timer::LeaseClock`]) the latest
    /// request started: while `requested`, the pending request's; otherwise
    /// the held lease's. A held lease with a request pending runs on the
    /// other one.
    pub clock: u8,
    pub secondaries: Vec<Id>,
    /// The serial number the next mutation gets ([0099]).
    pub next_serial: Serial,
    pub extensions: u32,
}

/// Data pushed by a client, kept until used or aged out ([0095]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Buffered<P> {
    pub data: DataId,
    pub fragments: Vec<P>,
    pub complete: bool,
}

/// A mutation the primary applied and forwarded, awaiting secondaries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InFlight {
    pub chunk: ChunkHandle,
    pub stamp: Stamp,
    pub client: Id,
    pub data: DataId,
    /// `None` for a pad: the client is sent to the next chunk.
    pub offset: Option<Offset>,
    pub acked: Vec<Id>,
}

/// A client's mutation that reached the chosen replica before the master's
/// grant did. The master names a primary to clients only after granting, so
/// the grant is on its way; the mutation waits for it (or for the request's
/// clock to run out).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EarlyMutate {
    pub client: Id,
    pub chunk: ChunkHandle,
    pub epoch: LeaseEpoch,
    pub kind: MutationKind,
    pub data: DataId,
}

/// A forwarded mutation that arrived before its turn ([00100]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HeldApply {
    pub primary: Id,
    pub chunk: ChunkHandle,
    pub version: ChunkVersion,
    pub stamp: Stamp,
    pub op: ApplyOp,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChunkserverState<S: ChunkStore> {
    pub store: S,
    pub leases: Vec<ReplicaLease>,
    pub buffer: Vec<Buffered<S::Payload>>,
    pub in_flight: Vec<InFlight>,
    pub held: Vec<HeldApply>,
    pub early: Vec<EarlyMutate>,
}

impl ReplicaLease {
    /// The clock the held lease runs on (meaningful while `holding`).
    pub fn held_clock(&self) -> u8 {
        if self.requested {
            1 - self.clock
        } else {
            self.clock
        }
    }
}

impl<S: ChunkStore> ChunkserverState<S> {
    pub fn lease(&self, chunk: ChunkHandle) -> Option<&ReplicaLease> {
        self.leases.iter().find(|l| l.chunk == chunk)
    }

    /// The timer whose expiry ends this replica's lease of `chunk`, if it
    /// holds it (trace validation reads the lease's deadline from it).
    pub fn lease_timer(&self, chunk: ChunkHandle) -> Option<Timer> {
        self.lease(chunk)
            .filter(|l| l.holding)
            .map(|l| Timer::LeaseClock(chunk, l.held_clock()))
    }

    /// Whether this replica is the primary of `chunk` right now.
    pub fn is_primary(&self, chunk: ChunkHandle) -> bool {
        self.lease(chunk).is_some_and(|l| l.holding)
    }

    fn lease_mut(&mut self, chunk: ChunkHandle) -> &mut ReplicaLease {
        let i = match self.leases.iter().position(|l| l.chunk == chunk) {
            Some(i) => i,
            None => {
                self.leases.push(ReplicaLease {
                    chunk,
                    epoch: 0,
                    holding: false,
                    requested: false,
                    clock: 0,
                    secondaries: vec![],
                    next_serial: 1,
                    extensions: 0,
                });
                self.leases.sort_by_key(|l| l.chunk);
                self.leases.iter().position(|l| l.chunk == chunk).unwrap()
            }
        };
        &mut self.leases[i]
    }

    fn take_data(&mut self, data: DataId) -> Option<S::Payload> {
        let i = self
            .buffer
            .iter()
            .position(|b| b.data == data && b.complete)?;
        let b = self.buffer.remove(i);
        Some(S::Payload::concat(&b.fragments))
    }

    fn has_data(&self, data: DataId) -> bool {
        self.buffer.iter().any(|b| b.data == data && b.complete)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChunkserverActor<S> {
    pub cfg: Arc<ProtocolCfg>,
    /// The store a chunkserver starts with when it has saved nothing yet:
    /// empty in the model, a handle to its data directory over TCP.
    pub initial_store: S,
}

type O<S> = Out<crate::Node<S>>;

impl<S: ChunkStore> ChunkserverActor<S> {
    pub fn on_start(&self, storage: &Option<NodeStorage<S>>, o: &mut O<S>) -> ChunkserverState<S> {
        let store = match storage {
            Some(NodeStorage::Chunkserver(s)) => {
                // FAULT-1: chunk data and versions survived the crash (the
                // store is durable); buffers, leases and in-flight state did
                // not. Tell the master which versions survived, so it can
                // recognise a replica that missed a lease grant.
                let mut s = S::clone(s);
                // Without a durable restart count this server cannot tell
                // old announcements from new: it stays silent and the
                // master's grant timeout leaves it out.
                if let Ok(incarnation) = s.count_restart() {
                    o.save(NodeStorage::Chunkserver(Arc::new(s.clone())));
                    o.send(
                        self.cfg.master,
                        Msg::ChunkReport {
                            incarnation,
                            chunks: s.chunks(),
                        },
                    );
                }
                s
            }
            _ => self.initial_store.clone(),
        };
        ChunkserverState {
            store,
            leases: vec![],
            buffer: vec![],
            in_flight: vec![],
            held: vec![],
            early: vec![],
        }
    }

    fn save(&self, state: &ChunkserverState<S>, o: &mut O<S>) {
        o.save(NodeStorage::Chunkserver(Arc::new(state.store.clone())));
    }

    pub fn on_msg(
        &self,
        id: Id,
        state: &mut Cow<ChunkserverState<S>>,
        src: Id,
        msg: Msg<S::Payload>,
        o: &mut O<S>,
    ) {
        if !self.reports_gaps() {
            return self.handle_msg(id, state, src, msg, o);
        }
        // `Timer::HeldBack(chunk)` is armed exactly while the chunk has a
        // serial gap: only messages change what is held or the replica's
        // version, so it is set or cancelled here, where that changes (and
        // a step that changes neither stays a step that changes nothing).
        let before = gapped_chunks(state);
        self.handle_msg(id, state, src, msg, o);
        let after = gapped_chunks(state);
        for &chunk in after.iter().filter(|c| !before.contains(c)) {
            o.set_timer(
                Timer::HeldBack(chunk),
                Durations::range(self.cfg.durations.held_back_ms),
            );
        }
        for &chunk in before.iter().filter(|c| !after.contains(c)) {
            o.cancel_timer(Timer::HeldBack(chunk));
        }
    }

    fn handle_msg(
        &self,
        id: Id,
        state: &mut Cow<ChunkserverState<S>>,
        src: Id,
        msg: Msg<S::Payload>,
        o: &mut O<S>,
    ) {
        match msg {
            Msg::PushData {
                data,
                fragment,
                last,
                bytes,
                chain,
                client,
            } => self.on_push(id, state, data, fragment, last, bytes, chain, client, o),
            Msg::LeaseOffer {
                chunk,
                epoch,
                version,
            } => {
                let meta = state.store.meta(chunk);
                let newer_lease = state.lease(chunk).is_some_and(|l| l.epoch >= epoch);
                if version < meta.version || newer_lease {
                    return; // a delayed offer of an older lease
                }
                let s = state.to_mut();
                if version > meta.version {
                    if let Err(e) = s.store.set_version(chunk, version) {
                        // Without the version on disk this replica must not
                        // lead; let the offer time out at the master.
                        let _ = e;
                        return;
                    }
                    self.save(s, o);
                }
                let l = s.lease_mut(chunk);
                l.epoch = epoch;
                l.holding = false;
                l.requested = true;
                l.clock = 0;
                l.extensions = 0;
                l.next_serial = 1;
                // LEASE-2: the lease clock starts now, in the step that
                // sends the request, before the master's can ([0091]).
                o.cancel_timer(Timer::LeaseClock(chunk, 1));
                o.set_timer(
                    Timer::LeaseClock(chunk, 0),
                    Durations::range(self.cfg.durations.lease_ms),
                );
                o.send(src, Msg::LeaseRequest { chunk, epoch });
            }
            Msg::LeaseGrant {
                chunk,
                epoch,
                version,
                secondaries,
            } => {
                let Some(l) = state.lease(chunk) else {
                    if self.cfg.bug == Bug::AcceptsLateGrant {
                        self.accept_grant(state, chunk, epoch, version, secondaries, o);
                    }
                    return;
                };
                // A grant is good only while the request it answers is
                // still within its clock: a late grant is ignored.
                let answers_request = l.epoch == epoch && l.requested;
                let late_but_buggy =
                    self.cfg.bug == Bug::AcceptsLateGrant && l.epoch <= epoch && !l.holding;
                if answers_request || late_but_buggy {
                    self.accept_grant(state, chunk, epoch, version, secondaries, o);
                }
            }
            Msg::NewVersion {
                chunk,
                version,
                incarnation,
            } => {
                let own = state.store.meta(chunk).version;
                if version < own || incarnation != state.store.incarnation() {
                    return;
                }
                if version > own {
                    let s = state.to_mut();
                    if s.store.set_version(chunk, version).is_err() {
                        return;
                    }
                    self.save(s, o);
                }
                o.send(src, Msg::VersionAck { chunk, version });
                self.apply_held(state, chunk, o);
            }
            Msg::RevokeLease { chunk, epoch } => {
                if state
                    .lease(chunk)
                    .is_some_and(|l| l.epoch == epoch && (l.holding || l.requested))
                {
                    self.drop_lease(state, chunk, o);
                }
                o.send(src, Msg::LeaseRevoked { chunk, epoch });
            }
            Msg::ReportRequest => {
                o.send(
                    src,
                    Msg::ChunkReport {
                        incarnation: state.store.incarnation(),
                        chunks: state.store.chunks(),
                    },
                );
            }
            Msg::Mutate {
                chunk,
                epoch,
                kind,
                data,
            } => self.on_mutate(state, src, chunk, epoch, kind, data, o),
            Msg::Apply {
                chunk,
                version,
                stamp,
                op,
            } => {
                self.on_apply(
                    state,
                    src,
                    HeldApply {
                        primary: src,
                        chunk,
                        version,
                        stamp,
                        op,
                    },
                    o,
                );
                self.apply_held(state, chunk, o);
            }
            Msg::ApplyGap {
                chunk,
                version,
                from,
                until,
            } => self.on_apply_gap(state, src, chunk, version, from, until, o),
            Msg::Applied {
                chunk,
                stamp,
                result,
            } => self.on_applied(state, src, chunk, stamp, result, o),
            Msg::Read {
                chunk,
                version,
                offset,
                len,
            } => {
                let own = state.store.meta(chunk).version;
                let result = if own < version || own == 0 {
                    // A stale replica never serves a read.
                    Err(Failure::StaleReplica)
                } else {
                    state.store.read(chunk, offset, len).map_err(Failure::Store)
                };
                o.send(
                    src,
                    Msg::ReadReply {
                        chunk,
                        offset,
                        result,
                    },
                );
            }
            _ => {}
        }
    }

    pub fn on_timeout(&self, state: &mut Cow<ChunkserverState<S>>, timer: &Timer, o: &mut O<S>) {
        match *timer {
            Timer::LeaseClock(chunk, clock) => {
                let Some(l) = state.lease(chunk) else { return };
                if l.requested && l.clock == clock {
                    // The pending request ran out: a grant for it is now
                    // late. A held lease goes on, on its own clock.
                    let s = state.to_mut();
                    let l = s.lease_mut(chunk);
                    l.requested = false;
                    if l.holding {
                        l.clock = 1 - clock;
                    }
                    self.fail_early(s, chunk, o);
                } else if l.holding && l.held_clock() == clock {
                    let s = state.to_mut();
                    s.lease_mut(chunk).holding = false;
                    self.fail_in_flight(s, chunk, o);
                }
            }
            Timer::HeldBack(chunk) => self.report_gap(state, chunk, o),
            Timer::AgeOut(data) => {
                if self.cfg.bug == Bug::AgedOutDataKept {
                    return;
                }
                if let Some(i) = state.buffer.iter().position(|b| b.data == data) {
                    state.to_mut().buffer.remove(i);
                }
            }
            _ => {}
        }
    }

    fn accept_grant(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
        version: ChunkVersion,
        secondaries: Vec<Id>,
        o: &mut O<S>,
    ) {
        let s = state.to_mut();
        if version > s.store.meta(chunk).version {
            // The master moved the version on past silent replicas.
            if s.store.set_version(chunk, version).is_err() {
                return;
            }
            self.save(s, o);
        }
        let l = s.lease_mut(chunk);
        if l.epoch != epoch {
            // Only reachable with the late-grant bug: a grant for a lease
            // this replica never requested.
            l.next_serial = 1;
            l.extensions = 0;
        }
        let late = !l.requested;
        l.epoch = epoch;
        l.holding = true;
        l.requested = false;
        l.secondaries = secondaries;
        // LEASE-2: the lease runs on the clock its request started, so it
        // ends no later than `lease_ms` after the request left, however
        // late the grant came; the previous lease's clock, if this grants
        // an extension, is done.
        o.cancel_timer(Timer::LeaseClock(chunk, 1 - l.clock));
        if late || self.cfg.bug == Bug::GrantRestartsLeaseClock {
            // Only with a seeded bug: a clock started at the grant, which
            // outlasts the master's once the grant was delayed.
            o.set_timer(
                Timer::LeaseClock(chunk, l.clock),
                Durations::range(self.cfg.durations.lease_ms),
            );
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut s.early)
            .into_iter()
            .partition(|m| m.chunk == chunk && m.epoch == epoch);
        s.early = waiting;
        for m in ready {
            self.on_mutate(state, m.client, m.chunk, m.epoch, m.kind, m.data, o);
        }
    }

    fn drop_lease(&self, state: &mut Cow<ChunkserverState<S>>, chunk: ChunkHandle, o: &mut O<S>) {
        let s = state.to_mut();
        let l = s.lease_mut(chunk);
        l.holding = false;
        l.requested = false;
        o.cancel_timer(Timer::LeaseClock(chunk, 0));
        o.cancel_timer(Timer::LeaseClock(chunk, 1));
        self.fail_in_flight(s, chunk, o);
        self.fail_early(s, chunk, o);
    }

    /// The grant that early mutations waited for will not count any more.
    fn fail_early(&self, s: &mut ChunkserverState<S>, chunk: ChunkHandle, o: &mut O<S>) {
        let (failed, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut s.early)
            .into_iter()
            .partition(|m| m.chunk == chunk);
        s.early = kept;
        not_primary(chunk, failed.iter().map(|m| (m.client, m.data)), o);
    }

    /// A primary that lost its lease cannot complete its mutations: fail
    /// them so clients retry ([00101]); the data may already be on some
    /// replicas, which at-least-once append allows ([00107]).
    fn fail_in_flight(&self, s: &mut ChunkserverState<S>, chunk: ChunkHandle, o: &mut O<S>) {
        let (failed, kept): (Vec<_>, Vec<_>) =
            s.in_flight.drain(..).partition(|m| m.chunk == chunk);
        s.in_flight = kept;
        not_primary(chunk, failed.iter().map(|m| (m.client, m.data)), o);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_push(
        &self,
        id: Id,
        state: &mut Cow<ChunkserverState<S>>,
        data: DataId,
        fragment: u32,
        last: bool,
        bytes: S::Payload,
        chain: Vec<Id>,
        client: Id,
        o: &mut O<S>,
    ) {
        let existing = state.buffer.iter().position(|b| b.data == data);
        // Only a fragment that would be kept counts against the budget: a
        // stale or out-of-sequence one is ignored below, and must neither
        // drop a complete push nor answer Busy once per fragment.
        let kept = match (existing, fragment) {
            (_, 0) => true,
            (Some(i), n) => {
                state.buffer[i].fragments.len() as u32 == n && !state.buffer[i].complete
            }
            (None, _) => false,
        };
        if kept && self.over_push_budget(state, data, fragment, bytes.len()) {
            // Drop the whole push, not just this fragment: its later
            // fragments are then out of sequence and ignored, and the
            // client pushes again.
            let s = state.to_mut();
            s.buffer.retain(|b| b.data != data);
            o.send(client, push_busy(data));
            return;
        }
        let s = state.to_mut();
        match (existing, fragment) {
            (Some(i), 0) => {
                // A retry pushes the data again from the start.
                s.buffer[i] = Buffered {
                    data,
                    fragments: vec![bytes.clone()],
                    complete: last,
                };
            }
            (None, 0) => {
                if s.buffer.len() as u32 >= self.cfg.push_buffers_max {
                    o.send(client, push_busy(data));
                    return;
                }
                s.buffer.push(Buffered {
                    data,
                    fragments: vec![bytes.clone()],
                    complete: last,
                });
                s.buffer.sort_by_key(|b| b.data);
                if self.cfg.age_out {
                    o.set_timer(
                        Timer::AgeOut(data),
                        Durations::range(self.cfg.durations.age_out_ms),
                    );
                }
            }
            (Some(i), n) if s.buffer[i].fragments.len() as u32 == n && !s.buffer[i].complete => {
                s.buffer[i].fragments.push(bytes.clone());
                s.buffer[i].complete = last;
            }
            _ => return, // a fragment out of sequence: the push will be retried
        }
        // PUSH-1: forward at once, before the rest arrives: pipelining ([0098]).
        let next = match self.cfg.bug {
            Bug::PushSkipsClosest => chain.iter().copied().min(),
            _ => self.cfg.closest(id, &chain),
        };
        match next {
            Some(next) => {
                let rest: Vec<Id> = chain.iter().copied().filter(|r| *r != next).collect();
                o.send(
                    next,
                    Msg::PushData {
                        data,
                        fragment,
                        last,
                        bytes,
                        chain: rest,
                        client,
                    },
                );
            }
            None if last => o.send(client, Msg::DataPushed { data }),
            None => {}
        }
    }

    /// Whether keeping this fragment would take the buffered push bytes past
    /// `push_buffer_bytes_max`. Fragment 0 restarts its push, so that
    /// push's earlier fragments do not count then.
    fn over_push_budget(
        &self,
        s: &ChunkserverState<S>,
        data: DataId,
        fragment: u32,
        bytes: u64,
    ) -> bool {
        let max = self.cfg.push_buffer_bytes_max;
        if max == u64::MAX {
            return false;
        }
        let held: u64 = s
            .buffer
            .iter()
            .filter(|b| b.data != data || fragment > 0)
            .flat_map(|b| &b.fragments)
            .map(Payload::len)
            .sum();
        held.saturating_add(bytes) > max
    }

    #[allow(clippy::too_many_arguments)]
    fn on_mutate(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        client: Id,
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
        kind: MutationKind,
        data: DataId,
        o: &mut O<S>,
    ) {
        let fail = |o: &mut O<S>, reason| {
            o.send(
                client,
                Msg::MutationFailed {
                    chunk,
                    data,
                    reason,
                },
            )
        };
        let granting = state
            .lease(chunk)
            .is_some_and(|l| !l.holding && l.requested && l.epoch == epoch);
        if granting {
            let early = EarlyMutate {
                client,
                chunk,
                epoch,
                kind,
                data,
            };
            if state.early.contains(&early) {
                return;
            }
            if state.early.len() as u32 >= self.cfg.mutations_in_flight_max {
                return fail(o, Failure::Busy);
            }
            let s = state.to_mut();
            s.early.push(early);
            s.early.sort();
            return;
        }
        let Some(lease) = state.lease(chunk).filter(|l| l.holding).cloned() else {
            return fail(o, Failure::NotPrimary);
        };
        if state.store.meta(chunk).applied.epoch > lease.epoch {
            // LEASE-1, ORDER-2: this replica already applied a mutation of a
            // newer lease, so its own lease is over whatever its clock says
            // (only a broken clock bound gets here). Writing under the old
            // epoch now would put an older stamp after a newer one and hold
            // back every later Apply of the newer lease.
            self.drop_lease(state, chunk, o);
            return fail(o, Failure::NotPrimary);
        }
        if state.in_flight.len() as u32 >= self.cfg.mutations_in_flight_max {
            return fail(o, Failure::Busy);
        }
        if !state.has_data(data) {
            return fail(o, Failure::DataMissing);
        }
        let s = state.to_mut();
        let payload = s.take_data(data).expect("checked above");
        o.cancel_timer(Timer::AgeOut(data));
        let chunk_size = self.cfg.chunk_size;
        let too_large = match kind {
            MutationKind::Append => {
                payload.len() > self.cfg.record_size_max()
                    && self.cfg.bug != Bug::PrimarySkipsSizeCheck
            }
            MutationKind::Write { offset } => offset + payload.len() > chunk_size,
        };
        if too_large {
            return fail(o, Failure::TooLarge);
        }
        let stamp = Stamp {
            epoch: lease.epoch,
            serial: lease.next_serial,
        };
        let (op, offset) = match kind {
            MutationKind::Append => {
                let end = s.store.chunk_len(chunk);
                let fits = (end + payload.len() <= chunk_size
                    && self.cfg.bug != Bug::PrimaryPadsAlthoughRecordFits)
                    || self.cfg.bug == Bug::PrimarySkipsFitCheck;
                if fits {
                    (ApplyOp::WriteAt { offset: end, data }, Some(end))
                } else {
                    // [00105]: pad to the full size; the client retries on
                    // the next chunk.
                    (ApplyOp::PadTo { end: chunk_size }, None)
                }
            }
            MutationKind::Write { offset } => (ApplyOp::WriteAt { offset, data }, Some(offset)),
        };
        let applied = match op {
            ApplyOp::WriteAt { offset, .. } => s.store.write_at(chunk, offset, &payload, stamp),
            ApplyOp::PadTo { end } => s.store.pad_to(chunk, end, stamp),
            ApplyOp::Skip => unreachable!("a primary skips only in answer to a gap report"),
        };
        if let Err(e) = applied {
            return fail(o, Failure::Store(e));
        }
        self.save(s, o);
        let l = s.lease_mut(chunk);
        if self.cfg.bug != Bug::PrimaryReusesSerial {
            l.next_serial += 1;
        }
        // Keep the lease while mutating ([0091]): ask for an extension.
        if !l.requested && l.extensions < self.cfg.extensions_max {
            l.extensions += 1;
            l.requested = true;
            // LEASE-2: the extension's clock starts with its request; the
            // lease runs on in the other clock until it is granted.
            l.clock = 1 - l.clock;
            o.set_timer(
                Timer::LeaseClock(chunk, l.clock),
                Durations::range(self.cfg.durations.lease_ms),
            );
            o.send(
                self.cfg.master,
                Msg::LeaseRequest {
                    chunk,
                    epoch: stamp.epoch,
                },
            );
        }
        let secondaries = lease.secondaries.clone();
        let skip_secondaries =
            offset.is_none() && self.cfg.bug == Bug::PrimaryDoesNotPadSecondaries;
        let version = s.store.meta(chunk).version;
        if !skip_secondaries {
            for r in &secondaries {
                o.send(
                    *r,
                    Msg::Apply {
                        chunk,
                        version,
                        stamp,
                        op,
                    },
                );
            }
        }
        if secondaries.is_empty()
            || skip_secondaries
            || self.cfg.bug == Bug::PrimaryAcksBeforeSecondaries
        {
            self.reply_done(client, chunk, data, offset, stamp, o);
        } else {
            s.in_flight.push(InFlight {
                chunk,
                stamp,
                client,
                data,
                offset,
                acked: vec![],
            });
        }
    }

    fn reply_done(
        &self,
        client: Id,
        chunk: ChunkHandle,
        data: DataId,
        offset: Option<Offset>,
        stamp: Stamp,
        o: &mut O<S>,
    ) {
        if self.cfg.bug == Bug::PrimaryNeverReplies {
            return;
        }
        match offset {
            Some(offset) => o.send(
                client,
                Msg::MutationDone {
                    chunk,
                    data,
                    offset,
                    stamp,
                },
            ),
            None => o.send(client, Msg::ChunkFull { chunk, data }),
        }
    }

    fn on_applied(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        src: Id,
        chunk: ChunkHandle,
        stamp: Stamp,
        result: Result<(), Failure>,
        o: &mut O<S>,
    ) {
        let Some(i) = state
            .in_flight
            .iter()
            .position(|m| m.chunk == chunk && m.stamp == stamp)
        else {
            return;
        };
        let secondaries = state
            .lease(chunk)
            .map(|l| l.secondaries.clone())
            .unwrap_or_default();
        let m = &state.in_flight[i];
        if m.acked.contains(&src) {
            return;
        }
        let s = state.to_mut();
        let ok = result.is_ok() || self.cfg.bug == Bug::PrimaryIgnoresSecondaryError;
        if ok {
            s.in_flight[i].acked.push(src);
            if secondaries.iter().all(|r| s.in_flight[i].acked.contains(r)) {
                let m = s.in_flight.remove(i);
                if self.cfg.bug != Bug::PrimaryAcksBeforeSecondaries {
                    self.reply_done(m.client, chunk, m.data, m.offset, m.stamp, o);
                }
            }
        } else {
            // [00101]: any replica's error fails the mutation.
            let m = s.in_flight.remove(i);
            if self.cfg.bug != Bug::PrimaryAcksBeforeSecondaries {
                o.send(
                    m.client,
                    Msg::MutationFailed {
                        chunk,
                        data: m.data,
                        reason: Failure::SecondaryFailed,
                    },
                );
            }
        }
    }

    /// Secondary side of act 1250: apply in serial order, or hold back.
    fn on_apply(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        primary: Id,
        a: HeldApply,
        o: &mut O<S>,
    ) {
        let chunk = a.chunk;
        let meta = state.store.meta(chunk);
        // A skipped serial has nobody waiting for its answer.
        let skip = a.op == ApplyOp::Skip;
        let reply = |o: &mut O<S>, result| {
            if !skip {
                o.send(
                    primary,
                    Msg::Applied {
                        chunk,
                        stamp: a.stamp,
                        result,
                    },
                )
            }
        };
        if a.version < meta.version || a.stamp.epoch < meta.applied.epoch {
            // From a lease older than one this replica already follows.
            return reply(o, Err(Failure::StaleLease));
        }
        let expected = if a.stamp.epoch == meta.applied.epoch {
            meta.applied.serial + 1
        } else {
            1
        };
        if a.stamp.serial < expected
            && a.stamp.epoch == meta.applied.epoch
            && self.cfg.bug != Bug::SecondaryAppliesOutOfOrder
        {
            return; // a duplicate of a mutation already applied
        }
        let in_turn = a.version == meta.version && a.stamp.serial == expected;
        // The bug applies whatever arrives, in arrival order.
        let out_of_order_bug =
            self.cfg.bug == Bug::SecondaryAppliesOutOfOrder && a.version == meta.version;
        if !in_turn && !out_of_order_bug {
            // Early: a previous serial, or the new version, is still on its
            // way. Hold it, within bounds.
            if state.held.contains(&a) {
                return;
            }
            if state.held.len() as u32 >= self.cfg.mutations_in_flight_max {
                return reply(o, Err(Failure::Busy));
            }
            let s = state.to_mut();
            s.held.push(a);
            s.held.sort_by_key(|h| (h.chunk, h.stamp));
            return;
        }
        let s = state.to_mut();
        let result = match a.op {
            ApplyOp::WriteAt { offset, data } => match s.take_data(data) {
                Some(payload) => {
                    o.cancel_timer(Timer::AgeOut(data));
                    // [00106]: exactly the primary's offset, even over data.
                    let at = if self.cfg.bug == Bug::SecondaryAppendsAtOwnEnd {
                        s.store.chunk_len(chunk)
                    } else {
                        offset
                    };
                    s.store
                        .write_at(chunk, at, &payload, a.stamp)
                        .map_err(Failure::Store)
                }
                None => Err(Failure::DataMissing),
            },
            ApplyOp::PadTo { end } => s.store.pad_to(chunk, end, a.stamp).map_err(Failure::Store),
            // The primary no longer waits for this mutation: it failed.
            // Nothing to write, and nobody to answer.
            ApplyOp::Skip => Err(Failure::SecondaryFailed),
        };
        if result.is_err() {
            // The serial is used up even though it failed here, so later
            // mutations are not held behind it; its region is undefined.
            let _ = s.store.set_applied(chunk, a.stamp);
        }
        self.save(s, o);
        reply(o, result);
    }

    /// Whether this secondary reports a serial it is missing. Only a lost
    /// message or a crash leaves a gap for good, so without faults (no
    /// reply timeouts) the timer is not armed and the model does not grow.
    fn reports_gaps(&self) -> bool {
        self.cfg.reply_timeouts && self.cfg.bug != Bug::SecondaryWaitsForLostSerial
    }

    /// `Timer::HeldBack`: the first mutation held back is still waiting
    /// for an earlier serial of its lease. Ask its primary for the missing
    /// serials, and keep asking while the gap stays open (the report, or
    /// the answer, may be lost too).
    fn report_gap(&self, state: &mut Cow<ChunkserverState<S>>, chunk: ChunkHandle, o: &mut O<S>) {
        let meta = state.store.meta(chunk);
        let Some(first) = first_behind_gap(state, chunk) else {
            return;
        };
        o.set_timer(
            Timer::HeldBack(chunk),
            Durations::range(self.cfg.durations.held_back_ms),
        );
        let serial = if first.stamp.epoch == meta.applied.epoch {
            meta.applied.serial + 1
        } else {
            1
        };
        o.send(
            first.primary,
            Msg::ApplyGap {
                chunk,
                version: first.version,
                from: Stamp {
                    epoch: first.stamp.epoch,
                    serial,
                },
                until: first.stamp,
            },
        );
    }

    /// Primary side of a gap report: every serial the secondary lacks is
    /// either still in flight here (send it again) or decided. A secondary
    /// answers `Applied` Ok only once the mutation is durably in its store
    /// (FAULT-1), so a decided serial it lacks was not acknowledged through
    /// it: it failed ([00101]), and the secondary may use it up (`Skip`).
    /// That holds whether or not this server still holds the lease: on
    /// losing it, it failed everything in flight. A resent write whose
    /// data the secondary no longer has fails there (`DataMissing`), which
    /// fails the mutation and the client retries ([00107]).
    #[allow(clippy::too_many_arguments)]
    fn on_apply_gap(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        secondary: Id,
        chunk: ChunkHandle,
        version: ChunkVersion,
        from: Stamp,
        until: Stamp,
        o: &mut O<S>,
    ) {
        if from.epoch != until.epoch || from.serial >= until.serial {
            return;
        }
        // Serials of the lease this server holds that it has not issued are
        // not its to decide (a report can only name issued ones).
        let issued = match state.lease(chunk) {
            Some(l) if l.epoch == from.epoch => l.next_serial,
            _ => Serial::MAX,
        };
        for serial in from.serial..until.serial.min(issued) {
            let stamp = Stamp {
                epoch: from.epoch,
                serial,
            };
            let op = match state
                .in_flight
                .iter()
                .find(|m| m.chunk == chunk && m.stamp == stamp)
            {
                Some(m) if m.acked.contains(&secondary) => continue,
                Some(m) => match m.offset {
                    Some(offset) => ApplyOp::WriteAt {
                        offset,
                        data: m.data,
                    },
                    None => ApplyOp::PadTo {
                        end: self.cfg.chunk_size,
                    },
                },
                None => ApplyOp::Skip,
            };
            o.send(
                secondary,
                Msg::Apply {
                    chunk,
                    version,
                    stamp,
                    op,
                },
            );
        }
    }

    fn apply_held(&self, state: &mut Cow<ChunkserverState<S>>, chunk: ChunkHandle, o: &mut O<S>) {
        loop {
            let meta = state.store.meta(chunk);
            let next = state.held.iter().position(|h| {
                let expected = if h.stamp.epoch == meta.applied.epoch {
                    meta.applied.serial + 1
                } else {
                    1
                };
                h.chunk == chunk && h.version == meta.version && h.stamp.serial == expected
            });
            let Some(i) = next else { return };
            let h = state.to_mut().held.remove(i);
            let primary = h.primary;
            self.on_apply(state, primary, h, o);
        }
    }
}

/// The first mutation held back behind a serial gap of `chunk`: one of
/// the replica's own version and of its current (or a newer) lease,
/// which therefore waits for an earlier serial from its primary, never
/// for the master. One of a newer version waits for the master's
/// `NewVersion` (which the master's grant timeout covers), and one of an
/// older lease will never be applied: neither is a gap to report.
fn first_behind_gap<S: ChunkStore>(
    state: &ChunkserverState<S>,
    chunk: ChunkHandle,
) -> Option<&HeldApply> {
    let meta = state.store.meta(chunk);
    state.held.iter().find(|h| {
        h.chunk == chunk && h.version == meta.version && h.stamp.epoch >= meta.applied.epoch
    })
}

/// The chunks with a serial gap (`first_behind_gap`), in held order.
fn gapped_chunks<S: ChunkStore>(state: &ChunkserverState<S>) -> SmallVec<[ChunkHandle; 2]> {
    let mut chunks = SmallVec::new();
    for h in &state.held {
        if !chunks.contains(&h.chunk) && first_behind_gap(state, h.chunk).is_some() {
            chunks.push(h.chunk);
        }
    }
    chunks
}

/// Tells each waiting client its mutation failed: this replica is not (or no
/// longer) the primary, so the client goes back to the master ([0094]).
/// The answer to a push this server has no room for: no chunk is involved
/// yet, so the client only learns to push again later.
fn push_busy<P>(data: DataId) -> Msg<P> {
    Msg::MutationFailed {
        chunk: ChunkHandle::MAX,
        data,
        reason: Failure::Busy,
    }
}

fn not_primary<S: ChunkStore>(
    chunk: ChunkHandle,
    waiting: impl Iterator<Item = (Id, DataId)>,
    o: &mut O<S>,
) {
    for (client, data) in waiting {
        o.send(
            client,
            Msg::MutationFailed {
                chunk,
                data,
                reason: Failure::NotPrimary,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::ModelCfg;
    use stateright::actor::Command;

    fn push(units: u8, seq: u32, client: Id) -> Msg<RecordToken> {
        let data = DataId { client: 0, seq };
        Msg::PushData {
            data,
            fragment: 0,
            last: true,
            bytes: RecordToken { id: data, units },
            chain: vec![],
            client,
        }
    }

    #[test]
    fn a_push_past_the_byte_budget_is_busy_and_not_buffered() {
        let model = ModelCfg::named("tiny").expect("tiny exists");
        let mut cfg = model.protocol();
        cfg.push_buffer_bytes_max = 5;
        let actor = ChunkserverActor {
            cfg: Arc::new(cfg),
            initial_store: MemStore::new(model.chunk_units),
        };
        let (me, client) = (Id::from(1), Id::from(9));
        let mut o = Out::new();
        let mut state = Cow::Owned(actor.on_start(&None, &mut o));
        let deliver = |state: &mut Cow<ChunkserverState<MemStore>>, msg| {
            let mut o = Out::new();
            actor.on_msg(me, state, client, msg, &mut o);
            o.iter()
                .filter_map(|c| match c {
                    Command::Send(_, m) => Some(m.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let buffered = |state: &ChunkserverState<MemStore>| {
            state.buffer.iter().map(|b| b.data.seq).collect::<Vec<_>>()
        };
        assert_eq!(
            deliver(&mut state, push(3, 1, client)),
            [Msg::DataPushed {
                data: DataId { client: 0, seq: 1 }
            }]
        );
        let refused = deliver(&mut state, push(3, 2, client));
        assert!(
            matches!(
                refused[..],
                [Msg::MutationFailed {
                    reason: Failure::Busy,
                    ..
                }]
            ),
            "{refused:?}"
        );
        assert_eq!(buffered(&state), [1]);
        // A retry of the buffered push replaces it: its old bytes don't count.
        assert_eq!(deliver(&mut state, push(4, 1, client)).len(), 1);
        assert_eq!(buffered(&state), [1]);
        // Within the budget, a second push is kept beside the first.
        assert_eq!(deliver(&mut state, push(1, 3, client)).len(), 1);
        assert_eq!(buffered(&state), [1, 3]);
        // A stale later fragment of a complete push is ignored, even over
        // the budget: no Busy, and the buffered push stays.
        let Msg::PushData {
            data,
            bytes,
            chain,
            client: c,
            ..
        } = push(5, 1, client)
        else {
            unreachable!()
        };
        let stale = Msg::PushData {
            data,
            fragment: 1,
            last: true,
            bytes,
            chain,
            client: c,
        };
        assert!(deliver(&mut state, stale).is_empty());
        assert_eq!(buffered(&state), [1, 3]);
    }
}
