//! The model's side of the host interface: records as tokens
//! ([`RecordToken`]) and replicas as a few cells each ([`MemStore`]), so
//! every replica's contents are part of the checked state.

use crate::types::*;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::fmt::{self, Debug, Formatter};
use std::hash::{Hash, Hasher};

/// A record in the model: which client pushed it, its sequence number, and
/// its size in units. Two tokens are the same data exactly when equal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordToken {
    pub id: DataId,
    pub units: u8,
}

impl Debug for RecordToken {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "r{}.{}x{}", self.id.client, self.id.seq, self.units)
    }
}

impl Payload for RecordToken {
    fn len(&self) -> u64 {
        self.units as u64
    }
    fn concat(fragments: &[Self]) -> Self {
        // The model pushes each record as one fragment.
        assert_eq!(fragments.len(), 1, "model records are pushed whole");
        fragments[0]
    }
}

/// One unit of a chunk replica in the model.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Cell {
    /// Padding written by a record append that did not fit ([00105]).
    Pad(Stamp),
    /// Unit `part` of a record, written by the mutation `stamp`.
    Data {
        record: RecordToken,
        part: u8,
        stamp: Stamp,
    },
}

impl Debug for Cell {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Pad(_) => write!(f, "pad"),
            Cell::Data { record, part, .. } if record.units == 1 => {
                write!(f, "{record:?}", record = record.id)
            }
            Cell::Data { record, part, .. } => write!(f, "{:?}[{part}]", record.id),
        }
    }
}

/// A replica's cells, inline: the model's chunks are a few units long, and
/// every chunkserver step that changes its store clones it, so a heap
/// allocation per replica would be paid on most steps. Longer chunks (a
/// configuration's `chunk_units` above 8) spill to the heap unchanged.
pub type Cells = SmallVec<[Option<Cell>; 8]>;

/// One replica of one chunk in the model: a few cells and the metadata.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct MemReplica {
    pub meta: ReplicaMeta,
    /// `None` is a hole: a unit never written on this replica (possible when
    /// it missed a failed mutation and a later one wrote past it).
    pub cells: Cells,
    /// The replica is damaged: a crash tore the sync that wrote it (its new
    /// metadata durable, data it covers not), so a restart finds it
    /// unusable, as the file store's `Entry::Damaged`: version 0 and no
    /// data (so no report names it), and every change, read and clone of it
    /// fails `Corrupt` until a clone from offset 0 replaces it or it is
    /// deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub damaged: bool,
}

impl Debug for MemReplica {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.damaged {
            return write!(f, "damaged");
        }
        write!(f, "v{} [", self.meta.version)?;
        for (i, c) in self.cells.iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            match c {
                None => write!(f, "_")?,
                Some(c) => write!(f, "{c:?}")?,
            }
        }
        write!(f, "]")
    }
}

/// What a [`MemStore`] holds; serialized as the store itself.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
struct StoreContents {
    chunk_size: u8,
    incarnation: u32,
    /// Indexed by chunk handle; the model allocates at most two chunks.
    replicas: SmallVec<[MemReplica; 2]>,
    /// The disk filled up (the model's store fault, `store_faults`): every
    /// later change fails with `NoSpace`, across restarts, as a full disk
    /// does; what is stored stays readable.
    #[serde(default)]
    full: bool,
    /// Its blocks went bad (the model's read fault, `read_faults`): every
    /// later read fails `Corrupt` as a checksum mismatch does; changes
    /// still land (a whole new block needs no read).
    #[serde(default)]
    corrupt: bool,
}

impl StoreContents {
    fn digest(&self) -> u64 {
        digest(self)
    }
}

/// The model's chunk store: every replica of every chunk the server has,
/// indexed by chunk handle (the model's handles are small and dense).
///
/// The checker hashes every store twice per generated state (in the
/// chunkserver's state and in its saved storage), but a store changes on
/// few steps. So the store keeps a digest of its contents, renewed by every
/// change, and hashes as that digest alone. The contents are reachable
/// only through methods, so no change can skip the renewal.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct MemStore {
    contents: StoreContents,
    digest: u64,
}

impl Hash for MemStore {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
    }
}

impl Serialize for MemStore {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.contents.serialize(s)
    }
}

