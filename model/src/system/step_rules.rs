//! The step rules: what the wrapper checks of each step itself, because no
//! single state shows it (a grant taken without a pending request, a clock
//! re-armed, a client giving up with retries left), recorded as
//! `History::broken` bits that the always-properties read; and the real-time
//! order of record appends APPEND-2 and READ-1 need.

use super::*;
use crate::client::Phase;
use crate::msg::*;
use crate::types::*;
use crate::NodeState;
use smallvec::SmallVec;
use stateright::actor::{ActorModelAction, Envelope, Id};

/// What [`LeaseholdModel::step_breaks`] needs to know of an action, taken
/// before the action moves into the inner model.
pub(super) enum StepKind {
    Deliver { src: Id, dst: Id, msg: Delivered },
    Timeout(Id, Timer),
    Other,
}

/// The few facts of a delivered message the step checks read (the message
/// itself stays with the inner model, uncloned).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivered {
    Grant {
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
        /// Which request of the lease the grant answers.
        extension: u32,
    },
    AppliedErr {
        chunk: ChunkHandle,
        stamp: Stamp,
    },
    Pushed(DataId),
    ChunkFull {
        chunk: ChunkHandle,
    },
    Revoke {
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
    },
    /// A part of a clone: it installs data the replica never buffered,
    /// copied from a replica that applied it (re-replication).
    ClonePart,
    /// Garbage collection: delete a replica of `chunk`.
    Delete {
        chunk: ChunkHandle,
    },
    /// A replica's report that its store failed a change of `chunk`.
    ReplicaFailed {
        chunk: ChunkHandle,
        version: ChunkVersion,
    },
    Other,
}

impl LeaseholdModel {
    pub(super) fn step_kind(&self, action: &Action) -> StepKind {
        match action {
            ActorModelAction::Deliver { src, dst, msg } => {
                let msg = match msg {
                    Msg::RevokeLease { chunk, epoch } => Delivered::Revoke {
                        chunk: *chunk,
                        epoch: *epoch,
                    },
                    Msg::LeaseGrant {
                        chunk,
                        epoch,
                        extension,
                        ..
                    } => Delivered::Grant {
                        chunk: *chunk,
                        epoch: *epoch,
                        extension: *extension,
                    },
                    Msg::Applied {
                        chunk,
                        stamp,
                        result: Err(_),
                    } => Delivered::AppliedErr {
                        chunk: *chunk,
                        stamp: *stamp,
                    },
                    Msg::DataPushed { data } => Delivered::Pushed(*data),
                    Msg::ChunkFull { chunk, .. } => Delivered::ChunkFull { chunk: *chunk },
                    // A snapshot's copy-on-write copies as a clone does.
                    Msg::ChunkPart { .. } | Msg::CopyChunk { .. } => Delivered::ClonePart,
                    Msg::DeleteReplica { chunk, .. } => Delivered::Delete { chunk: *chunk },
                    Msg::ReplicaFailed { chunk, version, .. } => Delivered::ReplicaFailed {
                        chunk: *chunk,
                        version: *version,
                    },
                    _ => Delivered::Other,
                };
                StepKind::Deliver {
                    src: *src,
                    dst: *dst,
                    msg,
                }
            }
            ActorModelAction::Timeout(id, t) => StepKind::Timeout(*id, t.clone()),
            _ => StepKind::Other,
        }
    }

    /// Whether record append `b` started after `a` was acknowledged.
    pub fn started_after(s: &State, b: &Acked<RecordToken>, a: &Acked<RecordToken>) -> bool {
        let key = (b.client as u8, b.op as u8, a.client as u8, a.op as u8);
        s.history.started_after.contains(&key)
    }

    /// APPEND-2's real-time order: a record append that starts in this
    /// step (its client just finished the previous operation) records which
    /// appends were acknowledged by then.
    pub(super) fn record_starts(&self, last: &State, next: &mut State) {
        for c in 0..self.cfg.clients() {
            let i = usize::from(self.cfg.client_id(c));
            let (NodeState::Client(a), NodeState::Client(b)) =
                (&**last.actor_states[i], &**next.actor_states[i])
            else {
                continue;
            };
            let k = b.results.len();
            // Reads too: READ-1 reads the same order.
            let starts_append = matches!(
                self.scripts[c].get(k),
                Some(ClientOp::Append { .. } | ClientOp::Read { .. })
            );
            if k <= a.results.len() || !starts_append {
                continue;
            }
            let before: SmallVec<[(u8, u8, u8, u8); 2]> = acked(self, next)
                .filter(|x| x.append)
                .map(|x| (c as u8, k as u8, x.client as u8, x.op as u8))
                .collect();
            if !before.is_empty() {
                let h = &mut next.history;
                h.started_after.extend(before);
                h.started_after.sort();
            }
        }
    }

