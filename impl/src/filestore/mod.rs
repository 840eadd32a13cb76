//! [`FileStore`]: chunk replicas as files, checksummed per 64 KiB block.
//!
//! Layout under the store's directory, one file per chunk replica,
//! `chunk-<handle>.dat`:
//!
//! - the chunk's bytes, offset 0 at file offset 0;
//! - past the largest the data may grow to (the chunk size, rounded up to
//!   a page; the file is sparse between), two slots, each able to hold
//!   the chunk's metadata: a sequence number, version, last applied
//!   [`Stamp`], data length and one CRC32C per 64 KiB block of data,
//!   followed by a CRC32C of the slot itself. A sync writes the next
//!   sequence number into the slot not holding the current one, in
//!   place, then fdatasyncs the file: one sync makes the batch's data and
//!   the metadata covering it durable together. Loading takes the valid
//!   slot with the higher number, and checks the blocks it changed
//!   against the data (below). (Replacing a file by rename cost about a
//!   millisecond per mutation here, fsync or not: ext4 flushes a file
//!   renamed over another. A separate metadata file, synced after the
//!   data, cost a second sync per batch: issue #13.)
//!
//! The data length in the slot is the truth; bytes past it (left by a
//! crash during a write) are never read and are overwritten with zeros
//! before the length grows over them.
//!
//! A mutation writes the data at once but makes it durable later, at the
//! next [`FileStore::sync`]: the host calls it before it carries out any
//! command that follows a mutation (a reply, a forward, a save), so nothing
//! is acknowledged before it is on disk, and every mutation handled since
//! the last sync shares one sync (group commit). A crash during a sync can
//! leave any part of what it wrote durable:
//!
//! - the new slot not durable (torn or never written): the older slot
//!   wins, and the data past its length is ignored. Blocks the batch
//!   overwrote in place no longer match the older checksums: reading them
//!   returns [`StoreError::Corrupt`], never the torn bytes. (Appends write
//!   only past the durable length, so only an unacknowledged overwrite can
//!   leave such blocks.)
//! - the new slot durable and some data it covers not: the load finds a
//!   block the new slot changed failing its checksum. It cannot tell that
//!   from a block gone bad after an acknowledged sync (where falling back
//!   to the older slot would drop acknowledged mutations under the same
//!   version), so the replica is damaged: reported at version 0, never
//!   used, cloned back by the master (the model's torn sync,
//!   docs/model.md "Barriers").
//!
//! A chunk's data file is created as `chunk-<handle>.dat.new` and renamed
//! into place by its first sync, once synced: a crash before leaves no
//! chunk rather than a file whose only slot may be torn. A store of the
//! previous format (slots in a `.meta` file beside the data) is converted
//! when opened.
//!
//! [`Durability::PageCache`] skips the fsyncs (data, metadata, directory)
//! but keeps the order and the writes: a killed process loses nothing it
//! acknowledged, a machine crash may. It exists to measure what durability
//! costs; [`Durability::Fsync`] is the default.
//!
//! Metadata lives in memory too (loaded at open), because [`ChunkStore`]'s
//! `meta`, `chunk_len` and `chunks` cannot fail. All clones, and every
//! `FileStore` opened on the same directory in this process, share that one
//! copy, so they agree with each other and with the files.
//!
//! [`Stamp`]: leasehold_model::types::Stamp
//! [`ChunkStore`]: leasehold_model::types::ChunkStore

mod blocks;
mod chunk_store;
pub(crate) mod fuzzing;
mod incarnation;
mod meta;
mod sync;
pub use sync::TORN_SYNC;
#[cfg(test)]
mod tests;

use leasehold_model::types::{ChunkHandle, ReplicaMeta, StoreError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Debug, Formatter};
use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use incarnation::{load_incarnation, reserve_incarnation};
use meta::load_dir;
use sync::Unsynced;

/// Bytes covered by one checksum, as in the GFS paper.
pub const CHECKSUM_BLOCK_BYTES: u64 = 64 * 1024;

/// Where a chunk file (`chunk-<handle>.dat`) of a store of `chunk_bytes`
/// chunks stops holding data and its metadata slots begin: for tools and
/// tests that look at the files themselves.
pub fn metadata_offset(chunk_bytes: u64) -> u64 {
    meta::slots_offset(chunk_bytes)
}

/// The index of the last data byte written in a chunk file's bytes (its
/// last non-zero byte before the slots), if any: what a test flips to make
/// the block an append extends go bad.
pub fn last_data_byte(file: &[u8], chunk_bytes: u64) -> Option<usize> {
    let end = (metadata_offset(chunk_bytes) as usize).min(file.len());
    file[..end].iter().rposition(|&b| b != 0)
}

