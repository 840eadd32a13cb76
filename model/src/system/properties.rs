//! The always-properties. Names start with the requirement ID from specs/.

use super::*;
use crate::master::LeaseView;
use crate::msg::*;
use crate::types::*;
use crate::NodeState;
use stateright::actor::Id;

/// An acknowledged mutation, read back from the clients' results.
#[derive(Clone, Copy, Debug)]
pub struct Acked {
    /// The client, and the operation's place in its script.
    pub client: usize,
    pub op: usize,
    pub record: RecordToken,
    pub append: bool,
    pub chunk: ChunkHandle,
    pub offset: Offset,
    pub stamp: Stamp,
}

/// Every acknowledged mutation. An iterator, not a list: the properties
/// read it several times on every state the checker visits.
pub fn acked<'a>(model: &'a LeaseholdModel, s: &'a State) -> impl Iterator<Item = Acked> + 'a {
    (0..model.cfg.clients()).flat_map(move |c| {
        let results: &[OpResult<RecordToken>] =
            match &**s.actor_states[usize::from(model.cfg.client_id(c))] {
                NodeState::Client(client) => &client.results,
                _ => &[],
            };
        model.scripts[c]
            .iter()
            .zip(results)
            .enumerate()
            .filter_map(move |(k, (op, result))| {
                let OpResult::Mutated {
                    chunk,
                    offset,
                    stamp,
                    ..
                } = result
                else {
                    return None;
                };
                let (record, append) = match op {
                    ClientOp::Append { data, .. } => (*data, true),
                    ClientOp::Write { data, .. } => (*data, false),
                    _ => return None,
                };
                Some(Acked {
                    client: c,
                    op: k,
                    record,
                    append,
                    chunk: *chunk,
                    offset: *offset,
                    stamp: *stamp,
                })
            })
    })
}

pub(super) fn store(s: &State, id: Id) -> &MemStore {
    match &**s.actor_states[usize::from(id)] {
        NodeState::Chunkserver(c) => &c.store,
        _ => unreachable!("a chunkserver id"),
    }
}

/// Whether replica `store` holds `record` whole at `offset` of `chunk`.
pub(super) fn holds(
    store: &MemStore,
    chunk: ChunkHandle,
    offset: Offset,
    record: RecordToken,
) -> bool {
    let Some(r) = store.replica(chunk) else {
        return false;
    };
    (0..record.units).all(|part| {
        matches!(r.cells.get(offset as usize + part as usize), Some(Some(Cell::Data { record: got, part: p, .. })) if *got == record && *p == part)
    })
}

/// Replicas at the master's current version of `chunk`.
pub(super) fn current_replicas<'a>(
    model: &'a LeaseholdModel,
    s: &'a State,
    chunk: ChunkHandle,
) -> impl Iterator<Item = Id> + 'a {
    let version = master(s)
        .durable
        .chunks
        .get(chunk as usize)
        .map(|c| c.version);
    model
        .cfg
        .chunkserver_id_iter()
        .filter(move |id| Some(store(s, *id).meta(chunk).version) == version)
}

/// Whether replica `store` holds the acknowledged write `a` at its offset,
/// unit by unit, unless a later mutation (a higher stamp) overwrote a unit.
pub(super) fn holds_write(store: &MemStore, a: &Acked) -> bool {
    let Some(r) = store.replica(a.chunk) else {
        return false;
    };
    (0..a.record.units).all(|p| {
        match r
            .cells
            .get(a.offset as usize + p as usize)
            .copied()
            .flatten()
        {
            Some(Cell::Data {
                record,
                part,
                stamp,
            }) if stamp == a.stamp => record == a.record && part == p,
            Some(c) => cell_stamp(&c) > a.stamp,
            None => false,
        }
    })
}

/// Whether replica `id` holds every acknowledged mutation of `chunk`: each
/// record append whole at its offset, each write at its offset unless a
/// later mutation overwrote it (VERSION-1, VERSION-2).
pub(super) fn holds_all_acked(
    model: &LeaseholdModel,
    s: &State,
    id: Id,
    chunk: ChunkHandle,
) -> bool {
    acked(model, s)
        .filter(|a| a.chunk == chunk)
        .all(|a| match a.append {
            true => holds(store(s, id), chunk, a.offset, a.record),
            false => holds_write(store(s, id), &a),
        })
}

pub(super) fn lease_1(model: &LeaseholdModel, s: &State) -> bool {
    let chunks = master(s).durable.chunks.len() as ChunkHandle;
    (0..chunks.max(2)).all(|c| {
        model
            .live_chunkservers(s)
            .filter(|(_, cs)| cs.is_primary(c))
            .count()
            <= 1
    })
}

