//! Group commit: what changed since the last sync, and the sync that makes
//! it durable: per changed chunk, its next metadata slot written into its
//! data file and one fdatasync of that file (data and slot together), then
//! the directory if a chunk's data file was renamed into place. Separate
//! because this is the store's whole argument for surviving a crash, and
//! it is easier to check in one place than spread among the mutations
//! that feed it.

use leasehold_model::types::{ChunkHandle, StoreError};
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::Path;

use super::meta::write_meta;
use super::{io_error, Durability, Entry, Inner};

/// The error of a sync [`super::FileStore::tear_next_sync`] tore: the
/// crash it stands for, which a replay expects to stop the node.
pub const TORN_SYNC: &str = "the sync was torn (FileStore::tear_next_sync)";

/// What the next sync must make durable.
#[derive(Default)]
pub(super) struct Unsynced {
    /// Chunks whose metadata changed (with their data or not: one sync of
    /// the chunk's file covers both).
    pub(super) chunks: BTreeSet<ChunkHandle>,
    /// Chunks whose data file still has its temporary name: the next sync
    /// renames it into place once synced.
    pub(super) new_chunks: BTreeSet<ChunkHandle>,
    /// Chunks whose data (not only metadata) changed since a torn sync was
    /// armed: what it tears ([`super::FileStore::tear_next_sync`]).
    pub(super) data_chunks: BTreeSet<ChunkHandle>,
}

impl Inner {
    pub(super) fn unsynced(&self) -> std::sync::MutexGuard<'_, Unsynced> {
        self.unsynced.lock().expect("unsynced set lock poisoned")
    }

    pub(super) fn sync(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self.sync_failed.load(Ordering::SeqCst) {
            return Err(StoreError::Io(
                "an earlier sync failed; the store must be reopened".into(),
            ));
        }
        let result = self.sync_pending();
        if result.is_err() {
            self.sync_failed.store(true, Ordering::SeqCst);
        }
        result
    }

    fn sync_pending(&self) -> Result<(), StoreError> {
        let mut chunks = self.chunks.lock().expect("chunk metadata lock poisoned");
        let mut unsynced = self.unsynced();
        if unsynced.chunks.is_empty() {
            return Ok(());
        }
        let fsync = self.durability == Durability::Fsync;
        let data_chunks = std::mem::take(&mut unsynced.data_chunks);
        let tear = !data_chunks.is_empty()
            && self
                .tear_next_sync
                .swap(false, std::sync::atomic::Ordering::SeqCst);
        let mut renamed = false;
        while let Some(&chunk) = unsynced.chunks.first() {
            if let Some(Entry::Healthy(meta)) = chunks.get_mut(&chunk) {
                let new = unsynced.new_chunks.contains(&chunk);
                let path = || self.data_path_of(chunk, new);
                let data = self.data_file(chunk, path).map_err(io_error)?;
                write_meta(&data, self.chunk_bytes, meta)?;
                if tear && meta.len > 0 && data_chunks.contains(&chunk) {
                    use std::os::unix::fs::FileExt;
                    data.write_all_at(&[0], meta.len - 1).map_err(io_error)?;
                }
                // The one sync: the batch's data and the slot covering it,
                // in no order (a crash part-way is the load's to judge).
                if fsync {
                    data.sync_data().map_err(io_error)?;
                }
                if new {
                    fs::rename(path(), self.data_path_of(chunk, false)).map_err(io_error)?;
                    unsynced.new_chunks.remove(&chunk);
                    renamed = true;
                }
            }
            unsynced.chunks.remove(&chunk);
        }
        if fsync && renamed {
            sync_dir(&self.dir)?;
        }
        if tear {
            return Err(StoreError::Io(TORN_SYNC.into()));
        }
        Ok(())
    }
}

impl Drop for Inner {
    // A store closed in an orderly way (a test, a clean shutdown) keeps what
    // it was told; a crash keeps only what was synced, as on a real disk.
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::error!(dir = %self.dir.display(), "chunk store not synced at close: {e}");
        }
    }
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error)
}
