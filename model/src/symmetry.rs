//! Symmetry reduction over clients.
//!
//! Clients with the same script (up to their own number) are
//! interchangeable: swapping two of them, everywhere their identity appears
//! (their slot, their node id in messages and in the master's and
//! chunkservers' state, the client number in every `DataId` and record),
//! gives a state that behaves the same and satisfies the same properties.
//! [`representative`] maps a state to the least of its client permutations
//! (by fingerprint), so the checker explores one state per class.
//!
//! Chunkservers are not interchangeable: their network positions order the
//! chain push and the master's lease rotation.
//!
//! Stateright applies symmetry only in DFS and simulation, not BFS.

use crate::chunkserver::ChunkserverState;
use crate::client::{ClientState, Current};
use crate::master::{LeaseView, MasterState, NodeStorage};
use crate::memstore::*;
use crate::msg::*;
use crate::system::{History, State};
use crate::types::*;
use crate::NodeState;
use stateright::actor::{Envelope, Id, Network};
use std::borrow::Cow;
use std::sync::Arc;

/// A permutation of client numbers: `map[old] = new`.
pub struct ClientPerm {
    /// Node index of client 0.
    pub first: usize,
    pub map: Vec<usize>,
}

impl ClientPerm {
    fn id(&self, id: Id) -> Id {
        let i = usize::from(id);
        if i >= self.first && i < self.first + self.map.len() {
            Id::from(self.first + self.map[i - self.first])
        } else {
            id
        }
    }

    /// The slot whose contents slot `j` of the renumbered state holds.
    fn source(&self, j: usize) -> usize {
        if j >= self.first && j < self.first + self.map.len() {
            self.first
                + self
                    .map
                    .iter()
                    .position(|m| *m == j - self.first)
                    .expect("a permutation")
        } else {
            j
        }
    }

    fn number(&self, n: u64) -> u64 {
        usize::try_from(n)
            .ok()
            .and_then(|i| self.map.get(i))
            .map(|m| *m as u64)
            .unwrap_or(n)
    }
}

pub trait Permute {
    fn permute(&self, p: &ClientPerm) -> Self;
}

impl<T: Permute> Permute for Vec<T> {
    fn permute(&self, p: &ClientPerm) -> Self {
        self.iter().map(|x| x.permute(p)).collect()
    }
}

impl<T: Permute> Permute for Option<T> {
    fn permute(&self, p: &ClientPerm) -> Self {
        self.as_ref().map(|x| x.permute(p))
    }
}

impl Permute for Id {
    fn permute(&self, p: &ClientPerm) -> Self {
        p.id(*self)
    }
}

impl Permute for DataId {
    fn permute(&self, p: &ClientPerm) -> Self {
        DataId {
            client: p.number(self.client),
            seq: self.seq,
        }
    }
}

impl Permute for RecordToken {
    fn permute(&self, p: &ClientPerm) -> Self {
        RecordToken {
            id: self.id.permute(p),
            units: self.units,
        }
    }
}

impl Permute for Cell {
    fn permute(&self, p: &ClientPerm) -> Self {
        match *self {
            Cell::Pad(s) => Cell::Pad(s),
            Cell::Data {
                record,
                part,
                stamp,
            } => Cell::Data {
                record: record.permute(p),
                part,
                stamp,
            },
        }
    }
}

impl Permute for ClonePiece<RecordToken> {
    fn permute(&self, p: &ClientPerm) -> Self {
        match *self {
            ClonePiece::Unit {
                record,
                part,
                stamp,
            } => ClonePiece::Unit {
                record: record.permute(p),
                part,
                stamp,
            },
            ClonePiece::Bytes(record) => ClonePiece::Bytes(record.permute(p)),
            other => other,
        }
    }
}

impl Permute for MemStore {
    fn permute(&self, p: &ClientPerm) -> Self {
        let mut s = self.clone();
        s.map_cells(|c| c.permute(p));
        s
    }
}

impl Permute for ApplyOp {
    fn permute(&self, p: &ClientPerm) -> Self {
        match *self {
            ApplyOp::WriteAt { offset, data } => ApplyOp::WriteAt {
                offset,
                data: data.permute(p),
            },
            pad => pad,
        }
    }
}

