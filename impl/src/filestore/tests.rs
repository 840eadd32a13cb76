//! Unit tests of the store through its files: a crash is simulated by
//! forgetting what was not synced, damage by editing the files. Separate so
//! that each code file reads on its own.

use super::incarnation::INCARNATION_FILE;
use super::meta::{
    decode_meta_file, encode_meta, encode_meta_separate, meta_slot_bytes, slots_offset,
};
use super::*;
use crate::payload::Bytes;
use leasehold_model::types::{ChunkStore, Payload, Stamp};
use std::fs::File;
use std::os::unix::fs::FileExt;

const B: u64 = CHECKSUM_BLOCK_BYTES;

/// The bytes of a replica's two metadata slots, where a store of 4 B
/// chunks keeps them in the chunk's data file.
fn slots(dir: &Path, chunk: u64) -> Vec<u8> {
    let bytes = fs::read(dir.join(format!("chunk-{chunk}.dat"))).unwrap();
    bytes[slots_offset(4 * B) as usize..].to_vec()
}

/// Writes `bytes` over a replica's slots (see [`slots`]).
fn write_slots(dir: &Path, chunk: u64, bytes: &[u8]) {
    File::options()
        .write(true)
        .open(dir.join(format!("chunk-{chunk}.dat")))
        .unwrap()
        .write_all_at(bytes, slots_offset(4 * B))
        .unwrap();
}

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
    store.lose_unsynced();
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
    s.lose_unsynced();
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

/// A store holding `len` bytes of chunk 3, synced, then one byte of its
/// second block changed on disk behind its back.
fn stored_with_bad_byte(dir: &Path, len: u64) -> FileStore {
    let mut s = FileStore::open(dir, 4 * B).unwrap();
    s.write_at(3, 0, &Bytes::from(pattern(len, 1)), stamp(1))
        .unwrap();
    s.sync().unwrap();
    let path = dir.join("chunk-3.dat");
    let mut bytes = fs::read(&path).unwrap();
    bytes[B as usize + 5] ^= 0x40;
    fs::write(&path, bytes).unwrap();
    s
}

#[test]
fn a_flipped_byte_is_corrupt_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = stored_with_bad_byte(dir.path(), 2 * B + 10);
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
    s.sync().unwrap();
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
    let mut bytes = slots(dir.path(), 5);
    let half = bytes.len() / 2;
    bytes[9] ^= 1;
    bytes[half + 9] ^= 1;
    write_slots(dir.path(), 5, &bytes);
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
    let mut bytes = slots(dir.path(), 5);
    for b in &mut bytes[20..60] {
        *b = 0xAA;
    }
    write_slots(dir.path(), 5, &bytes);
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
    // file after a machine crash: sized but never written, or cut short
    // before its slots. A chunk never renamed into place is ignored too.
    fs::write(dir.path().join("chunk-3.dat.new"), b"junk").unwrap();
    let len = slots(dir.path(), 1).len();
    write_slots(dir.path(), 1, &vec![0u8; len]);
    File::options()
        .write(true)
        .open(dir.path().join("chunk-2.dat"))
        .unwrap()
        .set_len(10)
        .unwrap();
    let mut s = crash(s);
    assert_eq!(s.chunks(), vec![]);
    assert_eq!(s.read(1, 0, 1), Err(StoreError::OutOfRange));
    assert!(!dir.path().join("chunk-3.dat.new").exists());
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
    // The data file's place is taken by a directory that is not empty:
    // the sync cannot rename the new chunk into place, and fails.
    fs::create_dir_all(dir.path().join("chunk-1.dat/in-the-way")).unwrap();
    assert!(s.sync().is_err());
    fs::remove_dir_all(dir.path().join("chunk-1.dat")).unwrap();
    assert!(s.sync().is_err(), "a sync after a failure must not succeed");
    let (path, size) = (s.dir().to_path_buf(), s.chunk_bytes());
    drop(s);
    // Nothing was renamed at close either.
    assert!(!path.join("chunk-1.dat").exists());
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
fn a_saved_location_with_no_chunk_size_is_an_error_not_a_panic() {
    // What a storage file whose checksum is right but whose payload is
    // not (a bug, a hand edit) holds: `open` would assert.
    let dir = tempfile::tempdir().unwrap();
    let saved = postcard::to_allocvec(&StoreLocation {
        dir: dir.path().into(),
        chunk_bytes: 0,
    })
    .unwrap();
    let err = postcard::from_bytes::<FileStore>(&saved).unwrap_err();
    assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err}");
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