pub(super) fn order_1(model: &LeaseholdModel, s: &State) -> bool {
    // Any two replicas that applied mutation (epoch, serial) applied the
    // same one, at the same place, unless a later mutation overwrote it.
    let ids = model.cfg.chunkserver_id_iter();
    for a in ids.clone() {
        for (chunk, ra) in store(s, a).replicas().iter().enumerate() {
            for (o, cell) in ra.cells.iter().enumerate() {
                let Some(cell) = cell else { continue };
                let stamp = cell_stamp(cell);
                if stamp == Stamp::default() {
                    continue; // prefilled data predates the model
                }
                for b in ids.clone() {
                    let Some(rb) = store(s, b).replica(chunk as ChunkHandle) else {
                        continue;
                    };
                    let b_applied = rb.cells.iter().flatten().any(|c| cell_stamp(c) == stamp);
                    if !b_applied {
                        continue;
                    }
                    match rb.cells.get(o).copied().flatten() {
                        Some(other) if other == *cell => {}
                        Some(other) if cell_stamp(&other) > stamp => {}
                        _ => return false,
                    }
                }
            }
        }
    }
    true
}

pub(super) fn cell_stamp(c: &Cell) -> Stamp {
    match c {
        Cell::Pad(s) => *s,
        Cell::Data { stamp, .. } => *stamp,
    }
}