/// Whether a sync reaches the disk or only the kernel's page cache.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// fsync before anything that follows a mutation is sent: survives a
    /// machine crash.
    #[default]
    Fsync,
    /// Written but not synced: survives a killed process, not a machine
    /// crash. For measuring what the fsyncs cost.
    PageCache,
}

/// A handle to a directory of chunk replicas. Equality, hashing and
/// serialization are by directory and chunk size: the files are the state.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    chunk_bytes: u64,
    durability: Durability,
    chunks: Mutex<BTreeMap<ChunkHandle, Entry>>,
    /// Changes made since the last sync. Locked after `chunks` when both are.
    unsynced: Mutex<Unsynced>,
    /// A sync failed. The kernel reports a failed writeback once, so a
    /// later fsync may succeed over lost pages: after a failure the store
    /// never syncs again (the host has stopped the node; a restart reads
    /// what is on disk).
    sync_failed: std::sync::atomic::AtomicBool,
    /// The chunkserver's restart count, mirrored from the `incarnation`
    /// file (the model's `ChunkStore::incarnation`).
    incarnation: Mutex<u32>,
    /// Chunk data bytes the store may hold in all (`u64::MAX`: no limit
    /// but the disk's); see [`FileStore::limit_disk_bytes`].
    disk_bytes_max: std::sync::atomic::AtomicU64,
    /// Injected faults (see [`FileStore::fill_disk`] and
    /// [`FileStore::corrupt_blocks`]); none in a node's own run.
    disk_full: std::sync::atomic::AtomicBool,
    blocks_bad: std::sync::atomic::AtomicBool,
    /// [`FileStore::tear_next_sync`].
    tear_next_sync: std::sync::atomic::AtomicBool,
    /// Data files kept open, by chunk (see [`Inner::data_file`]). Locked
    /// after `chunks` and `unsynced` when they are held.
    files: Mutex<HashMap<ChunkHandle, Arc<File>>>,
}

