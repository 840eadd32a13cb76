//! The always-properties, each a function of a [`GlobalView`]: the model
//! checks them on every state it visits, and `leasehold validate` on every
//! global state of a real run (see [`super::view`]). Names start with the
//! requirement ID from specs/.
//!
//! The queries of a checker state itself (`acked`, `reads`, ...) are in
//! [`super::queries`].

use super::append_order::{self, Placed};
use super::*;
use crate::master::LeaseView;
use crate::types::*;
use smallvec::SmallVec;
use stateright::actor::Id;
use std::borrow::Cow;

// ---------------------------------------------------------------------------
// Helpers over any view.

/// Replicas at the master's current version of `chunk`.
pub fn replicas_at_version<V: GlobalView>(
    v: &V,
    chunk: ChunkHandle,
) -> impl Iterator<Item = Id> + '_ {
    let version = master_of(v)
        .durable
        .chunks
        .get(chunk as usize)
        .map(|c| c.version);
    v.chunkservers()
        .filter(move |id| Some(v.store(*id).replica_meta(chunk).version) == version)
}

/// Whether `[from, to)` of `chunk` lies wholly in regions of `store`, each
/// (clipped to the range) passing `ok`.
fn covered<S: StampedStore>(
    store: &S,
    chunk: ChunkHandle,
    from: Offset,
    to: Offset,
    mut ok: impl FnMut(Region) -> bool,
) -> bool {
    let mut at = from;
    for r in store.regions_from(chunk, from) {
        if r.start > at || at >= to {
            break;
        }
        let clipped = Region {
            start: at,
            end: r.end.min(to),
            ..r
        };
        if !ok(clipped) {
            return false;
        }
        at = clipped.end;
    }
    at >= to
}

/// Whether replica `store` holds `record` whole at `offset` of `chunk`.
fn holds<S: StampedStore>(
    store: &S,
    chunk: ChunkHandle,
    offset: Offset,
    record: &S::Payload,
) -> bool {
    store.holds_part(chunk, offset, record, 0, record.len())
}

/// Whether replica `store` holds the acknowledged write `a` at its offset,
/// unit by unit, unless a later mutation (a higher stamp) overwrote a unit.
fn holds_write<S: StampedStore>(store: &S, a: &Acked<S::Payload>) -> bool {
    covered(store, a.chunk, a.offset, a.offset + a.record.len(), |r| {
        if r.stamp == a.stamp {
            !r.pad
                && store.holds_part(
                    a.chunk,
                    a.offset,
                    &a.record,
                    r.start - a.offset,
                    r.end - a.offset,
                )
        } else {
            r.stamp > a.stamp
        }
    })
}

/// Whether acknowledgement `a`'s agreement with the replicas needs
/// checking in this state: it is new, or bytes under it changed.
fn ack_to_check<V: GlobalView>(v: &V, a: &Acked<PayloadOf<V>>) -> bool {
    v.ack_in_focus(a) || v.range_in_focus(a.chunk, a.offset, a.offset + a.record.len())
}

/// Whether replica `id` holds every acknowledged mutation of `chunk`: each
/// record append whole at its offset, each write at its offset unless a
/// later mutation overwrote it (VERSION-1, VERSION-2).
fn holds_all_acked<V: GlobalView>(v: &V, id: Id, chunk: ChunkHandle) -> bool {
    let store = v.store(id);
    if lost_unheard(v, id, chunk) {
        return true;
    }
    v.acked()
        .filter(|a| a.chunk == chunk && ack_to_check(v, a))
        .all(|a| match a.append {
            true => holds(store, chunk, a.offset, &a.record),
            false => holds_write(store, &a),
        })
}

// ---------------------------------------------------------------------------
// The properties.

/// Whether `id`'s replica of `chunk` came back damaged from a restart the
/// master has not heard of yet (its report is on its way): the master
/// cannot know the replica is lost until then, and the replica serves
/// nothing meanwhile (every read and change of it fails), so no stale data
/// can reach anyone through it. Once the report arrives the master must
/// leave it out (VERSION-2's requirement text), and VERSION-1 holds it to
/// that.
fn lost_unheard<V: GlobalView>(v: &V, id: Id, chunk: ChunkHandle) -> bool {
    let Some(restarts) = v.store(id).damaged(chunk) else {
        return false;
    };
    let heard = v
        .master()
        .0
        .servers
        .iter()
        .find(|s| s.id == id)
        .map_or(0, |s| s.incarnation);
    restarts > heard
}

