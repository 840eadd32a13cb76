//! What the always-properties read of one global state, as two traits: the
//! checker's states provide them ([`ModelView`] over [`MemStore`]), and so
//! do the global states `leasehold validate` rebuilds from a real run's
//! traces (over its replay store, with real bytes). One property code
//! therefore judges both: what was checked is what a real run is held to.
//!
//! The properties read replicas as *regions*: the stretch of a chunk one
//! mutation wrote and no later one overwrote. In the model a region is a
//! run of cells; in a real store a byte range. Comparing regions by stamp,
//! and their contents only where stamps agree, costs the same on both.

use super::*;
use crate::chunkserver::ReplicaLease;
use crate::master::MasterState;
use crate::memstore::*;
use stateright::actor::Id;
use std::borrow::Cow;

/// The part of a replica one mutation wrote and no later one overwrote:
/// `[start, end)`, by mutation `stamp`; `pad` for a record append's padding
/// ([00105]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: Offset,
    pub end: Offset,
    pub stamp: Stamp,
    pub pad: bool,
}

/// A chunkserver's replicas as the properties read them: metadata,
/// lengths, and region by region. (Not a [`ChunkStore`]: a real run's
/// view keeps regions beside the bytes, which the protocol never sees.)
pub trait StampedStore {
    type Payload: Payload;
    /// As [`ChunkStore::meta`].
    fn replica_meta(&self, chunk: ChunkHandle) -> ReplicaMeta;
    /// As [`ChunkStore::chunk_len`].
    fn data_len(&self, chunk: ChunkHandle) -> Offset;
    /// The handles this store has a replica (data or metadata) of.
    fn handles(&self) -> impl Iterator<Item = ChunkHandle> + '_;
    /// The regions of `chunk` in offset order. Units no mutation wrote (a
    /// replica that missed a failed mutation) are in none.
    fn regions(&self, chunk: ChunkHandle) -> impl Iterator<Item = Region> + '_;
    /// The regions of `chunk` that end after `offset`, in offset order.
    fn regions_from(
        &self,
        chunk: ChunkHandle,
        offset: Offset,
    ) -> impl Iterator<Item = Region> + '_ {
        self.regions(chunk).skip_while(move |r| r.end <= offset)
    }
    /// Whether some region of `chunk` was written by `stamp`.
    fn has_stamp(&self, chunk: ChunkHandle, stamp: Stamp) -> bool {
        self.regions(chunk).any(|r| r.stamp == stamp)
    }
    /// Whether units `[from, to)` of `record`, placed at `at`, are what the
    /// replica holds at `[at + from, at + to)`.
    fn holds_part(
        &self,
        chunk: ChunkHandle,
        at: Offset,
        record: &Self::Payload,
        from: Offset,
        to: Offset,
    ) -> bool;
    /// Whether `[from, to)` of `chunk` reads the same here and on `other`.
    fn same_data(&self, other: &Self, chunk: ChunkHandle, from: Offset, to: Offset) -> bool;
    /// Whether this store's replica of `chunk` came back damaged from a
    /// crash (it refuses every read and change), and how many restarts the
    /// store has counted: a master that has not yet heard of the restart
    /// that found it damaged cannot know it is lost (VERSION-1).
    fn damaged(&self, _chunk: ChunkHandle) -> Option<u32> {
        None
    }
}

/// An acknowledged mutation, read back from a client's results.
#[derive(Clone, Debug)]
pub struct Acked<P> {
    /// The client, and the operation's place in its sequence.
    pub client: usize,
    pub op: usize,
    /// The file the client asked to mutate (SNAP-1: not the chunk's owner
    /// if a stale lease took it to a chunk the file no longer lists).
    pub file: FileId,
    pub record: P,
    pub append: bool,
    pub chunk: ChunkHandle,
    pub offset: Offset,
    pub stamp: Stamp,
}

/// A read that returned data to its client (READ-1).
#[derive(Clone, Debug)]
pub struct ReadDone<P> {
    /// The client, and the operation's place in its sequence.
    pub client: usize,
    pub op: usize,
    /// Where it read: the chunk, and `len` units asked for at `offset`
    /// (`data` may be shorter: a read stops at the replica's end).
    pub chunk: ChunkHandle,
    pub offset: Offset,
    pub len: u64,
    pub data: P,
}

/// The payload type a view's store keeps.
pub type PayloadOf<V> = <<V as GlobalView>::Store as StampedStore>::Payload;

/// One global state, as the always-properties read it.
pub trait GlobalView {
    type Store: StampedStore;