    /// Whether `id`'s step failed a chunk while it held two or more
    /// pushes for it, their age-out timers running, and none is left: the
    /// write that failed used one of them at most, so the failure dropped
    /// the rest, whose timers the age-out clause of PUSH-2 checks.
    pub(super) fn failed_push_dropped(&self, last: &State, id: Id, next: &State) -> bool {
        let i = usize::from(id);
        let (NodeState::Chunkserver(a), NodeState::Chunkserver(b)) =
            (&**last.actor_states[i], &**next.actor_states[i])
        else {
            return false;
        };
        if last.crashed[i] || next.crashed[i] {
            return false;
        }
        let gone = a.buffer.iter().filter(|p| {
            a.store_failure(p.chunk).is_none()
                && b.store_failure(p.chunk).is_some()
                && !b.buffer.iter().any(|q| q.data == p.data)
                && last.timers_set[i]
                    .iter()
                    .any(|t| *t == Timer::AgeOut(p.data))
        });
        gone.count() >= 2
    }

    /// The chunkserver and chunk whose replica this step deleted (garbage
    /// collection), if it deleted one.
    pub(super) fn deletion(
        &self,
        last: &State,
        kind: &StepKind,
        next: &State,
    ) -> Option<(Id, ChunkHandle)> {
        let StepKind::Deliver {
            dst,
            msg: Delivered::Delete { chunk },
            ..
        } = kind
        else {
            return None;
        };
        let replica = |s: &State| match &**s.actor_states[usize::from(*dst)] {
            NodeState::Chunkserver(c) => c.store.replica(*chunk).cloned().unwrap_or_default(),
            _ => MemReplica::default(),
        };
        let (before, after) = (replica(last), replica(next));
        (before != MemReplica::default() && after == MemReplica::default())
            .then_some((*dst, *chunk))
    }