impl Permute for ChunkserverState<MemStore> {
    fn permute(&self, p: &ClientPerm) -> Self {
        let mut s = self.clone();
        s.store = s.store.permute(p);
        for b in &mut s.buffer {
            b.data = b.data.permute(p);
            b.fragments = b.fragments.permute(p);
        }
        s.buffer.sort_by_key(|b| b.data);
        for m in &mut s.in_flight {
            m.client = m.client.permute(p);
            m.data = m.data.permute(p);
        }
        for h in &mut s.held {
            h.op = h.op.permute(p);
        }
        for u in &mut s.unsent {
            u.op = u.op.permute(p);
        }
        for e in &mut s.early {
            e.client = e.client.permute(p);
            e.data = e.data.permute(p);
        }
        s.early.sort();
        s
    }
}

impl Permute for MasterState {
    fn permute(&self, p: &ClientPerm) -> Self {
        let mut s = self.clone();
        for r in &mut s.renames {
            r.client = p.id(r.client);
        }
        s.renames.sort();
        for v in &mut s.views {
            v.waiting = v.waiting.permute(p);
            v.waiting.sort();
            // Lease holders and up-to-date sets name chunkservers only.
            debug_assert!(
                !matches!(v.lease, LeaseView::Granted { primary, .. } if p.id(primary) != primary)
            );
        }
        s
    }
}

impl Permute for ClientOp<RecordToken> {
    fn permute(&self, p: &ClientPerm) -> Self {
        match self {
            ClientOp::Append { file, data } => ClientOp::Append {
                file: *file,
                data: data.permute(p),
            },
            ClientOp::Write {
                file,
                index,
                offset,
                data,
            } => ClientOp::Write {
                file: *file,
                index: *index,
                offset: *offset,
                data: data.permute(p),
            },
            other => other.clone(),
        }
    }
}

impl Permute for ClientState<RecordToken> {
    fn permute(&self, p: &ClientPerm) -> Self {
        let mut s = self.clone();
        s.queue = s
            .queue
            .iter()
            .map(|(op_id, op)| (*op_id, op.permute(p)))
            .collect();
        s.current = s.current.as_ref().map(|c| Current {
            op: c.op.permute(p),
            data: c.data.permute(p),
            ..c.clone()
        });
        s
    }
}

impl Permute for NodeState<MemStore> {
    fn permute(&self, p: &ClientPerm) -> Self {
        match self {
            NodeState::Master(m) => NodeState::Master(m.permute(p)),
            NodeState::Chunkserver(c) => NodeState::Chunkserver(c.permute(p)),
            NodeState::Client(c) => NodeState::Client(c.permute(p)),
        }
    }
}

impl Permute for NodeStorage<MemStore> {
    fn permute(&self, p: &ClientPerm) -> Self {
        match self {
            NodeStorage::Chunkserver(s) => NodeStorage::Chunkserver(Arc::new(s.permute(p))),
            other => other.clone(),
        }
    }
}

impl Permute for Timer {
    fn permute(&self, p: &ClientPerm) -> Self {
        match self {
            Timer::AgeOut(d) => Timer::AgeOut(d.permute(p)),
            other => other.clone(),
        }
    }
}

