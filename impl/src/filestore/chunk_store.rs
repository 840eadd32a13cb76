//! [`ChunkStore`] for [`FileStore`]: the model's replica operations, each a
//! change to one chunk's metadata in memory (and to its data file) that the
//! next sync makes durable. Separate because it is the contract the model
//! is checked against, written on top of the file formats and the sync
//! order rather than mixed in with them.

use leasehold_model::types::{
    ChunkHandle, ChunkStore, ChunkVersion, ClonePiece, CloneSlice, Offset, ReplicaMeta, Stamp,
    StoreError,
};
use std::fs::File;
use std::io;

use super::blocks::read_block;
use super::incarnation::write_incarnation;
use super::meta::reserve_slots;
use super::{io_error, ChunkMeta, Entry, FileStore, CHECKSUM_BLOCK_BYTES};
use crate::payload::{clone_bytes, clone_slice, Bytes};

impl FileStore {
    /// Runs `change` on the chunk's metadata (a fresh empty chunk if the
    /// store never saw it), with the chunk's data file open for writing,
    /// then makes the new metadata visible; the next sync makes it durable.
    /// `grows_to` says how long it may make the chunk (0: it writes no
    /// data).
    fn mutate(
        &self,
        chunk: ChunkHandle,
        grows_to: Offset,
        change: impl FnOnce(&mut ChunkMeta, &File) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut chunks = self.lock();
        let (mut meta, is_new) = match chunks.get(&chunk) {
            Some(Entry::Healthy(m)) => (m.clone(), false),
            Some(Entry::Damaged(_)) => return Err(StoreError::Corrupt),
            None => (ChunkMeta::default(), true),
        };
        // FAULT-2: past the store's room the change fails before it writes
        // anything, as a full disk's would.
        let max = self
            .inner
            .disk_bytes_max
            .load(std::sync::atomic::Ordering::Relaxed);
        let growth = grows_to.saturating_sub(meta.len);
        if self.disk_full() && (growth > 0 || is_new) {
            return Err(StoreError::NoSpace);
        }
        if growth > 0 && max != u64::MAX {
            let used: u64 = chunks
                .values()
                .map(|e| match e {
                    Entry::Healthy(m) => m.len,
                    Entry::Damaged(_) => 0,
                })
                .sum();
            if used.saturating_add(growth) > max {
                return Err(StoreError::NoSpace);
            }
        }
        // A new chunk's file goes by its temporary name until its first
        // sync renames it into place.
        let data = if is_new {
            self.inner
                .new_data_file(chunk, &self.inner.data_path_of(chunk, true))
        } else {
            self.inner.data_file(chunk, || self.inner.data_path(chunk))
        }
        .map_err(io_error)?;
        if is_new {
            reserve_slots(&data, self.inner.chunk_bytes)?;
            self.inner.unsynced().new_chunks.insert(chunk);
        }
        change(&mut meta, &data)?;
        chunks.insert(chunk, Entry::Healthy(meta));
        let mut unsynced = self.inner.unsynced();
        unsynced.chunks.insert(chunk);
        // Only a torn sync needs to know (a test's switch): off it, one
        // atomic load.
        if grows_to > 0
            && self
                .inner
                .tear_next_sync
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            unsynced.data_chunks.insert(chunk);
        }
        Ok(())
    }

    /// The metadata of a replica reads go to: a damaged one is corrupt, a
    /// missing one out of range.
    fn readable_meta(&self, chunk: ChunkHandle) -> Result<ChunkMeta, StoreError> {
        match self.lock().get(&chunk) {
            Some(Entry::Healthy(m)) => Ok(m.clone()),
            Some(Entry::Damaged(_)) => Err(StoreError::Corrupt),
            None => Err(StoreError::OutOfRange),
        }
    }

    /// `len` bytes of the chunk from `offset` on, each block's checksum
    /// checked unless `verify` is false (only a seeded bug reads so).
    fn read_blocks(
        &self,
        chunk: ChunkHandle,
        meta: &ChunkMeta,
        offset: Offset,
        len: u64,
        verify: bool,
    ) -> Result<Bytes, StoreError> {
        if offset > meta.len {
            return Err(StoreError::OutOfRange);
        }
        let end = offset.saturating_add(len).min(meta.len);
        if offset == end {
            return Ok(Bytes::default());
        }
        let data = self
            .inner
            .data_file(chunk, || self.data_path(chunk))
            .map_err(|e| match e.kind() {
                // Metadata says there is data; the file is gone.
                io::ErrorKind::NotFound => StoreError::Corrupt,
                _ => io_error(e),
            })?;
        let first_block = offset / CHECKSUM_BLOCK_BYTES;
        let last_block = (end - 1) / CHECKSUM_BLOCK_BYTES;
        let mut out = Vec::with_capacity((end - offset) as usize);
        for block in first_block..=last_block {
            let bytes = read_block(&data, meta, block, verify)?;
            let block_start = block * CHECKSUM_BLOCK_BYTES;
            let from = offset.saturating_sub(block_start) as usize;
            let to = ((end - block_start) as usize).min(bytes.len());
            out.extend_from_slice(&bytes[from..to]);
        }
        Ok(out.into())
    }
}

impl ChunkStore for FileStore {
    type Payload = Bytes;

    fn meta(&self, chunk: ChunkHandle) -> ReplicaMeta {
        match self.lock().get(&chunk) {
            Some(Entry::Healthy(m)) => m.replica,
            _ => ReplicaMeta::default(),
        }
    }

    fn set_version(&mut self, chunk: ChunkHandle, version: ChunkVersion) -> Result<(), StoreError> {
        self.mutate(chunk, 0, |meta, _| {
            meta.replica.version = version;
            Ok(())
        })
    }