    /// The `STEP_*` rules this step broke (see [`History::broken`]).
    pub(super) fn step_breaks(&self, last: &State, kind: &StepKind, next: &State) -> u32 {
        let mut broken = 0;
        fn cs_of(s: &State, id: Id) -> Option<&crate::chunkserver::ChunkserverState<MemStore>> {
            match &**s.actor_states[usize::from(id)] {
                NodeState::Chunkserver(c) if !s.crashed[usize::from(id)] => Some(c),
                _ => None,
            }
        }
        fn client_of(s: &State, id: Id) -> Option<&crate::client::ClientState<RecordToken>> {
            match &**s.actor_states[usize::from(id)] {
                NodeState::Client(c) => Some(c),
                _ => None,
            }
        }
        let count = |s: &State, f: &dyn Fn(&Envelope<&Msg<RecordToken>>) -> bool| {
            s.network.iter_all().filter(|e| f(e)).count()
        };
        let (actor, delivered) = match kind {
            StepKind::Deliver { dst, msg, .. } => (*dst, Some(*msg)),
            StepKind::Timeout(id, _) => (*id, None),
            StepKind::Other => return 0,
        };
        // GC-1 (GFS §4.4): a replica is deleted only where the master no
        // longer places it.
        if let Some((cs, chunk)) = self.deletion(last, kind, next) {
            let placed = master(last)
                .durable
                .chunks
                .get(chunk as usize)
                .is_some_and(|c| c.replicas.contains(&cs));
            if placed {
                broken |= STEP_DELETED_PLACED_REPLICA;
            }
        }
        if actor == self.cfg.master_id() {
            // RENAME-1: a rename is made (the name changes in this step)
            // only when no replica holds a lease of the file's chunks.
            let (a, b) = (master(last), master(next));
            for (f, file) in b.durable.files.iter().enumerate() {
                let renamed = a
                    .durable
                    .files
                    .get(f)
                    .is_some_and(|old| old.name != file.name);
                let held = || {
                    self.cfg.chunkserver_id_iter().any(|cs| {
                        cs_of(next, cs)
                            .is_some_and(|c| file.chunks.iter().any(|k| c.is_primary(*k)))
                    })
                };
                if renamed && held() {
                    broken |= STEP_RENAMED_UNDER_LEASE;
                }
            }
            // FAULT-2 ([00101]): the step that takes a replica's report of
            // a failed change at the chunk's current version leaves the
            // replica out of the up-to-date set (a step that changes
            // nothing at all is checked in `next_state`).
            if let (
                StepKind::Deliver { src, .. },
                Some(Delivered::ReplicaFailed { chunk, version }),
            ) = (kind, delivered)
            {
                if failed_replica_still_counted(a, b, *src, chunk, version) {
                    broken |= STEP_FAILED_REPLICA_COUNTED;
                }
            }
        }
        if let (Some(a), Some(b)) = (cs_of(last, actor), cs_of(next, actor)) {
            if in_flight_without_lease(b).is_some() {
                broken |= STEP_IN_FLIGHT_WITHOUT_LEASE;
            }
            if held_passed(b).is_some() {
                broken |= STEP_HELD_PASSED;
            }
            // ORDER-4: the `Skip`s this step sent (one more of it in
            // flight than before; most steps send none) name no serial the
            // primary still waits for.
            let sent_skips = next.network.iter_all().filter_map(|e| {
                let skip = e.src == actor
                    && matches!(
                        e.msg,
                        Msg::Apply {
                            op: ApplyOp::Skip,
                            ..
                        }
                    )
                    && count(next, &|f| f.src == actor && f.msg == e.msg)
                        > count(last, &|f| f.src == actor && f.msg == e.msg);
                skip.then_some(e.msg)
            });
            if skips_in_flight(b, sent_skips).is_some() {
                broken |= STEP_SKIPPED_IN_FLIGHT;
            }
            // LEASE-5: a replica that acknowledges a revocation (it always
            // answers one) no longer holds or asks for that lease, so by
            // LEASE-2 it never holds it again.
            if let Some(Delivered::Revoke { chunk, epoch }) = delivered {
                if b.lease(chunk)
                    .is_some_and(|l| l.epoch == epoch && (l.holding || l.requested))
                {
                    broken |= STEP_REVOKED_LEASE_KEPT;
                }
            }
            // LEASE-2: a grant makes a replica the holder only when it
            // answers the replica's own request, still pending: the same
            // epoch and the same extension of it.
            if let Some(Delivered::Grant {
                chunk,
                epoch,
                extension,
            }) = delivered
            {
                if grant_taken_unasked(a.lease(chunk), b, chunk, epoch, extension) {
                    broken |= STEP_LATE_GRANT;
                }
            }
            // PUSH-2: data that aged out is gone, and a replica applies
            // only data it holds, which the mutation then uses up (so a
            // duplicated mutation cannot apply it again).
            if let StepKind::Timeout(_, Timer::AgeOut(d)) = kind {
                if holds_push(b, *d) {
                    broken |= STEP_STALE_DATA;
                }
            }
            // PUSH-2 with FAULT-2: nothing is buffered for a failed chunk.
            if push_for_failed_chunk(b).is_some() {
                broken |= STEP_STALE_DATA;
            }
            // PUSH-2: with age-out on, the age-out timers are exactly the
            // pushes buffered, so unused data always leaves.
            if self.cfg.age_out
                && age_out_unmatched(b, next.timers_set[usize::from(actor)].iter()).is_some()
            {
                broken |= STEP_STALE_DATA;
            }
            let copied = matches!(delivered, Some(Delivered::ClonePart));
            // ORDER-2: what a step applies, as primary or secondary, comes
            // after everything the replica applied before it.
            if !copied && a.store != b.store && applied_below(&a.store, &b.store) {
                broken |= STEP_APPLIED_OUT_OF_ORDER;
            }
            if delivered.is_some() && !copied && a.store != b.store {
                let fresh = b.store.replicas().iter().enumerate().any(|(chunk, r)| {
                    let old = a.store.replica(chunk as ChunkHandle);
                    r.cells.iter().flatten().any(|c| match c {
                        Cell::Data { record, stamp, .. } if *stamp != Stamp::default() => {
                            let new = !old.is_some_and(|o| {
                                o.cells.iter().flatten().any(|x| cell_stamp(x) == *stamp)
                            });
                            new && (!holds_whole_push(a, record.id) || holds_push(b, record.id))
                        }
                        _ => false,
                    })
                });
                if fresh {
                    broken |= STEP_STALE_DATA;
                }
            }
            // WRITE-2: a replica's error fails the mutation at once: it
            // leaves the primary's in-flight list and is never acked.
            if let Some(Delivered::AppliedErr { chunk, stamp }) = delivered {
                let StepKind::Deliver { src, .. } = kind else {
                    unreachable!()
                };
                let awaited = awaits_replica(a, *src, chunk, stamp);
                let kept = keeps_in_flight(b, chunk, stamp);
                let done = |s: &State| {
                    count(s, &|e| {
                        e.src == actor
                            && matches!(e.msg, Msg::MutationDone { chunk: c, stamp: st, .. } if *c == chunk && *st == stamp)
                    })
                };
                if awaited && (kept || done(next) > done(last)) {
                    broken |= STEP_WRITE_FAILURE_HIDDEN;
                }
            }
        }
        if let (Some(a), Some(b)) = (client_of(last, actor), client_of(next, actor)) {
            // PUSH-1: a client sends a mutation only in the step that takes
            // the chain's acknowledgement of that mutation's data.
            let sent = |s: &State| {
                count(s, &|e| {
                    e.src == actor && matches!(e.msg, Msg::Mutate { .. })
                })
            };
            if sent(next) > sent(last) {
                let acknowledged = match delivered {
                    Some(Delivered::Pushed(data)) => {
                        count(next, &|e| {
                            e.src == actor
                                && matches!(e.msg, Msg::Mutate { data: d, .. } if *d == data)
                        }) > count(last, &|e| {
                            e.src == actor
                                && matches!(e.msg, Msg::Mutate { data: d, .. } if *d == data)
                        })
                    }
                    _ => false,
                };
                if !acknowledged {
                    broken |= STEP_PUSH_ORDER;
                }
            }
            // READ-1 (GFS §2.7): a read goes to the closest replica that
            // the located chunk names and this read has not tried. The
            // chunk's holders are in the client's cache once it reads.
            let before = a.current.as_ref().map(|c| &c.phase);
            let read_sent = b.current.as_ref().is_some_and(|c| {
                matches!(c.phase, Phase::Reading { .. }) && before != Some(&c.phase)
            });
            if read_sent && read_not_closest(&self.cfg.protocol(), actor, before, b).is_some() {
                broken |= STEP_READ_NOT_CLOSEST;
            }
            // APPEND-4 ([00105]): a record append moves on only to the
            // next chunk, on the report that the chunk it mutated is full.
            let chunk_full = match delivered {
                Some(Delivered::ChunkFull { chunk }) => Some(chunk),
                _ => None,
            };
            if skipped_chunk(a, b, chunk_full).is_some() {
                broken |= STEP_SKIPPED_CHUNK;
            }
            // CLIENT-1: a result answers the operation under way.
            if b.results.len() > a.results.len() {
                let answers = match (&a.current, b.results.get(a.results.len())) {
                    (Some(cur), Some(result)) => result_answers(&cur.op, result),
                    _ => false,
                };
                if !answers {
                    broken |= STEP_WRONG_RESULT;
                }
            }
            // APPEND-5, WRITE-2: a client reports a mutation failed only
            // with its retries used up.
            if b.results.len() > a.results.len()
                && matches!(b.results.get(a.results.len()), Some(OpResult::Failed(_)))
            {
                if let Some(cur) = &a.current {
                    if cur.retries < self.cfg.client_retries_max {
                        broken |= match cur.op {
                            ClientOp::Append { .. } => STEP_APPEND_GAVE_UP,
                            _ => STEP_WRITE_FAILURE_HIDDEN,
                        };
                    }
                }
            }
        }
        broken
    }
}