pub(super) fn append_1(model: &LeaseholdModel, s: &State) -> bool {
    acked(model, s).filter(|a| a.append).all(|a| {
        current_replicas(model, s, a.chunk)
            .all(|id| holds(store(s, id), a.chunk, a.offset, a.record))
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
///   was acknowledged (`History::started_after`; a client's next operation
///   always starts after its previous one finished).
pub(super) fn append_2(model: &LeaseholdModel, s: &State) -> bool {
    acked(model, s).filter(|a| a.append).all(|a| {
        acked(model, s).filter(|b| b.append).all(|b| {
            let serial_later = b.chunk == a.chunk && b.stamp > a.stamp;
            let real_time_later = LeaseholdModel::started_after(s, &b, &a);
            let index = |x: &Acked| {
                master(s)
                    .durable
                    .chunks
                    .get(x.chunk as usize)
                    .map_or(x.chunk as u32, |c| c.index)
            };
            !(serial_later || real_time_later)
                || index(&b) > index(&a)
                || (b.chunk == a.chunk && b.offset >= a.offset + a.record.len())
        })
    })
}

/// APPEND-3 ([00104]): no acknowledged record is larger than a quarter
/// chunk or crosses the chunk's end, and no replica grows past it.
pub(super) fn append_3(model: &LeaseholdModel, s: &State) -> bool {
    let size = model.cfg.chunk_units as u64;
    // `ProtocolCfg::record_size_max`, without building the protocol.
    let max = size / 4;
    acked(model, s)
        .filter(|a| a.append)
        .all(|a| a.record.len() <= max && a.offset + a.record.len() <= size)
        && model.cfg.chunkserver_id_iter().all(|id| {
            store(s, id)
                .replicas()
                .iter()
                .all(|r| r.cells.len() as u64 <= size)
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
/// cells start, or of its length if it wrote none (it was full already;
/// lengths only grow, and the primary is among them). A replica that missed
/// a failed mutation pads from a shorter end than the primary, so no single
/// replica's start would do. A pad that leaves room even then was written
/// although the record fit.
pub(super) fn append_4(model: &LeaseholdModel, s: &State) -> bool {
    let size = model.cfg.chunk_units as u64;
    let full_padded = s
        .history
        .full
        .iter()
        .all(|&c| current_replicas(model, s, c).all(|id| store(s, id).chunk_len(c) == size));
    if !full_padded {
        return false;
    }
    let max = size / 4; // `ProtocolCfg::record_size_max`
    let largest = model
        .scripts
        .iter()
        .flatten()
        .filter_map(|op| match op {
            ClientOp::Append { data, .. } if data.len() <= max => Some(data.len()),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let ids = model.cfg.chunkserver_id_iter();
    ids.clone().all(|id| {
        store(s, id)
            .replicas()
            .iter()
            .enumerate()
            .all(|(chunk, r)| {
                r.cells.iter().flatten().all(|c| {
                    let Cell::Pad(stamp) = c else { return true };
                    let start = ids
                        .clone()
                        .filter_map(|other| {
                            let r = store(s, other).replica(chunk as ChunkHandle)?;
                            match r.cells.iter().position(|x| *x == Some(Cell::Pad(*stamp))) {
                                Some(i) => Some(i),
                                None => (r.meta.applied >= *stamp).then_some(r.cells.len()),
                            }
                        })
                        .max()
                        .unwrap_or(0) as u64;
                    start + largest > size
                })
            })
    })
}

pub(super) fn order_2(_: &LeaseholdModel, s: &State) -> bool {
    !s.history.out_of_order
}

pub(super) fn write_1(model: &LeaseholdModel, s: &State) -> bool {
    acked(model, s)
        .filter(|a| !a.append)
        .all(|a| current_replicas(model, s, a.chunk).all(|id| holds_write(store(s, id), &a)))
}

/// LEASE-2 ([0091]): a replica holds a lease only for an epoch it
/// requested, from a grant that arrived while that request was pending
/// (checked at each grant's delivery: `STEP_LATE_GRANT`).
pub(super) fn lease_2(_: &LeaseholdModel, s: &State) -> bool {
    s.history.broken & STEP_LATE_GRANT == 0
}

/// LEASE-4 ([0091]): extensions and revocations keep the primary's lease
/// inside the master's: a live replica holds a lease only while the master
/// grants that epoch to that replica. A crashed master, or a restarted one
/// in its waiting period, does not know the leases it granted before;
/// LEASE-3's wait covers those.
pub(super) fn lease_4(model: &LeaseholdModel, s: &State) -> bool {
    if s.crashed[0] {
        return true;
    }
    let m = master(s);
    if m.quiet {
        return true;
    }
    model.live_chunkservers(s).all(|(id, cs)| {
        cs.leases.iter().filter(|l| l.holding).all(|l| {
            matches!(m.lease(l.chunk), Some(LeaseView::Granted { primary, epoch, .. })
                if *primary == id && *epoch == l.epoch)
        })
    })
}

/// PUSH-1 ([0096]–[0099]): a client sends a mutation only on the chain's
/// acknowledgement of its data, and each hop of a push goes to the closest
/// server left on the chain (`STEP_PUSH_ORDER`, set by the step's check and
/// by `History::on_send`).
pub(super) fn push_1(_: &LeaseholdModel, s: &State) -> bool {
    s.history.broken & STEP_PUSH_ORDER == 0
}

/// PUSH-2 ([0095], [00101]): a replica applies only data that is in its
/// buffer, and data that ages out leaves the buffer (`STEP_STALE_DATA`).
pub(super) fn push_2(_: &LeaseholdModel, s: &State) -> bool {
    s.history.broken & STEP_STALE_DATA == 0
}

/// APPEND-5 ([00107]): a failed record append is retried: a client reports
/// one failed only with its retries used up (`STEP_APPEND_GAVE_UP`).
pub(super) fn append_5(_: &LeaseholdModel, s: &State) -> bool {
    s.history.broken & STEP_APPEND_GAVE_UP == 0
}

/// WRITE-2 ([00101]): a mutation that fails at a replica is failed by the
/// primary at once, so it is never acknowledged; and a client reports a
/// write failed only with its retries used up
/// (`STEP_WRITE_FAILURE_HIDDEN`).
pub(super) fn write_2(_: &LeaseholdModel, s: &State) -> bool {
    s.history.broken & STEP_WRITE_FAILURE_HIDDEN == 0
}

pub(super) fn version_1(model: &LeaseholdModel, s: &State) -> bool {
    if s.crashed[0] {
        return true; // a crashed master counts nothing
    }
    master(s).views.iter().enumerate().all(|(c, v)| {
        v.up_to_date
            .iter()
            .all(|id| holds_all_acked(model, s, *id, c as ChunkHandle))
    })
}

pub(super) fn version_2(model: &LeaseholdModel, s: &State) -> bool {
    let m = master(s);
    let current = |chunk: ChunkHandle, epoch: LeaseEpoch| matches!(m.lease(chunk), Some(LeaseView::Granted { epoch: e, .. }) if *e == epoch);
    let named_ok = |info: &LeaseInfo| {
        !current(info.chunk, info.epoch)
            || std::iter::once(info.primary)
                .chain(info.secondaries.iter().copied())
                .all(|id| holds_all_acked(model, s, id, info.chunk))
    };
    let in_flight = s.network.iter_all().all(|env| match env.msg {
        Msg::LeaseHolder { info, .. } => named_ok(info),
        _ => true,
    });
    let cached = (0..model.cfg.clients()).all(|c| {
        match &**s.actor_states[usize::from(model.cfg.client_id(c))] {
            NodeState::Client(cl) => cl.cache.iter().all(named_ok),
            _ => true,
        }
    });
    in_flight && cached
}

/// Every client finished every operation successfully.
pub fn all_succeeded(model: &LeaseholdModel, s: &State) -> bool {
    (0..model.cfg.clients()).all(
        |c| match &**s.actor_states[usize::from(model.cfg.client_id(c))] {
            NodeState::Client(cl) => {
                cl.results.len() == model.scripts[c].len()
                    && cl
                        .results
                        .iter()
                        .all(|r| matches!(r, OpResult::Mutated { .. }))
            }
            _ => true,
        },
    )
}
