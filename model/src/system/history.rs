//! The auxiliary history the properties read and the actors never see.

use super::*;
use crate::memstore::*;
use crate::msg::*;
use crate::types::*;
use smallvec::SmallVec;
use stateright::actor::{Envelope, Id};
use std::sync::Arc;

/// Auxiliary history the properties need and the actors must not see
/// (a TLA+-style auxiliary variable, kept small).
///
/// Its lists are inline, sized for the named configurations (they spill to
/// the heap beyond): the checker clones the history into every generated
/// state, and heap lists cost an allocation each time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct History {
    pub chunkserver_crashes: u8,
    /// Crashes that lost what a chunkserver wrote since its last barrier
    /// (`ModelCfg::barrier_crashes`).
    pub barrier_crashes: u8,
    /// Per chunkserver that wrote since its last barrier without telling
    /// anyone but by messages that leave before the barrier
    /// (`Msg::leaves_before_barrier`): its saved store as of that barrier,
    /// which a crash before its next barrier brings back. Empty unless a
    /// crash before a barrier is left (`barrier_crashes`).
    pub unsynced: SmallVec<[(Id, Arc<MemStore>); 1]>,
    /// A crash before the barrier lost a primary's write of a mutation
    /// whose `Apply` had left (the `barrier_crashes` companion).
    pub unsynced_apply_lost: bool,
    /// A crash tore a sync and left a replica damaged (the `torn_syncs`
    /// companion).
    pub sync_torn: bool,
    /// Set by a chunkserver's send that must follow the barrier, within
    /// one step only: the wrapper reads and clears it before the state is
    /// kept, so it is never part of a checked state.
    pub barrier_passed: bool,
    pub master_crashes: u8,
    /// Disks filled (`ModelCfg::store_faults`).
    pub store_faults: u8,
    /// Chunkservers whose blocks went bad (`ModelCfg::read_faults`).
    pub read_faults: u8,
    /// A replica refused a read (a stale version, or a corrupt block), for
    /// READ-1's companion: another replica then serves it.
    pub read_refused: bool,
    pub lease_expiries: u8,
    /// Apply messages the network lost (counted only where
    /// `apply_losses` bounds them, so unbounded loss adds no states).
    pub losses: u8,
    /// Messages the network delivered a second time
    /// (`ModelCfg::duplications`).
    pub duplications: u8,
    /// Grant timeouts that fired with the offer's answers still on their
    /// way (`ModelCfg::early_grant_timeouts`).
    pub early_grant_timeouts: u8,
    /// Per (node, chunk): the last mutation it applied, as announced by its
    /// `Apply` (primary) or successful `Applied` (secondary) messages.
    pub applied: SmallVec<[(Id, ChunkHandle, Stamp); 6]>,
    /// Set when some replica applied a mutation not after its previous one.
    pub out_of_order: bool,
    /// Chunks a primary reported full (act 1440).
    pub full: SmallVec<[ChunkHandle; 2]>,
    /// (chunk, epoch, primary) of every lease the master granted.
    pub grants: SmallVec<[(ChunkHandle, LeaseEpoch, Id); 4]>,
    /// The master granted an extension of a lease it had granted before.
    pub extended: bool,
    /// The master revoked a lease.
    /// The epoch of the first lease the master revoked (0: none yet).
    pub revoked: LeaseEpoch,
    /// A mutation failed because its pushed data was gone (aged out).
    pub data_missing: bool,
    /// A replica failed a chunk while it held two or more pushes for it
    /// with their age-out timers running, so it dropped data the failed
    /// write did not use (PUSH-2's companion where age-out is on).
    pub failed_push_dropped: bool,
    /// A secondary reported a gap in the serials it was sent (LIVE-2).
    pub gap_reported: bool,
    /// A primary sent a secondary several serials in one `ApplyBatch`.
    pub batch_sent: bool,
    /// A replica served the last part of a clone (REPL-1's companion).
    pub clone_served: bool,
    /// A chunkserver deleted a replica it held (GC-1's companion).
    pub replica_deleted: bool,
    /// The lease clocks (chunkserver, chunk, clock) each chunk's master
    /// expiry waits for: those running when the master last armed it.
    pub expiry_waits: SmallVec<[(Id, ChunkHandle, u8); 2]>,
    /// For APPEND-2's real-time order: `(b client, b operation, a client,
    /// a operation)` for every record append `b` that started after record
    /// append `a` was acknowledged. An append started with nothing acked
    /// (every operation of a one-operation client) adds nothing, so only
    /// clients that append more than once add states.
    pub started_after: SmallVec<[(u8, u8, u8, u8); 1]>,
    /// `Busy` refusals sent (`BUSY_*` bits), for the `limits` companions.
    pub busy: u8,
    /// The first snapshot the master took (SNAP-1): its file, and per
    /// chunk the last mutation any replica had been sent or had applied
    /// then (from `applied`), so that none ordered later may show in the
    /// snapshot. Later snapshots leave it as it is.
    pub snapshot: Option<(FileId, Frontier)>,
    /// A client asked for a lease to mutate the snapshot's file: from then
    /// on the snapshot rightly changes, and SNAP-1 no longer speaks of it.
    pub snapshot_written: bool,
    /// Steps that broke a rule only a step can show (`STEP_*` bits): set
    /// only by a seeded bug, so the protocol's state space is unchanged.
    pub broken: u32,
}

