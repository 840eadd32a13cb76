//! Reachability companions: the `sometimes` properties that show each
//! checked situation actually occurs.

use super::*;
use crate::memstore::*;
use crate::msg::*;
use crate::types::*;
use crate::NodeState;
use smallvec::SmallVec;
use stateright::actor::Id;

pub(super) fn some_append_acked(model: &LeaseholdModel, s: &State) -> bool {
    acked(model, s).any(|a| a.append)
}

pub(super) fn some_write_acked(model: &LeaseholdModel, s: &State) -> bool {
    acked(model, s).any(|a| !a.append)
}

pub(super) fn duplicate_record(model: &LeaseholdModel, s: &State) -> bool {
    model.cfg.chunkserver_id_iter().any(|id| {
        let mut seen: SmallVec<[RecordToken; 8]> = SmallVec::new();
        store(s, id)
            .replicas()
            .iter()
            .flat_map(|r| r.cells.iter())
            .any(|c| match c {
                Some(Cell::Data {
                    record, part: 0, ..
                }) => {
                    let dup = seen.contains(record);
                    seen.push(*record);
                    dup
                }
                _ => false,
            })
    })
}

pub(super) fn padded_and_next_chunk(model: &LeaseholdModel, s: &State) -> bool {
    !s.history.full.is_empty() && acked(model, s).any(|a| a.append && a.chunk != 0)
}

pub(super) fn later_chunk_after_ack(model: &LeaseholdModel, s: &State) -> bool {
    acked(model, s).filter(|a| a.append).any(|a| {
        acked(model, s)
            .filter(|b| b.append)
            .any(|b| b.chunk != a.chunk && LeaseholdModel::started_after(s, &b, &a))
    })
}

pub(super) fn second_server_led(_: &LeaseholdModel, s: &State) -> bool {
    s.history.grants.iter().any(|(c, _, p)| {
        s.history
            .grants
            .iter()
            .any(|(c2, _, p2)| c == c2 && p != p2)
    })
}

pub(super) fn stale_replica_detected(_: &LeaseholdModel, s: &State) -> bool {
    let m = master(s);
    m.durable
        .chunks
        .iter()
        .zip(m.views.iter())
        .any(|(meta, view)| meta.version > 0 && view.up_to_date.len() < meta.replicas.len())
}

/// A replica came back damaged from a torn sync, and the master, having
/// heard of the restart, no longer counts it up to date.
pub(super) fn damaged_replica_left_out(model: &LeaseholdModel, s: &State) -> bool {
    let m = master(s);
    model.cfg.chunkserver_id_iter().any(|id| {
        let st = store(s, id);
        let heard = m
            .servers
            .iter()
            .any(|v| v.id == id && v.incarnation >= st.incarnation());
        heard
            && st.replicas().iter().enumerate().any(|(c, r)| {
                r.damaged && m.views.get(c).is_some_and(|v| !v.up_to_date.contains(&id))
            })
    })
}

pub(super) fn replicas_differ(model: &LeaseholdModel, s: &State) -> bool {
    (0..master(s).durable.chunks.len() as ChunkHandle).any(|c| {
        let v = ModelView::new(model, s);
        let mut current = replicas_at_version(&v, c);
        let Some(first) = current.next() else {
            return false;
        };
        let cells =
            |id: Id| -> &[Option<Cell>] { store(s, id).replica(c).map_or(&[], |r| &r.cells[..]) };
        let a = cells(first);
        current.any(|id| cells(id) != a)
    })
}

pub(super) fn failed_write_replicas_differ(model: &LeaseholdModel, s: &State) -> bool {
    replicas_differ(model, s)
        && (0..model.cfg.clients()).any(|c| {
            match &**s.actor_states[usize::from(model.cfg.client_id(c))] {
                NodeState::Client(cl) => {
                    cl.current.as_ref().is_some_and(|cur| cur.retries > 0)
                        || cl.results.iter().any(|r| matches!(r, OpResult::Failed(_)))
                }
                _ => false,
            }
        })
}

