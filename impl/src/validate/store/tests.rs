use super::*;
use crate::filestore::FileStore;

const CHUNK: u64 = 4 * BLOCK_BYTES;

fn stamp(serial: u64) -> Stamp {
    Stamp { epoch: 1, serial }
}

fn data(len: u64, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

/// Both stores, checked to agree on everything the trait shows after
/// every operation.
struct Pair {
    _dir: tempfile::TempDir,
    file: FileStore,
    replay: ReplayStore,
}

impl Pair {
    fn new() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        Pair {
            file: FileStore::open(dir.path(), CHUNK).unwrap(),
            replay: ReplayStore::new(CHUNK),
            _dir: dir,
        }
    }

    fn agree(&self, what: &str) {
        let (f, r) = (&self.file, &self.replay);
        assert_eq!(f.chunks(), r.chunks(), "{what}: chunks");
        assert_eq!(f.incarnation(), r.incarnation(), "{what}: incarnation");
        for chunk in 0..4 {
            assert_eq!(f.meta(chunk), r.meta(chunk), "{what}: meta of {chunk}");
            assert_eq!(
                f.chunk_len(chunk),
                r.chunk_len(chunk),
                "{what}: length of {chunk}"
            );
            assert_eq!(
                ChunkStore::read(f, chunk, 0, u64::MAX),
                ChunkStore::read(r, chunk, 0, u64::MAX),
                "{what}: bytes of {chunk}"
            );
        }
        assert_eq!(StoreView::of(f), StoreView::of(r), "{what}: view");
    }

    fn both<T: PartialEq + Debug>(&mut self, what: &str, op: impl Fn(&mut dyn Op) -> T) {
        let f = op(&mut self.file);
        let r = op(&mut self.replay);
        assert_eq!(f, r, "{what}: results");
        self.agree(what);
    }
}

/// The trait's calls, object-safe, so one closure drives both stores.
trait Op {
    fn set_version(&mut self, c: ChunkHandle, v: u64) -> Result<(), StoreError>;
    fn write_at(&mut self, c: ChunkHandle, o: u64, d: &Bytes, s: Stamp) -> Result<(), StoreError>;
    fn pad_to(&mut self, c: ChunkHandle, e: u64, s: Stamp) -> Result<(), StoreError>;
    fn set_applied(&mut self, c: ChunkHandle, s: Stamp) -> Result<(), StoreError>;
    fn read(&self, c: ChunkHandle, o: u64, l: u64) -> Result<Bytes, StoreError>;
    fn count_restart(&mut self) -> Result<u32, StoreError>;
}

impl<S: ChunkStore<Payload = Bytes>> Op for S {
    fn set_version(&mut self, c: ChunkHandle, v: u64) -> Result<(), StoreError> {
        ChunkStore::set_version(self, c, v)
    }
    fn write_at(&mut self, c: ChunkHandle, o: u64, d: &Bytes, s: Stamp) -> Result<(), StoreError> {
        ChunkStore::write_at(self, c, o, d, s)
    }
    fn pad_to(&mut self, c: ChunkHandle, e: u64, s: Stamp) -> Result<(), StoreError> {
        ChunkStore::pad_to(self, c, e, s)
    }
    fn set_applied(&mut self, c: ChunkHandle, s: Stamp) -> Result<(), StoreError> {
        ChunkStore::set_applied(self, c, s)
    }
    fn read(&self, c: ChunkHandle, o: u64, l: u64) -> Result<Bytes, StoreError> {
        ChunkStore::read(self, c, o, l)
    }
    fn count_restart(&mut self) -> Result<u32, StoreError> {
        ChunkStore::count_restart(self)
    }
}

#[test]
fn replay_store_answers_as_the_file_store_does() {
    let mut p = Pair::new();
    p.agree("empty");
    p.both("read of a chunk never seen", |s| s.read(1, 0, 10));
    p.both("version", |s| s.set_version(1, 3));
    p.both("append", |s| s.write_at(1, 0, &data(1000, 1), stamp(1)));
    p.both("append across a block", |s| {
        s.write_at(1, 1000, &data(BLOCK_BYTES, 2), stamp(2))
    });
    p.both("overwrite inside", |s| {
        s.write_at(1, 500, &data(700, 3), stamp(3))
    });
    p.both("write past the end leaves zeros", |s| {
        s.write_at(1, 2 * BLOCK_BYTES + 10, &data(20, 4), stamp(4))
    });
    p.both("empty write inside", |s| {
        s.write_at(1, 5, &Bytes::default(), stamp(5))
    });
    p.both("empty write past the end", |s| {
        s.write_at(1, 3 * BLOCK_BYTES, &Bytes::default(), stamp(6))
    });
    p.both("write past the chunk", |s| {
        s.write_at(1, CHUNK - 5, &data(10, 5), stamp(7))
    });
    p.both("write at an overflowing offset", |s| {
        s.write_at(1, u64::MAX - 2, &data(10, 5), stamp(7))
    });
    p.both("short read at the end", |s| {
        s.read(1, 3 * BLOCK_BYTES - 4, 100)
    });
    p.both("read at the end", |s| s.read(1, 3 * BLOCK_BYTES, 100));
    p.both("read past the end", |s| s.read(1, 3 * BLOCK_BYTES + 1, 1));
    p.both("pad below the end", |s| s.pad_to(1, 10, stamp(8)));
    p.both("pad to the chunk's end", |s| s.pad_to(1, CHUNK, stamp(9)));
    p.both("pad past the chunk", |s| s.pad_to(2, CHUNK + 1, stamp(9)));
    p.both("pad of a new chunk", |s| s.pad_to(2, 100, stamp(10)));
    p.both("a version-0 chunk is not listed", |s| {
        s.set_applied(3, stamp(11))
    });
    p.both("its version arrives", |s| s.set_version(3, 1));
    p.both("restart", |s| s.count_restart());
    p.both("restart again", |s| s.count_restart());
}