    /// The chunk size, in the store's unit ([00104]).
    fn chunk_size(&self) -> u64;
    /// An upper bound on the records clients append within the
    /// quarter-chunk limit (APPEND-4 bounds a pad's record by it).
    fn largest_append(&self) -> u64;
    /// Every chunkserver, up or down.
    fn chunkservers(&self) -> impl Iterator<Item = Id> + Clone + '_;
    /// A chunkserver's store; a down server's as it left it.
    fn store(&self, id: Id) -> &Self::Store;
    /// A chunkserver's leases, `None` while it is down. A real run's view
    /// counts a lease as held only until its deadline on the holder's
    /// clock, which the host never lets a step pass.
    fn leases(&self, id: Id) -> Option<&[ReplicaLease]>;
    /// The master's state, and whether it is up (a crashed master's state
    /// is the one it left).
    fn master(&self) -> (&MasterState, bool);
    /// Every acknowledged mutation.
    /// (Borrowed where the view keeps them, so that passing over every
    /// acknowledgement on every state copies nothing.)
    fn acked(&self) -> impl Iterator<Item = Cow<'_, Acked<PayloadOf<Self>>>> + '_;
    /// Whether record append `b` started after `a` was acknowledged.
    fn started_after(&self, b: &Acked<PayloadOf<Self>>, a: &Acked<PayloadOf<Self>>) -> bool;
    /// When `a`'s operation started and when it was acknowledged, on one
    /// clock, if the view keeps instants (`validate`'s, from the nodes'
    /// clock readings); then `started_after(b, a)` must be exactly
    /// `op_instants(b).0 >= op_instants(a).1`, and APPEND-2 sorts by them
    /// instead of comparing every pair (`super::append_order`). The
    /// model's state keeps no clock, only the relation.
    fn op_instants(&self, _a: &Acked<PayloadOf<Self>>) -> Option<(u64, u64)> {
        None
    }
    /// Every read that returned data (`validate`'s view: those new since
    /// the last state it checked, since a read's verdict is settled when
    /// it returns: every record it must return was acknowledged before it
    /// started).
    fn reads(&self) -> impl Iterator<Item = ReadDone<PayloadOf<Self>>> + '_ {
        std::iter::empty()
    }
    /// Whether read `r` returned record append `a`'s record where it asked
    /// for it. The model's payloads are whole records, so a read at the
    /// record's offset must return that record; a view of real bytes
    /// compares the bytes of the two ranges' overlap, and a read cut short
    /// of the record's end inside the range it asked for does not.
    fn read_returns(&self, r: &ReadDone<PayloadOf<Self>>, a: &Acked<PayloadOf<Self>>) -> bool {
        r.offset != a.offset || r.data == a.record
    }
    /// Whether read `r` started after record append `a` was acknowledged.
    fn read_started_after(
        &self,
        _r: &ReadDone<PayloadOf<Self>>,
        _a: &Acked<PayloadOf<Self>>,
    ) -> bool {
        false
    }
    /// The lease holders the master told clients that they may still act
    /// on: replies in flight and clients' caches.
    fn named(&self) -> impl Iterator<Item = &LeaseInfo> + '_;
    fn history(&self) -> &History;
    /// Whether the properties need look at `chunk`: every chunk in the
    /// model; in `validate`, the chunks the last step changed (each
    /// property is a conjunction over chunks, and the others' parts were
    /// true before and did not change).
    fn in_focus(&self, chunk: ChunkHandle) -> bool {
        let _ = chunk;
        true
    }
    /// Whether the properties need look at `[from, to)` of `chunk`: in
    /// `validate`, a range some step changed since the last state checked
    /// on any replica (a region's or an acknowledged record's agreement with
    /// the replicas changes only when bytes under it do), or a chunk whose
    /// versions, lease holders or replica sets changed.
    fn range_in_focus(&self, chunk: ChunkHandle, from: Offset, to: Offset) -> bool {
        let _ = (from, to);
        self.in_focus(chunk)
    }
    /// Whether pairs with acknowledgement `a` need checking: every one in
    /// the model; in `validate`, those new since the last state checked (a
    /// pair's order never changes once both are acknowledged).
    fn ack_in_focus(&self, a: &Acked<PayloadOf<Self>>) -> bool {
        let _ = a;
        true
    }
}

/// The master's state of the view.
pub fn master_of<V: GlobalView>(v: &V) -> &MasterState {
    v.master().0
}

/// Whether chunkserver `id` is up and the primary of `chunk`.
pub fn is_primary<V: GlobalView>(v: &V, id: Id, chunk: ChunkHandle) -> bool {
    v.leases(id)
        .is_some_and(|ls| ls.iter().any(|l| l.chunk == chunk && l.holding))
}

// ---------------------------------------------------------------------------
// The model's side.

impl StampedStore for MemStore {
    type Payload = RecordToken;

    fn damaged(&self, chunk: ChunkHandle) -> Option<u32> {
        self.replica(chunk)
            .is_some_and(|r| r.damaged)
            .then(|| self.incarnation())
    }

    fn replica_meta(&self, chunk: ChunkHandle) -> ReplicaMeta {
        self.meta(chunk)
    }

    fn data_len(&self, chunk: ChunkHandle) -> Offset {
        self.chunk_len(chunk)
    }