/// LEASE-1 ([0090], [0091]): at most one primary per chunk at any instant.
pub fn lease_1<V: GlobalView>(v: &V) -> bool {
    let chunks = master_of(v).durable.chunks.len() as ChunkHandle;
    (0..chunks.max(2))
        .filter(|c| v.in_focus(*c))
        .all(|c| v.chunkservers().filter(|id| is_primary(v, *id, c)).count() <= 1)
}

/// ORDER-1 ([0090], [0099]): any two replicas that applied mutation
/// (epoch, serial) applied the same one, at the same place, unless a later
/// mutation overwrote it.
///
/// A pad ([00105]) is the same mutation wherever it starts: each replica
/// pads from its own end to the chunk's, and a replica that missed a failed
/// mutation ends, and pads, sooner than one that applied it (APPEND-4 says
/// so too). So where one replica has the pad, another that applied it may
/// hold older data (a failed mutation's undefined region, [00101]) or
/// nothing; it may not hold anything else under the pad's stamp. (Found by
/// a swarm walk on the duplicating network, whose duplicated `Mutate`s fill
/// a chunk with failed appends before it pads.)
pub fn order_1<V: GlobalView>(v: &V) -> bool {
    let ids = v.chunkservers();
    ids.clone().all(|a| {
        let sa = v.store(a);
        sa.handles().filter(|c| v.in_focus(*c)).all(|chunk| {
            // Prefilled data (stamp 0) predates the model.
            sa.regions(chunk)
                .filter(|r| r.stamp != Stamp::default() && v.range_in_focus(chunk, r.start, r.end))
                .all(|r| {
                    ids.clone().filter(|b| *b != a).all(|b| {
                        let sb = v.store(b);
                        let b_applied = sb.has_stamp(chunk, r.stamp);
                        if !b_applied {
                            return true;
                        }
                        if r.pad {
                            return sb.regions(chunk).all(|x| {
                                x.stamp != r.stamp || x.pad || x.end <= r.start || x.start >= r.end
                            });
                        }
                        covered(sb, chunk, r.start, r.end, |x| {
                            (x.stamp == r.stamp
                                && x.pad == r.pad
                                && sa.same_data(sb, chunk, x.start, x.end))
                                || x.stamp > r.stamp
                        })
                    })
                })
        })
    })
}

/// ORDER-2's batch clause: every `ApplyBatch` on its way holds
/// consecutive serials of one lease in increasing order (`batch_break`).
/// Over TCP a batch is one frame, so nothing but the primary's order
/// puts its entries in order.
pub(super) fn batch_consecutive(_: &LeaseholdModel, s: &State) -> bool {
    s.network.iter_all().all(|e| match e.msg {
        Msg::ApplyBatch { applies, .. } => batch_break(applies).is_none(),
        _ => true,
    })
}

/// ORDER-2 ([00100]): each replica applies mutations in increasing
/// (epoch, serial), as its `Apply`/`Applied` messages show
/// (`History::out_of_order`) and, for the step rule's part, as its store
/// shows (`STEP_APPLIED_OUT_OF_ORDER`: a primary's serials taken out of
/// order look like resends on the wire).
pub fn order_2<V: GlobalView>(v: &V) -> bool {
    !v.history().out_of_order && v.history().broken & STEP_APPLIED_OUT_OF_ORDER == 0
}

/// APPEND-1 ([00107]): an acknowledged record append is whole at its
/// offset on every replica at the chunk's current version.
pub fn append_1<V: GlobalView>(v: &V) -> bool {
    v.acked()
        .filter(|a| a.append && v.in_focus(a.chunk) && ack_to_check(v, a))
        .all(|a| {
            replicas_at_version(v, a.chunk)
                .all(|id| holds(v.store(id), a.chunk, a.offset, &a.record))
        })
}