impl<'de> Deserialize<'de> for MemStore {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        StoreContents::deserialize(d).map(MemStore::from_contents)
    }
}

impl Debug for MemStore {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        // The Explorer and counterexamples show replicas as strips.
        crate::display::mem_store(self, f)
    }
}

impl MemStore {
    pub fn new(chunk_size: u8) -> Self {
        MemStore::from_contents(StoreContents {
            chunk_size,
            incarnation: 0,
            replicas: SmallVec::new(),
            full: false,
            corrupt: false,
        })
    }

    /// The disk fills up: from now on every change fails (`NoSpace`).
    pub fn fill_disk(&mut self) {
        self.change(|c| c.full = true);
    }

    pub fn is_full(&self) -> bool {
        self.contents.full
    }

    /// The blocks go bad: from now on every read fails (`Corrupt`).
    pub fn corrupt_blocks(&mut self) {
        self.change(|c| c.corrupt = true);
    }

    pub fn is_corrupt(&self) -> bool {
        self.contents.corrupt
    }

    /// A full disk refuses only a change that makes the replica's data
    /// longer (to `end`), or that creates a replica the store does not
    /// hold (its metadata needs room), as the file store's does: metadata
    /// is rewritten in place, and so are bytes below the data's end.
    fn check_space(&self, chunk: ChunkHandle, end: Offset) -> Result<(), StoreError> {
        self.check_sound(chunk)?;
        let held = self.replica(chunk).filter(|r| **r != MemReplica::default());
        let len = held.map_or(0, |r| r.cells.len() as Offset);
        if self.contents.full && (end > len || held.is_none()) {
            Err(StoreError::NoSpace)
        } else {
            Ok(())
        }
    }

    /// A damaged replica refuses everything but a clone from offset 0 and
    /// deletion, as the file store's does.
    fn check_sound(&self, chunk: ChunkHandle) -> Result<(), StoreError> {
        match self.replica(chunk) {
            Some(r) if r.damaged => Err(StoreError::Corrupt),
            _ => Ok(()),
        }
    }

    /// A crash tore the sync of `chunk`'s replica: it is damaged from now
    /// on (see [`MemReplica::damaged`]).
    pub fn damage_replica(&mut self, chunk: ChunkHandle) {
        self.change_replica(chunk, |r| {
            *r = MemReplica {
                damaged: true,
                ..MemReplica::default()
            }
        });
    }

    fn from_contents(contents: StoreContents) -> Self {
        let digest = contents.digest();
        MemStore { contents, digest }
    }

    pub fn chunk_size(&self) -> u8 {
        self.contents.chunk_size
    }

    /// Every replica, indexed by chunk handle.
    pub fn replicas(&self) -> &[MemReplica] {
        &self.contents.replicas
    }

    pub fn replica(&self, chunk: ChunkHandle) -> Option<&MemReplica> {
        self.contents.replicas.get(chunk as usize)
    }

    /// Changes the contents with `f` and renews the digest.
    fn change<R>(&mut self, f: impl FnOnce(&mut StoreContents) -> R) -> R {
        let r = f(&mut self.contents);
        self.digest = self.contents.digest();
        r
    }

    /// Rewrites every cell with `f` (the symmetry reduction renames clients).
    pub fn map_cells(&mut self, mut f: impl FnMut(Cell) -> Cell) {
        self.change(|c| {
            for r in &mut c.replicas {
                for cell in r.cells.iter_mut().flatten() {
                    *cell = f(*cell);
                }
            }
        })
    }

    /// Changes the replica of `chunk` with `f`, creating it (and any below
    /// it) empty first.
    fn change_replica<R>(&mut self, chunk: ChunkHandle, f: impl FnOnce(&mut MemReplica) -> R) -> R {
        self.change(|c| {
            let i = chunk as usize;
            if c.replicas.len() <= i {
                c.replicas.resize_with(i + 1, MemReplica::default);
            }
            f(&mut c.replicas[i])
        })
    }
}

impl ChunkStore for MemStore {
    type Payload = RecordToken;

    fn meta(&self, chunk: ChunkHandle) -> ReplicaMeta {
        self.replica(chunk).map(|r| r.meta).unwrap_or_default()
    }