/// `disk_bytes_max`: a write or pad that would grow the chunk data past the
/// room fails `NoSpace` before it writes anything, over all chunks;
/// metadata changes and overwrites inside the data still go through.
#[test]
fn past_its_room_a_change_fails_as_on_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
    s.limit_disk_bytes(Some(3000));
    s.write_at(1, 0, &Bytes::from(pattern(2000, 1)), stamp(1))
        .unwrap();
    s.write_at(2, 0, &Bytes::from(pattern(1000, 2)), stamp(1))
        .unwrap();
    let before = (s.meta(1), s.chunk_len(1));
    assert_eq!(
        s.write_at(1, 2000, &Bytes::from(pattern(1, 3)), stamp(2)),
        Err(StoreError::NoSpace)
    );
    assert_eq!(s.pad_to(2, 1001, stamp(2)), Err(StoreError::NoSpace));
    assert_eq!((s.meta(1), s.chunk_len(1)), before, "nothing changed");
    // Within the data written, and without data, changes go on.
    s.write_at(1, 10, &Bytes::from(pattern(100, 4)), stamp(3))
        .unwrap();
    s.set_version(1, 5).unwrap();
    s.set_applied(2, stamp(7)).unwrap();
    s.limit_disk_bytes(None);
    s.write_at(1, 2000, &Bytes::from(pattern(1, 3)), stamp(4))
        .unwrap();
}

/// A clone (re-replication) copies a replica part by part: the target
/// holds the source's bytes and metadata after the last part, is at
/// version 0 in between (and after a crash there), and a clone repairs a
/// replica whose metadata was unreadable.
#[test]
fn a_clone_in_parts_copies_bytes_and_metadata_and_repairs_damage() {
    use leasehold_model::types::{ClonePiece, ReplicaMeta};
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut src = FileStore::open(src_dir.path(), 4 * B).unwrap();
    let mut dst = FileStore::open(dst_dir.path(), 4 * B).unwrap();
    let data = pattern(B + 1000, 7);
    src.set_version(3, 5).unwrap();
    src.write_at(3, 0, &Bytes::from(data.clone()), stamp(4))
        .unwrap();
    src.pad_to(3, B + 2000, stamp(5)).unwrap();
    src.sync().unwrap();
    // The target held other, longer data of the chunk, and its metadata
    // went bad: it is stale, and refuses everything.
    dst.set_version(3, 2).unwrap();
    dst.write_at(3, 0, &Bytes::from(pattern(3 * B, 9)), stamp(1))
        .unwrap();
    dst.sync().unwrap();
    let len = slots(dst_dir.path(), 3).len();
    write_slots(dst_dir.path(), 3, &vec![0xA5; len]);
    let mut dst = reopen(dst);
    assert_eq!(dst.read(3, 0, 1), Err(StoreError::Corrupt));
    // Parts of 40,000 bytes: a full one, then the short rest.
    let mut from = 0;
    let mut parts = 0;
    loop {
        let (pieces, next) = src.clone_part(3, from, 40_000).unwrap();
        let done = next.is_none().then_some(src.meta(3));
        dst.install_clone(3, from, &pieces, done).unwrap();
        dst.sync().unwrap();
        parts += 1;
        match next {
            Some(n) => {
                // Part-way: version 0, stale to every report.
                assert_eq!(dst.meta(3).version, 0);
                from = n;
            }
            None => break,
        }
    }
    assert_eq!(parts, 2);
    let dst = reopen(dst);
    assert_eq!(
        dst.meta(3),
        ReplicaMeta {
            version: 5,
            applied: stamp(5)
        }
    );
    assert_eq!(dst.chunk_len(3), B + 2000);
    assert_eq!(
        dst.read(3, 0, 4 * B).unwrap(),
        src.read(3, 0, 4 * B).unwrap()
    );
    // A piece another kind of store sends is refused, not written.
    let mut other = dst.clone();
    let odd = [ClonePiece::Pad(stamp(1))];
    assert!(other.install_clone(3, 0, &odd, None).is_err());
    assert_eq!(dst.chunk_len(3), B + 2000);
}

/// `fill_disk`, the model's full disk: a longer replica or a new one
/// fails `NoSpace`, what is stored stays readable, and metadata changes
/// in place still go through (as `MemStore`'s `check_space`).
#[test]
fn a_filled_disk_refuses_room_as_the_model_store_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
    s.write_at(1, 0, &Bytes::from(pattern(100, 1)), stamp(1))
        .unwrap();
    s.fill_disk();
    assert_eq!(
        s.write_at(1, 100, &Bytes::from(pattern(1, 2)), stamp(2)),
        Err(StoreError::NoSpace)
    );
    assert_eq!(
        s.set_version(2, 1),
        Err(StoreError::NoSpace),
        "a new replica"
    );
    s.write_at(1, 10, &Bytes::from(pattern(10, 3)), stamp(3))
        .unwrap();
    s.set_version(1, 4).unwrap();
    let mut mirror = pattern(100, 1);
    apply(&mut mirror, 10, &pattern(10, 3));
    assert_eq!(s.read(1, 0, 100).unwrap().as_slice(), &mirror[..]);
}

