//! [`FileStore`]: chunk replicas as files, checksummed per 64 KiB block.
//!
//! Layout under the store's directory, one pair per chunk replica:
//!
//! - `chunk-<handle>.dat`: the chunk's bytes, offset 0 at file offset 0.
//! - `chunk-<handle>.meta`: two slots, each able to hold the chunk's
//!   metadata: a sequence number, version, last applied [`Stamp`], data
//!   length and one CRC32C per 64 KiB block of data, followed by a CRC32C of
//!   the slot itself. A sync writes the next sequence number into the slot
//!   not holding the current one, in place, and fdatasyncs it; loading takes
//!   the valid slot with the higher number. So a write torn by a crash
//!   leaves the previous metadata, like the torn tail of a log. (Replacing
//!   a file by rename cost about a millisecond per mutation here, fsync or
//!   not: ext4 flushes a file renamed over another.)
//!
//! The data length in `.meta` is the truth; bytes past it in `.dat` (left by
//! a crash during a write) are never read and are overwritten with zeros
//! before the length grows over them.
//!
//! A mutation writes the data at once but makes it durable later, at the
//! next [`FileStore::sync`]: the host calls it before it carries out any
//! command that follows a mutation (a reply, a forward, a save), so nothing
//! is acknowledged before it is on disk, and every mutation handled since
//! the last sync shares one sync (group commit). A sync fsyncs each changed
//! data file first, then writes and fsyncs each changed `.meta` slot. A
//! crash between the two leaves blocks whose bytes no longer match the old
//! checksums: reading them returns [`StoreError::Corrupt`], never the torn
//! bytes. The GFS paper's chunkservers check each 64 KiB block the same
//! way before returning data, so corruption is detected, not served.
//! (Appends write only past the durable length, which the old `.meta`
//! ignores, so only an unacknowledged overwrite can leave such blocks.)
//!
//! [`Durability::PageCache`] skips the fsyncs (data, metadata, directory)
//! but keeps the order and the writes: a killed process loses nothing it
//! acknowledged, a machine crash may. It exists to measure what durability
//! costs; [`Durability::Fsync`] is the default.
//!
//! Overwriting part of a block ([00106]: a secondary writes a record at the
//! primary's offset even over existing data) verifies the block's bytes that
//! survive the write before recomputing its checksum, so a write never
//! launders corruption it did not cause.
//!
//! Metadata lives in memory too (loaded at open), because [`ChunkStore`]'s
//! `meta`, `chunk_len` and `chunks` cannot fail. All clones, and every
//! `FileStore` opened on the same directory in this process, share that one
//! copy, so they agree with each other and with the files.

use leasehold_model::types::{
    ChunkHandle, ChunkStore, ChunkVersion, Offset, ReplicaMeta, Stamp, StoreError,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Debug, Formatter};
use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::payload::Bytes;

/// Bytes covered by one checksum, as in the GFS paper.
pub const CHECKSUM_BLOCK_BYTES: u64 = 64 * 1024;

const META_MAGIC: &[u8; 8] = b"LHCHUNK2";
/// magic, sequence, version, epoch, serial, length, block count.
const META_HEADER_BYTES: usize = 8 + 8 * 5 + 4;
/// Metadata slots per `.meta` file.
const META_SLOTS: u64 = 2;
/// Slots start at page boundaries so that writing one never touches the
/// other's pages.
const META_SLOT_ALIGN: u64 = 4096;

/// Bytes of one metadata slot: room for every block's checksum.
fn meta_slot_bytes(chunk_bytes: u64) -> u64 {
    let most = META_HEADER_BYTES as u64 + 4 * chunk_bytes.div_ceil(CHECKSUM_BLOCK_BYTES) + 4;
    most.div_ceil(META_SLOT_ALIGN) * META_SLOT_ALIGN
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
}

/// What the next sync must make durable.
#[derive(Default)]
struct Unsynced {
    /// Chunks whose metadata changed, and whether their data did too.
    chunks: BTreeMap<ChunkHandle, bool>,
    /// A data file was created: its directory entry must be durable before
    /// metadata that refers to it.
    new_data_files: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Healthy(ChunkMeta),
    /// The `.meta` file is unreadable or fails its checksum. The replica
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
        let chunks = load_dir(&dir)?;
        let incarnation = load_incarnation(&dir)?;
        let inner = Arc::new(Inner {
            dir: dir.clone(),
            chunk_bytes,
            durability,
            chunks: Mutex::new(chunks),
            unsynced: Mutex::default(),
            sync_failed: Default::default(),
            incarnation: Mutex::new(incarnation),
        });
        open.retain(|_, w| w.strong_count() > 0);
        open.insert(dir, Arc::downgrade(&inner));
        Ok(FileStore { inner })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
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