    fn set_version(&mut self, chunk: ChunkHandle, version: ChunkVersion) -> Result<(), StoreError> {
        self.check_space(chunk, 0)?;
        self.change_replica(chunk, |r| r.meta.version = version);
        Ok(())
    }

    fn chunk_len(&self, chunk: ChunkHandle) -> Offset {
        self.replica(chunk)
            .map(|r| r.cells.len() as Offset)
            .unwrap_or(0)
    }

    fn write_at(
        &mut self,
        chunk: ChunkHandle,
        offset: Offset,
        data: &RecordToken,
        stamp: Stamp,
    ) -> Result<(), StoreError> {
        // Deliberately no bound check here: the model store lets a buggy
        // primary write across the chunk boundary so that APPEND-3 can see it.
        // The file store refuses such writes as a second line of defence.
        let end = offset + data.len();
        self.check_space(chunk, end)?;
        self.change_replica(chunk, |r| {
            if r.cells.len() < end as usize {
                r.cells.resize(end as usize, None);
            }
            for part in 0..data.units {
                r.cells[offset as usize + part as usize] = Some(Cell::Data {
                    record: *data,
                    part,
                    stamp,
                });
            }
            r.meta.applied = stamp;
        });
        Ok(())
    }

    fn pad_to(&mut self, chunk: ChunkHandle, end: Offset, stamp: Stamp) -> Result<(), StoreError> {
        if end > self.chunk_size() as u64 {
            return Err(StoreError::OutOfRange);
        }
        self.check_space(chunk, end)?;
        self.change_replica(chunk, |r| {
            while (r.cells.len() as u64) < end {
                r.cells.push(Some(Cell::Pad(stamp)));
            }
            r.meta.applied = stamp;
        });
        Ok(())
    }

    fn set_applied(&mut self, chunk: ChunkHandle, stamp: Stamp) -> Result<(), StoreError> {
        self.check_space(chunk, 0)?;
        self.change_replica(chunk, |r| r.meta.applied = stamp);
        Ok(())
    }

    fn read(
        &self,
        chunk: ChunkHandle,
        offset: Offset,
        len: u64,
    ) -> Result<RecordToken, StoreError> {
        // The model reads whole records only: the token at `offset`.
        let r = self.replica(chunk).ok_or(StoreError::OutOfRange)?;
        if self.contents.corrupt || r.damaged {
            return Err(StoreError::Corrupt);
        }
        match r.cells.get(offset as usize) {
            Some(Some(Cell::Data {
                record, part: 0, ..
            })) if record.len() == len => Ok(*record),
            _ => Err(StoreError::OutOfRange),
        }
    }

    fn read_unverified(
        &self,
        chunk: ChunkHandle,
        offset: Offset,
        len: u64,
    ) -> Result<RecordToken, StoreError> {
        self.check_sound(chunk)?;
        if !self.contents.corrupt {
            return self.read(chunk, offset, len);
        }
        // Bad blocks read as bytes no client sent.
        self.replica(chunk).ok_or(StoreError::OutOfRange)?;
        Ok(RecordToken {
            id: DataId {
                client: DataId::CORRUPT_BYTES_CLIENT,
                seq: 0,
            },
            units: len as u8,
        })
    }

    fn clone_part(
        &self,
        chunk: ChunkHandle,
        from: Offset,
        units_max: u64,
    ) -> Result<CloneSlice<RecordToken>, StoreError> {
        if self.contents.corrupt {
            return Err(StoreError::Corrupt);
        }
        self.check_sound(chunk)?;
        let cells = self.replica(chunk).map(|r| &r.cells[..]).unwrap_or(&[]);
        let end = cells.len() as u64;
        let to = from.saturating_add(units_max).min(end);
        let pieces = cells
            .get(from.min(end) as usize..to as usize)
            .unwrap_or(&[])
            .iter()
            .map(|c| match *c {
                None => ClonePiece::Hole,
                Some(Cell::Pad(stamp)) => ClonePiece::Pad(stamp),
                Some(Cell::Data {
                    record,
                    part,
                    stamp,
                }) => ClonePiece::Unit {
                    record,
                    part,
                    stamp,
                },
            })
            .collect();
        Ok((pieces, (to < end).then_some(to)))
    }