    fn chunk_len(&self, chunk: ChunkHandle) -> Offset {
        match self.lock().get(&chunk) {
            Some(Entry::Healthy(m)) => m.len,
            _ => 0,
        }
    }

    fn write_at(
        &mut self,
        chunk: ChunkHandle,
        offset: Offset,
        data: &Bytes,
        stamp: Stamp,
    ) -> Result<(), StoreError> {
        let this = self.clone();
        let end = offset.saturating_add(data.as_slice().len() as u64);
        self.mutate(chunk, end, |meta, file| {
            this.splice(meta, file, offset, data.as_slice())?;
            meta.replica.applied = stamp;
            Ok(())
        })
    }

    fn pad_to(&mut self, chunk: ChunkHandle, end: Offset, stamp: Stamp) -> Result<(), StoreError> {
        if end > self.inner.chunk_bytes {
            return Err(StoreError::OutOfRange);
        }
        let this = self.clone();
        self.mutate(chunk, end, |meta, file| {
            // Padding is zeros; readers find records by their own framing.
            if end > meta.len {
                let zeros = vec![0u8; (end - meta.len) as usize];
                let at = meta.len;
                this.splice(meta, file, at, &zeros)?;
            }
            meta.replica.applied = stamp;
            Ok(())
        })
    }

    fn set_applied(&mut self, chunk: ChunkHandle, stamp: Stamp) -> Result<(), StoreError> {
        self.mutate(chunk, 0, |meta, _| {
            meta.replica.applied = stamp;
            Ok(())
        })
    }

    fn read(&self, chunk: ChunkHandle, offset: Offset, len: u64) -> Result<Bytes, StoreError> {
        let meta = self.readable_meta(chunk)?;
        if self.blocks_bad() {
            return Err(StoreError::Corrupt);
        }
        self.read_blocks(chunk, &meta, offset, len, true)
    }

    fn read_unverified(
        &self,
        chunk: ChunkHandle,
        offset: Offset,
        len: u64,
    ) -> Result<Bytes, StoreError> {
        let meta = self.readable_meta(chunk)?;
        self.read_blocks(chunk, &meta, offset, len, false)
    }

    fn clone_part(
        &self,
        chunk: ChunkHandle,
        from: Offset,
        units_max: u64,
    ) -> Result<CloneSlice<Bytes>, StoreError> {
        // As the model's store: bad blocks fail a clone even of a replica
        // this store does not hold (a read of one is `OutOfRange`).
        if self.blocks_bad() {
            return Err(StoreError::Corrupt);
        }
        // Read as a client's read is, every block verified: a corrupt
        // block fails the clone rather than spreading.
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
        let bytes = clone_bytes(pieces)?;
        let mut repairs = false;
        if from == 0 {
            // The replica starts over, and a replica whose metadata was
            // unreadable is repaired by it: its slots are rewritten.
            let mut chunks = self.lock();
            if let Some(Entry::Damaged(_)) = chunks.get(&chunk) {
                chunks.insert(chunk, Entry::Healthy(ChunkMeta::default()));
                repairs = true;
            }
        }
        let this = self.clone();
        let end = from.saturating_add(bytes.len() as u64);
        self.mutate(chunk, end, |meta, file| {
            if repairs {
                // The damaged replica's slots may still decode, with
                // numbers above the repair's first: clear them, so that
                // only the repair's own slots are ever read.
                reserve_slots(file, this.inner.chunk_bytes)?;
            }
            if from == 0 {
                meta.len = 0;
                meta.crcs.clear();
            }
            if from != meta.len {
                return Err(StoreError::Io(format!(
                    "clone part at {from}, but the replica ends at {}",
                    meta.len
                )));
            }
            this.splice(meta, file, from, &bytes)?;
            // Version 0 until the last part: a crash part-way leaves a
            // replica every report shows as stale.
            meta.replica = done.unwrap_or_default();
            Ok(())
        })
    }

    fn delete_replica(&mut self, chunk: ChunkHandle) -> Result<(), StoreError> {
        let mut chunks = self.lock();
        if chunks.remove(&chunk).is_none() {
            return Ok(());
        }
        let new = {
            let mut unsynced = self.inner.unsynced();
            unsynced.chunks.remove(&chunk);
            unsynced.new_chunks.remove(&chunk)
        };
        // One file: a crash leaves the whole replica, reported and
        // deleted again, or none.
        self.inner.forget_file(chunk);
        match std::fs::remove_file(self.inner.data_path_of(chunk, new)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_error(e)),
            _ => {}
        }
        if self.inner.durability == super::Durability::Fsync {
            super::sync::sync_dir(&self.inner.dir)?;
        }
        Ok(())
    }

    fn chunks(&self) -> Vec<(ChunkHandle, ChunkVersion)> {
        self.lock()
            .iter()
            .filter_map(|(&h, e)| match e {
                Entry::Healthy(m) if m.replica.version > 0 => Some((h, m.replica.version)),
                _ => None,
            })
            .collect()
    }

    fn incarnation(&self) -> u32 {
        *self
            .inner
            .incarnation
            .lock()
            .expect("incarnation lock poisoned")
    }

    fn count_restart(&mut self) -> Result<u32, StoreError> {
        let mut count = self
            .inner
            .incarnation
            .lock()
            .expect("incarnation lock poisoned");
        let next = count
            .checked_add(1)
            .ok_or(StoreError::Io("restart count overflow".into()))?;
        // Durable before the caller reports it to the master.
        write_incarnation(&self.inner.dir, next).inspect_err(|e| {
            tracing::error!(
                dir = %self.inner.dir.display(),
                "cannot record this chunkserver's restart count, so it stays silent \
                 (the master leaves it out) until it restarts with room: {e}"
            )
        })?;
        *count = next;
        Ok(next)
    }
}