pub(super) fn same_stamp_on_two_replicas(model: &LeaseholdModel, s: &State) -> bool {
    let ids = model.cfg.chunkserver_id_iter();
    ids.clone().any(|a| {
        store(s, a).replicas().iter().enumerate().any(|(chunk, r)| {
            r.cells
                .iter()
                .flatten()
                .map(cell_stamp)
                .filter(|st| *st != Stamp::default())
                .any(|st| {
                    ids.clone().filter(|b| *b != a).any(|b| {
                        store(s, b).replica(chunk as ChunkHandle).is_some_and(|rb| {
                            rb.cells.iter().flatten().any(|c| cell_stamp(c) == st)
                        })
                    })
                })
        })
    })
}

pub(super) fn two_acked_in_one_chunk(model: &LeaseholdModel, s: &State) -> bool {
    acked(model, s).enumerate().any(|(i, a)| {
        acked(model, s)
            .skip(i + 1)
            .any(|b| a.append && b.append && a.chunk == b.chunk)
    })
}

/// A client was told a lease holder while some replica of the chunk was
/// left out of the named set (stale).
pub(super) fn named_without_stale(model: &LeaseholdModel, s: &State) -> bool {
    let replicas = model.cfg.chunkservers as usize;
    let short = |info: &LeaseInfo| 1 + info.secondaries.len() < replicas;
    (0..model.cfg.clients()).any(
        |c| match &**s.actor_states[usize::from(model.cfg.client_id(c))] {
            NodeState::Client(cl) => cl.cache.iter().any(short),
            _ => false,
        },
    )
}

pub(super) fn held_back(model: &LeaseholdModel, s: &State) -> bool {
    model
        .live_chunkservers(s)
        .any(|(_, cs)| !cs.held.is_empty())
}

/// ORDER-3's situation: a replica holds back a mutation while a message on
/// its way to it would move it past that mutation (a newer version of the
/// chunk, announced or offered with a lease, or a later lease's mutation),
/// so the step that delivers it must drop what it holds.
pub(super) fn held_about_to_pass(model: &LeaseholdModel, s: &State) -> bool {
    s.network.iter_deliverable().any(|e| {
        let Some((_, cs)) = model.live_chunkservers(s).find(|(id, _)| *id == e.dst) else {
            return false;
        };
        cs.held.iter().any(|h| match e.msg {
            Msg::NewVersion { chunk, version, .. } | Msg::LeaseOffer { chunk, version, .. } => {
                *chunk == h.chunk && *version > h.version
            }
            Msg::Apply { chunk, stamp, .. } => *chunk == h.chunk && stamp.epoch > h.stamp.epoch,
            Msg::ApplyBatch { chunk, applies, .. } => {
                *chunk == h.chunk && applies.iter().any(|(stamp, _)| stamp.epoch > h.stamp.epoch)
            }
            _ => false,
        })
    })
}

/// ORDER-3's second situation: a replica holds back a `Skip` and the real
/// `Apply` of the same stamp (its primary failed the mutation after
/// sending it, and answered a gap report naming it), so the step that
/// applies one of them must drop the other.
pub(super) fn held_skip_beside_apply(model: &LeaseholdModel, s: &State) -> bool {
    model.live_chunkservers(s).any(|(_, cs)| {
        cs.held.iter().any(|h| {
            h.op == ApplyOp::Skip
                && cs
                    .held
                    .iter()
                    .any(|o| o.chunk == h.chunk && o.stamp == h.stamp && o.op != ApplyOp::Skip)
        })
    })
}

/// ORDER-4's situation: a gap report on its way to a primary that still
/// has in flight, unanswered by the reporting secondary, a serial the
/// report names; the step that delivers it must send that serial again,
/// not `Skip` it.
pub(super) fn gap_report_names_in_flight(model: &LeaseholdModel, s: &State) -> bool {
    s.network.iter_deliverable().any(|e| {
        let Msg::ApplyGap {
            chunk, from, until, ..
        } = e.msg
        else {
            return false;
        };
        let Some((_, cs)) = model.live_chunkservers(s).find(|(id, _)| *id == e.dst) else {
            return false;
        };
        cs.in_flight.iter().any(|m| {
            m.chunk == *chunk && *from <= m.stamp && m.stamp < *until && !m.acked.contains(&e.src)
        })
    })
}