    /// Runs `change` on the chunk's metadata (a fresh empty chunk if the
    /// store never saw it), with the chunk's data file open for writing,
    /// then makes the new metadata visible; the next sync makes it durable.
    /// `writes_data` says whether `change` writes the data file.
    fn mutate(
        &self,
        chunk: ChunkHandle,
        writes_data: bool,
        change: impl FnOnce(&mut ChunkMeta, &File) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut chunks = self.lock();
        let (mut meta, is_new) = match chunks.get(&chunk) {
            Some(Entry::Healthy(m)) => (m.clone(), false),
            Some(Entry::Damaged(_)) => return Err(StoreError::Corrupt),
            None => (ChunkMeta::default(), true),
        };
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.data_path(chunk))
            .map_err(io_error)?;
        change(&mut meta, &data)?;
        chunks.insert(chunk, Entry::Healthy(meta));
        let mut unsynced = self.inner.unsynced();
        *unsynced.chunks.entry(chunk).or_default() |= writes_data;
        unsynced.new_data_files |= is_new;
        Ok(())
    }

    /// Replaces `[offset, offset + new.len())` with `new`, filling any gap
    /// between the current end and `offset` with zeros. Only the new bytes
    /// (and the gap) are written; the old bytes that share a block with
    /// them are read, verified and fed to the block's new checksum, never
    /// rewritten, so an append costs one copy into the page cache.
    fn splice(
        &self,
        meta: &mut ChunkMeta,
        data: &File,
        offset: u64,
        new: &[u8],
    ) -> Result<(), StoreError> {
        let end = offset
            .checked_add(new.len() as u64)
            .ok_or(StoreError::OutOfRange)?;
        if end > self.inner.chunk_bytes {
            return Err(StoreError::OutOfRange);
        }
        let old_len = meta.len;
        let write_start = offset.min(old_len);
        if write_start == end {
            return Ok(());
        }
        let new_len = old_len.max(end);
        let first_block = write_start / CHECKSUM_BLOCK_BYTES;
        let last_block = (end - 1) / CHECKSUM_BLOCK_BYTES;
        let region_start = first_block * CHECKSUM_BLOCK_BYTES;
        let last_start = last_block * CHECKSUM_BLOCK_BYTES;
        let region_end = (last_start + CHECKSUM_BLOCK_BYTES).min(new_len);

        // Old bytes that share a block with the write survive it: verify
        // them before they go into a new checksum, and before anything is
        // written, so a refused write changes nothing.
        let prefix = if region_start < write_start {
            read_verified_block(data, meta, first_block)?
        } else {
            Vec::new()
        };
        let keeps_suffix = end < old_len.min(last_start + CHECKSUM_BLOCK_BYTES);
        let last_read;
        let suffix: &[u8] = match (
            keeps_suffix,
            last_block == first_block && !prefix.is_empty(),
        ) {
            (false, _) => &[],
            (true, true) => &prefix,
            (true, false) => {
                last_read = read_verified_block(data, meta, last_block)?;
                &last_read
            }
        };
        let gap = vec![0u8; offset.saturating_sub(old_len) as usize];

        if !gap.is_empty() {
            data.write_all_at(&gap, old_len).map_err(io_error)?;
        }
        data.write_all_at(new, offset).map_err(io_error)?;

        // The region's final bytes, in order, as slices of what is at hand.
        let mut pieces: Vec<(u64, &[u8])> = Vec::with_capacity(4);
        if !prefix.is_empty() {
            pieces.push((
                region_start,
                &prefix[..(write_start - region_start) as usize],
            ));
        }
        pieces.push((old_len.min(offset), &gap));
        pieces.push((offset, new));
        if keeps_suffix {
            let at = (end - last_start) as usize;
            let until = (old_len - last_start) as usize;
            pieces.push((end, &suffix[at..until.min(suffix.len())]));
        }
        meta.len = new_len;
        meta.crcs.resize(block_count(new_len), 0);
        for block in first_block..=last_block {
            let from = block * CHECKSUM_BLOCK_BYTES;
            let to = (from + CHECKSUM_BLOCK_BYTES).min(region_end);
            let mut crc = 0;
            for &(at, bytes) in &pieces {
                let lo = from.max(at);
                let hi = to.min(at + bytes.len() as u64);
                if lo < hi {
                    crc =
                        crc32c::crc32c_append(crc, &bytes[(lo - at) as usize..(hi - at) as usize]);
                }
            }
            meta.crcs[block as usize] = crc;
        }
        Ok(())
    }
}

impl Inner {
    fn data_path(&self, chunk: ChunkHandle) -> PathBuf {
        self.dir.join(format!("chunk-{chunk}.dat"))
    }

    fn meta_path(&self, chunk: ChunkHandle) -> PathBuf {
        self.dir.join(format!("chunk-{chunk}.meta"))
    }