#[test]
fn replay_store_follows_the_file_store_through_random_operations() {
    let mut p = Pair::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for i in 0..400u64 {
        let chunk = next(3);
        let at = next(CHUNK + 100);
        let len = [0, 1, 100, BLOCK_BYTES - 1, BLOCK_BYTES + 7][next(5) as usize];
        let what = format!("operation {i}");
        match next(6) {
            0 => p.both(&what, |s| s.set_version(chunk, i)),
            1 | 2 => p.both(&what, |s| {
                s.write_at(chunk, at, &data(len, i as u8), stamp(i))
            }),
            3 => p.both(&what, |s| s.pad_to(chunk, at, stamp(i))),
            4 => p.both(&what, |s| s.read(chunk, at, len)),
            _ => p.both(&what, |s| s.set_applied(chunk, stamp(i))),
        }
    }
}

#[test]
fn clones_are_independent_and_faults_fail_the_armed_call() {
    let faults = Arc::new(FaultSwitch::default());
    let mut a = ReplayStore::new(CHUNK).with_faults(faults.clone());
    ChunkStore::write_at(&mut a, 0, 0, &data(100, 1), stamp(1)).unwrap();
    let before = a.clone();
    ChunkStore::write_at(&mut a, 0, 50, &data(100, 2), stamp(2)).unwrap();
    assert_eq!(before.bytes(0, 0, 200).unwrap(), data(100, 1).as_slice());
    assert_eq!(a.chunk_len(0), 150);
    faults.arm(&[(1, StoreError::Corrupt)]);
    assert_eq!(ChunkStore::read(&a, 0, 0, 10).map(|b| b.len()), Ok(10));
    assert_eq!(ChunkStore::read(&a, 0, 0, 10), Err(StoreError::Corrupt));
    assert_eq!(faults.calls(), 2);
    faults.arm(&[]);
    assert!(ChunkStore::read(&a, 0, 0, 10).is_ok());
}

/// A replica a torn sync damaged (the file store's `tear_next_sync`, then a
/// reopen) and the replay's adoption of the restart's view with that
/// replica taken as damaged answer alike: not listed, version 0, every read
/// and change failing `Corrupt`, until it is deleted.
#[test]
fn a_replica_damaged_by_a_torn_sync_answers_as_the_file_store_does() {
    let mut p = Pair::new();
    p.both("version", |s| s.set_version(1, 1));
    p.both("append", |s| s.write_at(1, 0, &data(1000, 1), stamp(1)));
    p.both("other chunk", |s| s.write_at(2, 0, &data(100, 2), stamp(1)));
    p.file.sync().unwrap();
    p.file.tear_next_sync();
    p.both("append in the torn batch", |s| {
        s.write_at(1, 1000, &data(500, 3), stamp(2))
    });
    assert!(p.file.sync().is_err(), "a torn sync fails");
    // The restart: the damaged store's handle goes before the reopen (a
    // directory open in the process is shared).
    let path = p._dir.path().to_path_buf();
    let elsewhere = tempfile::tempdir().unwrap();
    let placeholder = FileStore::open(elsewhere.path(), CHUNK).unwrap();
    drop(std::mem::replace(&mut p.file, placeholder));
    p.file = FileStore::open(&path, CHUNK).unwrap();
    // Chunk 1 is damaged, chunk 2 never had a version: neither is listed.
    assert!(p.file.chunks().is_empty(), "{:?}", p.file.chunks());
    assert_eq!(
        ChunkStore::read(&p.file, 1, 0, 10),
        Err(StoreError::Corrupt)
    );
    p.replay.adopt_view(&StoreView::of(&p.file), &[1]);
    assert!(p.replay.is_damaged(1) && !p.replay.is_damaged(2));
    p.agree("restarted");
    p.both("read", |s| s.read(1, 0, 10));
    p.both("write", |s| s.write_at(1, 1500, &data(10, 4), stamp(3)));
    p.both("pad", |s| s.pad_to(1, 2000, stamp(3)));
    p.both("applied", |s| s.set_applied(1, stamp(3)));
    p.both("version", |s| s.set_version(1, 2));
    p.both("the undamaged chunk", |s| s.read(2, 0, 100));
    ChunkStore::delete_replica(&mut p.file, 1).unwrap();
    ChunkStore::delete_replica(&mut p.replay, 1).unwrap();
    assert!(!p.replay.is_damaged(1));
    p.agree("deleted");
    p.both("created afresh", |s| s.set_version(1, 3));
}