    fn handles(&self) -> impl Iterator<Item = ChunkHandle> + '_ {
        0..self.replicas().len() as ChunkHandle
    }

    fn regions(&self, chunk: ChunkHandle) -> impl Iterator<Item = Region> + '_ {
        let cells: &[Option<Cell>] = self.replica(chunk).map_or(&[], |r| &r.cells[..]);
        let mut i = 0;
        std::iter::from_fn(move || {
            while i < cells.len() && cells[i].is_none() {
                i += 1;
            }
            let first = cells.get(i).copied().flatten()?;
            let start = i;
            let (stamp, pad) = cell_kind(&first);
            i += 1;
            while i < cells.len() && cells[i].is_some_and(|c| cell_kind(&c) == (stamp, pad)) {
                i += 1;
            }
            Some(Region {
                start: start as Offset,
                end: i as Offset,
                stamp,
                pad,
            })
        })
    }

    fn holds_part(
        &self,
        chunk: ChunkHandle,
        at: Offset,
        record: &RecordToken,
        from: Offset,
        to: Offset,
    ) -> bool {
        let Some(r) = self.replica(chunk) else {
            return false;
        };
        (from..to).all(|part| {
            matches!(r.cells.get((at + part) as usize), Some(Some(Cell::Data { record: got, part: p, .. }))
                if got == record && u64::from(*p) == part)
        })
    }

    fn same_data(&self, other: &Self, chunk: ChunkHandle, from: Offset, to: Offset) -> bool {
        fn cells(
            s: &MemStore,
            chunk: ChunkHandle,
            from: Offset,
            to: Offset,
        ) -> Option<&[Option<Cell>]> {
            s.replica(chunk)?.cells.get(from as usize..to as usize)
        }
        matches!((cells(self, chunk, from, to), cells(other, chunk, from, to)), (Some(a), Some(b)) if a == b)
    }
}

fn cell_kind(c: &Cell) -> (Stamp, bool) {
    match c {
        Cell::Pad(s) => (*s, true),
        Cell::Data { stamp, .. } => (*stamp, false),
    }
}

/// A checker state seen as a [`GlobalView`].
pub struct ModelView<'a> {
    pub model: &'a LeaseholdModel,
    pub state: &'a State,
}

impl<'a> ModelView<'a> {
    pub fn new(model: &'a LeaseholdModel, state: &'a State) -> Self {
        ModelView { model, state }
    }
}

impl GlobalView for ModelView<'_> {
    type Store = MemStore;

    fn chunk_size(&self) -> u64 {
        self.model.cfg.chunk_units as u64
    }

    fn largest_append(&self) -> u64 {
        let max = self.chunk_size() / 4; // `ProtocolCfg::record_size_max`
        self.model
            .scripts
            .iter()
            .flatten()
            .filter_map(|op| match op {
                ClientOp::Append { data, .. } if data.len() <= max => Some(data.len()),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    fn chunkservers(&self) -> impl Iterator<Item = Id> + Clone + '_ {
        self.model.cfg.chunkserver_id_iter()
    }

    fn store(&self, id: Id) -> &MemStore {
        match &**self.state.actor_states[usize::from(id)] {
            NodeState::Chunkserver(c) => &c.store,
            _ => unreachable!("a chunkserver id"),
        }
    }

    fn leases(&self, id: Id) -> Option<&[ReplicaLease]> {
        if self.state.crashed[usize::from(id)] {
            return None;
        }
        match &**self.state.actor_states[usize::from(id)] {
            NodeState::Chunkserver(c) => Some(&c.leases),
            _ => None,
        }
    }

    fn master(&self) -> (&MasterState, bool) {
        (master(self.state), !self.state.crashed[0])
    }

    fn acked(&self) -> impl Iterator<Item = Cow<'_, Acked<RecordToken>>> + '_ {
        acked(self.model, self.state).map(Cow::Owned)
    }

    fn started_after(&self, b: &Acked<RecordToken>, a: &Acked<RecordToken>) -> bool {
        LeaseholdModel::started_after(self.state, b, a)
    }

    fn reads(&self) -> impl Iterator<Item = ReadDone<RecordToken>> + '_ {
        reads(self.model, self.state)
    }

    fn read_started_after(&self, r: &ReadDone<RecordToken>, a: &Acked<RecordToken>) -> bool {
        let key = (r.client as u8, r.op as u8, a.client as u8, a.op as u8);
        self.state.history.started_after.contains(&key)
    }

    fn named(&self) -> impl Iterator<Item = &LeaseInfo> + '_ {
        let in_flight = self
            .state
            .network
            .iter_all()
            .filter_map(|env| match env.msg {
                Msg::LeaseHolder { info, .. } => Some(info),
                _ => None,
            });
        let cached = (0..self.model.cfg.clients()).flat_map(move |c| {
            match &**self.state.actor_states[usize::from(self.model.cfg.client_id(c))] {
                NodeState::Client(cl) => &cl.cache[..],
                _ => &[],
            }
        });
        in_flight.chain(cached)
    }

    fn history(&self) -> &History {
        &self.state.history
    }
}
