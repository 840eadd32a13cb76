//! [`ReplayStore`]: the chunk store a replayed chunkserver runs on. It keeps
//! real bytes in memory and answers every [`ChunkStore`] call as
//! [`crate::filestore::FileStore`] does, as far as the trait lets anyone
//! see: the same lengths, errors, padding and listing. What a real disk adds
//! (checksums, torn writes, full disks) reaches the replay only as faults
//! taken from the trace ([`FaultSwitch`]).
//!
//! A store is a value: clones are independent, as the model's `MemStore`
//! is, so a step can be replayed again from the state before it. Data is
//! kept in blocks shared between clones and copied only when one of them
//! writes a block (the actor clones its store into every `Save`, and the
//! replay keeps the state before a step it may have to run again).

use leasehold_model::types::{
    ChunkHandle, ChunkStore, ChunkVersion, ClonePiece, CloneSlice, Offset, Payload, ReplicaMeta,
    Stamp, StoreError, StoreView,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt::{self, Debug, Formatter};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crate::payload::{clone_bytes, clone_slice, Bytes};
use crate::trace::Applied;

/// Bytes per shared block: what one write copies at most when another
/// clone still holds the block. The file store's checksum block, though
/// nothing here depends on that.
const BLOCK_BYTES: u64 = 64 * 1024;

#[derive(Clone, Default, PartialEq, Eq)]
struct ReplayChunk {
    meta: ReplicaMeta,
    len: u64,
    /// `len` bytes in blocks of `BLOCK_BYTES`; the last may be short.
    blocks: Vec<Arc<Vec<u8>>>,
    /// A restart found the replica damaged by a torn sync, as the file
    /// store's `Entry::Damaged` (and the model's `MemReplica::damaged`):
    /// version 0, empty, in no listing, every read and change failing
    /// `Corrupt` until a clone from offset 0 replaces it.
    damaged: bool,
}

impl ReplayChunk {
    fn bytes(&self, from: u64, to: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity((to - from) as usize);
        let mut at = from;
        while at < to {
            let block = (at / BLOCK_BYTES) as usize;
            let within = (at % BLOCK_BYTES) as usize;
            let take = ((to - at) as usize).min(BLOCK_BYTES as usize - within);
            out.extend_from_slice(&self.blocks[block][within..within + take]);
            at += take as u64;
        }
        out
    }

    /// The stretches of `[from, to)`, block by block, without a copy.
    fn slices(&self, from: u64, to: u64) -> impl Iterator<Item = &[u8]> + '_ {
        let mut at = from;
        std::iter::from_fn(move || {
            if at >= to {
                return None;
            }
            let block = (at / BLOCK_BYTES) as usize;
            let within = (at % BLOCK_BYTES) as usize;
            let take = ((to - at) as usize).min(BLOCK_BYTES as usize - within);
            at += take as u64;
            Some(&self.blocks[block][within..within + take])
        })
    }

    /// Writes `data` at `offset`, zero-filling from the end to `offset`.
    fn splice(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        if end > self.len {
            self.grow(end);
        }
        let mut at = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let block = (at / BLOCK_BYTES) as usize;
            let within = (at % BLOCK_BYTES) as usize;
            let take = rest.len().min(BLOCK_BYTES as usize - within);
            Arc::make_mut(&mut self.blocks[block])[within..within + take]
                .copy_from_slice(&rest[..take]);
            rest = &rest[take..];
            at += take as u64;
        }
    }

    /// Extends the data with zeros to `end`.
    fn grow(&mut self, end: u64) {
        while self.len < end {
            let block = (self.len / BLOCK_BYTES) as usize;
            if block == self.blocks.len() {
                self.blocks.push(Arc::new(Vec::new()));
            }
            let fill = (end - self.len).min(BLOCK_BYTES - self.len % BLOCK_BYTES);
            let b = Arc::make_mut(&mut self.blocks[block]);
            b.resize(b.len() + fill as usize, 0);
            self.len += fill;
        }
    }
}