    fn unsynced(&self) -> std::sync::MutexGuard<'_, Unsynced> {
        self.unsynced.lock().expect("unsynced set lock poisoned")
    }

    fn sync(&self) -> Result<(), StoreError> {
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

/// The bytes of one block of data (partial if it is the last), checked.
fn read_verified_block(data: &File, meta: &ChunkMeta, block: u64) -> Result<Vec<u8>, StoreError> {
    let start = block * CHECKSUM_BLOCK_BYTES;
    let end = (start + CHECKSUM_BLOCK_BYTES).min(meta.len);
    assert!(
        start < end,
        "block {block} is past the data ({} bytes)",
        meta.len
    );
    let mut buf = vec![0u8; (end - start) as usize];
    match data.read_exact_at(&mut buf, start) {
        Ok(()) => {}
        // The metadata promises bytes the file does not have.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(StoreError::Corrupt),
        Err(e) => return Err(io_error(e)),
    }
    // STORE-1: a block that fails its checksum is an error, never data.
    if crc32c::crc32c(&buf) != meta.crcs[block as usize] {
        return Err(StoreError::Corrupt);
    }
    Ok(buf)
}

fn block_count(len: u64) -> usize {
    len.div_ceil(CHECKSUM_BLOCK_BYTES) as usize
}

/// Maps an I/O failure to what the protocol can act on: a full disk is its
/// own reason, everything else is reported with the OS's text.
fn io_error(e: io::Error) -> StoreError {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => StoreError::NoSpace,
        _ => StoreError::Io(e.to_string()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error)
}

fn encode_meta(meta: &ChunkMeta) -> Vec<u8> {
    assert_eq!(meta.crcs.len(), block_count(meta.len));
    let mut out = Vec::with_capacity(META_HEADER_BYTES + 4 * meta.crcs.len() + 4);
    out.extend_from_slice(META_MAGIC);
    for field in [
        meta.seq,
        meta.replica.version,
        meta.replica.applied.epoch,
        meta.replica.applied.serial,
        meta.len,
    ] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    out.extend_from_slice(&(meta.crcs.len() as u32).to_le_bytes());
    for crc in &meta.crcs {
        out.extend_from_slice(&crc.to_le_bytes());
    }
    let own_crc = crc32c::crc32c(&out);
    out.extend_from_slice(&own_crc.to_le_bytes());
    out
}

/// Decodes one slot; bytes after the slot's own checksum are ignored.
fn decode_meta(slot: &[u8]) -> Result<ChunkMeta, String> {
    if slot.len() >= 8 && &slot[..8] == b"LHCHUNK1" {
        return Err("metadata of an older leasehold (LHCHUNK1); this one reads LHCHUNK2".into());
    }
    if slot.len() < META_HEADER_BYTES + 4 || &slot[..8] != META_MAGIC {
        return Err("not chunk metadata".into());
    }
    let u64_at =
        |i: usize| u64::from_le_bytes(slot[8 + 8 * i..16 + 8 * i].try_into().expect("8 bytes"));
    let n_crcs = u32::from_le_bytes(
        slot[META_HEADER_BYTES - 4..META_HEADER_BYTES]
            .try_into()
            .expect("4 bytes"),
    ) as usize;
    let Some(body_len) = n_crcs
        .checked_mul(4)
        .and_then(|b| b.checked_add(META_HEADER_BYTES))
        .filter(|&b| b + 4 <= slot.len())
    else {
        return Err(format!("{n_crcs} checksums do not fit the slot"));
    };
    let (body, rest) = slot.split_at(body_len);
    let own_crc = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
    if crc32c::crc32c(body) != own_crc {
        return Err("checksum mismatch".into());
    }
    let len = u64_at(4);
    if n_crcs != block_count(len) {
        return Err(format!("{n_crcs} checksums do not fit {len} bytes of data"));
    }
    let crcs = body[META_HEADER_BYTES..]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    Ok(ChunkMeta {
        replica: ReplicaMeta {
            version: u64_at(1),
            applied: Stamp {
                epoch: u64_at(2),
                serial: u64_at(3),
            },
        },
        len,
        crcs,
        seq: u64_at(0),
    })
}

/// The metadata in a `.meta` file: of its valid slots, the one with the
/// higher sequence number. A slot is valid if it decodes and its number
/// belongs in it. The slot size is the file's length over the slot count,
/// so a store reopened with another chunk size still reads its files.
fn decode_meta_file(bytes: &[u8]) -> Result<ChunkMeta, String> {
    let n = bytes.len() as u64;
    if n == 0 || !n.is_multiple_of(META_SLOTS) {
        return Err(format!("{n} bytes is no whole number of slots"));
    }
    let mut newest: Option<ChunkMeta> = None;
    let mut why = Vec::new();
    for (i, slot) in bytes.chunks((n / META_SLOTS) as usize).enumerate() {
        match decode_meta(slot) {
            Ok(m) if m.seq % META_SLOTS != i as u64 => {
                why.push(format!("slot {i} holds number {}", m.seq))
            }
            Ok(m) => {
                if newest.as_ref().is_none_or(|best| m.seq > best.seq) {
                    newest = Some(m);
                }
            }
            Err(e) => why.push(format!("slot {i}: {e}")),
        }
    }
    newest.ok_or_else(|| why.join("; "))
}

/// Writes `meta` with the next sequence number into the slot not holding
/// the current one, durably if `fsync`. Returns whether the file was new.
///
/// A chunk's first metadata is written whole to a temporary file and
/// renamed into place (once per chunk, so its cost does not matter): a
/// crash then leaves either no `.meta` or a complete one, never a sized
/// file whose only slot was torn, which would read as damaged for ever.
fn write_meta(
    path: &Path,
    chunk_bytes: u64,
    meta: &mut ChunkMeta,
    fsync: bool,
) -> Result<bool, StoreError> {
    let mut next = meta.clone();
    next.seq += 1;
    let encoded = encode_meta(&next);
    let too_big = |slot_bytes: u64| {
        StoreError::Io(format!(
            "{}: metadata of {} bytes does not fit its {slot_bytes}-byte slot",
            path.display(),
            encoded.len()
        ))
    };
    let created = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => {
            let slot_bytes = file.metadata().map_err(io_error)?.len() / META_SLOTS;
            if encoded.len() as u64 > slot_bytes {
                return Err(too_big(slot_bytes));
            }
            file.write_all_at(&encoded, (next.seq % META_SLOTS) * slot_bytes)
                .map_err(io_error)?;
            if fsync {
                file.sync_data().map_err(io_error)?;
            }
            false
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let slot_bytes = meta_slot_bytes(chunk_bytes);
            if encoded.len() as u64 > slot_bytes {
                return Err(too_big(slot_bytes));
            }
            let mut image = vec![0u8; (META_SLOTS * slot_bytes) as usize];
            let at = ((next.seq % META_SLOTS) * slot_bytes) as usize;
            image[at..at + encoded.len()].copy_from_slice(&encoded);
            let tmp = path.with_extension(META_NEW_SUFFIX);
            let mut file = File::create(&tmp).map_err(io_error)?;
            file.write_all(&image).map_err(io_error)?;
            if fsync {
                file.sync_data().map_err(io_error)?;
            }
            drop(file);
            fs::rename(&tmp, path).map_err(io_error)?;
            true
        }
        Err(e) => return Err(io_error(e)),
    };
    meta.seq = next.seq;
    Ok(created)
}