/// APPEND-2 ([00107]): every *later* acknowledged append gets a higher
/// offset in the same chunk or a later chunk (by its index in the file).
///
/// "Later" must be an order the protocol promises, or the property would
/// fail on correct runs:
/// * not acknowledgement order: two concurrent appends are acknowledged in
///   whatever order their replies travel, so the one acknowledged second may
///   well sit at the lower offset, or (one padded the chunk, the other was
///   serialised before the pad) in the earlier chunk;
/// * within one chunk, the serial order the primaries chose: a higher stamp
///   (lease grant order, then serial, [0090]) is a later mutation, whichever
///   client sent it and whenever it was acknowledged;
/// * across chunks stamps do not compare (each chunk has its own epochs), so
///   real time: `b` is later than `a` when `b`'s operation started after `a`
///   was acknowledged (`GlobalView::started_after`; a client's next
///   operation always starts after its previous one finished).
///
/// Evaluated by pairs, or, where the view has instants, by sorting
/// ([`super::append_order`]: the same order, in n log n).
pub fn append_2<V: GlobalView>(v: &V) -> bool {
    let m = master_of(v);
    let acked: SmallVec<[Cow<'_, Acked<PayloadOf<V>>>; 8]> =
        v.acked().filter(|a| a.append).collect();
    let all: SmallVec<[Placed; 8]> = acked
        .iter()
        .map(|a| {
            // (file, index in the file); appends to different files do
            // not order. A chunk the master does not know stands alone.
            let (file, index) = m
                .durable
                .chunks
                .get(a.chunk as usize)
                .map_or((0, a.chunk as u32), |c| (c.file, c.index));
            Placed {
                file,
                index,
                chunk: a.chunk,
                offset: a.offset,
                end: a.offset + a.record.len(),
                stamp: a.stamp,
                instants: v.op_instants(a),
            }
        })
        .collect();
    if all.first().is_some_and(|p| p.instants.is_some()) {
        if let Some(holds) = append_order::holds_sorted(&all) {
            return holds;
        }
    }
    append_order::holds_pairwise(
        &all,
        (0..all.len()).filter(|&i| v.ack_in_focus(&acked[i])),
        |b, a| v.started_after(&acked[b], &acked[a]),
    )
}

/// READ-1 (GFS §2.7, §4.5): a read that started after a record append
/// was acknowledged, at that record's offset in its chunk, returns that
/// record. It reads one replica the master named up to date, which must
/// hold it (APPEND-1); a stale replica refuses (the version the client
/// names is newer than its own), and a corrupt one fails, so the client
/// tries another.
pub fn read_1<V: GlobalView>(v: &V) -> bool {
    v.reads().all(|r| {
        v.acked()
            .filter(|a| a.append && a.chunk == r.chunk)
            .all(|a| !v.read_started_after(&r, &a) || v.read_returns(&r, &a))
    })
}

/// READ-1 (GFS §2.7): every read went to the closest replica its client
/// had not tried (a step rule: `STEP_READ_NOT_CLOSEST`).
pub fn read_1_closest<V: GlobalView>(v: &V) -> bool {
    v.history().broken & STEP_READ_NOT_CLOSEST == 0
}

/// APPEND-3 ([00104]): no acknowledged record is larger than a quarter
/// chunk or crosses the chunk's end, and no replica grows past it.
pub fn append_3<V: GlobalView>(v: &V) -> bool {
    let size = v.chunk_size();
    let max = size / 4; // `ProtocolCfg::record_size_max`
    v.acked()
        .filter(|a| a.append && v.in_focus(a.chunk))
        .all(|a| a.record.len() <= max && a.offset + a.record.len() <= size)
        && v.chunkservers().all(|id| {
            let store = v.store(id);
            store
                .handles()
                .filter(|c| v.in_focus(*c))
                .all(|c| store.data_len(c) <= size)
        })
}

/// APPEND-4 ([00105]) both ways: a chunk reported full is padded to its
/// end on every up-to-date replica, and a chunk is padded only where the
/// record that padded it would have crossed the end.
///
/// The second half cannot see the padding append's record or the primary's
/// end when it padded, so it bounds both from above, which keeps it sound
/// (it may miss a bug, never accuse the protocol): the record by the largest
/// any client appends within the quarter-chunk limit; the primary's end by
/// the largest, over every replica that applied the pad, of where its pad
/// starts, or of its length if it wrote none (it was full already; lengths
/// only grow, and the primary is among them). A replica that missed a
/// failed mutation pads from a shorter end than the primary, so no single
/// replica's start would do. A pad that leaves room even then was written
/// although the record fit.
///
/// And the client's side ([00105]: "retried on the next chunk"): a record
/// append moves on only to the chunk after the one reported full, in the
/// step that takes that report (checked at the client's step:
/// `STEP_SKIPPED_CHUNK`), so no append skips a chunk with room.
pub fn append_4<V: GlobalView>(v: &V) -> bool {
    if v.history().broken & STEP_SKIPPED_CHUNK != 0 {
        return false;
    }
    let size = v.chunk_size();
    let full_padded = v
        .history()
        .full
        .iter()
        .filter(|c| v.in_focus(**c))
        .all(|&c| replicas_at_version(v, c).all(|id| v.store(id).data_len(c) == size));
    if !full_padded {
        return false;
    }
    let largest = v.largest_append();
    let ids = v.chunkservers();
    ids.clone().all(|id| {
        let store = v.store(id);
        store.handles().filter(|c| v.in_focus(*c)).all(|chunk| {
            store
                .regions(chunk)
                .filter(|r| r.pad && v.range_in_focus(chunk, r.start, r.end))
                .all(|pad| {
                    let start = ids
                        .clone()
                        .filter_map(|other| {
                            let s = v.store(other);
                            match s.regions(chunk).find(|x| x.pad && x.stamp == pad.stamp) {
                                Some(x) => Some(x.start),
                                None => (s.replica_meta(chunk).applied >= pad.stamp)
                                    .then(|| s.data_len(chunk)),
                            }
                        })
                        .max()
                        .unwrap_or(0);
                    start + largest > size
                })
        })
    })
}

/// WRITE-1 ([00106]): an acknowledged write is at its offset on every
/// replica at the chunk's current version, unless a later mutation
/// overwrote it.
pub fn write_1<V: GlobalView>(v: &V) -> bool {
    v.acked()
        .filter(|a| !a.append && v.in_focus(a.chunk) && ack_to_check(v, a))
        .all(|a| replicas_at_version(v, a.chunk).all(|id| holds_write(v.store(id), &a)))
}

/// LEASE-2 ([0091]): a replica holds a lease only for an epoch it
/// requested, from a grant that arrived while that request was pending
/// (checked at each grant's delivery: `STEP_LATE_GRANT`), and a lease
/// clock is never re-armed while it runs, so no lease outlasts its
/// request's deadline (checked at each step that can arm one:
/// `STEP_LEASE_CLOCK_REARMED`).
pub fn lease_2<V: GlobalView>(v: &V) -> bool {
    v.history().broken & (STEP_LATE_GRANT | STEP_LEASE_CLOCK_REARMED) == 0
}

/// LEASE-5 ([0091]): a replica's acknowledgement of a revocation ends its
/// part in that lease: it neither holds nor asks for it afterwards, so it
/// orders no further mutation under it (checked at each revocation's
/// delivery: `STEP_REVOKED_LEASE_KEPT`). The model's step rule only; a
/// real run's trace shows the same through LEASE-4.
pub fn lease_5<V: GlobalView>(v: &V) -> bool {
    v.history().broken & STEP_REVOKED_LEASE_KEPT == 0
}

/// LEASE-6 ([00101]): a replica has a mutation in flight only under the
/// lease it holds: the step that ends a lease (its clock, a revocation, an
/// offer of a new one) fails every mutation it ordered under it, so their
/// clients retry at once and the in-flight limit is freed (checked at
/// every step of a chunkserver: `STEP_IN_FLIGHT_WITHOUT_LEASE`). The
/// model's step rule; `leasehold validate` checks each replayed step of a
/// real chunkserver the same way.
pub fn lease_6<V: GlobalView>(v: &V) -> bool {
    v.history().broken & STEP_IN_FLIGHT_WITHOUT_LEASE == 0
}

/// ORDER-3 ([00100]): a replica holds back only mutations that can still
/// be in turn; the step that moves it past one drops it (checked at every
/// step of a chunkserver: `STEP_HELD_PASSED`, and by `leasehold validate`
/// on each replayed step of a real one), answering it as a late arrival
/// is answered (`STEP_HELD_MISANSWERED`, `held_drop_misanswered`).
pub fn order_3<V: GlobalView>(v: &V) -> bool {
    v.history().broken & (STEP_HELD_PASSED | STEP_HELD_MISANSWERED) == 0
}

/// ORDER-4 ([00100], [00101]): a primary answers a gap report with `Skip`
/// only for a serial it no longer waits for (checked at every step of a
/// chunkserver: `STEP_SKIPPED_IN_FLIGHT`, and by `leasehold validate`).
pub fn order_4<V: GlobalView>(v: &V) -> bool {
    v.history().broken & STEP_SKIPPED_IN_FLIGHT == 0
}

/// FAULT-2 ([00101]): a replica that reports its store failed a change of
/// a chunk at the chunk's current version is no longer counted up to date
/// once the master has taken the report (checked at that step:
/// `STEP_FAILED_REPLICA_COUNTED`), so the next lease leaves it out.
pub fn fault_2<V: GlobalView>(v: &V) -> bool {
    v.history().broken & STEP_FAILED_REPLICA_COUNTED == 0
}

/// RENAME-1 ([0091]): the master makes a rename only when no replica
/// holds a lease of the file's chunks, so no mutation runs across it
/// (checked in the step that changes the name: `STEP_RENAMED_UNDER_LEASE`).
pub fn rename_1<V: GlobalView>(v: &V) -> bool {
    v.history().broken & STEP_RENAMED_UNDER_LEASE == 0
}

/// SNAP-1 (GFS §3.4): a snapshot holds what its file held when it was
/// taken. Every replica of a chunk it lists holds no mutation ordered
/// after the snapshot was taken (a stamp later than the last one that
/// chunk's replicas had been sent then), and each one at the chunk's
/// current version holds every record append acknowledged under an
/// earlier stamp whole at its offset. Once a client asks to mutate the
/// snapshot itself, which rightly changes it, that half no longer speaks
/// of it (`snapshot_appends` does so). And the other way: a mutation a
/// client made to another file after the snapshot lies in a chunk of
/// that file, not in one the file has left to the snapshot.
pub fn snap_1<V: GlobalView>(v: &V) -> bool {
    let Some((file, frontier)) = &v.history().snapshot else {
        return true;
    };
    let ordered_by = |chunk: ChunkHandle| {
        frontier
            .iter()
            .find(|(c, _)| *c == chunk)
            .map_or(Stamp::default(), |(_, s)| *s)
    };
    let files = &master_of(v).durable.files;
    // A mutation of another file ordered after the snapshot went to a
    // chunk that file lists: never into a chunk the file has copied away
    // from and left to the snapshot (a stale lease's primary that takes
    // any epoch would put it there, and the file would not hold it).
    let into_its_file = v
        .acked()
        .filter(|a| a.file != *file && a.stamp > ordered_by(a.chunk))
        .all(|a| {
            files
                .get(a.file as usize)
                .is_some_and(|f| f.chunks.contains(&a.chunk))
        });
    if !into_its_file {
        return false;
    }
    if v.history().snapshot_written {
        return true;
    }
    let Some(listed) = files.get(*file as usize) else {
        return true;
    };
    listed
        .chunks
        .iter()
        .filter(|c| v.in_focus(**c))
        .all(|&chunk| {
            let last = ordered_by(chunk);
            let nothing_later = v
                .chunkservers()
                .all(|id| v.store(id).regions(chunk).all(|r| r.stamp <= last));
            let acked_before = v
                .acked()
                .filter(|a| a.append && a.chunk == chunk && a.stamp <= last)
                .all(|a| {
                    replicas_at_version(v, chunk)
                        .all(|id| holds(v.store(id), chunk, a.offset, &a.record))
                });
            nothing_later && acked_before
        })
}

/// FILE-1: a mutation is acknowledged only in a chunk the file the client
/// named lists. Until the first snapshot: a snapshot's copy-on-write then
/// puts a copy in the file's place and leaves the chunk before it to the
/// snapshot, while an acknowledgement of that chunk may still be on its
/// way; SNAP-1 speaks of acknowledgements from then on. Without a
/// snapshot a file's list only grows, so each acknowledgement is checked
/// once, when it is new (`ack_in_focus`).
pub fn file_1<V: GlobalView>(v: &V) -> bool {
    if v.history().snapshot.is_some() {
        return true;
    }
    let files = &master_of(v).durable.files;
    v.acked().filter(|a| v.ack_in_focus(a)).all(|a| {
        files
            .get(a.file as usize)
            .is_some_and(|f| f.chunks.contains(&a.chunk))
    })
}

/// GC-1 (GFS §4.4): a chunkserver deletes a replica only where the master
/// no longer places it, so garbage collection never takes a replica the
/// master counts, may clone onto, or may adopt after a crash (checked in
/// the step that deletes: `STEP_DELETED_PLACED_REPLICA`).
pub fn gc_1<V: GlobalView>(v: &V) -> bool {
    v.history().broken & STEP_DELETED_PLACED_REPLICA == 0
}

/// CLIENT-1: every result a client reports answers the operation it had
/// under way (checked at the client's step: `STEP_WRONG_RESULT`); a late
/// or repeated answer to an earlier one is dropped.
pub fn client_1<V: GlobalView>(v: &V) -> bool {
    v.history().broken & STEP_WRONG_RESULT == 0
}

/// LEASE-4 ([0091]): extensions and revocations keep the primary's lease
/// inside the master's: a live replica holds a lease only while the master
/// grants that epoch to that replica. A crashed master, or a restarted one
/// in its waiting period, does not know the leases it granted before;
/// LEASE-3's wait covers those.
pub fn lease_4<V: GlobalView>(v: &V) -> bool {
    let (m, up) = v.master();
    if !up || m.quiet {
        return true;
    }
    v.chunkservers().all(|id| {
        v.leases(id)
            .unwrap_or(&[])
            .iter()
            .filter(|l| l.holding && v.in_focus(l.chunk))
            .all(|l| {
                matches!(m.lease(l.chunk), Some(LeaseView::Granted { primary, epoch, .. })
                if *primary == id && *epoch == l.epoch)
            })
    })
}

/// PUSH-1 ([0096]–[0099]): a client sends a mutation only on the chain's
/// acknowledgement of its data, and each hop of a push goes to the closest
/// server left on the chain (`STEP_PUSH_ORDER`, set by the step's check and
/// by `History::on_send`).
pub fn push_1<V: GlobalView>(v: &V) -> bool {
    v.history().broken & STEP_PUSH_ORDER == 0
}

/// PUSH-2 ([0095], [00101]): a replica applies only data that is in its
/// buffer, the apply uses it up (a duplicated mutation finds nothing to
/// apply again), and data that ages out leaves the buffer
/// (`STEP_STALE_DATA`).
pub fn push_2<V: GlobalView>(v: &V) -> bool {
    v.history().broken & STEP_STALE_DATA == 0
}

/// APPEND-5 ([00107]): a failed record append is retried: a client reports
/// one failed only with its retries used up (`STEP_APPEND_GAVE_UP`).
pub fn append_5<V: GlobalView>(v: &V) -> bool {
    v.history().broken & STEP_APPEND_GAVE_UP == 0
}

/// WRITE-2 ([00101]): a mutation that fails at a replica is failed by the
/// primary at once, so it is never acknowledged; and a client reports a
/// write failed only with its retries used up
/// (`STEP_WRITE_FAILURE_HIDDEN`).
pub fn write_2<V: GlobalView>(v: &V) -> bool {
    v.history().broken & STEP_WRITE_FAILURE_HIDDEN == 0
}

/// VERSION-1 (GFS §4.5): the master counts as up to date only replicas
/// holding every acknowledged mutation of the chunk.
pub fn version_1<V: GlobalView>(v: &V) -> bool {
    let (m, up) = v.master();
    if !up {
        return true; // a crashed master counts nothing
    }
    m.views
        .iter()
        .enumerate()
        .filter(|(c, _)| v.in_focus(*c as ChunkHandle))
        .all(|(c, view)| {
            view.up_to_date
                .iter()
                .all(|id| holds_all_acked(v, *id, c as ChunkHandle))
        })
}

/// VERSION-2 (GFS §4.5): the master names to clients, under a lease that
/// is still current, only replicas holding every acknowledged mutation.
pub fn version_2<V: GlobalView>(v: &V) -> bool {
    // Pairs already found holding: many clients cache the same lease holders.
    let mut checked: SmallVec<[(ChunkHandle, Id); 4]> = SmallVec::new();
    named_under_current_lease(v).all(|(chunk, id)| {
        if checked.contains(&(chunk, id)) {
            return true;
        }
        checked.push((chunk, id));
        holds_all_acked(v, id, chunk) || lost_under_revocation(v, id, chunk)
    })
}

/// Every (chunk, replica) pair a client was told of under the chunk's
/// current lease, for chunks in focus; a pair repeats once per client
/// that cached it. What VERSION-2 and its excuse's companion range over.
fn named_under_current_lease<V: GlobalView>(v: &V) -> impl Iterator<Item = (ChunkHandle, Id)> + '_ {
    let m = master_of(v);
    v.named()
        .filter(move |info| {
            v.in_focus(info.chunk)
                && matches!(m.lease(info.chunk), Some(LeaseView::Granted { epoch, .. }) if *epoch == info.epoch)
        })
        .flat_map(|info| info.replicas().map(move |id| (info.chunk, id)))
}

