//! A replica's metadata slots: their format, the encoding of one slot,
//! the write of the next slot and the load of every chunk's metadata at
//! open. The slots live in the chunk's `.dat` file, past the largest the
//! chunk's data may grow to, so that one `fdatasync` makes a batch's data
//! and the metadata covering it durable together. Separate because the
//! format is a contract with every store already on disk (its magic
//! changes when it does), and it can be read and tested without a store
//! around it.

use leasehold_model::types::{ChunkHandle, ReplicaMeta, Stamp, StoreError};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::blocks::{block_count, read_block};
use super::{io_error, sync::sync_dir, ChunkMeta, Entry, CHECKSUM_BLOCK_BYTES};

const META_MAGIC: &[u8; 8] = b"LHCHUNK3";
/// The previous format's magic: the same slots, in a `.meta` file of their
/// own, synced after the data file. A store in that format is converted at
/// open ([`load_dir`]).
const META_MAGIC_SEPARATE: &[u8; 8] = b"LHCHUNK2";
/// magic, sequence, version, epoch, serial, length, block count.
pub(super) const META_HEADER_BYTES: usize = 8 + 8 * 5 + 4;
/// Metadata slots per replica.
const META_SLOTS: u64 = 2;
/// Slots start at page boundaries so that writing one never touches the
/// other's pages, nor the data's.
const META_SLOT_ALIGN: u64 = 4096;

/// Bytes of one metadata slot: room for every block's checksum.
pub(super) fn meta_slot_bytes(chunk_bytes: u64) -> u64 {
    let most = META_HEADER_BYTES as u64 + 4 * chunk_bytes.div_ceil(CHECKSUM_BLOCK_BYTES) + 4;
    most.div_ceil(META_SLOT_ALIGN) * META_SLOT_ALIGN
}

/// Where a `.dat` file's slots start: the first page past the largest the
/// chunk's data may be. The file is sparse between the data's end and
/// there.
pub(super) fn slots_offset(chunk_bytes: u64) -> u64 {
    chunk_bytes.div_ceil(META_SLOT_ALIGN) * META_SLOT_ALIGN
}

/// Bytes of both slots.
pub(super) fn slots_bytes(chunk_bytes: u64) -> u64 {
    META_SLOTS * meta_slot_bytes(chunk_bytes)
}

pub(super) fn encode_meta(meta: &ChunkMeta) -> Vec<u8> {
    encode_meta_as(meta, META_MAGIC)
}