/// APPEND-4 on the client's side ([00105]: the client retries "on the next
/// chunk"): the record append under way moved from chunk `i` (in `a`, the
/// client before a step) to another chunk than `i + 1`, or moved in a step
/// that did not take a `ChunkFull` (`chunk_full`) for the chunk its cache
/// placed at `i`, the one it was mutating. Returns `(i, n)`, the indices
/// it moved between. One rule for the model's step check and for trace
/// validation. An append sent to a later chunk by the master (one a write
/// allocated) is no concern of it: the client learns that index from a
/// `LeaseHolder` while its own index is `Last`.
pub fn skipped_chunk<P>(
    a: &crate::client::ClientState<P>,
    b: &crate::client::ClientState<P>,
    chunk_full: Option<ChunkHandle>,
) -> Option<(u32, u32)> {
    let (ca, cb) = (a.current.as_ref()?, b.current.as_ref()?);
    let (ChunkIndex::At(i), ChunkIndex::At(n), ClientOp::Append { file, .. }) =
        (ca.index, cb.index, &cb.op)
    else {
        return None;
    };
    if ca.op_id != cb.op_id || n == i {
        return None;
    }
    let mutated = a
        .cache
        .iter()
        .find(|c| c.file == *file && c.index == i)
        .map(|c| c.chunk);
    let reported = chunk_full.is_some() && chunk_full == mutated;
    (n != i + 1 || !reported).then_some((i, n))
}

