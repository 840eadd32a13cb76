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
//!
//! * Re-replication (GFS §4.3): a stale replica the master asks to clone a
//!   chunk copies it, part by part, from the replica offered the chunk's
//!   next lease, and acknowledges the lease's version once it holds all.
//! * Garbage collection (GFS §4.4): a replica the master no longer places
//!   here is deleted when the master says so.
//!
//! Files: [`state`] holds the state; this one the start and the dispatch of
//! messages and timers; [`push`], [`lease`], [`primary`], [`secondary`],
//! [`clone`] and [`gc`] the handlers of each role.

use crate::config::{Bug, Durations, ProtocolCfg};
use crate::master::NodeStorage;
use crate::msg::*;
use crate::types::*;
use smallvec::SmallVec;
use stateright::actor::Id;
use std::borrow::Cow;
use std::sync::Arc;

mod clone;
mod gc;
mod lease;
mod primary;
mod push;
mod secondary;
mod state;

/// Unit tests' driver: delivers one message to a chunkserver actor and
/// returns what it sent.
#[cfg(test)]
fn deliver_to(
    actor: &ChunkserverActor<crate::memstore::MemStore>,
    state: &mut Cow<ChunkserverState<crate::memstore::MemStore>>,
    src: Id,
    msg: Msg<crate::memstore::RecordToken>,
) -> Vec<Msg<crate::memstore::RecordToken>> {
    let mut o = stateright::actor::Out::new();
    actor.on_msg(Id::from(1), state, src, msg, &mut o);
    o.iter()
        .filter_map(|c| match c {
            stateright::actor::Command::Send(_, m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

use primary::not_primary;
use secondary::gapped_chunks;

pub use state::*;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChunkserverActor<S> {
    pub cfg: Arc<ProtocolCfg>,
    /// The store a chunkserver starts with when it has saved nothing yet:
    /// empty in the model, a handle to its data directory over TCP.
    pub initial_store: S,
}

use crate::O;

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
        let heartbeat_due = self.cfg.heartbeats_when_idle;
        if heartbeat_due {
            o.set_timer(
                Timer::HeartBeat,
                Durations::range(self.cfg.durations.heartbeat_ms),
            );
        }
        ChunkserverState {
            store,
            leases: vec![],
            buffer: vec![],
            in_flight: vec![],
            held: vec![],
            early: vec![],
            unsent: vec![],
            failed: vec![],
            clones: vec![],
            heartbeat_due,
        }
    }

    fn save(&self, state: &ChunkserverState<S>, o: &mut O<S>) {
        o.save(NodeStorage::Chunkserver(Arc::new(state.store.clone())));
    }

    /// Stores a newer `version` of `chunk` the master announced, durably
    /// (saved before anything the step sends). Whether the replica holds
    /// it now: a store that cannot record it is reported (FAULT-2), and
    /// the replica must then neither lead nor acknowledge the version.
    pub(super) fn learn_version(
        &self,
        s: &mut ChunkserverState<S>,
        chunk: ChunkHandle,
        version: ChunkVersion,
        o: &mut O<S>,
    ) -> bool {
        if version <= s.store.meta(chunk).version {
            return true;
        }
        match s.store.set_version(chunk, version) {
            Ok(()) => {
                self.save(s, o);
                self.drop_passed_held(s, chunk, o);
                true
            }
            Err(e) => {
                self.report_store_fault(s, chunk, version, &e, o);
                false
            }
        }
    }

    /// FAULT-2: this replica's store failed an operation on `chunk` at
    /// `version`. The master stops counting on the replica, and the next
    /// lease moves the version past it, so mutations go on without it
    /// instead of failing on it for good. Reported once per start.
    pub(super) fn report_store_fault(
        &self,
        state: &mut ChunkserverState<S>,
        chunk: ChunkHandle,
        version: ChunkVersion,
        error: &StoreError,
        o: &mut O<S>,
    ) {
        if error.is_replica_fault() && state.store_failure(chunk).is_none() {
            state.failed.push((chunk, error.clone()));
            state.failed.sort();
            // Data pushed for the chunk will never be used here; kept, it
            // took the buffer's room from the chunks this server still
            // serves (nemesis seed 20).
            if self.cfg.bug != Bug::FailedReplicaBuffersPush {
                for b in state.buffer.iter().filter(|b| b.chunk == chunk) {
                    o.cancel_timer(Timer::AgeOut(b.data));
                }
                state.buffer.retain(|b| b.chunk != chunk);
            }
            // Nothing held back can be applied any more.
            state.held.retain(|h| h.chunk != chunk);
            o.cancel_timer(Timer::HeldBack(chunk));
            o.send(
                self.cfg.master,
                Msg::ReplicaFailed {
                    chunk,
                    version,
                    error: error.clone(),
                },
            );
        }
    }

    /// A replica whose store failed `chunk` (FAULT-2) takes no part in a
    /// new lease of it until its server restarts, and says so again to a
    /// master that offers one or announces its version: that master may
    /// have restarted since the first report and forgotten it, and would
    /// otherwise count this replica in every lease while every mutation
    /// fails on it (LIVE-2 in `live-store-master-crash`).
    fn refuses_failed(
        &self,
        state: &ChunkserverState<S>,
        master: Id,
        chunk: ChunkHandle,
        version: ChunkVersion,
        o: &mut O<S>,
    ) -> bool {
        let Some(error) = state.store_failure(chunk) else {
            return false;
        };
        if self.cfg.bug == Bug::StoreFailureReportedOnce {
            return false;
        }
        o.send(
            master,
            Msg::ReplicaFailed {
                chunk,
                version,
                error: error.clone(),
            },
        );
        true
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
                chunk,
                fragment,
                last,
                bytes,
                chain,
                client,
            } => self.on_push(
                id, state, data, chunk, fragment, last, bytes, chain, client, o,
            ),
            Msg::LeaseOffer {
                chunk,
                epoch,
                version,
                incarnation,
            } => {
                let meta = state.store.meta(chunk);
                let newer_lease = state.lease(chunk).is_some_and(|l| l.epoch >= epoch);
                if version < meta.version || newer_lease {
                    return; // a delayed offer of an older lease
                }
                if incarnation != state.store.incarnation()
                    && self.cfg.bug != Bug::TakesOfferOfPreviousLife
                {
                    // Meant for this server before it restarted: the master
                    // has moved on or will offer again (its grant timeout).
                    return;
                }
                if self.refuses_failed(state, src, chunk, version, o) {
                    return;
                }
                let s = state.to_mut();
                if !self.learn_version(s, chunk, version, o) {
                    // Without the version on disk this replica must not
                    // lead: the master offers to another.
                    return;
                }
                let l = s.lease_mut(chunk);
                l.epoch = epoch;
                l.holding = false;
                l.requested = true;
                l.clock = 0;
                l.extensions = 0;
                l.next_serial = 1;
                l.replica_failed = false;
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
                extension,
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
                // still within its clock: a late grant is ignored, and so
                // is a repeated grant of an earlier request of this lease
                // (its master clock started before this request's own).
                let answers_request = l.epoch == epoch
                    && l.requested
                    && (l.extensions == extension
                        || self.cfg.bug == Bug::PrimaryTakesAnyGrantOfEpoch);
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
                if self.refuses_failed(state, src, chunk, version, o) {
                    return;
                }
                if version > own && !self.learn_version(state.to_mut(), chunk, version, o) {
                    return;
                }
                o.send(src, Msg::VersionAck { chunk, version });
                self.apply_held(state, chunk, o);
            }
            Msg::RevokeLease { chunk, epoch } => {
                // LEASE-5: the acknowledgement below tells the master that
                // no mutation of this epoch is ordered here any more.
                if state
                    .lease(chunk)
                    .is_some_and(|l| l.epoch == epoch && (l.holding || l.requested))
                    && self.cfg.bug != Bug::RevokedPrimaryKeepsLease
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
            // Exactly as that many `Apply`s in this order.
            Msg::ApplyBatch {
                chunk,
                version,
                applies,
            } => {
                for (i, (stamp, op)) in applies.into_iter().enumerate() {
                    if i > 0 && self.cfg.bug == Bug::SecondaryAcksBatchUnapplied {
                        let result = Ok(());
                        o.send(
                            src,
                            Msg::Applied {
                                chunk,
                                stamp,
                                result,
                            },
                        );
                        continue;
                    }
                    let apply = HeldApply {
                        primary: src,
                        chunk,
                        version,
                        stamp,
                        op,
                    };
                    self.on_apply(state, src, apply, o);
                    self.apply_held(state, chunk, o);
                }
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
                    match state.store.read(chunk, offset, len) {
                        Ok(data) => Ok(data),
                        Err(StoreError::Corrupt)
                            if self.cfg.bug == Bug::ReplicaServesCorruptBlock =>
                        {
                            state
                                .store
                                .read_unverified(chunk, offset, len)
                                .map_err(Failure::Store)
                        }
                        Err(e) => {
                            // A corrupt block: this replica is faulty.
                            if e.is_replica_fault() && state.store_failure(chunk).is_none() {
                                self.report_store_fault(state.to_mut(), chunk, own, &e, o);
                            }
                            Err(Failure::Store(e))
                        }
                    }
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
            Msg::CloneChunk {
                chunk,
                version,
                source,
                incarnation,
            } => self.on_clone_chunk(state, chunk, version, source, incarnation, o),
            Msg::FetchChunk {
                chunk,
                version,
                from,
            } => self.on_fetch_chunk(state, src, chunk, version, from, o),
            Msg::ChunkPart {
                chunk,
                version,
                from,
                part,
            } => self.on_chunk_part(state, src, chunk, version, from, part, o),
            Msg::DeleteReplica { chunk, version } => self.on_delete_replica(state, chunk, version),
            Msg::CopyChunk {
                chunk,
                to,
                version,
                incarnation,
            } => self.on_copy_chunk(state, chunk, to, version, incarnation, o),
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
            Timer::SendApplies(chunk) => self.send_unsent(state, chunk, o),
            Timer::HeartBeat => self.heartbeat(state, o),
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
}