/// `corrupt_blocks`, the model's read fault: the bytes on disk change, so
/// that the checksums fail a reopened store's reads too; every read and
/// clone of the open store fails `Corrupt`, new data included; only an
/// unverified read (a seeded bug's) returns bytes, and not the ones
/// written.
#[test]
fn bad_blocks_fail_every_read_and_the_checksum_catches_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
    let data = pattern(100, 1);
    s.write_at(1, 0, &Bytes::from(data.clone()), stamp(1))
        .unwrap();
    s.sync().unwrap();
    s.corrupt_blocks().unwrap();
    assert_eq!(s.read(1, 0, 100), Err(StoreError::Corrupt));
    assert_eq!(s.clone_part(1, 0, 100).err(), Some(StoreError::Corrupt));
    assert_eq!(s.read(9, 0, 1), Err(StoreError::OutOfRange), "no replica");
    let served = s.read_unverified(1, 0, 100).unwrap();
    assert_eq!(served.as_slice().len(), 100);
    assert_ne!(served.as_slice(), &data[..]);
    s.write_at(2, 0, &Bytes::from(pattern(10, 2)), stamp(1))
        .unwrap();
    assert_eq!(s.read(2, 0, 10), Err(StoreError::Corrupt));
    s.sync().unwrap();
    let (path, size) = (s.dir().to_path_buf(), s.chunk_bytes());
    drop(s);
    let s = FileStore::open(&path, size).unwrap();
    assert_eq!(s.read(1, 0, 100), Err(StoreError::Corrupt), "on disk");
    assert_eq!(
        s.read(2, 0, 10).unwrap().as_slice(),
        &pattern(10, 2)[..],
        "written after the fault, and the flag is the open store's"
    );
}

/// One sync makes a batch's data and the slot covering it durable
/// together, in no order: a crash during it can leave the slot on disk and
/// the data not. The load finds a block the newest slot changed failing
/// its checksum and leaves the replica damaged (the model's torn sync): not
/// reported, every read and change refused, until a clone from offset 0
/// repairs it, whose slots then win over the damaged ones.
#[test]
fn a_torn_sync_leaves_the_replica_damaged_until_a_clone_repairs_it() {
    use leasehold_model::types::{ClonePiece, ReplicaMeta};
    let dir = tempfile::tempdir().unwrap();
    let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
    s.set_version(1, 2).unwrap();
    s.write_at(1, 0, &Bytes::from(pattern(1000, 1)), stamp(1))
        .unwrap();
    s.set_version(2, 2).unwrap();
    s.sync().unwrap();
    s.write_at(1, 1000, &Bytes::from(pattern(B, 2)), stamp(2))
        .unwrap();
    s.set_version(2, 3).unwrap();
    s.sync().unwrap();
    // The second sync's slot reached the disk, the bytes it covers did not.
    File::options()
        .write(true)
        .open(dir.path().join("chunk-1.dat"))
        .unwrap()
        .write_all_at(&vec![0u8; B as usize], 1000)
        .unwrap();
    let mut s = crash(s);
    assert_eq!(
        s.chunks(),
        vec![(2, 3)],
        "the damaged replica is in no report"
    );
    assert_eq!(s.meta(1), ReplicaMeta::default());
    assert_eq!(s.read(1, 0, 10), Err(StoreError::Corrupt));
    assert_eq!(
        s.write_at(1, 0, &Bytes::from(pattern(1, 3)), stamp(3)),
        Err(StoreError::Corrupt)
    );
    // Metadata-only changes need no data, so they tear nothing.
    assert_eq!(s.meta(2).version, 3);
    let repaired = ReplicaMeta {
        version: 4,
        applied: stamp(5),
    };
    s.install_clone(
        1,
        0,
        &[ClonePiece::Bytes(Bytes::from(pattern(10, 3)))],
        Some(repaired),
    )
    .unwrap();
    s.sync().unwrap();
    let s = crash(s);
    assert_eq!(s.chunks(), vec![(1, 4), (2, 3)]);
    assert_eq!(s.meta(1), repaired);
    assert_eq!(s.read(1, 0, 10).unwrap().as_slice(), &pattern(10, 3)[..]);
}