/// FAULT-2 ([00101]) at the master's step that takes `src`'s report that
/// its store failed a change of `chunk` at `version`: whether, that
/// version being the chunk's current one `before` the step, the master
/// still counts `src` up to date `after` it: the model's step rule
/// (`STEP_FAILED_REPLICA_COUNTED`), and trace validation's on a real
/// master's replayed states.
pub fn failed_replica_still_counted(
    before: &crate::master::MasterState,
    after: &crate::master::MasterState,
    src: Id,
    chunk: ChunkHandle,
    version: ChunkVersion,
) -> bool {
    let current = before
        .durable
        .chunks
        .get(chunk as usize)
        .is_some_and(|c| c.version == version);
    current
        && after
            .views
            .get(chunk as usize)
            .is_some_and(|v| v.up_to_date.contains(&src))
}

/// WRITE-2 ([00101]) at a primary's step that takes `replica`'s error for
/// `stamp` of `chunk`: whether, `before` the step, the primary still
/// waited on that replica for the mutation. If it did, the mutation must
/// leave its in-flight list in that step ([`keeps_in_flight`]).
pub fn awaits_replica<S: ChunkStore>(
    before: &crate::chunkserver::ChunkserverState<S>,
    replica: Id,
    chunk: ChunkHandle,
    stamp: Stamp,
) -> bool {
    before
        .in_flight
        .iter()
        .any(|m| m.chunk == chunk && m.stamp == stamp && !m.acked.contains(&replica))
}

/// LEASE-6 ([00101]): a mutation `s` has in flight under a lease it no
/// longer holds (its clock ran out, it was revoked, a new offer replaced
/// it). The step that ends a lease must fail every mutation ordered under
/// it: nothing else tells their clients, and they hold places of the
/// in-flight limit until they leave the list.
pub fn in_flight_without_lease<S: ChunkStore>(
    s: &crate::chunkserver::ChunkserverState<S>,
) -> Option<(ChunkHandle, Stamp)> {
    s.in_flight
        .iter()
        .find(|m| {
            !s.lease(m.chunk)
                .is_some_and(|l| l.holding && l.epoch == m.stamp.epoch)
        })
        .map(|m| (m.chunk, m.stamp))
}

/// ORDER-3 ([00100]): an `Apply` that `s` holds back though it has moved
/// past it (a newer version learned, a later lease's mutation or the same
/// serial applied), so it can never be in turn: the step that moves a
/// replica past a held mutation must drop it, or it keeps a place of the
/// hold-back limit (`Busy` beyond it) until a restart.
pub fn held_passed<S: ChunkStore>(
    s: &crate::chunkserver::ChunkserverState<S>,
) -> Option<(ChunkHandle, Stamp)> {
    // Stated apart from the actor's own tests (`from_older_lease`,
    // `already_applied`), so a change to those is not also a change to
    // what checks them: an older version, or a stamp not after the last
    // applied (stamps order by epoch, then serial).
    s.held
        .iter()
        .find(|h| {
            let meta = s.store.meta(h.chunk);
            h.version < meta.version || h.stamp <= meta.applied
        })
        .map(|h| (h.chunk, h.stamp))
}