/// Whether VERSION-2 holds in `v` only by [`lost_under_revocation`]: a
/// replica named under the current lease lacks an acknowledged mutation,
/// came back damaged, and the master, having heard, is revoking that
/// lease. The excuse's companion.
pub fn version_2_excused_by_revocation<V: GlobalView>(v: &V) -> bool {
    // `holds_all_acked` already passes a replica lost unheard.
    named_under_current_lease(v)
        .any(|(chunk, id)| lost_under_revocation(v, id, chunk) && !holds_all_acked(v, id, chunk))
}

/// Whether `id`'s replica of `chunk` came back damaged and the master,
/// having heard so, is revoking the lease that names it: clients named it
/// under that lease before anyone knew, and only ending the lease un-names
/// it, which takes the primary's answer. Meanwhile the replica serves
/// nothing (every read and change of it fails), as under
/// [`lost_unheard`]. The master must start the revocation in the step that
/// hears the report (`reports.rs`), so a master that keeps the lease
/// still fails VERSION-2 (`LostSecondaryKeepsLease`). Reached in
/// `concurrent-barrier-crash`, where a secondary's step may tear the sync
/// of its own barrier, as a kill during a real host's batch sync does.
fn lost_under_revocation<V: GlobalView>(v: &V, id: Id, chunk: ChunkHandle) -> bool {
    v.store(id).damaged(chunk).is_some()
        && matches!(
            master_of(v).lease(chunk),
            Some(LeaseView::Granted { revoking: true, .. })
        )
}