/// A store written by the previous format (slots in a `.meta` file beside
/// the data, synced after it) is converted when opened: nothing it held is
/// lost, a `.meta` that does not decode leaves its replica damaged, and
/// the store goes on in the new format.
#[test]
fn a_store_of_the_previous_format_is_converted_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(1000, 4);
    fs::write(dir.path().join("chunk-7.dat"), &data).unwrap();
    let meta = ChunkMeta {
        replica: ReplicaMeta {
            version: 3,
            applied: stamp(2),
        },
        len: 1000,
        crcs: vec![crc32c::crc32c(&data)],
        seq: 5,
    };
    let slot = meta_slot_bytes(4 * B) as usize;
    let mut file = vec![0u8; 2 * slot];
    let encoded = encode_meta_separate(&meta);
    file[slot..slot + encoded.len()].copy_from_slice(&encoded);
    fs::write(dir.path().join("chunk-7.meta"), file).unwrap();
    fs::write(dir.path().join("chunk-8.dat"), b"x").unwrap();
    fs::write(dir.path().join("chunk-8.meta"), vec![0xA5; 2 * slot]).unwrap();
    let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
    assert_eq!(s.chunks(), vec![(7, 3)]);
    assert_eq!(s.meta(7).applied, stamp(2));
    assert_eq!(s.read(7, 0, 1000).unwrap().as_slice(), &data[..]);
    assert_eq!(s.read(8, 0, 1), Err(StoreError::Corrupt));
    for chunk in [7, 8] {
        assert!(!dir.path().join(format!("chunk-{chunk}.meta")).exists());
    }
    s.write_at(7, 1000, &Bytes::from(pattern(10, 5)), stamp(3))
        .unwrap();
    s.sync().unwrap();
    let s = crash(s);
    assert_eq!((s.chunk_len(7), s.meta(7).version), (1010, 3));
    assert_eq!(s.read(8, 0, 1), Err(StoreError::Corrupt));
}

/// Appends extend the last block's checksum instead of re-reading the
/// block (GFS §5.2): after appends of every size across block boundaries,
/// and one past the end (a gap of zeros), every block still reads back
/// verified, before and after a reopen from the synced metadata.
#[test]
fn appends_extend_the_last_blocks_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
    let mut expect = Vec::new();
    let sizes = [1, 1000, B - 1001, 2, B + 7, 1, 3 * 1024];
    for (i, size) in sizes.iter().enumerate() {
        let part = pattern(*size, i as u8);
        s.write_at(
            6,
            expect.len() as u64,
            &Bytes::from(part.clone()),
            stamp(i as u64 + 1),
        )
        .unwrap();
        expect.extend_from_slice(&part);
        assert_eq!(
            s.read(6, 0, expect.len() as u64).unwrap().as_slice(),
            &expect[..]
        );
    }
    // An append past the end: the gap reads as zeros.
    let at = expect.len() as u64 + 100;
    s.write_at(6, at, &Bytes::from(vec![9u8; 50]), stamp(20))
        .unwrap();
    expect.extend_from_slice(&[0u8; 100]);
    expect.extend_from_slice(&[9u8; 50]);
    s.sync().unwrap();
    let s = crash(s);
    assert_eq!(
        s.read(6, 0, expect.len() as u64).unwrap().as_slice(),
        &expect[..]
    );
}

/// An append onto a block whose old bytes went bad is not refused, and it
/// launders nothing: the extended checksum still disagrees with the bad
/// byte, so the block fails its next read; the other blocks serve.
#[test]
fn an_append_onto_a_corrupt_block_leaves_it_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = stored_with_bad_byte(dir.path(), B + 10);
    s.write_at(3, B + 10, &Bytes::from(vec![7u8; 10]), stamp(2))
        .unwrap();
    assert_eq!(s.read(3, B + 10, 10), Err(StoreError::Corrupt));
    assert_eq!(
        s.read(3, 0, 10).unwrap().as_slice(),
        &pattern(B + 10, 1)[..10]
    );
}

/// Data files stay open between writes: a replica deleted and created
/// again is written to its new file, not the deleted one's handle, and a
/// new chunk's file is written on after its first sync renamed it.
#[test]
fn a_kept_open_file_follows_its_replica() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = FileStore::open(dir.path(), 4 * B).unwrap();
    s.write_at(5, 0, &Bytes::from(pattern(100, 1)), stamp(1))
        .unwrap();
    s.sync().unwrap();
    s.write_at(5, 100, &Bytes::from(pattern(50, 2)), stamp(2))
        .unwrap();
    s.sync().unwrap();
    let mut expect = pattern(100, 1);
    expect.extend_from_slice(&pattern(50, 2));
    assert_eq!(
        fs::read(dir.path().join("chunk-5.dat")).unwrap()[..150],
        expect[..]
    );
    s.delete_replica(5).unwrap();
    s.write_at(5, 0, &Bytes::from(pattern(30, 3)), stamp(3))
        .unwrap();
    s.sync().unwrap();
    let s = reopen(s);
    assert_eq!(s.chunk_len(5), 30);
    assert_eq!(s.read(5, 0, 30).unwrap().as_slice(), &pattern(30, 3)[..]);
}