/// Per chunk, the last mutation ordered on it (`History::snapshot`).
pub type Frontier = SmallVec<[(ChunkHandle, Stamp); 2]>;

/// A server refused a push: its buffer was full.
pub const BUSY_PUSH: u8 = 1;
/// A primary refused a mutation: its in-flight (or early) list was full.
pub const BUSY_MUTATE: u8 = 2;

/// A replica accepted a lease grant that answered no request of its own
/// still pending (LEASE-2).
pub const STEP_LATE_GRANT: u32 = 1;
/// A client sent a mutation in a step that was not the chain's
/// acknowledgement of its data, or a push went to a server that was not
/// the closest one left on the chain (PUSH-1).
pub const STEP_PUSH_ORDER: u32 = 2;
/// A replica applied data that was not in its buffer, or kept data that
/// aged out (PUSH-2).
pub const STEP_STALE_DATA: u32 = 4;
/// A client gave up on a record append with retries left (APPEND-5).
pub const STEP_APPEND_GAVE_UP: u32 = 8;
/// A client gave up on a write with retries left, or a primary kept a
/// mutation a replica failed instead of failing it at once (WRITE-2).
pub const STEP_WRITE_FAILURE_HIDDEN: u32 = 16;
/// A replica acknowledged the revocation of a lease it still holds (or
/// still asks for), so it may go on ordering mutations under it (LEASE-5).
pub const STEP_REVOKED_LEASE_KEPT: u32 = 32;
/// The master made a rename while a replica held a lease of one of the
/// file's chunks (RENAME-1).
pub const STEP_RENAMED_UNDER_LEASE: u32 = 64;
/// A replica re-armed a lease clock that was running: a grant (or a second
/// request) moved a lease's deadline later than its request's (LEASE-2).
pub const STEP_LEASE_CLOCK_REARMED: u32 = 128;
/// A client sent a read to a replica other than the closest one its
/// located chunk names and it has not tried (READ-1).
pub const STEP_READ_NOT_CLOSEST: u32 = 256;
/// A chunkserver deleted a replica that the master placed on it (GC-1).
pub const STEP_DELETED_PLACED_REPLICA: u32 = 512;
/// A client reported a result that does not answer the operation it had
/// under way: a record append reported as an open, say (CLIENT-1).
pub const STEP_WRONG_RESULT: u32 = 1024;
/// A client moved its record append to another chunk than the one after
/// the chunk it was appending to, or without that chunk's primary
/// reporting it full (APPEND-4).
pub const STEP_SKIPPED_CHUNK: u32 = 2048;
/// The master took a replica's report that its store failed a change of a
/// chunk at the chunk's current version, and still counts that replica up
/// to date (FAULT-2).
pub const STEP_FAILED_REPLICA_COUNTED: u32 = 4096;
/// A replica kept a mutation in flight after the lease it ordered it under
/// ended (LEASE-6).
pub const STEP_IN_FLIGHT_WITHOUT_LEASE: u32 = 8192;
/// A replica wrote a mutation at or below one it had applied before: its
/// own replica, as primary, included (ORDER-2).
pub const STEP_APPLIED_OUT_OF_ORDER: u32 = 16384;
/// A replica holds back an `Apply` it has moved past, which can never be
/// in turn (ORDER-3).
pub const STEP_HELD_PASSED: u32 = 32768;
/// A primary answered a gap report with `Skip` for a serial it still had
/// in flight, so that mutation was used up unwritten (ORDER-4).
pub const STEP_SKIPPED_IN_FLIGHT: u32 = 65536;
/// A replica dropped a held-back mutation it had moved past and answered
/// it otherwise than a late arrival is answered: an older lease's without
/// `StaleLease`, or a copy of one it applied (or a `Skip`) with it (ORDER-3).
pub const STEP_HELD_MISANSWERED: u32 = 131072;