/// Data files kept open at most; past it the cache starts over. A server
/// appends to a few chunks at a time, and several stores may share one
/// process's file descriptors (`leasehold cluster` runs three).
const OPEN_DATA_FILES_MAX: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Healthy(ChunkMeta),
    /// The slots are unreadable or fail their checksums, or the newest
    /// fails against the data it covers (a torn sync). The replica
    /// reports version 0 (stale, so the master never uses it) and refuses
    /// reads and mutations.
    Damaged(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct ChunkMeta {
    replica: ReplicaMeta,
    len: u64,
    /// One per block of `len` bytes; the last block may be partial.
    crcs: Vec<u32>,
    /// Of the slot last written (0: none yet); it is in slot `seq % 2`.
    seq: u64,
}

/// Stores open in this process, by canonical directory, so that two opens
/// of one directory share one metadata cache instead of diverging.
fn open_stores() -> &'static Mutex<HashMap<PathBuf, Weak<Inner>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Inner>>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

impl FileStore {
    /// Opens (creating if needed) the store in `dir`, loading every chunk's
    /// metadata. Reopening a directory already open in this process returns
    /// a handle to the same store.
    pub fn open(dir: &Path, chunk_bytes: u64) -> Result<Self, StoreError> {
        Self::open_with(dir, chunk_bytes, Durability::Fsync)
    }

    /// [`FileStore::open`] with a choice of durability.
    pub fn open_with(
        dir: &Path,
        chunk_bytes: u64,
        durability: Durability,
    ) -> Result<Self, StoreError> {
        assert!(chunk_bytes > 0, "chunk size must be positive");
        fs::create_dir_all(dir).map_err(io_error)?;
        let dir = dir.canonicalize().map_err(io_error)?;
        let mut open = open_stores().lock().expect("store registry poisoned");
        if let Some(inner) = open.get(&dir).and_then(Weak::upgrade) {
            if inner.chunk_bytes != chunk_bytes || inner.durability != durability {
                return Err(StoreError::Io(format!(
                    "{} is already open with chunk size {} and {:?} (asked for {chunk_bytes} and {durability:?})",
                    dir.display(),
                    inner.chunk_bytes,
                    inner.durability,
                )));
            }
            return Ok(FileStore { inner });
        }
        let chunks = load_dir(&dir, chunk_bytes)?;
        let incarnation = load_incarnation(&dir)?;
        let inner = Arc::new(Inner {
            dir: dir.clone(),
            chunk_bytes,
            durability,
            chunks: Mutex::new(chunks),
            unsynced: Mutex::default(),
            sync_failed: Default::default(),
            incarnation: Mutex::new(incarnation),
            disk_bytes_max: std::sync::atomic::AtomicU64::new(u64::MAX),
            disk_full: Default::default(),
            blocks_bad: Default::default(),
            tear_next_sync: Default::default(),
            files: Mutex::default(),
        });
        open.retain(|_, w| w.strong_count() > 0);
        open.insert(dir, Arc::downgrade(&inner));
        Ok(FileStore { inner })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Keeps room on the disk for the server's next restart count (see
    /// `incarnation::reserve_incarnation`): the chunkserver's own store
    /// does at start, tools that open a store to look do not.
    pub fn keep_room_for_restart_count(&self) {
        let _count = self
            .inner
            .incarnation
            .lock()
            .expect("incarnation lock poisoned");
        reserve_incarnation(&self.inner.dir);
    }

    /// Caps the chunk data this store holds, over all its chunks: a write
    /// or pad that would grow them past `max` fails with `NoSpace`, as on
    /// a full disk (`None`: only the disk limits it). The chunkserver's
    /// `disk_bytes_max` in cluster.toml.
    pub fn limit_disk_bytes(&self, max: Option<u64>) {
        self.inner.disk_bytes_max.store(
            max.unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// The disk is full from now on (the model's store fault): every
    /// change that needs room, a longer replica or a new one, fails
    /// `NoSpace`; what is stored stays readable and its metadata
    /// changeable in place. For replaying a checker's path, whose
    /// environment fills a disk at a chosen step; lasts as long as this
    /// store is open (a restart opens it again, and the caller fills it
    /// again as the model's storage stays full).
    pub fn fill_disk(&self) {
        self.inner
            .disk_full
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The disk's blocks go bad (the model's read fault): every byte of
    /// every data file is changed on disk, so that the checksums catch it
    /// as they would a real bad block, and every later read fails
    /// `Corrupt`, of data written since too, as the model's store does.
    pub fn corrupt_blocks(&self) -> Result<(), StoreError> {
        use std::os::unix::fs::FileExt;
        let chunks: Vec<ChunkHandle> = self.lock().keys().copied().collect();
        for chunk in chunks {
            // The data only: the slots past it stay readable, as metadata
            // is on a disk whose data blocks went bad.
            let path = self.data_path(chunk);
            let file = match fs::OpenOptions::new().read(true).write(true).open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(e)),
            };
            let len = file
                .metadata()
                .map_err(io_error)?
                .len()
                .min(self.inner.chunk_bytes);
            let mut bytes = vec![0u8; len as usize];
            file.read_exact_at(&mut bytes, 0).map_err(io_error)?;
            bytes.iter_mut().for_each(|b| *b = !*b);
            file.write_all_at(&bytes, 0).map_err(io_error)?;
        }
        self.keep_blocks_bad();
        Ok(())
    }

    /// Forgets what was written since the last sync, as a machine crash
    /// does, and a killed process too (the metadata reaches the file only
    /// at a sync), where an orderly close would sync it (for replaying the
    /// model's crash before the barrier on an in-process node): the
    /// next sync, the one at close included, writes nothing of it, so a
    /// reopened store holds what the last sync made durable. The data
    /// file may keep the bytes; the metadata never saw them. Bytes past
    /// the durable length are then ignored; an overwrite of durable bytes
    /// would stay under the old checksums, so reads of its block fail
    /// (`Corrupt`) where the model's store, after its crash before the
    /// barrier, returns the old bytes. The model's configurations with
    /// crashes at a barrier append only.
    pub fn lose_unsynced(&self) {
        let mut unsynced = self.inner.unsynced();
        unsynced.chunks.clear();
        unsynced.data_chunks.clear();
    }

    /// The next sync of data written from now on is torn, as by a machine
    /// crash in the middle of it (for tests): every changed chunk's new
    /// metadata slot reaches the disk, but the last byte of each chunk
    /// whose data the batch wrote does not (it is zeroed), and the sync
    /// fails, which stops the node as the crash would. A restart then finds
    /// such a replica damaged (docs/model.md, "Torn syncs"). For a batch
    /// that appended to the chunk, the zeroed byte is one of the batch's.
    /// Syncs of metadata alone go through untouched until then.
    pub fn tear_next_sync(&self) {
        self.inner
            .tear_next_sync
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The reads of a store reopened after [`FileStore::corrupt_blocks`]
    /// keep failing, as the model's store's do across a restart (the
    /// bytes changed then are still changed on disk).
    pub fn keep_blocks_bad(&self) {
        self.inner
            .blocks_bad
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn disk_full(&self) -> bool {
        self.inner
            .disk_full
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn blocks_bad(&self) -> bool {
        self.inner
            .blocks_bad
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn chunk_bytes(&self) -> u64 {
        self.inner.chunk_bytes
    }

    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    fn data_path(&self, chunk: ChunkHandle) -> PathBuf {
        self.inner.data_path(chunk)
    }

    /// Makes every change since the last sync durable (see the module
    /// comment for the order). Cheap when nothing changed. After a failure
    /// nothing that depends on the changes may be sent, and every later
    /// sync fails too: the host stops the node, and a restart reads what is
    /// on disk.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.inner.sync()
    }

    /// Whether a change awaits [`FileStore::sync`].
    pub fn has_unsynced(&self) -> bool {
        !self.inner.unsynced().chunks.is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ChunkHandle, Entry>> {
        self.inner
            .chunks
            .lock()
            .expect("chunk metadata lock poisoned")
    }
}

impl Inner {
    /// The chunk's data file at `path`, open for reading and writing. Kept
    /// open: every write and every sync opened it again, 3.8 `openat` (and
    /// as many `close`) per 1 KiB append across the cluster (issue #13).
    /// A handle follows its file through the rename of its first sync; a
    /// replica deleted or created afresh drops it ([`Inner::forget_file`],
    /// [`Inner::new_data_file`]). `path` is asked for only when the file is
    /// not open (building it formats a name and may lock the unsynced set),
    /// and never with the files lock held, which is taken after it.
    fn data_file(
        &self,
        chunk: ChunkHandle,
        path: impl FnOnce() -> PathBuf,
    ) -> io::Result<Arc<File>> {
        let open = self.open_files().get(&chunk).cloned();
        if let Some(file) = open {
            return Ok(file);
        }
        let file = OpenOptions::new().read(true).write(true).open(path())?;
        Ok(self.keep_open(chunk, file))
    }

    /// A new replica's data file at `path`, created empty (or emptied).
    fn new_data_file(&self, chunk: ChunkHandle, path: &Path) -> io::Result<Arc<File>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(self.keep_open(chunk, file))
    }

    fn keep_open(&self, chunk: ChunkHandle, file: File) -> Arc<File> {
        let file = Arc::new(file);
        let mut files = self.open_files();
        if files.len() >= OPEN_DATA_FILES_MAX {
            files.clear();
        }
        files.insert(chunk, file.clone());
        file
    }

    fn open_files(&self) -> std::sync::MutexGuard<'_, HashMap<ChunkHandle, Arc<File>>> {
        self.files.lock().expect("open files lock poisoned")
    }

    fn forget_file(&self, chunk: ChunkHandle) {
        self.open_files().remove(&chunk);
    }

    /// The chunk's data file: under its temporary name until its first
    /// sync. Locks the unsynced set, so not to be called with it held.
    fn data_path(&self, chunk: ChunkHandle) -> PathBuf {
        self.data_path_of(chunk, self.unsynced().new_chunks.contains(&chunk))
    }

    fn data_path_of(&self, chunk: ChunkHandle, new: bool) -> PathBuf {
        match new {
            false => self.dir.join(format!("chunk-{chunk}.dat")),
            true => self
                .dir
                .join(format!("chunk-{chunk}.{}", meta::DATA_NEW_SUFFIX)),
        }
    }
}

/// Maps an I/O failure to what the protocol can act on: a full disk is its
/// own reason, everything else is reported with the OS's text.
fn io_error(e: io::Error) -> StoreError {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => StoreError::NoSpace,
        _ => StoreError::Io(e.to_string()),
    }
}

impl Debug for FileStore {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "FileStore({})", self.inner.dir.display())
    }
}

impl PartialEq for FileStore {
    fn eq(&self, other: &Self) -> bool {
        self.inner.dir == other.inner.dir && self.inner.chunk_bytes == other.inner.chunk_bytes
    }
}

impl Eq for FileStore {}

impl Hash for FileStore {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.dir.hash(state);
        self.inner.chunk_bytes.hash(state);
    }
}

/// What a saved actor storage holds for its chunk store: where the files are.
#[derive(Serialize, Deserialize)]
struct StoreLocation {
    dir: PathBuf,
    chunk_bytes: u64,
}

impl Serialize for FileStore {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StoreLocation {
            dir: self.inner.dir.clone(),
            chunk_bytes: self.inner.chunk_bytes,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for FileStore {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let at = StoreLocation::deserialize(d)?;
        // `open` asserts a positive size, which the cluster config checks;
        // saved bytes are checked here, so a bad file is an error.
        if at.chunk_bytes == 0 {
            return Err(serde::de::Error::custom(format!(
                "chunk store {} saved with a chunk size of 0",
                at.dir.display()
            )));
        }
        FileStore::open(&at.dir, at.chunk_bytes).map_err(|e| {
            serde::de::Error::custom(format!(
                "cannot reopen chunk store {}: {e}",
                at.dir.display()
            ))
        })
    }
}
