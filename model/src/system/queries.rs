//! Queries of a checker state the companions, the time wrapper and the
//! liveness goals read directly (the always-properties read a
//! [`GlobalView`] instead, so that `leasehold validate` can share them).

use super::*;
use crate::memstore::*;
use crate::msg::*;
use crate::types::*;
use crate::NodeState;
use stateright::actor::Id;
/// Every acknowledged mutation. An iterator, not a list: the properties
/// read it several times on every state the checker visits.
pub fn acked<'a>(
    model: &'a LeaseholdModel,
    s: &'a State,
) -> impl Iterator<Item = Acked<RecordToken>> + 'a {
    finished_ops(model, s).filter_map(move |(c, k, op, result)| {
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
            file: op.file()?,
            record,
            append,
            chunk: *chunk,
            offset: *offset,
            stamp: *stamp,
        })
    })
}

/// Every operation a client finished: (client, its place in the script,
/// the operation, its result).
fn finished_ops<'a>(
    model: &'a LeaseholdModel,
    s: &'a State,
) -> impl Iterator<
    Item = (
        usize,
        usize,
        &'a ClientOp<RecordToken>,
        &'a OpResult<RecordToken>,
    ),
> + 'a {
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
            .map(move |(k, (op, result))| (c, k, op, result))
    })
}

/// Every read that returned data, with the chunk its (file, index) names
/// at the master.
pub fn reads<'a>(
    model: &'a LeaseholdModel,
    s: &'a State,
) -> impl Iterator<Item = ReadDone<RecordToken>> + 'a {
    let files = &timed::master(s).durable.files;
    finished_ops(model, s).filter_map(move |(c, k, op, result)| {
        let (
            ClientOp::Read {
                file,
                index,
                offset,
                len,
            },
            OpResult::Read { data },
        ) = (op, result)
        else {
            return None;
        };
        let chunk = *files.get(*file as usize)?.chunks.get(*index as usize)?;
        Some(ReadDone {
            client: c,
            op: k,
            chunk,
            offset: *offset,
            len: *len,
            data: *data,
        })
    })
}

pub(super) fn store(s: &State, id: Id) -> &MemStore {
    match &**s.actor_states[usize::from(id)] {
        NodeState::Chunkserver(c) => &c.store,
        _ => unreachable!("a chunkserver id"),
    }
}

/// Every client finished every operation successfully.
pub fn all_succeeded(model: &LeaseholdModel, s: &State) -> bool {
    (0..model.cfg.clients()).all(
        |c| match &**s.actor_states[usize::from(model.cfg.client_id(c))] {
            NodeState::Client(cl) => {
                cl.results.len() == model.scripts[c].len()
                    && cl.results.iter().all(|r| !matches!(r, OpResult::Failed(_)))
            }
            _ => true,
        },
    )
}

/// REPL-1's goal: the master (running, past a restart's waiting period,
/// with no lease on offer) counts every placed replica of every chunk up
/// to date. VERSION-1 says such a replica holds every acked mutation.
pub fn fully_replicated(model: &LeaseholdModel, s: &State) -> bool {
    let master = usize::from(model.cfg.master_id());
    let NodeState::Master(m) = &**s.actor_states[master] else {
        return false;
    };
    // A server gone for good holds no replica the goal counts.
    let gone = |r: &Id| model.cfg.crashes_permanent && s.crashed[usize::from(*r)];
    !s.crashed[master] && master_counts_every_replica(m, gone)
}

/// REPL-1's goal on a running master's state alone: past its waiting
/// period, no lease on offer, and every placed replica of every chunk
/// counted up to date, none of them on a server `gone` for good. Trace
/// validation judges a real master's replayed state with it.
pub fn master_counts_every_replica(
    m: &crate::master::MasterState,
    gone: impl Fn(&Id) -> bool,
) -> bool {
    !m.quiet
        && m.durable.chunks.iter().zip(&m.views).all(|(c, v)| {
            !matches!(v.lease, LeaseView::Offered { .. })
                && c.replicas
                    .iter()
                    .all(|r| v.up_to_date.contains(r) && !gone(r))
        })
}

/// Some chunk's replica moved off the servers it was first placed on
/// (round robin from the chunk's handle) to a spare (re-replication).
pub fn moved_to_spare(model: &LeaseholdModel, s: &State) -> bool {
    let master = usize::from(model.cfg.master_id());
    let NodeState::Master(m) = &**s.actor_states[master] else {
        return false;
    };
    let servers = model.cfg.chunkserver_ids();
    let k = model.cfg.protocol().replicas_per_chunk as usize;
    m.durable.chunks.iter().enumerate().any(|(chunk, c)| {
        (0..k).any(|i| !c.replicas.contains(&servers[(chunk + i) % servers.len()]))
    })
}

/// The liveness check's goal: every client's operations succeeded, and
/// with `replication_goal` every chunk is back at its replication goal.
pub fn liveness_goal(model: &LeaseholdModel, s: &State) -> bool {
    all_succeeded(model, s) && (!model.cfg.replication_goal || fully_replicated(model, s))
}

pub(super) fn cell_stamp(c: &Cell) -> Stamp {
    match c {
        Cell::Pad(s) => *s,
        Cell::Data { stamp, .. } => *stamp,
    }
}