fn encode_meta_as(meta: &ChunkMeta, magic: &[u8; 8]) -> Vec<u8> {
    assert_eq!(meta.crcs.len(), block_count(meta.len));
    let mut out = Vec::with_capacity(META_HEADER_BYTES + 4 * meta.crcs.len() + 4);
    out.extend_from_slice(magic);
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

/// A slot of the previous format, for tests of the conversion.
#[cfg(test)]
pub(super) fn encode_meta_separate(meta: &ChunkMeta) -> Vec<u8> {
    encode_meta_as(meta, META_MAGIC_SEPARATE)
}

/// Decodes one slot of `magic`'s format; bytes after the slot's own
/// checksum are ignored.
fn decode_meta(slot: &[u8], magic: &[u8; 8]) -> Result<ChunkMeta, String> {
    if slot.len() >= 8 && &slot[..8] == b"LHCHUNK1" {
        return Err("metadata of an older leasehold (LHCHUNK1); this one reads LHCHUNK3".into());
    }
    if slot.len() < META_HEADER_BYTES + 4 || &slot[..8] != magic {
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

/// Both slots decoded: the newest valid one, and the other if it is valid
/// too. A slot is valid if it decodes and its number belongs in it. The
/// slot size is the bytes' length over the slot count, so a store
/// reopened with another chunk size still reads its slots.
fn decode_slots(bytes: &[u8], magic: &[u8; 8]) -> Result<(ChunkMeta, Option<ChunkMeta>), String> {
    let n = bytes.len() as u64;
    if n == 0 || !n.is_multiple_of(META_SLOTS) {
        return Err(format!("{n} bytes is no whole number of slots"));
    }
    let mut valid: Vec<ChunkMeta> = Vec::new();
    let mut why = Vec::new();
    for (i, slot) in bytes.chunks((n / META_SLOTS) as usize).enumerate() {
        match decode_meta(slot, magic) {
            Ok(m) if m.seq % META_SLOTS != i as u64 => {
                why.push(format!("slot {i} holds number {}", m.seq))
            }
            Ok(m) => valid.push(m),
            Err(e) => why.push(format!("slot {i}: {e}")),
        }
    }
    valid.sort_by_key(|m| std::cmp::Reverse(m.seq));
    let mut valid = valid.into_iter();
    match valid.next() {
        Some(newest) => Ok((newest, valid.next())),
        None => Err(why.join("; ")),
    }
}

/// The metadata in a replica's slots (`bytes`, both of them): of its valid
/// slots, the one with the higher sequence number.
pub(super) fn decode_meta_file(bytes: &[u8]) -> Result<ChunkMeta, String> {
    decode_slots(bytes, META_MAGIC).map(|(newest, _)| newest)
}

/// Writes `meta` with the next sequence number into the slot not holding
/// the current one, in the chunk's data file `data`; the caller syncs the
/// file, which makes the data and this metadata durable together.
pub(super) fn write_meta(
    data: &File,
    chunk_bytes: u64,
    meta: &mut ChunkMeta,
) -> Result<(), StoreError> {
    let mut next = meta.clone();
    next.seq += 1;
    let encoded = encode_meta(&next);
    let slot_bytes = meta_slot_bytes(chunk_bytes);
    if encoded.len() as u64 > slot_bytes {
        return Err(StoreError::Io(format!(
            "metadata of {} bytes does not fit its {slot_bytes}-byte slot",
            encoded.len()
        )));
    }
    let at = slots_offset(chunk_bytes) + (next.seq % META_SLOTS) * slot_bytes;
    data.write_all_at(&encoded, at).map_err(io_error)?;
    meta.seq = next.seq;
    Ok(())
}

/// Extension of a chunk's data file until its first sync renames it into
/// place: a crash before then leaves no chunk, instead of a file whose
/// only slot may be torn, which would read as damaged for ever.
pub(super) const DATA_NEW_SUFFIX: &str = "dat.new";

/// Claims the disk room of a new chunk's slots when the chunk is created,
/// by writing them as zeros in its (new) data file. On a full disk the
/// change that creates the chunk then fails with `NoSpace`, which the
/// chunkserver reports (FAULT-2) and goes on, instead of the next sync
/// failing, which would stop the server (STORE-2).
pub(super) fn reserve_slots(data: &File, chunk_bytes: u64) -> Result<(), StoreError> {
    let zeros = vec![0u8; slots_bytes(chunk_bytes) as usize];
    data.write_all_at(&zeros, slots_offset(chunk_bytes))
        .map_err(io_error)
}

/// What a replica's slots (`slots`, both) hold: its metadata, or why it is
/// damaged; `None` if they are all zeros (the chunk's first sync never
/// reached the disk, as a file system without fsync may leave it: nothing
/// of it was acknowledged, so the replica does not have the chunk). The
/// slots are decoded only, not checked against the data; see
/// [`verify_newest`].
pub(super) fn entry_of(slots: &[u8]) -> Option<Entry> {
    if slots.iter().all(|&b| b == 0) {
        return None;
    }
    Some(match decode_meta_file(slots) {
        Ok(meta) => Entry::Healthy(meta),
        Err(why) => Entry::Damaged(why),
    })
}

/// Checks the newest slot against the data it covers, where a crash may
/// have torn the sync that wrote it. One sync makes a batch's data and its
/// slot durable together, in no order, so a crash during it may leave the
/// slot on disk and some of the data not. That can only be the newest
/// slot, and only when the other slot is valid (a torn write of the other
/// slot came after the newest's sync had finished, and a chunk's first
/// slot is renamed into place only once synced). Of its blocks, those
/// whose checksum differs from the other slot's are what its sync wrote:
/// if one fails, the replica is damaged. Whether a crash tore the sync
/// (nothing acknowledged; the other slot would be right) or the blocks went
/// bad after it (the other slot would silently drop acknowledged
/// mutations under the same chunk version, VERSION-1) cannot be told, so
/// the replica is left out and cloned back (the model's torn sync,
/// docs/model.md "Barriers").
fn verify_newest(data: &File, newest: &ChunkMeta, other: &ChunkMeta) -> Result<(), String> {
    for block in 0..newest.crcs.len() {
        if other.crcs.get(block) == Some(&newest.crcs[block]) {
            continue;
        }
        match read_block(data, newest, block as u64, true) {
            Ok(_) => {}
            Err(StoreError::Corrupt) => {
                return Err(format!(
                    "block {block} does not match the newest metadata (number {}): a crash tore the sync that wrote it, or the block went bad since",
                    newest.seq
                ))
            }
            Err(e) => return Err(format!("block {block}: {e}")),
        }
    }
    Ok(())
}

/// The entry of a chunk's data file at `path`: its slots decoded, and the
/// newest checked against the data (`None`: no metadata ever synced).
fn load_data_file(path: &Path, chunk_bytes: u64) -> Option<Entry> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return Some(Entry::Damaged(e.to_string())),
    };
    let slots = match read_slots(&file, chunk_bytes) {
        Ok(slots) => slots,
        Err(e) => return Some(Entry::Damaged(e)),
    };
    if slots.iter().all(|&b| b == 0) {
        return None;
    }
    Some(match decode_slots(&slots, META_MAGIC) {
        Ok((newest, None)) => Entry::Healthy(newest),
        Ok((newest, Some(other))) => match verify_newest(&file, &newest, &other) {
            Ok(()) => Entry::Healthy(newest),
            Err(why) => Entry::Damaged(why),
        },
        Err(why) => Entry::Damaged(why),
    })
}

/// The bytes of a data file's slots, from where they start to the file's
/// end (empty if the file ends before: its first sync never reached the
/// disk).
fn read_slots(file: &File, chunk_bytes: u64) -> Result<Vec<u8>, String> {
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let at = slots_offset(chunk_bytes);
    let mut slots = vec![0u8; len.saturating_sub(at) as usize];
    file.read_exact_at(&mut slots, at)
        .map_err(|e| e.to_string())?;
    Ok(slots)
}

/// Loads every chunk's metadata from `dir`, converting replicas stored in
/// the previous format (a `.meta` file beside the data) on the way.
pub(super) fn load_dir(
    dir: &Path,
    chunk_bytes: u64,
) -> Result<BTreeMap<ChunkHandle, Entry>, StoreError> {
    let mut chunks = BTreeMap::new();
    let mut converted = false;
    for dirent in fs::read_dir(dir).map_err(io_error)? {
        let dirent = dirent.map_err(io_error)?;
        let name = dirent.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(&format!(".{DATA_NEW_SUFFIX}")) || name.ends_with(".meta.new") {
            // A chunk whose first sync a crash kept from its rename:
            // nothing of that chunk was acknowledged.
            let _ = fs::remove_file(dirent.path());
            continue;
        }
        let Some((handle, ext)) = name.strip_prefix("chunk-").and_then(|n| n.split_once('.'))
        else {
            continue;
        };
        let Ok(handle) = handle.parse::<ChunkHandle>() else {
            continue;
        };
        let entry = match ext {
            "dat" if dir.join(format!("chunk-{handle}.meta")).exists() => continue,
            "dat" => load_data_file(&dirent.path(), chunk_bytes),
            "meta" => {
                converted = true;
                convert_separate(dir, handle, chunk_bytes)?
            }
            _ => continue,
        };
        let Some(entry) = entry else {
            tracing::warn!(chunk = handle, dir = %dir.display(), "chunk metadata never written, chunk ignored");
            continue;
        };
        if let Entry::Damaged(why) = &entry {
            tracing::error!(chunk = handle, dir = %dir.display(), "chunk metadata unusable, replica treated as stale: {why}");
        }
        chunks.insert(handle, entry);
    }
    if converted {
        sync_dir(dir)?;
    }
    Ok(chunks)
}

/// Converts a replica of the previous format: its `.meta` file's newest
/// slot is written as the first slot of the data file, the data file
/// synced, and the `.meta` file removed. A `.meta` file that does not
/// decode leaves the replica damaged: its slots are written as bytes that
/// decode as nothing (not zeros, which would read as no chunk at all).
/// Idempotent: a crash part-way converts again at the next open. `None`:
/// the `.meta` file was all zeros (its first write never reached the
/// disk), no chunk.
fn convert_separate(
    dir: &Path,
    handle: ChunkHandle,
    chunk_bytes: u64,
) -> Result<Option<Entry>, StoreError> {
    let meta_path = dir.join(format!("chunk-{handle}.meta"));
    let data_path = dir.join(format!("chunk-{handle}.dat"));
    let bytes = fs::read(&meta_path).map_err(io_error)?;
    let entry = if bytes.iter().all(|&b| b == 0) {
        None
    } else {
        Some(decode_slots(&bytes, META_MAGIC_SEPARATE).map(|(newest, _)| newest))
    };
    let data = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&data_path)
        .map_err(io_error)?;
    let slot_bytes = meta_slot_bytes(chunk_bytes) as usize;
    let mut slots = vec![0u8; 2 * slot_bytes];
    let result = match entry {
        None => None,
        Some(Ok(meta)) => {
            let encoded = encode_meta(&meta);
            let at = (meta.seq % META_SLOTS) as usize * slot_bytes;
            if encoded.len() > slot_bytes {
                return Err(StoreError::Io(format!(
                    "{}: metadata of {} bytes does not fit a {slot_bytes}-byte slot of this chunk size",
                    meta_path.display(),
                    encoded.len()
                )));
            }
            slots[at..at + encoded.len()].copy_from_slice(&encoded);
            Some(Entry::Healthy(meta))
        }
        Some(Err(why)) => {
            slots.fill(0xff);
            Some(Entry::Damaged(format!(
                "converted from {}: {why}",
                meta_path.display()
            )))
        }
    };
    data.write_all_at(&slots, slots_offset(chunk_bytes))
        .map_err(io_error)?;
    data.sync_data().map_err(io_error)?;
    fs::remove_file(&meta_path).map_err(io_error)?;
    tracing::info!(chunk = handle, dir = %dir.display(), "chunk metadata converted from its .meta file into the data file");
    Ok(result)
}