pub(super) fn lease_expired_and_regranted(_: &LeaseholdModel, s: &State) -> bool {
    s.history.grants.iter().any(|(_, e, _)| *e >= 2)
}

/// A gap report was answered (resent or skipped serials) and nothing is
/// held back any more, with every operation done.
pub(super) fn gap_reported_and_closed(model: &LeaseholdModel, s: &State) -> bool {
    s.history.gap_reported
        && model.live_chunkservers(s).all(|(_, cs)| cs.held.is_empty())
        && all_succeeded(model, s)
}

/// FAULT-2: a disk filled up, the master left that replica out of every
/// chunk's up-to-date set, and a record append was acknowledged that the
/// failed replica does not hold: the chunk moved on without it.
pub(super) fn acked_without_failed_replica(model: &LeaseholdModel, s: &State) -> bool {
    let m = master(s);
    model.cfg.chunkserver_id_iter().any(|id| {
        let st = store(s, id);
        st.is_full()
            && m.views.iter().all(|v| !v.up_to_date.contains(&id))
            && acked(model, s).any(|a| {
                let held = st
                    .replica(a.chunk)
                    .and_then(|r| r.cells.get(a.offset as usize).copied().flatten());
                a.append
                    && !matches!(held, Some(Cell::Data { record, part: 0, .. }) if record == a.record)
            })
    })
}

pub(super) fn read_returned_acked(model: &LeaseholdModel, s: &State) -> bool {
    let view = ModelView::new(model, s);
    reads(model, s).any(|r| {
        acked(model, s).any(|a| {
            a.append
                && a.chunk == r.chunk
                && a.offset == r.offset
                && view.read_started_after(&r, &a)
        })
    })
}

pub(super) fn revoked_then_granted(_: &LeaseholdModel, s: &State) -> bool {
    let h = &s.history;
    h.revoked != 0 && h.grants.iter().any(|&(_, epoch, _)| epoch > h.revoked)
}

/// A client's rename made, after a revocation, and a record appended under
/// a later lease than the revoked one: the append went on across it.
pub(super) fn renamed_after_revocation(model: &LeaseholdModel, s: &State) -> bool {
    let h = &s.history;
    let renamed = (0..model.cfg.clients()).any(|c| {
        matches!(&**s.actor_states[usize::from(model.cfg.client_id(c))],
            NodeState::Client(cl) if cl.results.iter().any(|r| matches!(r, OpResult::Renamed { .. })))
    });
    renamed && h.revoked != 0 && acked(model, s).any(|a| a.append && a.stamp.epoch > h.revoked)
}

/// A `PushRefused` naming a store failure is in flight: a replica that
/// failed the chunk refused data pushed for it (PUSH-2 with FAULT-2).
pub(super) fn push_refused_for_failed_chunk(_: &LeaseholdModel, s: &State) -> bool {
    s.network.iter_all().any(|e| {
        matches!(
            e.msg,
            Msg::PushRefused {
                reason: Failure::Store(_),
                ..
            }
        )
    })
}

/// A replica failed a chunk while it held more pushes for it, under
/// age-out, than the failed write used, and dropped them (PUSH-2's
/// age-out clause at work).
pub(super) fn failed_push_dropped(_: &LeaseholdModel, s: &State) -> bool {
    s.history.failed_push_dropped
}

/// A `FileRenamed` refusing a rename as `Busy` is in flight: the master
/// took a second rename of the file while the first was pending.
pub(super) fn rename_refused_busy(_: &LeaseholdModel, s: &State) -> bool {
    s.network.iter_all().any(|e| {
        matches!(
            e.msg,
            Msg::FileRenamed {
                file: Err(Failure::Busy),
                ..
            }
        )
    })
}