impl History {
    /// Whether chunkserver `id` wrote since its last barrier: its saved
    /// store is not the one as of that barrier.
    pub(super) fn has_unsynced(&self, id: Id) -> bool {
        self.unsynced.iter().any(|(u, _)| *u == id)
    }

    pub(super) fn on_send(
        cfg: &ModelCfg,
        h: &History,
        env: Envelope<&Msg<RecordToken>>,
    ) -> Option<History> {
        // Positions are node indices in the model.
        let distance = |a: Id, b: Id| usize::from(a).abs_diff(usize::from(b)) as u64;
        let next = h.after_send(env, distance, |id| cfg.is_chunkserver(id));
        let passes = cfg.barrier_crashes > 0
            && cfg.is_chunkserver(env.src)
            && !env.msg.leaves_before_barrier(cfg.bug);
        if !passes || next.as_ref().unwrap_or(h).barrier_passed {
            return next;
        }
        let mut next = next.unwrap_or_else(|| h.clone());
        next.barrier_passed = true;
        Some(next)
    }

    /// The history after a message is sent, or `None` if unchanged. Any
    /// payload: `leasehold validate` keeps a real run's history with it.
    pub fn after_send<P>(
        &self,
        env: Envelope<&Msg<P>>,
        distance: impl Fn(Id, Id) -> u64,
        is_chunkserver: impl Fn(Id) -> bool,
    ) -> Option<History> {
        let h = self;
        match env.msg {
            // PUSH-1 ([0096]): each hop goes to the closest server of the
            // chain that has not had the data (ties to the lower id, as
            // `ProtocolCfg::closest`).
            Msg::PushData { chain, .. } => {
                let d = |a: Id| distance(a, env.src);
                let closest = !chain.contains(&env.dst)
                    && chain.iter().all(|r| (d(env.dst), env.dst) < (d(*r), *r))
                    && is_chunkserver(env.dst);
                (!closest && h.broken & STEP_PUSH_ORDER == 0).then(|| History {
                    broken: h.broken | STEP_PUSH_ORDER,
                    ..h.clone()
                })
            }
            // A skip applies nothing at the primary, and a resend answers a
            // gap report: neither is the primary applying a mutation.
            Msg::Apply {
                op: ApplyOp::Skip, ..
            } => None,
            Msg::Apply { chunk, stamp, .. } if h.resends(env.src, *chunk, *stamp) => None,
            Msg::ReadReply { result: Err(_), .. } => (!h.read_refused).then(|| History {
                read_refused: true,
                ..h.clone()
            }),
            Msg::ChunkPart {
                part: Ok(ClonePart { next: None, .. }),
                ..
            } => (!h.clone_served).then(|| History {
                clone_served: true,
                ..h.clone()
            }),
            Msg::SnapshotTaken { file: Ok(file), .. } if h.snapshot.is_none() => {
                let mut frontier = Frontier::new();
                for &(_, chunk, stamp) in &h.applied {
                    match frontier.iter_mut().find(|(c, _)| *c == chunk) {
                        Some((_, last)) => *last = (*last).max(stamp),
                        None => frontier.push((chunk, stamp)),
                    }
                }
                frontier.sort();
                Some(History {
                    snapshot: Some((*file, frontier)),
                    ..h.clone()
                })
            }
            Msg::FindLease { file, .. }
                if !h.snapshot_written && h.snapshot.as_ref().is_some_and(|(f, _)| f == file) =>
            {
                Some(History {
                    snapshot_written: true,
                    ..h.clone()
                })
            }
            Msg::ApplyGap { .. } => (!h.gap_reported).then(|| History {
                gap_reported: true,
                ..h.clone()
            }),
            Msg::Apply { chunk, stamp, .. } => Some(h.with_applied(env.src, *chunk, *stamp, true)),
            // A batch is new serials, never a resend. The same batch goes
            // to each secondary: a copy ends where the last one did.
            Msg::ApplyBatch { chunk, applies, .. } => {
                let again = h.applied.iter().any(|(n, c, last)| {
                    *n == env.src && c == chunk && applies.last().map(|a| a.0) == Some(*last)
                });
                (!again).then(|| {
                    let h = History {
                        batch_sent: true,
                        ..h.clone()
                    };
                    applies.iter().fold(h, |h, (stamp, _)| {
                        h.with_applied(env.src, *chunk, *stamp, false)
                    })
                })
            }
            Msg::Applied {
                chunk,
                stamp,
                result: Ok(()),
            } => Some(h.with_applied(env.src, *chunk, *stamp, false)),
            Msg::ChunkFull { chunk, .. } if !h.full.contains(chunk) => {
                let mut h = h.clone();
                h.full.push(*chunk);
                h.full.sort();
                Some(h)
            }
            Msg::LeaseGrant { chunk, epoch, .. }
                if h.grants.contains(&(*chunk, *epoch, env.dst)) =>
            {
                (!h.extended).then(|| History {
                    extended: true,
                    ..h.clone()
                })
            }
            Msg::RevokeLease { epoch, .. } => (h.revoked == 0).then(|| History {
                revoked: *epoch,
                ..h.clone()
            }),
            Msg::MutationFailed {
                reason: Failure::Busy,
                ..
            }
            | Msg::PushRefused {
                reason: Failure::Busy,
                ..
            } => {
                let bit = if matches!(env.msg, Msg::PushRefused { .. }) {
                    BUSY_PUSH
                } else {
                    BUSY_MUTATE
                };
                (h.busy & bit == 0).then(|| History {
                    busy: h.busy | bit,
                    ..h.clone()
                })
            }
            Msg::MutationFailed {
                reason: Failure::DataMissing,
                ..
            }
            | Msg::Applied {
                result: Err(Failure::DataMissing),
                ..
            } => (!h.data_missing).then(|| History {
                data_missing: true,
                ..h.clone()
            }),
            Msg::LeaseGrant { chunk, epoch, .. } => {
                let mut h = h.clone();
                h.grants.push((*chunk, *epoch, env.dst));
                h.grants.sort();
                Some(h)
            }
            _ => None,
        }
    }