/// What a store did, for the properties that need more than the replayed
/// state: which mutation put which bytes where, and when versions moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    Wrote {
        chunk: ChunkHandle,
        stamp: Stamp,
        offset: Offset,
        data: Bytes,
    },
    Padded {
        chunk: ChunkHandle,
        stamp: Stamp,
        end: Offset,
    },
    Version {
        chunk: ChunkHandle,
        version: ChunkVersion,
    },
    /// A mutation used up without changing data (`set_applied`).
    Consumed { chunk: ChunkHandle, stamp: Stamp },
    /// A restart restored other than the replay had
    /// ([`ReplayStore::adopt_view`]); the replicas in `damaged` came back
    /// damaged.
    Adopted {
        view: StoreView,
        damaged: Vec<ChunkHandle>,
    },
    /// A part of a clone installed at `from` (re-replication); `from` 0
    /// replaced the replica, `done` ended the clone.
    Cloned {
        chunk: ChunkHandle,
        from: Offset,
        data: Bytes,
        done: Option<ReplicaMeta>,
    },
    /// The replica deleted (garbage collection).
    Deleted { chunk: ChunkHandle },
    /// A write or pad asked to run past the chunk's size, refused as the
    /// file store refuses it. The checked protocol never asks (a primary
    /// places a record only where it fits, and refuses a write that runs
    /// past the end before its store sees it), so validation fails APPEND-3
    /// at such a step.
    RefusedPastEnd { chunk: ChunkHandle, end: Offset },
}

impl StoreEvent {
    /// The event as a foreign trace records it ([`Applied`]); `None` for
    /// what only the replay does (adopting a restored view).
    pub fn applied(&self) -> Option<Applied> {
        Some(match self {
            StoreEvent::Wrote {
                chunk,
                stamp,
                offset,
                data,
            } => Applied::Write {
                chunk: *chunk,
                epoch: stamp.epoch,
                serial: stamp.serial,
                offset: *offset,
                length: data.len(),
                crc32c: crc32c::crc32c(data.as_ref()),
            },
            StoreEvent::Padded { chunk, stamp, end } => Applied::Pad {
                chunk: *chunk,
                epoch: stamp.epoch,
                serial: stamp.serial,
                end: *end,
            },
            StoreEvent::Consumed { chunk, stamp } => Applied::Skip {
                chunk: *chunk,
                epoch: stamp.epoch,
                serial: stamp.serial,
            },
            StoreEvent::Version { chunk, version } => Applied::Version {
                chunk: *chunk,
                version: *version,
            },
            StoreEvent::Cloned {
                chunk,
                from,
                data,
                done,
            } => Applied::Clone {
                chunk: *chunk,
                from: *from,
                length: data.len(),
                crc32c: crc32c::crc32c(data.as_ref()),
                done: done.is_some(),
            },
            StoreEvent::Deleted { chunk } => Applied::Delete { chunk: *chunk },
            StoreEvent::Adopted { .. } | StoreEvent::RefusedPastEnd { .. } => return None,
        })
    }
}

/// Store faults the replay takes from the trace: the data calls (writes,
/// pads, reads) of one step are counted, and the armed ones fail with the
/// recorded error instead of running.
#[derive(Default)]
pub struct FaultSwitch {
    calls: AtomicU32,
    armed: Mutex<Vec<(u32, StoreError)>>,
}

impl FaultSwitch {
    /// Starts a step: no call counted, the given faults armed.
    pub fn arm(&self, faults: &[(u32, StoreError)]) {
        self.calls.store(0, Ordering::Relaxed);
        let mut armed = self.armed.lock().expect("fault switch lock");
        armed.clear();
        armed.extend_from_slice(faults);
    }