/// ORDER-3's answers ([00100], [00101]): the step that moves a replica past
/// mutations it held back drops each, unapplied, and answers it as one
/// that arrives that late is answered: `StaleLease` to its primary when it
/// is from an older lease (an older chunk version, or an epoch before the
/// one now applied) and not a `Skip` (nobody waits for a skipped serial);
/// nothing for a copy of a mutation already applied here (its first copy
/// was answered when applied, and a failure now would fail a mutation this
/// replica holds), nor for one whose stamp the step applied (a `Skip` and
/// the real `Apply` of one stamp held together: one applied, the other
/// dropped; `duplicating-retry`). `before` is what the replica held before
/// the step, each with its chunk's metadata then; `sent` is what the step
/// sent, with each destination.
/// Stated apart from the actor's own tests, as [`held_passed`] is. The
/// first held mutation answered otherwise, if any.
pub fn held_drop_misanswered<'a, S: ChunkStore, P: 'a>(
    before: &[(crate::chunkserver::HeldApply, ReplicaMeta)],
    after: &crate::chunkserver::ChunkserverState<S>,
    sent: impl IntoIterator<Item = (Id, &'a Msg<P>)> + Clone,
) -> Option<(ChunkHandle, Stamp)> {
    before
        .iter()
        .filter(|(h, _)| !after.held.contains(h))
        .find(|(h, was)| {
            let now = after.store.meta(h.chunk);
            // Its stamp applied in this step: this copy was applied (its
            // answer is on_apply's, checked elsewhere, and never
            // `StaleLease`, as it was in turn), or it is a second copy of
            // the one applied (a `Skip` beside the real `Apply`), dropped
            // unanswered. Either way no `StaleLease` for it.
            let applied = h.version == now.version
                && h.stamp.epoch == now.applied.epoch
                && was.applied < h.stamp
                && h.stamp <= now.applied;
            let older = !applied && (h.version < now.version || h.stamp.epoch < now.applied.epoch);
            let want = older && h.op != ApplyOp::Skip;
            let answered = sent.clone().into_iter().any(|(dst, m)| {
                dst == h.primary
                    && matches!(m, Msg::Applied {
                        chunk,
                        stamp,
                        result: Err(Failure::StaleLease),
                    } if *chunk == h.chunk && *stamp == h.stamp)
            });
            want != answered
        })
        .map(|(h, _)| (h.chunk, h.stamp))
}

/// What [`held_drop_misanswered`] needs of a replica before a step: each
/// mutation it holds back, with its chunk's metadata.
pub fn held_with_meta<S: ChunkStore>(
    s: &crate::chunkserver::ChunkserverState<S>,
) -> Vec<(crate::chunkserver::HeldApply, ReplicaMeta)> {
    s.held
        .iter()
        .map(|h| (h.clone(), s.store.meta(h.chunk)))
        .collect()
}

/// ORDER-4 ([00100], [00101]): a `Skip` among a chunkserver's sends
/// `sent` for a serial it has in flight (after the step: a step that
/// answers a gap report orders nothing new, and a new serial is never one
/// a report names). `Skip` tells a secondary to use the serial up without
/// writing it, so that mutation could never be acknowledged: a primary
/// still waiting for it must send it again instead.
pub fn skips_in_flight<'a, S: ChunkStore, P: 'a>(
    s: &crate::chunkserver::ChunkserverState<S>,
    sent: impl IntoIterator<Item = &'a Msg<P>>,
) -> Option<(ChunkHandle, Stamp)> {
    sent.into_iter().find_map(|m| match m {
        Msg::Apply {
            chunk,
            stamp,
            op: ApplyOp::Skip,
            ..
        } if s
            .in_flight
            .iter()
            .any(|f| f.chunk == *chunk && f.stamp == *stamp) =>
        {
            Some((*chunk, *stamp))
        }
        _ => None,
    })
}

/// ORDER-2 ([00100], [0099]) at a step that changed a replica's store:
/// whether it wrote a mutation (a stamp the chunk did not hold) at or
/// below a stamp the chunk already held. The `Apply` messages alone do not
/// show it: a primary's answer to a gap report sends earlier serials
/// again, so `History` takes any earlier serial of the epoch for a resend;
/// a primary that took serials out of order ([0099]: in increasing order)
/// writes its own replica out of order, which this sees. A clone's parts
/// are copies, not applies: the caller leaves them out.
pub fn applied_below<S: StampedStore>(before: &S, after: &S) -> bool {
    after.handles().any(|chunk| {
        let Some(top) = before.regions(chunk).map(|r| r.stamp).max() else {
            return false;
        };
        after
            .regions(chunk)
            .any(|r| r.stamp <= top && !before.has_stamp(chunk, r.stamp))
    })
}

/// Whether the primary has `stamp` of `chunk` in flight (WRITE-2: not
/// after the step that takes a replica's error for it).
pub fn keeps_in_flight<S: ChunkStore>(
    after: &crate::chunkserver::ChunkserverState<S>,
    chunk: ChunkHandle,
    stamp: Stamp,
) -> bool {
    after
        .in_flight
        .iter()
        .any(|m| m.chunk == chunk && m.stamp == stamp)
}

/// PUSH-2 ([0095]): whether a replica's buffer holds the whole push of
/// `data`, which a step that writes it must find before it.
pub fn holds_whole_push<S: ChunkStore>(
    s: &crate::chunkserver::ChunkserverState<S>,
    data: DataId,
) -> bool {
    s.buffer.iter().any(|b| b.data == data && b.complete)
}

/// PUSH-2: whether a replica's buffer holds any of the push of `data`,
/// which it must not after the step that writes it (the mutation uses it
/// up) or the step that ages it out.
pub fn holds_push<S: ChunkStore>(
    s: &crate::chunkserver::ChunkserverState<S>,
    data: DataId,
) -> bool {
    s.buffer.iter().any(|b| b.data == data)
}

/// PUSH-2 ([0095]) with FAULT-2: pushed data a replica holds for a chunk
/// it has failed, which no mutation will ever use there. Kept, such data
/// filled a chunkserver's buffer over TCP and kept every push out, for the
/// chunks it still served too, until it aged out (nemesis seed 20).
pub fn push_for_failed_chunk<S: ChunkStore>(
    s: &crate::chunkserver::ChunkserverState<S>,
) -> Option<(DataId, ChunkHandle)> {
    s.buffer
        .iter()
        .find(|b| s.store_failure(b.chunk).is_some())
        .map(|b| (b.data, b.chunk))
}

/// ORDER-2's batch clause ([00100], [0099]), for the model and for
/// `validate` alike: the first two neighbouring entries of an
/// `ApplyBatch` that are not consecutive serials of one lease in
/// increasing order. A gap, or a batch spanning two leases, passes the
/// stamp-by-stamp order check (its stamps increase), and a secondary
/// would take the whole batch under its one version.
pub fn batch_break<O>(applies: &[(Stamp, O)]) -> Option<(Stamp, Stamp)> {
    applies
        .windows(2)
        .map(|w| (w[0].0, w[1].0))
        .find(|(a, b)| a.epoch != b.epoch || b.serial != a.serial + 1)
}

/// PUSH-2 ([0095]) with age-out on: a push buffered without its age-out
/// timer armed (it would stay until a mutation used it, and unused it
/// would take the buffer's room for good, as data for a failed chunk did
/// over TCP), or an age-out timer armed for data no longer buffered. The
/// data either way.
pub fn age_out_unmatched<'a, S: ChunkStore>(
    s: &crate::chunkserver::ChunkserverState<S>,
    timers: impl IntoIterator<Item = &'a Timer>,
) -> Option<DataId> {
    let armed: Vec<DataId> = timers
        .into_iter()
        .filter_map(|t| match t {
            Timer::AgeOut(d) => Some(*d),
            _ => None,
        })
        .collect();
    let unarmed = s.buffer.iter().map(|b| b.data).find(|d| !armed.contains(d));
    unarmed.or_else(|| {
        armed
            .into_iter()
            .find(|d| !s.buffer.iter().any(|b| b.data == *d))
    })
}