/// Extension of a chunk's first metadata before it is renamed into place.
const META_NEW_SUFFIX: &str = "meta.new";

const INCARNATION_FILE: &str = "incarnation";
const INCARNATION_MAGIC: &[u8; 8] = b"LHINCAR1";

/// The saved restart count: 0 if the server never restarted. A damaged file
/// refuses the open: restarting with a wrong count could make the server
/// accept version announcements meant for a previous life.
fn load_incarnation(dir: &Path) -> Result<u32, StoreError> {
    let bytes = match fs::read(dir.join(INCARNATION_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error(e)),
    };
    let ok = bytes.len() == 16 && &bytes[..8] == INCARNATION_MAGIC;
    let count = ok.then(|| u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")));
    let crc = ok.then(|| u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")));
    match (count, crc) {
        (Some(count), Some(crc)) if crc32c::crc32c(&bytes[..12]) == crc => Ok(count),
        _ => Err(StoreError::Io(format!(
            "{} is damaged",
            dir.join(INCARNATION_FILE).display()
        ))),
    }
}

/// Replaces the restart count atomically and durably.
fn write_incarnation(dir: &Path, count: u32) -> Result<(), StoreError> {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(INCARNATION_MAGIC);
    out.extend_from_slice(&count.to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    let path = dir.join(INCARNATION_FILE);
    let tmp = dir.join("incarnation.tmp");
    let mut file = File::create(&tmp).map_err(io_error)?;
    file.write_all(&out).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io_error)?;
    sync_dir(dir)
}

fn load_dir(dir: &Path) -> Result<BTreeMap<ChunkHandle, Entry>, StoreError> {
    let mut chunks = BTreeMap::new();
    for dirent in fs::read_dir(dir).map_err(io_error)? {
        let dirent = dirent.map_err(io_error)?;
        let name = dirent.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(&format!(".{META_NEW_SUFFIX}")) {
            // A chunk's first metadata that a crash kept from its rename:
            // nothing of that chunk was acknowledged.
            let _ = fs::remove_file(dirent.path());
            continue;
        }
        let Some(handle) = name
            .strip_prefix("chunk-")
            .and_then(|n| n.strip_suffix(".meta"))
        else {
            continue;
        };
        let Ok(handle) = handle.parse::<ChunkHandle>() else {
            continue;
        };
        let entry = match fs::read(dirent.path()) {
            // The chunk's first metadata write never reached the disk (a
            // crash before its sync): nothing of it was acknowledged, so
            // the replica does not have the chunk.
            Ok(bytes) if bytes.iter().all(|&b| b == 0) => {
                tracing::warn!(chunk = handle, dir = %dir.display(), "chunk metadata never written, chunk ignored");
                continue;
            }
            Ok(bytes) => match decode_meta_file(&bytes) {
                Ok(meta) => Entry::Healthy(meta),
                Err(why) => Entry::Damaged(why),
            },
            Err(e) => Entry::Damaged(e.to_string()),
        };
        if let Entry::Damaged(why) = &entry {
            tracing::error!(chunk = handle, dir = %dir.display(), "chunk metadata unusable, replica treated as stale: {why}");
        }
        chunks.insert(handle, entry);
    }
    Ok(chunks)
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
        self.mutate(chunk, false, |meta, _| {
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
        self.mutate(chunk, true, |meta, file| {
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
        self.mutate(chunk, true, |meta, file| {
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
        self.mutate(chunk, false, |meta, _| {
            meta.replica.applied = stamp;
            Ok(())
        })
    }

    fn read(&self, chunk: ChunkHandle, offset: Offset, len: u64) -> Result<Bytes, StoreError> {
        let meta = match self.lock().get(&chunk) {
            Some(Entry::Healthy(m)) => m.clone(),
            Some(Entry::Damaged(_)) => return Err(StoreError::Corrupt),
            None => return Err(StoreError::OutOfRange),
        };
        if offset > meta.len {
            return Err(StoreError::OutOfRange);
        }
        let end = offset.saturating_add(len).min(meta.len);
        if offset == end {
            return Ok(Bytes::default());
        }
        let data = File::open(self.data_path(chunk)).map_err(|e| match e.kind() {
            // Metadata says there is data; the file is gone.
            io::ErrorKind::NotFound => StoreError::Corrupt,
            _ => io_error(e),
        })?;
        let first_block = offset / CHECKSUM_BLOCK_BYTES;
        let last_block = (end - 1) / CHECKSUM_BLOCK_BYTES;
        let mut out = Vec::with_capacity((end - offset) as usize);
        for block in first_block..=last_block {
            let bytes = read_verified_block(&data, &meta, block)?;
            let block_start = block * CHECKSUM_BLOCK_BYTES;
            let from = offset.saturating_sub(block_start) as usize;
            let to = ((end - block_start) as usize).min(bytes.len());
            out.extend_from_slice(&bytes[from..to]);
        }
        Ok(out.into())
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
        write_incarnation(&self.inner.dir, next)?;
        *count = next;
        Ok(next)
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
        FileStore::open(&at.dir, at.chunk_bytes).map_err(|e| {
            serde::de::Error::custom(format!(
                "cannot reopen chunk store {}: {e}",
                at.dir.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasehold_model::types::Payload;

    const B: u64 = CHECKSUM_BLOCK_BYTES;

    fn stamp(serial: u64) -> Stamp {
        Stamp { epoch: 1, serial }
    }

    fn pattern(len: u64, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// A plain byte vector that mirrors what the store should hold.
    fn apply(mirror: &mut Vec<u8>, offset: u64, data: &[u8]) {
        let end = offset as usize + data.len();
        if mirror.len() < end {
            mirror.resize(end, 0);
        }
        mirror[offset as usize..end].copy_from_slice(data);
    }

    /// Drops the store as a crash would: what was not synced is not on
    /// disk (the data file may hold the bytes; the metadata never saw them).
    fn crash(store: FileStore) -> FileStore {
        let (dir, size) = (store.dir().to_path_buf(), store.chunk_bytes());
        store.inner.unsynced().chunks.clear();
        drop(store);
        FileStore::open(&dir, size).unwrap()
    }

    fn reopen(store: FileStore) -> FileStore {
        let (dir, size) = (store.dir().to_path_buf(), store.chunk_bytes());
        drop(store);
        FileStore::open(&dir, size).unwrap()
    }

    #[test]
    fn a_crash_keeps_what_was_synced_and_nothing_after() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
        assert!(!s.has_unsynced());
        s.set_version(1, 2).unwrap();
        s.write_at(1, 0, &Bytes::from(pattern(1000, 1)), stamp(1))
            .unwrap();
        assert!(s.has_unsynced());
        s.sync().unwrap();
        assert!(!s.has_unsynced());
        // Two more mutations, visible at once but not yet durable.
        s.write_at(1, 1000, &Bytes::from(pattern(B, 2)), stamp(2))
            .unwrap();
        s.set_version(1, 3).unwrap();
        assert_eq!((s.chunk_len(1), s.meta(1).version), (1000 + B, 3));
        let mut s = crash(s);
        assert_eq!(s.chunk_len(1), 1000);
        assert_eq!(s.meta(1).version, 2);
        assert_eq!(s.meta(1).applied, stamp(1));
        assert_eq!(
            s.read(1, 0, 2000).unwrap().as_slice(),
            &pattern(1000, 1)[..]
        );
        // The unsynced bytes past the durable length are ignored, and the
        // next append overwrites them cleanly.
        s.write_at(1, 1000, &Bytes::from(pattern(10, 3)), stamp(2))
            .unwrap();
        s.sync().unwrap();
        let s = crash(s);
        assert_eq!(
            s.read(1, 995, 100).unwrap().as_slice(),
            &[&pattern(1000, 1)[995..], &pattern(10, 3)[..]].concat()[..]
        );
    }

    #[test]
    fn one_sync_covers_every_chunk_changed_since_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
        for chunk in 1..=3 {
            s.write_at(
                chunk,
                0,
                &Bytes::from(pattern(100, chunk as u8)),
                stamp(chunk),
            )
            .unwrap();
        }
        s.sync().unwrap();
        let s = crash(s);
        for chunk in 1..=3 {
            assert_eq!(s.chunk_len(chunk), 100);
            assert_eq!(s.meta(chunk).applied, stamp(chunk));
        }
    }

    #[test]
    fn page_cache_mode_keeps_order_and_data_without_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open_with(dir.path(), 4 * B, Durability::PageCache).unwrap();
        assert_eq!(s.durability(), Durability::PageCache);
        assert!(FileStore::open(dir.path(), 4 * B).is_err());
        s.write_at(1, 0, &Bytes::from(pattern(100, 1)), stamp(1))
            .unwrap();
        s.sync().unwrap();
        // A killed process keeps what the page cache has.
        let (dir_path, size) = (s.dir().to_path_buf(), s.chunk_bytes());
        s.inner.unsynced().chunks.clear();
        drop(s);
        let s = FileStore::open_with(&dir_path, size, Durability::PageCache).unwrap();
        assert_eq!(s.read(1, 0, 100).unwrap().as_slice(), &pattern(100, 1)[..]);
    }

    #[test]
    fn restart_count_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::open(dir.path(), 4 * B).unwrap();
        assert_eq!(store.incarnation(), 0);
        assert_eq!(store.count_restart().unwrap(), 1);
        assert_eq!(store.count_restart().unwrap(), 2);
        let store = reopen(store);
        assert_eq!(store.incarnation(), 2);
        std::fs::write(dir.path().join(INCARNATION_FILE), b"junk").unwrap();
        drop(store);
        assert!(FileStore::open(dir.path(), 4 * B).is_err());
    }

    #[test]
    fn new_chunk_is_version_zero_and_empty() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 4 * B).unwrap();
        assert_eq!(s.meta(7), ReplicaMeta::default());
        assert_eq!(s.chunk_len(7), 0);
        assert!(s.chunks().is_empty());
        assert_eq!(s.read(7, 0, 1), Err(StoreError::OutOfRange));
    }

    #[test]
    fn writes_overwrites_and_reads_mid_block_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path(), 8 * B).unwrap();
        let mut mirror = Vec::new();
        // Appends that end mid-block, an overwrite inside existing data that
        // straddles a block boundary ([00106]), an overwrite that also
        // extends, a write past the end that leaves a hole, a tiny write.
        let writes = [
            (0, pattern(1000, 1)),
            (1000, pattern(B + 17, 2)),
            (B - 10, pattern(40, 3)),
            (500, pattern(3, 4)),
            (B + 1000, pattern(2 * B, 5)),
            (5 * B + 3, pattern(9, 6)),
            (4 * B - 1, pattern(1, 7)),
        ];
        for (i, (offset, data)) in writes.iter().enumerate() {
            s.write_at(1, *offset, &Bytes::from(data.clone()), stamp(i as u64 + 1))
                .unwrap();
            apply(&mut mirror, *offset, data);
            assert_eq!(s.chunk_len(1), mirror.len() as u64);
        }
        assert_eq!(s.meta(1).applied, stamp(writes.len() as u64));
        let check = |s: &FileStore| {
            for (offset, len) in [
                (0, mirror.len() as u64),
                (B - 20, 50),
                (777, 1),
                (B, B),
                (5 * B, 100),
                (3, 2 * B + 5),
            ] {
                let got = s.read(1, offset, len).unwrap();
                let end = (offset + len).min(mirror.len() as u64) as usize;
                assert_eq!(
                    got.as_slice(),
                    &mirror[offset as usize..end],
                    "read {offset}+{len}"
                );
            }
            // Short at the end, empty exactly at the end, refused past it.
            assert_eq!(s.read(1, mirror.len() as u64 - 2, 10).unwrap().len(), 2);
            assert!(s.read(1, mirror.len() as u64, 10).unwrap().is_empty());
            assert_eq!(
                s.read(1, mirror.len() as u64 + 1, 1),
                Err(StoreError::OutOfRange)
            );
        };
        check(&s);
        let s = reopen(s);
        check(&s);
        assert_eq!(s.meta(1).applied, stamp(writes.len() as u64));
    }

    #[test]
    fn writes_past_the_chunk_size_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path(), 1000).unwrap();
        s.write_at(1, 990, &Bytes::from(vec![1u8; 10]), stamp(1))
            .unwrap();
        assert_eq!(
            s.write_at(1, 995, &Bytes::from(vec![1u8; 6]), stamp(2)),
            Err(StoreError::OutOfRange)
        );
        assert_eq!(
            s.write_at(1, u64::MAX, &Bytes::from(vec![1u8; 6]), stamp(2)),
            Err(StoreError::OutOfRange)
        );
        assert_eq!(s.pad_to(1, 1001, stamp(2)), Err(StoreError::OutOfRange));
        // A refused write changes nothing, not even the applied stamp.
        assert_eq!(s.meta(1).applied, stamp(1));
        assert_eq!(s.chunk_len(1), 1000);
    }

    #[test]
    fn pad_then_read_the_padding_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path(), 3 * B).unwrap();
        let record = pattern(100, 9);
        s.write_at(2, 0, &Bytes::from(record.clone()), stamp(1))
            .unwrap();
        s.pad_to(2, 3 * B, stamp(2)).unwrap();
        assert_eq!(s.chunk_len(2), 3 * B);
        assert_eq!(s.meta(2).applied, stamp(2));
        let s = reopen(s);
        let all = s.read(2, 0, 3 * B).unwrap();
        assert_eq!(&all[..100], &record[..]);
        assert!(all[100..].iter().all(|&b| b == 0));
        // Padding to an end already reached only records the stamp.
        let mut s = s;
        s.pad_to(2, B, stamp(3)).unwrap();
        assert_eq!((s.chunk_len(2), s.meta(2).applied), (3 * B, stamp(3)));
    }

    #[test]
    fn a_flipped_byte_is_corrupt_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
        s.write_at(3, 0, &Bytes::from(pattern(2 * B + 10, 1)), stamp(1))
            .unwrap();
        let path = dir.path().join("chunk-3.dat");
        let mut bytes = fs::read(&path).unwrap();
        bytes[B as usize + 5] ^= 0x40;
        fs::write(&path, bytes).unwrap();
        // Any read touching block 1 fails; blocks 0 and 2 still serve.
        assert_eq!(s.read(3, B + 5, 1), Err(StoreError::Corrupt));
        assert_eq!(s.read(3, 0, 3 * B), Err(StoreError::Corrupt));
        assert_eq!(
            s.read(3, 10, 20).unwrap().as_slice(),
            &pattern(2 * B + 10, 1)[10..30]
        );
        assert!(s.read(3, 2 * B, 10).is_ok());
        // A partial overwrite of the bad block must not bless the bad byte.
        assert_eq!(
            s.write_at(3, B + 100, &Bytes::from(vec![7u8; 10]), stamp(2)),
            Err(StoreError::Corrupt)
        );
        // Overwriting the whole block repairs it.
        s.write_at(3, B, &Bytes::from(vec![8u8; B as usize]), stamp(3))
            .unwrap();
        assert_eq!(s.read(3, B + 5, 1).unwrap().as_slice(), &[8]);
    }

    #[test]
    fn truncated_data_file_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
        s.write_at(4, 0, &Bytes::from(pattern(1000, 1)), stamp(1))
            .unwrap();
        File::options()
            .write(true)
            .open(dir.path().join("chunk-4.dat"))
            .unwrap()
            .set_len(500)
            .unwrap();
        assert_eq!(s.read(4, 0, 10), Err(StoreError::Corrupt));
    }

    #[test]
    fn damaged_metadata_makes_the_replica_stale() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
        s.set_version(5, 3).unwrap();
        s.set_version(6, 4).unwrap();
        s.write_at(5, 0, &Bytes::from(pattern(10, 1)), stamp(1))
            .unwrap();
        s.sync().unwrap();
        s.set_applied(5, stamp(2)).unwrap();
        s.sync().unwrap();
        assert_eq!(s.chunks(), vec![(5, 3), (6, 4)]);
        // Both slots hold a version now; damage both.
        let meta = dir.path().join("chunk-5.meta");
        let mut bytes = fs::read(&meta).unwrap();
        let half = bytes.len() / 2;
        bytes[9] ^= 1;
        bytes[half + 9] ^= 1;
        fs::write(&meta, bytes).unwrap();
        let mut s = reopen(s);
        assert_eq!(s.meta(5).version, 0);
        assert_eq!(s.chunks(), vec![(6, 4)]);
        assert_eq!(s.read(5, 0, 1), Err(StoreError::Corrupt));
        assert_eq!(s.set_version(5, 9), Err(StoreError::Corrupt));
    }

    #[test]
    fn a_torn_metadata_write_leaves_the_previous_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
        s.set_version(5, 3).unwrap();
        s.write_at(5, 0, &Bytes::from(pattern(10, 1)), stamp(1))
            .unwrap();
        s.sync().unwrap();
        s.write_at(5, 10, &Bytes::from(pattern(10, 2)), stamp(2))
            .unwrap();
        s.sync().unwrap();
        // The second sync wrote slot 0 (number 2); tear it as a crash
        // during that write would.
        let meta = dir.path().join("chunk-5.meta");
        let mut bytes = fs::read(&meta).unwrap();
        for b in &mut bytes[20..60] {
            *b = 0xAA;
        }
        fs::write(&meta, bytes).unwrap();
        let mut s = crash(s);
        assert_eq!((s.meta(5).version, s.meta(5).applied), (3, stamp(1)));
        assert_eq!(s.chunk_len(5), 10);
        // The next sync goes to the torn slot and wins again.
        s.write_at(5, 10, &Bytes::from(pattern(10, 3)), stamp(2))
            .unwrap();
        s.sync().unwrap();
        let s = crash(s);
        assert_eq!(s.chunk_len(5), 20);
        assert_eq!(s.read(5, 10, 10).unwrap().as_slice(), &pattern(10, 3)[..]);
    }

    #[test]
    fn a_first_metadata_write_lost_in_a_crash_leaves_no_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
        s.write_at(1, 0, &Bytes::from(pattern(10, 1)), stamp(1))
            .unwrap();
        s.write_at(2, 0, &Bytes::from(pattern(10, 2)), stamp(1))
            .unwrap();
        s.sync().unwrap();
        // As a file system without fsync (page-cache mode) may leave a new
        // file after a machine crash: sized but never written, or empty. A
        // first write that never got renamed is ignored too.
        fs::write(dir.path().join("chunk-3.meta.new"), b"junk").unwrap();
        let meta = dir.path().join("chunk-1.meta");
        let len = fs::metadata(&meta).unwrap().len() as usize;
        fs::write(&meta, vec![0u8; len]).unwrap();
        fs::write(dir.path().join("chunk-2.meta"), b"").unwrap();
        let mut s = crash(s);
        assert_eq!(s.chunks(), vec![]);
        assert_eq!(s.read(1, 0, 1), Err(StoreError::OutOfRange));
        assert!(!dir.path().join("chunk-3.meta.new").exists());
        // The chunk can be written afresh.
        s.write_at(1, 0, &Bytes::from(pattern(5, 3)), stamp(1))
            .unwrap();
        s.set_version(1, 2).unwrap();
        s.sync().unwrap();
        let s = crash(s);
        assert_eq!(s.chunks(), vec![(1, 2)]);
    }

    #[test]
    fn after_a_failed_sync_the_store_never_syncs_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
        s.write_at(1, 0, &Bytes::from(pattern(10, 1)), stamp(1))
            .unwrap();
        // The metadata path is taken by a directory: the sync fails.
        fs::create_dir(dir.path().join("chunk-1.meta")).unwrap();
        assert!(s.sync().is_err());
        fs::remove_dir(dir.path().join("chunk-1.meta")).unwrap();
        assert!(s.sync().is_err(), "a sync after a failure must not succeed");
        let (path, size) = (s.dir().to_path_buf(), s.chunk_bytes());
        drop(s);
        // Nothing was written at close either.
        assert!(!path.join("chunk-1.meta").exists());
        assert_eq!(FileStore::open(&path, size).unwrap().chunks(), vec![]);
    }

    #[test]
    fn metadata_slots_decode_only_with_their_own_number() {
        let meta = ChunkMeta {
            replica: ReplicaMeta {
                version: 2,
                applied: stamp(7),
            },
            len: 3,
            crcs: vec![1],
            seq: 1,
        };
        let slot = meta_slot_bytes(4 * B) as usize;
        let mut file = vec![0u8; 2 * slot];
        let encoded = encode_meta(&meta);
        // Number 1 belongs in slot 1, not slot 0.
        file[..encoded.len()].copy_from_slice(&encoded);
        assert!(decode_meta_file(&file).is_err());
        file[slot..slot + encoded.len()].copy_from_slice(&encoded);
        assert_eq!(decode_meta_file(&file).unwrap(), meta);
        assert!(decode_meta_file(&file[..2 * slot - 1]).is_err());
        assert!(decode_meta_file(&[]).is_err());
        let mut old = file.clone();
        old[slot..slot + 8].copy_from_slice(b"LHCHUNK1");
        assert!(decode_meta_file(&old)
            .unwrap_err()
            .contains("older leasehold"));
    }

    #[test]
    fn version_and_applied_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
        s.set_version(9, 2).unwrap();
        s.set_applied(
            9,
            Stamp {
                epoch: 4,
                serial: 11,
            },
        )
        .unwrap();
        let s = reopen(s);
        assert_eq!(
            s.meta(9),
            ReplicaMeta {
                version: 2,
                applied: Stamp {
                    epoch: 4,
                    serial: 11
                }
            }
        );
        assert_eq!(s.chunk_len(9), 0);
    }

    #[test]
    fn clones_and_reopens_share_state_and_serialize_as_a_location() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = FileStore::open(dir.path(), 4 * B).unwrap();
        let b = a.clone();
        let c = FileStore::open(dir.path(), 4 * B).unwrap();
        a.write_at(1, 0, &Bytes::from(vec![1u8; 3]), stamp(1))
            .unwrap();
        assert_eq!((b.chunk_len(1), c.chunk_len(1)), (3, 3));
        assert_eq!(a, c);
        assert!(FileStore::open(dir.path(), 2 * B).is_err());
        let saved = postcard::to_allocvec(&a).unwrap();
        let d: FileStore = postcard::from_bytes(&saved).unwrap();
        assert_eq!(d, a);
        assert_eq!(d.read(1, 0, 3).unwrap().as_slice(), &[1, 1, 1]);
    }

    #[test]
    fn full_disk_maps_to_no_space() {
        assert_eq!(
            io_error(io::Error::from(io::ErrorKind::StorageFull)),
            StoreError::NoSpace
        );
        assert_eq!(
            io_error(io::Error::from_raw_os_error(28)),
            StoreError::NoSpace
        );
        assert!(matches!(
            io_error(io::Error::from(io::ErrorKind::PermissionDenied)),
            StoreError::Io(_)
        ));
    }

    #[test]
    fn payload_concat_of_fragments_writes_like_one_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
        let whole = Bytes::concat(&[Bytes::from(pattern(B, 1)), Bytes::from(pattern(5, 2))]);
        s.write_at(1, 7, &whole, stamp(1)).unwrap();
        assert_eq!(s.read(1, 7, B + 5).unwrap(), whole);
    }
}