    /// Data calls made since the last [`FaultSwitch::arm`].
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    fn next_call(&self) -> Result<(), StoreError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let armed = self.armed.lock().expect("fault switch lock");
        match armed.iter().find(|(at, _)| *at == n) {
            Some((_, e)) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

/// A chunkserver's replicas in memory, for replay. See the module doc.
#[derive(Clone)]
pub struct ReplayStore {
    chunk_bytes: u64,
    incarnation: u32,
    chunks: Arc<BTreeMap<ChunkHandle, Arc<ReplayChunk>>>,
    /// Shared by every clone of one node's store: what it did, in order.
    journal: Option<Arc<Mutex<Vec<StoreEvent>>>>,
    faults: Option<Arc<FaultSwitch>>,
}

impl ReplayStore {
    /// An empty store for chunks of at most `chunk_bytes`, as a chunkserver
    /// with an empty data directory starts.
    pub fn new(chunk_bytes: u64) -> Self {
        ReplayStore {
            chunk_bytes,
            incarnation: 0,
            chunks: Arc::default(),
            journal: None,
            faults: None,
        }
    }

    /// Records what the store does into `journal` (every clone shares it).
    pub fn with_journal(mut self, journal: Arc<Mutex<Vec<StoreEvent>>>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Fails data calls as `faults` is armed (every clone shares it).
    pub fn with_faults(mut self, faults: Arc<FaultSwitch>) -> Self {
        self.faults = Some(faults);
        self
    }

    pub fn chunk_bytes(&self) -> u64 {
        self.chunk_bytes
    }

    /// The bytes `[from, to)` of a chunk as they are now, clipped to its
    /// data; `None` if the store never saw the chunk.
    pub fn bytes(&self, chunk: ChunkHandle, from: u64, to: u64) -> Option<Vec<u8>> {
        let c = self.chunks.get(&chunk)?;
        let to = to.min(c.len);
        Some(if from >= to {
            Vec::new()
        } else {
            c.bytes(from, to)
        })
    }

    /// Whether `data` is what the chunk holds at `offset`, compared in
    /// place (the properties compare every acknowledged record with every
    /// replica, on many global states).
    pub fn holds_at(&self, chunk: ChunkHandle, offset: u64, data: &[u8]) -> bool {
        let Some(c) = self.chunks.get(&chunk) else {
            return false;
        };
        let to = offset + data.len() as u64;
        if to > c.len {
            return false;
        }
        let mut rest = data;
        for s in c.slices(offset, to) {
            let (head, tail) = rest.split_at(s.len());
            if head != s {
                return false;
            }
            rest = tail;
        }
        true
    }

    /// Whether `[from, to)` of `chunk` is the same here and in `other`,
    /// compared in place.
    pub fn same_bytes(&self, other: &ReplayStore, chunk: ChunkHandle, from: u64, to: u64) -> bool {
        let (Some(a), Some(b)) = (self.chunks.get(&chunk), other.chunks.get(&chunk)) else {
            return false;
        };
        if to > a.len || to > b.len {
            return false;
        }
        let mut at = from;
        for s in a.slices(from, to) {
            if !other.holds_at(chunk, at, s) {
                return false;
            }
            at += s.len() as u64;
        }
        true
    }

    /// Makes the store show `view`: metadata and lengths as recorded. Data
    /// a grown chunk gains is zeros, which the replay cannot know better
    /// (used when a restart restored other than the replay carried over).
    /// The replicas in `damaged`, which the view lacks, are kept as damaged
    /// ones (a torn sync: see [`ReplayChunk::damaged`]); other replicas the
    /// view lacks are gone.
    pub fn adopt_view(&mut self, view: &StoreView, damaged: &[ChunkHandle]) {
        let chunks = Arc::make_mut(&mut self.chunks);
        chunks.retain(|h, c| c.meta.version == 0 || view.chunks.iter().any(|(v, ..)| v == h));
        for chunk in damaged {
            let gone = ReplayChunk {
                damaged: true,
                ..ReplayChunk::default()
            };
            chunks.insert(*chunk, Arc::new(gone));
        }
        for (handle, meta, len) in &view.chunks {
            let c = Arc::make_mut(chunks.entry(*handle).or_default());
            c.meta = *meta;
            if *len > c.len {
                c.grow(*len);
            } else {
                c.len = *len;
                c.blocks.truncate(len.div_ceil(BLOCK_BYTES) as usize);
                let full = c.blocks.len().saturating_sub(1) as u64 * BLOCK_BYTES;
                if let Some(last) = c.blocks.last_mut() {
                    Arc::make_mut(last).truncate((*len - full) as usize);
                }
            }
        }
        self.incarnation = view.incarnation;
        self.note(|| StoreEvent::Adopted {
            view: view.clone(),
            damaged: damaged.to_vec(),
        });
    }

    /// Whether the replica of `chunk` came back damaged from a restart
    /// ([`ReplayChunk::damaged`]).
    pub fn is_damaged(&self, chunk: ChunkHandle) -> bool {
        self.chunks.get(&chunk).is_some_and(|c| c.damaged)
    }

    /// A change or read of a damaged replica fails as the file store's does.
    fn refuse_damaged(&self, chunk: ChunkHandle) -> Result<(), StoreError> {
        match self.is_damaged(chunk) {
            true => Err(StoreError::Corrupt),
            false => Ok(()),
        }
    }

    fn note(&self, event: impl FnOnce() -> StoreEvent) {
        if let Some(j) = &self.journal {
            j.lock().expect("journal lock").push(event());
        }
    }

    fn data_call(&self) -> Result<(), StoreError> {
        match &self.faults {
            Some(f) => f.next_call(),
            None => Ok(()),
        }
    }

    /// A metadata change that creates the chunk may fail as a data call
    /// does: the file store claims the room of the new chunk's metadata
    /// slots then, and a full disk refuses it.
    fn creation_call(&self, chunk: ChunkHandle) -> Result<(), StoreError> {
        if self.chunks.contains_key(&chunk) {
            Ok(())
        } else {
            self.data_call()
        }
    }

    fn chunk_mut(&mut self, chunk: ChunkHandle) -> &mut ReplayChunk {
        Arc::make_mut(Arc::make_mut(&mut self.chunks).entry(chunk).or_default())
    }
}

impl ChunkStore for ReplayStore {
    type Payload = Bytes;

    fn meta(&self, chunk: ChunkHandle) -> ReplicaMeta {
        self.chunks.get(&chunk).map(|c| c.meta).unwrap_or_default()
    }

    fn set_version(&mut self, chunk: ChunkHandle, version: ChunkVersion) -> Result<(), StoreError> {
        self.creation_call(chunk)?;
        self.refuse_damaged(chunk)?;
        self.chunk_mut(chunk).meta.version = version;
        self.note(|| StoreEvent::Version { chunk, version });
        Ok(())
    }

    fn chunk_len(&self, chunk: ChunkHandle) -> Offset {
        self.chunks.get(&chunk).map_or(0, |c| c.len)
    }

    fn write_at(
        &mut self,
        chunk: ChunkHandle,
        offset: Offset,
        data: &Bytes,
        stamp: Stamp,
    ) -> Result<(), StoreError> {
        self.data_call()?;
        self.refuse_damaged(chunk)?;
        // As the file store: a write past the chunk's size changes nothing.
        let end = offset.saturating_add(data.len());
        if end > self.chunk_bytes {
            self.note(|| StoreEvent::RefusedPastEnd { chunk, end });
            return Err(StoreError::OutOfRange);
        }
        let c = self.chunk_mut(chunk);
        // An empty write at or before the end writes nothing (the file
        // store returns before touching the file) but still counts as
        // applied; past the end it fills the gap with zeros.
        if offset.min(c.len) < end {
            c.splice(offset, data.as_slice());
        }
        c.meta.applied = stamp;
        self.note(|| StoreEvent::Wrote {
            chunk,
            stamp,
            offset,
            data: data.clone(),
        });
        Ok(())
    }

    fn pad_to(&mut self, chunk: ChunkHandle, end: Offset, stamp: Stamp) -> Result<(), StoreError> {
        self.data_call()?;
        self.refuse_damaged(chunk)?;
        if end > self.chunk_bytes {
            self.note(|| StoreEvent::RefusedPastEnd { chunk, end });
            return Err(StoreError::OutOfRange);
        }
        let c = self.chunk_mut(chunk);
        if end > c.len {
            c.grow(end);
        }
        c.meta.applied = stamp;
        self.note(|| StoreEvent::Padded { chunk, stamp, end });
        Ok(())
    }

    fn set_applied(&mut self, chunk: ChunkHandle, stamp: Stamp) -> Result<(), StoreError> {
        self.creation_call(chunk)?;
        self.refuse_damaged(chunk)?;
        self.chunk_mut(chunk).meta.applied = stamp;
        self.note(|| StoreEvent::Consumed { chunk, stamp });
        Ok(())
    }

    fn read(&self, chunk: ChunkHandle, offset: Offset, len: u64) -> Result<Bytes, StoreError> {
        self.data_call()?;
        self.refuse_damaged(chunk)?;
        let c = self.chunks.get(&chunk).ok_or(StoreError::OutOfRange)?;
        if offset > c.len {
            return Err(StoreError::OutOfRange);
        }
        let end = offset.saturating_add(len).min(c.len);
        if offset == end {
            return Ok(Bytes::default());
        }
        Ok(c.bytes(offset, end).into())
    }

    fn clone_part(
        &self,
        chunk: ChunkHandle,
        from: Offset,
        units_max: u64,
    ) -> Result<CloneSlice<Bytes>, StoreError> {
        let data = self.read(chunk, from, units_max)?;
        Ok(clone_slice(data, from, self.chunk_len(chunk)))
    }

    fn install_clone(
        &mut self,
        chunk: ChunkHandle,
        from: Offset,
        pieces: &[ClonePiece<Bytes>],
        done: Option<ReplicaMeta>,
    ) -> Result<(), StoreError> {
        self.data_call()?;
        let bytes = clone_bytes(pieces)?;
        let end = from
            .checked_add(bytes.len() as u64)
            .ok_or(StoreError::OutOfRange)?;
        if end > self.chunk_bytes {
            return Err(StoreError::OutOfRange);
        }
        // A clone from the start replaces a damaged replica; any other
        // part of one fails.
        if from != 0 {
            self.refuse_damaged(chunk)?;
        }
        let c = self.chunk_mut(chunk);
        if from == 0 {
            *c = ReplayChunk::default();
        }
        if from != c.len {
            return Err(StoreError::Io(format!(
                "clone part at {from}, but the replica ends at {}",
                c.len
            )));
        }
        c.splice(from, &bytes);
        c.meta = done.unwrap_or_default();
        self.note(|| StoreEvent::Cloned {
            chunk,
            from,
            data: bytes.into(),
            done,
        });
        Ok(())
    }

    fn delete_replica(&mut self, chunk: ChunkHandle) -> Result<(), StoreError> {
        if Arc::make_mut(&mut self.chunks).remove(&chunk).is_some() {
            self.note(|| StoreEvent::Deleted { chunk });
        }
        Ok(())
    }

    fn chunks(&self) -> Vec<(ChunkHandle, ChunkVersion)> {
        self.chunks
            .iter()
            .filter(|(_, c)| c.meta.version > 0)
            .map(|(&h, c)| (h, c.meta.version))
            .collect()
    }

    fn incarnation(&self) -> u32 {
        self.incarnation
    }

    fn count_restart(&mut self) -> Result<u32, StoreError> {
        self.incarnation = self
            .incarnation
            .checked_add(1)
            .ok_or(StoreError::Io("restart count overflow".into()))?;
        Ok(self.incarnation)
    }
}

impl PartialEq for ReplayStore {
    fn eq(&self, other: &Self) -> bool {
        self.chunk_bytes == other.chunk_bytes
            && self.incarnation == other.incarnation
            && (Arc::ptr_eq(&self.chunks, &other.chunks) || self.chunks == other.chunks)
    }
}

impl Eq for ReplayStore {}

impl Hash for ReplayStore {
    // As the file store hashes by location, this hashes what the protocol
    // sees; equal stores hash equal all the same.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.chunk_bytes.hash(state);
        StoreView::of(self).hash(state);
    }
}

impl Debug for ReplayStore {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ReplayStore(incarnation {}, {:?})",
            self.incarnation,
            StoreView::of(self).chunks
        )
    }
}

/// A store's contents as serialized: only for the trait's sake, since the
/// replay never saves a store anywhere.
#[derive(Serialize, Deserialize)]
struct Contents {
    chunk_bytes: u64,
    incarnation: u32,
    chunks: Vec<(ChunkHandle, ReplicaMeta, Vec<u8>)>,
}

impl Serialize for ReplayStore {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Contents {
            chunk_bytes: self.chunk_bytes,
            incarnation: self.incarnation,
            chunks: self
                .chunks
                .iter()
                .map(|(&h, c)| (h, c.meta, c.bytes(0, c.len)))
                .collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ReplayStore {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let c = Contents::deserialize(d)?;
        let mut store = ReplayStore::new(c.chunk_bytes);
        store.incarnation = c.incarnation;
        for (h, meta, data) in c.chunks {
            let chunk = store.chunk_mut(h);
            chunk.meta = meta;
            chunk.splice(0, &data);
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests;