/// LEASE-2 ([0091]) at a chunkserver's step: the first lease clock among
/// the timers the step `set` that was `running` before it, unless the
/// step also sent a new request for that chunk's lease (`requested`),
/// whose clock starts again for it. A clock restarted otherwise (at a
/// grant) would let the lease outlast its request's deadline, and so the
/// master's view of it.
pub fn rearmed_lease_clock<'a>(
    running: impl Fn(&Timer) -> bool,
    set: impl IntoIterator<Item = &'a Timer>,
    requested: &[ChunkHandle],
) -> Option<&'a Timer> {
    set.into_iter().find(
        |t| matches!(t, Timer::LeaseClock(chunk, _) if running(t) && !requested.contains(chunk)),
    )
}

/// LEASE-2 as a step rule, for the model and for `validate` alike: a
/// replica whose lease of `chunk` was `before` took a grant of `epoch`'s
/// `extension` and is, `after` it, the primary under another lease than
/// before, though the grant answers no request of its own still pending
/// (the same epoch and the same extension of it).
pub fn grant_taken_unasked<S: ChunkStore>(
    before: Option<&crate::chunkserver::ReplicaLease>,
    after: &crate::chunkserver::ChunkserverState<S>,
    chunk: ChunkHandle,
    epoch: LeaseEpoch,
    extension: u32,
) -> bool {
    let pending =
        before.is_some_and(|l| l.requested && l.epoch == epoch && l.extensions == extension);
    let changed = before != after.lease(chunk);
    changed && after.is_primary(chunk) && !pending
}

/// Whether `result` can answer `op` (CLIENT-1): a failure answers any
/// operation; a success, only the operation of its kind, and a write only
/// where it was asked to write (a write applied as a record append would
/// be acknowledged wherever the append landed).
pub fn result_answers<P>(op: &ClientOp<P>, result: &OpResult<P>) -> bool {
    if let (
        ClientOp::Write { index, offset, .. },
        OpResult::Mutated {
            index: at,
            offset: o,
            ..
        },
    ) = (op, result)
    {
        return (index, offset) == (at, o);
    }
    matches!(
        (op, result),
        (_, OpResult::Failed(_))
            | (ClientOp::Open { .. }, OpResult::Opened { .. })
            | (ClientOp::Append { .. }, OpResult::Mutated { .. })
            | (ClientOp::Read { .. }, OpResult::Read { .. })
            | (ClientOp::Stat { .. }, OpResult::Stat { .. })
            | (ClientOp::Rename { .. }, OpResult::Renamed { .. })
            | (ClientOp::Snapshot { .. }, OpResult::Snapshotted { .. })
    )
}

