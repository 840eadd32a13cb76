//! Group commit: what changed since the last sync, and the sync that makes
//! it durable in order (data files and their directory entries, then
//! `.meta` slots and theirs). Separate because that order is the store's
//! whole argument for surviving a crash, and it is easier to check in one
//! place than spread among the mutations that feed it.

use leasehold_model::types::{ChunkHandle, StoreError};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use super::meta::write_meta;
use super::{io_error, Durability, Entry, Inner};

/// What the next sync must make durable.
#[derive(Default)]
pub(super) struct Unsynced {
    /// Chunks whose metadata changed, and whether their data did too.
    pub(super) chunks: BTreeMap<ChunkHandle, bool>,
    /// A data file was created: its directory entry must be durable before
    /// metadata that refers to it.
    pub(super) new_data_files: bool,
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
        // Data before the metadata that covers it, so a crash leaves old
        // metadata over new data (ignored or detected), never the reverse.
        if fsync {
            for (&chunk, _) in unsynced.chunks.iter().filter(|(_, &data)| data) {
                File::open(self.data_path(chunk))
                    .and_then(|f| f.sync_data())
                    .map_err(io_error)?;
            }
            if unsynced.new_data_files {
                sync_dir(&self.dir)?;
            }
        }
        unsynced.new_data_files = false;
        let mut new_meta_files = false;
        while let Some((&chunk, _)) = unsynced.chunks.first_key_value() {
            if let Some(Entry::Healthy(meta)) = chunks.get_mut(&chunk) {
                new_meta_files |=
                    write_meta(&self.meta_path(chunk), self.chunk_bytes, meta, fsync)?;
            }
            unsynced.chunks.remove(&chunk);
        }
        if fsync && new_meta_files {
            sync_dir(&self.dir)?;
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