    /// Completes the frontier of a snapshot taken in the last step with
    /// what the replicas hold: a primary with no secondary sends no Apply,
    /// so its mutations are only in its store (and in the client's
    /// answer). Every stamp on a replica was ordered before the snapshot.
    pub fn settle_snapshot<'a, S: StampedStore + 'a>(
        &mut self,
        stores: impl IntoIterator<Item = &'a S>,
    ) {
        let Some((_, frontier)) = &mut self.snapshot else {
            return;
        };
        for store in stores {
            for chunk in store.handles() {
                let Some(last) = store.regions(chunk).map(|r| r.stamp).max() else {
                    continue;
                };
                match frontier.iter_mut().find(|(c, _)| *c == chunk) {
                    Some((_, s)) => *s = (*s).max(last),
                    None => frontier.push((chunk, last)),
                }
            }
        }
        frontier.sort();
    }

    /// Whether `node`'s Apply of `stamp` is a resend: a primary takes the
    /// serials of its lease in increasing order ([0099]), so an earlier
    /// serial of the same epoch than one it already sent is not new.
    fn resends(&self, node: Id, chunk: ChunkHandle, stamp: Stamp) -> bool {
        self.applied.iter().any(|(n, c, last)| {
            *n == node && *c == chunk && last.epoch == stamp.epoch && stamp.serial < last.serial
        })
    }

    fn with_applied(
        &self,
        node: Id,
        chunk: ChunkHandle,
        stamp: Stamp,
        from_primary: bool,
    ) -> History {
        let mut h = self.clone();
        match h
            .applied
            .iter_mut()
            .find(|(n, c, _)| *n == node && *c == chunk)
        {
            Some((_, _, last)) => {
                // A primary sends the same stamp to each secondary.
                let in_order = stamp > *last || (from_primary && stamp == *last);
                if !in_order {
                    h.out_of_order = true;
                }
                *last = (*last).max(stamp);
            }
            None => {
                h.applied.push((node, chunk, stamp));
                h.applied.sort();
            }
        }
        h
    }
}