/// READ-1 (GFS §2.7) as a step rule, for the model and for `validate`
/// alike: if the step took a client's read to a replica (its phase was
/// `before` and is now reading from a replica it was not reading from),
/// that replica must be the closest (`ProtocolCfg::distance`, ties to the
/// lower id) of those its located chunk names and the read has not tried.
/// Where it is not: `Some((the replica it went to, the closest))`.
pub fn read_not_closest<P>(
    protocol: &crate::config::ProtocolCfg,
    client: Id,
    before: Option<&Phase>,
    after: &crate::client::ClientState<P>,
) -> Option<(Id, Id)> {
    let cur = after.current.as_ref()?;
    let Phase::Reading { replica } = cur.phase else {
        return None;
    };
    if before == Some(&cur.phase) {
        return None;
    }
    let (Some(file), ChunkIndex::At(index)) = (cur.op.file(), cur.index) else {
        return None;
    };
    let info = after
        .cache
        .iter()
        .find(|i| i.file == file && i.index == index)?;
    let tried = &cur.tried[..cur.tried.len().saturating_sub(1)];
    let d = |r: Id| (protocol.distance(client, r), r);
    let closest = info
        .replicas()
        .filter(|r| !tried.contains(r))
        .min_by_key(|r| d(*r))?;
    (d(closest) < d(replica)).then_some((replica, closest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write is answered only at the place it asked for: the client that
    /// sent a write as a record append (mutant 107 of `client/mod.rs`)
    /// was acknowledged wherever the append landed, and every other check
    /// judged the write at that place.
    #[test]
    fn a_write_is_answered_only_where_it_asked_to_write() {
        let write = ClientOp::Write {
            file: 0,
            index: 1,
            offset: 3,
            data: (),
        };
        let at = |index, offset| OpResult::<()>::Mutated {
            chunk: 2,
            index,
            offset,
            stamp: Stamp::default(),
        };
        assert!(result_answers(&write, &at(1, 3)));
        assert!(!result_answers(&write, &at(1, 5)));
        assert!(!result_answers(&write, &at(0, 3)));
        assert!(result_answers(&write, &OpResult::Failed(Failure::Busy)));
        let append = ClientOp::Append { file: 0, data: () };
        assert!(result_answers(&append, &at(0, 5)));
    }

    /// APPEND-4's client side: the append mutating chunk 7 (index 1) moves
    /// on to index 2 on chunk 7's `ChunkFull` only; a late report of the
    /// chunk it left (index 0, chunk 4) or a jump past index 2 is flagged.
    #[test]
    fn a_record_append_moves_on_only_to_the_next_chunk_on_its_report() {
        use crate::client::{ClientState, Current, Phase};
        let info = |index, chunk| LeaseInfo {
            file: 0,
            index,
            chunk,
            version: 1,
            epoch: 1,
            primary: Some(Id::from(1)),
            secondaries: vec![],
        };
        let client = |index, phase| ClientState::<()> {
            queue: vec![],
            current: Some(Current {
                op_id: 3,
                op: ClientOp::Append { file: 0, data: () },
                data: DataId { client: 4, seq: 0 },
                phase,
                index: ChunkIndex::At(index),
                retries: 0,
                retries_at_primary: 0,
                tried: vec![],
            }),
            cache: vec![info(0, 4), info(1, 7)],
            next_seq: 0,
            results: vec![],
        };
        let mutating = client(1, Phase::Mutating);
        let next = client(2, Phase::FindingLease);
        assert_eq!(skipped_chunk(&mutating, &next, Some(7)), None);
        assert_eq!(skipped_chunk(&mutating, &next, Some(4)), Some((1, 2)));
        assert_eq!(skipped_chunk(&mutating, &next, None), Some((1, 2)));
        assert_eq!(
            skipped_chunk(&mutating, &client(3, Phase::FindingLease), Some(7)),
            Some((1, 3))
        );
        // Staying on the chunk, or another operation, is no move.
        assert_eq!(skipped_chunk(&mutating, &mutating, None), None);
        let mut other = next.clone();
        other.current.as_mut().unwrap().op_id = 4;
        assert_eq!(skipped_chunk(&mutating, &other, None), None);
    }
}