/// A client waits out a backoff before it retries (the TCP client's retry
/// policy, `retry_backoff`).
pub(super) fn client_backing_off(model: &LeaseholdModel, s: &State) -> bool {
    (0..model.cfg.clients()).any(|c| {
        matches!(&**s.actor_states[usize::from(model.cfg.client_id(c))],
            NodeState::Client(cl) if matches!(&cl.current, Some(cur) if matches!(cur.phase, crate::client::Phase::BackingOff { .. })))
    })
}

/// A restarted master, still in its waiting period (LEASE-3), holds a
/// rename its client asked again after the crash, while a replica holds a
/// lease the previous master granted: the rename must wait for it.
pub(super) fn rename_pending_in_quiet_period(model: &LeaseholdModel, s: &State) -> bool {
    let v = ModelView::new(model, s);
    let (m, up) = v.master();
    up && m.quiet
        && !m.renames.is_empty()
        && v.chunkservers()
            .any(|id| v.leases(id).unwrap_or(&[]).iter().any(|l| l.holding))
}

/// A snapshot was taken and holds an acknowledged record (one of its
/// chunks has it), and a record was appended to the file afterwards into
/// a copy of a chunk the snapshot lists: a chunk at the same index of the
/// file under another handle.
pub(super) fn appended_to_copy_after_snapshot(model: &LeaseholdModel, s: &State) -> bool {
    let Some((file, _)) = &s.history.snapshot else {
        return false;
    };
    let m = master(s);
    let Some(snap) = m.durable.files.get(*file as usize) else {
        return false;
    };
    let copy_of_listed = |chunk: ChunkHandle| {
        let index = m.durable.chunks[chunk as usize].index as usize;
        snap.chunks.get(index).is_some_and(|c| *c != chunk)
    };
    let appended: Vec<ChunkHandle> = acked(model, s)
        .filter(|a| a.append)
        .map(|a| a.chunk)
        .collect();
    appended.iter().any(|c| snap.chunks.contains(c)) && appended.iter().any(|c| copy_of_listed(*c))
}

/// Records acknowledged in each of two files (FILE-1 has two files to
/// tell apart).
pub(super) fn acked_in_two_files(model: &LeaseholdModel, s: &State) -> bool {
    let mut files = acked(model, s).map(|a| a.file);
    files.next().is_some_and(|f| files.any(|g| g != f))
}

/// A client finds the lease of one file's chunk while the master's answer
/// about the other file's chunk, late, is on its way to it: the answer it
/// must not take (FILE-1; attached with `two_files`).
pub(super) fn other_files_holder_on_its_way(_: &LeaseholdModel, s: &State) -> bool {
    s.network.iter_deliverable().any(|e| {
        let Msg::LeaseHolder { info, .. } = e.msg else {
            return false;
        };
        matches!(&**s.actor_states[usize::from(e.dst)],
        NodeState::Client(cl) if cl.current.as_ref().is_some_and(|cur| {
            cur.phase == crate::client::Phase::FindingLease
                && cur.op.file().is_some_and(|f| f != info.file)
        }))
    })
}

/// A copy of a chunk shared with a snapshot ended at its timeout with a
/// replica left out (the copy counts fewer replicas than it was made
/// on), and a record was appended into it: the file goes on after the
/// snapshot without the slow replica.
pub(super) fn copy_left_replica_out(model: &LeaseholdModel, s: &State) -> bool {
    let Some((file, _)) = &s.history.snapshot else {
        return false;
    };
    let m = master(s);
    let Some(snap) = m.durable.files.get(*file as usize) else {
        return false;
    };
    let left_out = |chunk: ChunkHandle| {
        let meta = &m.durable.chunks[chunk as usize];
        let copy = snap
            .chunks
            .get(meta.index as usize)
            .is_some_and(|c| *c != chunk);
        copy && m.view(chunk).up_to_date.len() < meta.replicas.len()
    };
    acked(model, s).any(|a| a.append && left_out(a.chunk))
}