/// An always-property over any view, named by its requirement ID.
pub type ViewProperty<V> = (&'static str, fn(&V) -> bool);

/// The always-properties by requirement ID, for checkers of other views
/// than the model's (`leasehold validate`).
///
/// READ-1's data half is among them; its other half, that a read goes to
/// the closest replica, is a step rule (`read_not_closest`) that
/// `validate` applies to each client step itself.
pub fn always<V: GlobalView>() -> [ViewProperty<V>; 19] {
    [
        ("LEASE-1", lease_1::<V>),
        ("LEASE-2", lease_2::<V>),
        ("LEASE-4", lease_4::<V>),
        ("ORDER-1", order_1::<V>),
        ("ORDER-2", order_2::<V>),
        ("APPEND-1", append_1::<V>),
        ("APPEND-2", append_2::<V>),
        ("APPEND-3", append_3::<V>),
        ("APPEND-4", append_4::<V>),
        ("APPEND-5", append_5::<V>),
        ("WRITE-1", write_1::<V>),
        ("WRITE-2", write_2::<V>),
        ("PUSH-1", push_1::<V>),
        ("PUSH-2", push_2::<V>),
        ("VERSION-1", version_1::<V>),
        ("VERSION-2", version_2::<V>),
        ("SNAP-1", snap_1::<V>),
        ("FILE-1", file_1::<V>),
        ("READ-1", read_1::<V>),
    ]
}
