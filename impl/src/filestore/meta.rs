//! The `.meta` file: its two-slot format, the encoding of one slot, the
//! write of the next slot and the load of every chunk's metadata at open.
//! Separate because the format is a contract with every store already on
//! disk (its magic changes when it does), and it can be read and tested
//! without a store around it.

use leasehold_model::types::{ChunkHandle, ReplicaMeta, Stamp, StoreError};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::blocks::block_count;
use super::{io_error, ChunkMeta, Entry, CHECKSUM_BLOCK_BYTES};

const META_MAGIC: &[u8; 8] = b"LHCHUNK2";
/// magic, sequence, version, epoch, serial, length, block count.
pub(super) const META_HEADER_BYTES: usize = 8 + 8 * 5 + 4;
/// Metadata slots per `.meta` file.
const META_SLOTS: u64 = 2;
/// Slots start at page boundaries so that writing one never touches the
/// other's pages.
const META_SLOT_ALIGN: u64 = 4096;

/// Bytes of one metadata slot: room for every block's checksum.
pub(super) fn meta_slot_bytes(chunk_bytes: u64) -> u64 {
    let most = META_HEADER_BYTES as u64 + 4 * chunk_bytes.div_ceil(CHECKSUM_BLOCK_BYTES) + 4;
    most.div_ceil(META_SLOT_ALIGN) * META_SLOT_ALIGN
}

pub(super) fn encode_meta(meta: &ChunkMeta) -> Vec<u8> {
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
pub(super) fn decode_meta_file(bytes: &[u8]) -> Result<ChunkMeta, String> {
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
/// The temporary file is the one [`reserve_first_meta`] filled when the
/// chunk was created, written over in place, so that this write (inside a
/// sync, whose failure stops the node) needs no room the disk may lack.
pub(super) fn write_meta(
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
            let file = write_over_reserved(&tmp, &image)?;
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

/// Writes `bytes` at the start of the file at `path` without truncating
/// it, so over room a reservation claimed before (created if missing);
/// returns the file for the caller's sync.
pub(super) fn write_over_reserved(path: &Path, bytes: &[u8]) -> Result<File, StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_error)?;
    file.write_all_at(bytes, 0).map_err(io_error)?;
    Ok(file)
}

/// Claims the disk room of a new chunk's `.meta` file when the chunk is
/// created, by writing its size in zeros under the temporary name its
/// first metadata is later written over ([`write_meta`]). On a full disk
/// the change that creates the chunk then fails with `NoSpace`, which the
/// chunkserver reports (FAULT-2) and goes on, instead of the next sync
/// failing, which would stop the server (STORE-2). Zeros are what a load
/// ignores: a crash before the rename leaves no chunk.
pub(super) fn reserve_first_meta(path: &Path, chunk_bytes: u64) -> Result<(), StoreError> {
    let image = vec![0u8; (META_SLOTS * meta_slot_bytes(chunk_bytes)) as usize];
    let mut file = File::create(path.with_extension(META_NEW_SUFFIX)).map_err(io_error)?;
    file.write_all(&image).map_err(io_error)
}

/// Removes a chunk's reserved first metadata, if it was never renamed into
/// place (a replica deleted before its first sync).
pub(super) fn drop_first_meta(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path.with_extension(META_NEW_SUFFIX)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(e)),
        _ => Ok(()),
    }
}

/// What a chunk's `.meta` file holds: its metadata, or why it is damaged;
/// `None` if it is all zeros (the chunk's first metadata write never
/// reached the disk, a crash before its sync: nothing of it was
/// acknowledged, so the replica does not have the chunk).
pub(super) fn entry_of(bytes: &[u8]) -> Option<Entry> {
    if bytes.iter().all(|&b| b == 0) {
        return None;
    }
    Some(match decode_meta_file(bytes) {
        Ok(meta) => Entry::Healthy(meta),
        Err(why) => Entry::Damaged(why),
    })
}

pub(super) fn load_dir(dir: &Path) -> Result<BTreeMap<ChunkHandle, Entry>, StoreError> {
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
            Ok(bytes) => match entry_of(&bytes) {
                Some(entry) => entry,
                None => {
                    tracing::warn!(chunk = handle, dir = %dir.display(), "chunk metadata never written, chunk ignored");
                    continue;
                }
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