    fn install_clone(
        &mut self,
        chunk: ChunkHandle,
        from: Offset,
        pieces: &[ClonePiece<RecordToken>],
        done: Option<ReplicaMeta>,
    ) -> Result<(), StoreError> {
        if from == 0 && self.replica(chunk).is_some_and(|r| r.damaged) {
            // A clone from the start replaces a damaged replica, as the
            // file store's rewrites its slots; before the room is checked,
            // as there.
            self.change_replica(chunk, |r| *r = MemReplica::default());
        }
        self.check_space(chunk, from + pieces.len() as Offset)?;
        self.change_replica(chunk, |r| {
            if from == 0 {
                r.cells.clear();
            }
            r.cells.truncate(from as usize);
            r.cells.resize(from as usize, None);
            r.cells.extend(pieces.iter().map(|p| match *p {
                ClonePiece::Hole | ClonePiece::Bytes(_) => None,
                ClonePiece::Pad(stamp) => Some(Cell::Pad(stamp)),
                ClonePiece::Unit {
                    record,
                    part,
                    stamp,
                } => Some(Cell::Data {
                    record,
                    part,
                    stamp,
                }),
            }));
            r.meta = done.unwrap_or_default();
        });
        Ok(())
    }

    fn delete_replica(&mut self, chunk: ChunkHandle) -> Result<(), StoreError> {
        if self.replica(chunk).is_some() {
            self.change_replica(chunk, |r| *r = MemReplica::default());
        }
        Ok(())
    }

    fn chunks(&self) -> Vec<(ChunkHandle, ChunkVersion)> {
        self.replicas()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.meta.version > 0)
            .map(|(i, r)| (i as ChunkHandle, r.meta.version))
            .collect()
    }

    fn incarnation(&self) -> u32 {
        self.contents.incarnation
    }

    fn count_restart(&mut self) -> Result<u32, StoreError> {
        Ok(self.change(|c| {
            c.incarnation += 1;
            c.incarnation
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u32) -> RecordToken {
        RecordToken {
            id: DataId { client: 0, seq },
            units: 1,
        }
    }

    fn stamp(serial: u32) -> Stamp {
        Stamp {
            epoch: 1,
            serial: serial as _,
        }
    }

    /// A replica a torn sync damaged behaves as the file store's
    /// `Entry::Damaged`: no metadata, in no report, every read, change and
    /// partial clone refused as corrupt; a clone from offset 0 replaces it.
    #[test]
    fn a_damaged_replica_refuses_everything_until_cloned_from_the_start() {
        let mut s = MemStore::new(4);
        s.set_version(0, 1).unwrap();
        s.write_at(0, 0, &record(1), stamp(1)).unwrap();
        s.damage_replica(0);
        assert_eq!(s.meta(0), ReplicaMeta::default());
        assert_eq!(s.chunk_len(0), 0);
        assert!(s.chunks().is_empty(), "a damaged replica is in no report");
        assert_eq!(s.read(0, 0, 1), Err(StoreError::Corrupt));
        assert_eq!(s.read_unverified(0, 0, 1), Err(StoreError::Corrupt));
        assert_eq!(s.clone_part(0, 0, 4).map(|_| ()), Err(StoreError::Corrupt));
        assert_eq!(s.set_version(0, 2), Err(StoreError::Corrupt));
        assert_eq!(
            s.write_at(0, 0, &record(2), stamp(2)),
            Err(StoreError::Corrupt)
        );
        assert_eq!(s.pad_to(0, 4, stamp(2)), Err(StoreError::Corrupt));
        assert_eq!(s.set_applied(0, stamp(2)), Err(StoreError::Corrupt));
        let unit = ClonePiece::Unit {
            record: record(1),
            part: 0,
            stamp: stamp(1),
        };
        assert_eq!(
            s.install_clone(0, 1, &[unit], None),
            Err(StoreError::Corrupt),
            "a clone that does not start at 0 cannot repair it"
        );
        let done = ReplicaMeta {
            version: 1,
            applied: stamp(1),
        };
        s.install_clone(0, 0, &[unit], Some(done)).unwrap();
        assert_eq!(s.meta(0), done);
        assert_eq!(s.read(0, 0, 1), Ok(record(1)));
        assert_eq!(s.chunks(), vec![(0, 1)]);
        assert!(!s.replica(0).unwrap().damaged);
    }
}