/// A client's mutation sent under a lease the snapshot revoked is still
/// in flight to a replica that holds the chunk again under a new epoch,
/// leased for the snapshot alone once the file's copy left it there: the
/// primary must refuse it (SNAP-1's second half).
pub(super) fn stale_mutate_meets_snapshot_lease(model: &LeaseholdModel, s: &State) -> bool {
    let Some((file, _)) = &s.history.snapshot else {
        return false;
    };
    let m = master(s);
    let Some(snap) = m.durable.files.get(*file as usize) else {
        return false;
    };
    let v = ModelView::new(model, s);
    s.network.iter_all().any(|e| {
        let Msg::Mutate { chunk, epoch, .. } = &e.msg else {
            return false;
        };
        snap.chunks.contains(chunk)
            && v.leases(e.dst)
                .unwrap_or(&[])
                .iter()
                .any(|l| l.chunk == *chunk && l.holding && l.epoch != *epoch)
    })
}

/// A `FileOpened` is in flight to a client whose open, its first
/// operation, is over (answered): a repeated answer, or one to an open
/// that was retried, which only the open under way may take (CLIENT-1).
pub(super) fn late_file_opened(_: &LeaseholdModel, s: &State) -> bool {
    s.network.iter_all().any(|e| {
        matches!(e.msg, Msg::FileOpened { .. })
            && matches!(&**s.actor_states[usize::from(e.dst)],
                NodeState::Client(cl) if !cl.results.is_empty())
    })
}

/// A client's stat answered as a stat, after its open and its append
/// answered as theirs.
pub(super) fn stat_answered(model: &LeaseholdModel, s: &State) -> bool {
    (0..model.cfg.clients()).any(|c| {
        matches!(&**s.actor_states[usize::from(model.cfg.client_id(c))],
            NodeState::Client(cl) if matches!(cl.results.as_slice(),
                [OpResult::Opened { .. }, OpResult::Mutated { .. }, .., OpResult::Stat { .. }]))
    })
}

/// LEASE-6 reached: a replica whose lease ended failed a mutation it had
/// ordered under it. A `NotPrimary` answer is on its way from a replica
/// that holds the record, written under the epoch of its lease of the
/// chunk, which it no longer holds. (On the duplicating network a copy of
/// an applied `Mutate` arriving after the lease ended answers the same
/// way; no configuration with this companion duplicates.)
pub(super) fn in_flight_failed_at_lease_end(_: &LeaseholdModel, s: &State) -> bool {
    s.network.iter_deliverable().any(|e| {
        let Msg::MutationFailed {
            chunk,
            data,
            reason: Failure::NotPrimary,
        } = e.msg
        else {
            return false;
        };
        let NodeState::Chunkserver(cs) = &**s.actor_states[usize::from(e.src)] else {
            return false;
        };
        let Some(l) = cs.lease(*chunk).filter(|l| !l.holding) else {
            return false;
        };
        cs.store.replica(*chunk).is_some_and(|r| {
            r.cells.iter().flatten().any(|c| {
                matches!(c, Cell::Data { record, stamp, .. }
                    if record.id == *data && stamp.epoch == l.epoch)
            })
        })
    })
}

/// ORDER-2's batch clause at stake: a primary has in flight a mutation it
/// ordered under a later lease of a chunk while an `Apply` it sent under
/// an earlier lease of that chunk is still on its way. Had it kept that
/// earlier lease's `Apply`s waiting for a batch past the lease's end,
/// the later mutation would have joined them in one `ApplyBatch`.
pub(super) fn later_lease_beside_earlier_applies(_: &LeaseholdModel, s: &State) -> bool {
    s.network.iter_deliverable().any(|e| {
        let (chunk, epoch) = match e.msg {
            Msg::Apply { chunk, stamp, .. } => (chunk, stamp.epoch),
            Msg::ApplyBatch { chunk, applies, .. } => match applies.first() {
                Some((stamp, _)) => (chunk, stamp.epoch),
                None => return false,
            },
            _ => return false,
        };
        let NodeState::Chunkserver(cs) = &**s.actor_states[usize::from(e.src)] else {
            return false;
        };
        cs.in_flight
            .iter()
            .any(|m| m.chunk == *chunk && m.stamp.epoch > epoch)
    })
}