impl Permute for Msg<RecordToken> {
    fn permute(&self, p: &ClientPerm) -> Self {
        match self.clone() {
            Msg::PushData {
                data,
                chunk,
                fragment,
                last,
                bytes,
                chain,
                client,
            } => Msg::PushData {
                data: data.permute(p),
                chunk,
                fragment,
                last,
                bytes: bytes.permute(p),
                chain,
                client: client.permute(p),
            },
            Msg::DataPushed { data } => Msg::DataPushed {
                data: data.permute(p),
            },
            Msg::Mutate {
                chunk,
                epoch,
                kind,
                data,
            } => Msg::Mutate {
                chunk,
                epoch,
                kind,
                data: data.permute(p),
            },
            Msg::Apply {
                chunk,
                version,
                stamp,
                op,
            } => Msg::Apply {
                chunk,
                version,
                stamp,
                op: op.permute(p),
            },
            Msg::ApplyBatch {
                chunk,
                version,
                applies,
            } => Msg::ApplyBatch {
                chunk,
                version,
                applies: applies
                    .iter()
                    .map(|(stamp, op)| (*stamp, op.permute(p)))
                    .collect(),
            },
            Msg::MutationDone {
                chunk,
                data,
                offset,
                stamp,
            } => Msg::MutationDone {
                chunk,
                data: data.permute(p),
                offset,
                stamp,
            },
            Msg::ChunkFull { chunk, data } => Msg::ChunkFull {
                chunk,
                data: data.permute(p),
            },
            Msg::MutationFailed {
                chunk,
                data,
                reason,
            } => Msg::MutationFailed {
                chunk,
                data: data.permute(p),
                reason,
            },
            Msg::PushRefused { data, reason } => Msg::PushRefused {
                data: data.permute(p),
                reason,
            },
            Msg::Submit { op_id, op } => Msg::Submit {
                op_id,
                op: op.permute(p),
            },
            Msg::ChunkPart {
                chunk,
                version,
                from,
                part,
            } => Msg::ChunkPart {
                chunk,
                version,
                from,
                part: part.map(|c| ClonePart {
                    pieces: c.pieces.permute(p),
                    ..c
                }),
            },
            other => other,
        }
    }
}

impl Permute for Envelope<Msg<RecordToken>> {
    fn permute(&self, p: &ClientPerm) -> Self {
        Envelope {
            src: self.src.permute(p),
            dst: self.dst.permute(p),
            msg: self.msg.permute(p),
        }
    }
}

fn permute_history(h: &History, p: &ClientPerm) -> History {
    // APPEND-2's real-time order names clients by number.
    let mut h = h.clone();
    let n = |c: u8| p.number(c as u64) as u8;
    for e in h.started_after.iter_mut() {
        *e = (n(e.0), e.1, n(e.2), e.3);
    }
    h.started_after.sort();
    // A store kept for a crash before the barrier holds records, which
    // name their clients.
    for (_, store) in h.unsynced.iter_mut() {
        *store = Arc::new(store.permute(p));
    }
    h
}

/// The state with its clients renumbered by `p`, the permutation numbered
/// `index` (each node keeps its image under it, `Digested::image`).
fn permute_state(s: &State, p: &ClientPerm, index: usize) -> State {
    let n = s.actor_states.len();
    let source = |j: usize| p.source(j);
    let network = match &s.network {
        // Each message as many times as it is in flight: `iter_all` yields
        // a message in flight c > 1 times c + 1 times (stateright 0.31), so
        // an image built from it differs from the state it came from, and
        // a state and its own image would have different representatives.
        Network::UnorderedNonDuplicating(in_flight) => Network::new_unordered_nonduplicating(
            in_flight
                .iter()
                .flat_map(|(e, count)| std::iter::repeat_n(e.permute(p), *count)),
        ),
        Network::UnorderedDuplicating(_, last) => Network::new_unordered_duplicating_with_last_msg(
            s.network.iter_all().map(|e| e.to_cloned_msg().permute(p)),
            last.as_ref().map(|e| e.permute(p)),
        ),
        ordered => ordered.clone(),
    };
    let mut timers_set = Vec::with_capacity(n);
    for j in 0..n {
        let mut t = stateright::actor::Timers::new();
        for timer in s.timers_set[source(j)].iter() {
            t.set(timer.permute(p));
        }
        timers_set.push(t);
    }
    State {
        actor_states: (0..n)
            .map(|j| s.actor_states[source(j)].image(index, |node| node.permute(p)))
            .collect(),
        network,
        timers_set,
        random_choices: (0..n)
            .map(|j| s.random_choices[source(j)].clone())
            .collect(),
        crashed: (0..n).map(|j| s.crashed[source(j)]).collect(),
        history: permute_history(&s.history, p),
        actor_storages: (0..n)
            .map(|j| s.actor_storages[source(j)].permute(p))
            .collect(),
    }
}

