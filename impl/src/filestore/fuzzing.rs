//! The checks that the `chunk_meta` fuzz target and its corpus replay run
//! on the store's own file formats (see `crate::fuzzing`): whatever the
//! bytes of a replica's metadata slots (the end of its `.dat` file) or of
//! an `incarnation` file, loading returns a verdict, and
//! what loads encodes back to the bytes it came from. Here, not in
//! `crate::fuzzing`, because the decoded metadata is private to the store.

use leasehold_model::types::{ChunkStore, StoreError};
use std::fs;
use std::path::Path;

use super::blocks::block_count;
use super::incarnation::{decode_incarnation, encode_incarnation, INCARNATION_FILE};
use super::meta::{decode_meta_file, encode_meta, entry_of, slots_offset, META_HEADER_BYTES};
use super::{Entry, FileStore};

/// Loads `data` as a replica's metadata slots and as an `incarnation` file,
/// and again with their own checksums made right: a checksum is a wall a
/// fuzzer rarely climbs, and what lies behind it (a slot whose fields
/// disagree, written by a bug rather than torn by a crash) must be refused
/// as cleanly.
pub fn chunk_meta(data: &[u8]) {
    meta_file(data);
    if let Some(fixed) = with_slot_crcs(data) {
        meta_file(&fixed);
    }
    incarnation_file(data);
    if data.len() == 16 {
        let mut fixed = data.to_vec();
        let crc = crc32c::crc32c(&fixed[..12]);
        fixed[12..].copy_from_slice(&crc.to_le_bytes());
        incarnation_file(&fixed);
    }
}

fn meta_file(data: &[u8]) {
    match entry_of(data) {
        None => assert!(data.iter().all(|&b| b == 0)),
        Some(Entry::Damaged(why)) => assert!(!why.is_empty(), "a damaged replica says why"),
        Some(Entry::Healthy(meta)) => {
            // Reads and writes index the checksums by block: every block
            // of the data has one.
            assert_eq!(meta.crcs.len(), block_count(meta.len));
            // The winning slot, encoded again, is the bytes it was read
            // from (what follows a slot's own checksum is ignored), and a
            // file holding only it loads the same.
            let slot_bytes = data.len() / 2;
            let at = (meta.seq % 2) as usize * slot_bytes;
            let encoded = encode_meta(&meta);
            assert!(encoded.len() <= slot_bytes);
            assert_eq!(encoded, data[at..at + encoded.len()]);
            let mut alone = vec![0u8; data.len()];
            alone[at..at + encoded.len()].copy_from_slice(&encoded);
            assert_eq!(decode_meta_file(&alone), Ok(meta));
        }
    }
}

/// `data` with the own checksum of each slot that has room for the
/// checksums its header counts set right; `None` if none changed.
fn with_slot_crcs(data: &[u8]) -> Option<Vec<u8>> {
    if data.is_empty() || !data.len().is_multiple_of(2) {
        return None;
    }
    let mut fixed = data.to_vec();
    let mut changed = false;
    for slot in fixed.chunks_mut(data.len() / 2) {
        let Some(count) = slot.get(META_HEADER_BYTES - 4..META_HEADER_BYTES) else {
            continue;
        };
        let crcs = u32::from_le_bytes(count.try_into().expect("4 bytes")) as usize;
        let body = META_HEADER_BYTES + 4 * crcs;
        if body + 4 > slot.len() {
            continue;
        }
        let crc = crc32c::crc32c(&slot[..body]).to_le_bytes();
        changed |= slot[body..body + 4] != crc;
        slot[body..body + 4].copy_from_slice(&crc);
    }
    changed.then_some(fixed)
}

fn incarnation_file(data: &[u8]) {
    if let Some(count) = decode_incarnation(data) {
        assert_eq!(encode_incarnation(count), data);
    }
}

/// [`chunk_meta`] through a store: `data` as chunk 1's metadata slots (the
/// end of its `.dat` file, whose data is zeros) and as the `incarnation`
/// file in the empty directory `dir`, a store opened over it, and the whole
/// chunk read and written to. Slower, as it uses files, so for the corpus
/// replay only.
pub fn chunk_meta_in_store(data: &[u8], dir: &Path) {
    use std::os::unix::fs::FileExt;
    const CHUNK_BYTES: u64 = 1 << 20;
    let file = fs::File::create(dir.join("chunk-1.dat")).expect("create .dat");
    file.set_len(slots_offset(CHUNK_BYTES)).expect("size .dat");
    file.write_all_at(data, slots_offset(CHUNK_BYTES))
        .expect("write the slots");
    drop(file);
    fs::write(dir.join(INCARNATION_FILE), data).expect("write incarnation");
    let mut store = match FileStore::open(dir, CHUNK_BYTES) {
        Ok(store) => store,
        Err(StoreError::Io(why)) => {
            // Only a damaged incarnation file refuses the open.
            assert!(decode_incarnation(data).is_none(), "{why}");
            fs::remove_file(dir.join(INCARNATION_FILE)).expect("remove incarnation");
            FileStore::open(dir, CHUNK_BYTES).expect("open without the incarnation")
        }
        Err(e) => panic!("open: {e}"),
    };
    let expected = entry_of(data);
    let loaded = store.lock().get(&1).cloned();
    match (&loaded, &expected) {
        // Both slots decode, and the newest's blocks are not the zeros the
        // data file holds: what a torn sync leaves.
        (Some(Entry::Damaged(why)), Some(Entry::Healthy(_))) => {
            assert!(why.contains("does not match the newest metadata"), "{why}")
        }
        _ => assert_eq!(loaded, expected),
    }
    let len = store.chunk_len(1);
    match store.read(1, 0, u64::MAX) {
        // No data file: the metadata's blocks are missing.
        Ok(bytes) => assert_eq!(bytes.len() as u64, len),
        Err(e) => assert!(
            matches!(e, StoreError::Corrupt | StoreError::OutOfRange),
            "{e}"
        ),
    }
    let stamp = store.meta(1).applied;
    let _ = store.write_at(1, len.min(CHUNK_BYTES), &vec![7u8; 10].into(), stamp);
    let _ = store.pad_to(1, CHUNK_BYTES, stamp);
    drop(store);
}