/// Every permutation of `k` clients but the identity, in a fixed order
/// (their numbers index each node's kept images).
fn permutations(k: usize) -> Vec<Vec<usize>> {
    fn all(k: usize) -> Vec<Vec<usize>> {
        if k == 0 {
            return vec![vec![]];
        }
        let mut out = vec![];
        for rest in all(k - 1) {
            for pos in 0..=rest.len() {
                let mut v = rest.clone();
                v.insert(pos, k - 1);
                out.push(v);
            }
        }
        out
    }
    all(k)
        .into_iter()
        .filter(|map| map.iter().enumerate().any(|(i, m)| i != *m))
        .collect()
}

/// `permutations(k)`, made once for up to five clients (more than any
/// configuration has): the checker asks for them at every state.
fn permutations_of(k: usize) -> Cow<'static, [Vec<usize>]> {
    static MADE: std::sync::OnceLock<Vec<Vec<Vec<usize>>>> = std::sync::OnceLock::new();
    const CLIENTS_KEPT: usize = 5;
    if k > CLIENTS_KEPT {
        return Cow::Owned(permutations(k));
    }
    Cow::Borrowed(&MADE.get_or_init(|| (0..=CLIENTS_KEPT).map(permutations).collect())[k])
}

/// aHash with fixed keys (`types::digest`), as stateright fingerprints:
/// SipHash over every message in flight cost more.
fn fingerprint(s: &State) -> u64 {
    crate::types::digest(s)
}

/// The representative of a state's class under client permutations: the
/// permutation with the least fingerprint. Only sound when every client runs
/// the same script (see `ModelCfg::clients_interchangeable`).
///
/// The identity is the state itself, not a copy, so its nodes keep their
/// digests; the other permutations reuse each node's kept image.
pub fn representative(s: &State) -> State {
    let first = s
        .actor_states
        .iter()
        .position(|a| matches!(***a, NodeState::Client(_)));
    let Some(first) = first else { return s.clone() };
    let k = s.actor_states.len() - first;
    if k < 2 {
        return s.clone();
    }
    let mut least: Option<(u64, State)> = None;
    let own = fingerprint(s);
    for (index, map) in permutations_of(k).iter().enumerate() {
        let image = permute_state(
            s,
            &ClientPerm {
                first,
                map: map.clone(),
            },
            index,
        );
        let f = fingerprint(&image);
        if f < own && least.as_ref().is_none_or(|(l, _)| f < *l) {
            least = Some((f, image));
        }
    }
    match least {
        Some((_, image)) => image,
        None => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::ModelCfg;
    use stateright::Model;

    /// A state and its image with the clients swapped have one
    /// representative, also while messages are in flight twice: rebuilt
    /// from `iter_all`, such a message counted three times in every image,
    /// and a state's own representative then differed from its image's.
    #[test]
    fn a_state_and_its_clients_swapped_have_one_representative() {
        let model = ModelCfg::named("default").unwrap().into_model();
        let mut s = model.init_states().remove(0);
        for _ in 0..4 {
            s = model.next_steps(&s).remove(0).1;
        }
        let first = s
            .actor_states
            .iter()
            .position(|a| matches!(***a, NodeState::Client(_)))
            .unwrap();
        let Network::UnorderedNonDuplicating(in_flight) = &s.network else {
            panic!("default's network neither orders nor duplicates")
        };
        assert!(in_flight.keys().any(|e| usize::from(e.src) >= first));
        s.network = Network::new_unordered_nonduplicating(
            in_flight
                .keys()
                .flat_map(|e| [e.clone(), e.clone()])
                .collect::<Vec<_>>(),
        );
        let swap = ClientPerm {
            first,
            map: vec![1, 0],
        };
        let swapped = permute_state(&s, &swap, 0);
        assert_ne!(fingerprint(&s), fingerprint(&swapped));
        assert_eq!(
            fingerprint(&representative(&s)),
            fingerprint(&representative(&swapped))
        );
        // And the swap of the swap is the state itself.
        assert_eq!(
            fingerprint(&permute_state(&swapped, &swap, 0)),
            fingerprint(&s)
        );
    }
}
