//! Protocol vocabulary: the names the patent and the GFS paper use, as types.
//!
//! Everything that crosses the wire is a sized integer (`u32`/`u64`), never
//! `usize`, so the TCP host and the model agree on encodings.
//!
//! Two traits form the *host interface* for chunk data: [`Payload`] (the bytes
//! a client pushes) and [`ChunkStore`] (where a chunkserver keeps its chunk
//! replicas). The model implements both with tiny in-memory values
//! ([`RecordToken`], [`MemStore`]) so every replica's contents are part of the
//! checked state; the TCP host implements them with byte buffers and files.
//! The actors never know which one they run on.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::fmt::{self, Debug, Formatter};
use std::hash::{Hash, Hasher};

/// Globally unique chunk name chosen by the master ([0090]).
pub type ChunkHandle = u64;
/// Incremented by the master on every new lease grant; a replica whose
/// version is lower than the master's is stale (GFS paper §4.5).
pub type ChunkVersion = u64;
/// Identifies one lease grant of one chunk. Global mutation order is lease
/// grant order, then serial ([0090]), so epochs only grow, even across master
/// restarts (the master persists the counter).
pub type LeaseEpoch = u64;
/// Consecutive number the primary assigns to each mutation within a lease
/// ([0099]). Starts at 1 in each epoch.
pub type Serial = u64;
/// Position inside a chunk, in the store's unit (bytes on disk, abstract
/// units in the model).
pub type Offset = u64;
/// Index of a file inside the master's namespace.
pub type FileId = u32;

/// Identifies data a client pushed ([0095]): the client's node index and a
/// per-client sequence number. Replicas buffer pushed data under this id
/// until a mutation names it or it ages out.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DataId {
    pub client: u32,
    pub seq: u32,
}

impl Debug for DataId {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "d{}.{}", self.client, self.seq)
    }
}

/// Which lease and which slot within it a mutation was applied under: the
/// global order of mutations on a chunk ([0090]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Stamp {
    pub epoch: LeaseEpoch,
    pub serial: Serial,
}

impl Debug for Stamp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "e{}#{}", self.epoch, self.serial)
    }
}

/// Data a client pushes and a replica writes. `len` is in the store's unit.
pub trait Payload: Clone + Debug + Eq + Hash + Ord + Serialize + for<'de> Deserialize<'de> {
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Joins the fragments of one push, in order, into the data to write.
    /// The TCP host pushes large records in fragments so that each server
    /// can forward a fragment while it still receives the next ([0098]).
    fn concat(fragments: &[Self]) -> Self;
    /// Cuts data into fragments of at most `fragment_max` units for a
    /// pipelined push. The model pushes whole records.
    fn split(&self, fragment_max: u64) -> Vec<Self> {
        let _ = fragment_max;
        vec![self.clone()]
    }
}

/// Why a store refused an operation. The chunkserver turns these into
/// failure replies, so the client retries instead of the server crashing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StoreError {
    /// The write would run past the chunk's maximum size.
    OutOfRange,
    /// The disk is full or refused the write.
    NoSpace,
    /// A block failed its checksum: corruption is detected, never served.
    Corrupt,
    /// Any other I/O failure, with the host's description.
    Io(String),
}

impl StoreError {
    /// Whether the error says the replica itself is faulty (its disk), as
    /// opposed to a request it must refuse (FAULT-2).
    pub fn is_replica_fault(&self) -> bool {
        !matches!(self, StoreError::OutOfRange)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::OutOfRange => write!(f, "write past the end of the chunk"),
            StoreError::NoSpace => write!(f, "no space left on the chunkserver's disk"),
            StoreError::Corrupt => write!(f, "checksum mismatch: block is corrupt"),
            StoreError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

/// What a chunkserver persists per chunk replica besides its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ReplicaMeta {
    /// The chunk version this replica last learned from the master.
    pub version: ChunkVersion,
    /// The last mutation applied, so a restarted secondary keeps applying
    /// in serial order ([00100]).
    pub applied: Stamp,
}

/// Where a chunkserver keeps its chunk replicas: durable across crashes.
///
/// A change need not be durable when its method returns, only before
/// anything its step commanded happens, since the chunkserver acknowledges
/// a mutation in the step that applies it (STORE-2). The TCP host passes a
/// barrier after each batch of handlers and before carrying out their
/// commands (`impl/src/host/event_loop.rs`); for the file store
/// (`impl/src/filestore.rs`) that barrier is one sync of every change since
/// the last (group commit). [`MemStore`] changes at once, and the model's
/// crashes fall between steps, so the model sees the same order. Only
/// `count_restart` is durable when it returns.
pub trait ChunkStore:
    Clone + Debug + PartialEq + Hash + Serialize + for<'de> Deserialize<'de>
{
    type Payload: Payload;

    /// Replica metadata; a chunk the server never saw is version 0, empty.
    fn meta(&self, chunk: ChunkHandle) -> ReplicaMeta;
    /// Records a new chunk version learned from the master.
    fn set_version(&mut self, chunk: ChunkHandle, version: ChunkVersion) -> Result<(), StoreError>;
    /// End of the data written so far: where the next record append goes.
    fn chunk_len(&self, chunk: ChunkHandle) -> Offset;
    /// Writes `data` at `offset`, overwriting whatever is there ([00106]),
    /// and records `stamp` as the last applied mutation.
    fn write_at(
        &mut self,
        chunk: ChunkHandle,
        offset: Offset,
        data: &Self::Payload,
        stamp: Stamp,
    ) -> Result<(), StoreError>;
    /// Fills the chunk from its current end up to `end` with padding
    /// ([00105]) and records `stamp`.
    fn pad_to(&mut self, chunk: ChunkHandle, end: Offset, stamp: Stamp) -> Result<(), StoreError>;
    /// Records that mutation `stamp` was consumed without changing data (it
    /// failed here, e.g. its pushed data had aged out), so later serials are
    /// not held back behind it ([00101]: the region is left undefined).
    fn set_applied(&mut self, chunk: ChunkHandle, stamp: Stamp) -> Result<(), StoreError>;
    /// Reads `len` units at `offset` (short at the end of the data).
    fn read(
        &self,
        chunk: ChunkHandle,
        offset: Offset,
        len: u64,
    ) -> Result<Self::Payload, StoreError>;
    /// [`ChunkStore::read`] without verifying the blocks' checksums, so
    /// a corrupt block comes back as data. Only a seeded bug calls it
    /// (`Bug::ReplicaServesCorruptBlock`); a store whose blocks cannot go
    /// bad reads as `read` does.
    fn read_unverified(
        &self,
        chunk: ChunkHandle,
        offset: Offset,
        len: u64,
    ) -> Result<Self::Payload, StoreError> {
        self.read(chunk, offset, len)
    }
    /// The replica's contents from `from` on, at most `units_max` units,
    /// for a clone of it (GFS §4.3), and where the next part starts
    /// (`None`: this part reaches the end of the data). The pieces are the
    /// store's own kind ([`ClonePiece`]); only the same kind of store
    /// installs them. Verified as a read is: a corrupt block fails.
    fn clone_part(
        &self,
        chunk: ChunkHandle,
        from: Offset,
        units_max: u64,
    ) -> Result<CloneSlice<Self::Payload>, StoreError>;
    /// Installs part of a clone at `from`. The first part (`from` 0)
    /// replaces whatever the replica held, and until the last one (`done`:
    /// the source's metadata, at the version the master asked for) the
    /// replica is at version 0: a crash part-way leaves a replica every
    /// report shows as stale, never a mixture at an old version.
    fn install_clone(
        &mut self,
        chunk: ChunkHandle,
        from: Offset,
        pieces: &[ClonePiece<Self::Payload>],
        done: Option<ReplicaMeta>,
    ) -> Result<(), StoreError>;
    /// Every chunk this replica holds, for reports to the master.
    fn chunks(&self) -> Vec<(ChunkHandle, ChunkVersion)>;
    /// How many times this chunkserver has restarted (durable).
    fn incarnation(&self) -> u32;
    /// Counts a restart, durably, before the server says anything.
    fn count_restart(&mut self) -> Result<u32, StoreError>;
}

/// What the protocol can see of a chunk store, whatever keeps the data:
/// its restart count and, per chunk it holds, the replica metadata and the
/// end of the data. Traces of real nodes record it, and node digests
/// ([`crate::NodeState::protocol_digest`]) hash it, so a replay on another
/// store implementation can be compared with the real run.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct StoreView {
    pub incarnation: u32,
    pub chunks: Vec<(ChunkHandle, ReplicaMeta, Offset)>,
}

impl StoreView {
    pub fn of<S: ChunkStore>(store: &S) -> StoreView {
        StoreView {
            incarnation: store.incarnation(),
            chunks: store
                .chunks()
                .into_iter()
                .map(|(chunk, _)| (chunk, store.meta(chunk), store.chunk_len(chunk)))
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------
// The model's side of the host interface.

/// A record in the model: which client pushed it, its sequence number, and
/// its size in units. Two tokens are the same data exactly when equal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordToken {
    pub id: DataId,
    pub units: u8,
}

/// A piece of a replica's contents as a clone carries it from a current
/// replica to a stale one (GFS §4.3). The model's store sends one piece
/// per unit, which keeps what each unit holds and which mutation wrote it
/// (the properties look at both); the file store sends its bytes as they
/// are, padding included, since it keeps no stamp per byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ClonePiece<P> {
    /// A unit never written on the source (model store).
    Hole,
    /// A unit of padding ([00105]) written by mutation `stamp` (model store).
    Pad(Stamp),
    /// Unit `part` of `record`, written by mutation `stamp` (model store).
    Unit { record: P, part: u8, stamp: Stamp },
    /// Consecutive bytes of the chunk (file store).
    Bytes(P),
}

/// What [`ChunkStore::clone_part`] reads: the pieces, and where the next
/// part starts (`None`: the end of the data).
pub type CloneSlice<P> = (Vec<ClonePiece<P>>, Option<Offset>);

/// The client number of a [`RecordToken`] no client sent: the bytes of a
/// corrupt block, read without verifying its checksum.
pub const CORRUPT_BYTES_CLIENT: u32 = u32::MAX - 1;

impl Debug for RecordToken {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "r{}.{}x{}", self.id.client, self.id.seq, self.units)
    }
}

impl Payload for RecordToken {
    fn len(&self) -> u64 {
        self.units as u64
    }
    fn concat(fragments: &[Self]) -> Self {
        // The model pushes each record as one fragment.
        assert_eq!(fragments.len(), 1, "model records are pushed whole");
        fragments[0]
    }
}

/// One unit of a chunk replica in the model.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Cell {
    /// Padding written by a record append that did not fit ([00105]).
    Pad(Stamp),
    /// Unit `part` of a record, written by the mutation `stamp`.
    Data {
        record: RecordToken,
        part: u8,
        stamp: Stamp,
    },
}

impl Debug for Cell {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Pad(_) => write!(f, "pad"),
            Cell::Data { record, part, .. } if record.units == 1 => {
                write!(f, "{record:?}", record = record.id)
            }
            Cell::Data { record, part, .. } => write!(f, "{:?}[{part}]", record.id),
        }
    }
}

/// A replica's cells, inline: the model's chunks are a few units long, and
/// every chunkserver step that changes its store clones it, so a heap
/// allocation per replica would be paid on most steps. Longer chunks (a
/// configuration's `chunk_units` above 8) spill to the heap unchanged.
pub type Cells = SmallVec<[Option<Cell>; 8]>;

/// One replica of one chunk in the model: a few cells and the metadata.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct MemReplica {
    pub meta: ReplicaMeta,
    /// `None` is a hole: a unit never written on this replica (possible when
    /// it missed a failed mutation and a later one wrote past it).
    pub cells: Cells,
}

impl Debug for MemReplica {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "v{} [", self.meta.version)?;
        for (i, c) in self.cells.iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            match c {
                None => write!(f, "_")?,
                Some(c) => write!(f, "{c:?}")?,
            }
        }
        write!(f, "]")
    }
}

/// What a [`MemStore`] holds; serialized as the store itself.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
struct StoreContents {
    chunk_size: u8,
    incarnation: u32,
    /// Indexed by chunk handle; the model allocates at most two chunks.
    replicas: SmallVec<[MemReplica; 2]>,
    /// The disk filled up (the model's store fault, `store_faults`): every
    /// later change fails with `NoSpace`, across restarts, as a full disk
    /// does; what is stored stays readable.
    #[serde(default)]
    full: bool,
    /// Its blocks went bad (the model's read fault, `read_faults`): every
    /// later read fails `Corrupt` as a checksum mismatch does; changes
    /// still land (a whole new block needs no read).
    #[serde(default)]
    corrupt: bool,
}

impl StoreContents {
    fn digest(&self) -> u64 {
        digest(self)
    }
}

/// A 64-bit digest of `value` that stands for it in the checker's
/// fingerprints (see [`MemStore`] and [`crate::node::Digested`]). Fixed
/// keys, so fingerprints are the same in every run; aHash, the hasher
/// stateright fingerprints with, because SipHash on many small fields cost
/// more than the digest saves.
pub fn digest<T: Hash + ?Sized>(value: &T) -> u64 {
    ahash::RandomState::with_seeds(0x6c65_6173, 0x6568_6f6c, 0x6467_6673, 0x6d6f_6465)
        .hash_one(value)
}

/// The model's chunk store: every replica of every chunk the server has,
/// indexed by chunk handle (the model's handles are small and dense).
///
/// The checker hashes every store twice per generated state (in the
/// chunkserver's state and in its saved storage), but a store changes on
/// few steps. So the store keeps a digest of its contents, renewed by every
/// change, and hashes as that digest alone. The contents are reachable
/// only through methods, so no change can skip the renewal.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct MemStore {
    contents: StoreContents,
    digest: u64,
}

impl Hash for MemStore {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
    }
}

impl Serialize for MemStore {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.contents.serialize(s)
    }
}

impl<'de> Deserialize<'de> for MemStore {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        StoreContents::deserialize(d).map(MemStore::from_contents)
    }
}

impl Debug for MemStore {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        // The Explorer and counterexamples show replicas as strips.
        crate::display::mem_store(self, f)
    }
}

impl MemStore {
    pub fn new(chunk_size: u8) -> Self {
        MemStore::from_contents(StoreContents {
            chunk_size,
            incarnation: 0,
            replicas: SmallVec::new(),
            full: false,
            corrupt: false,
        })
    }

    /// The disk fills up: from now on every change fails (`NoSpace`).
    pub fn fill_disk(&mut self) {
        self.change(|c| c.full = true);
    }

    pub fn is_full(&self) -> bool {
        self.contents.full
    }

    /// The blocks go bad: from now on every read fails (`Corrupt`).
    pub fn corrupt_blocks(&mut self) {
        self.change(|c| c.corrupt = true);
    }

    pub fn is_corrupt(&self) -> bool {
        self.contents.corrupt
    }

    fn check_space(&self) -> Result<(), StoreError> {
        if self.contents.full {
            Err(StoreError::NoSpace)
        } else {
            Ok(())
        }
    }

    fn from_contents(contents: StoreContents) -> Self {
        let digest = contents.digest();
        MemStore { contents, digest }
    }

    pub fn chunk_size(&self) -> u8 {
        self.contents.chunk_size
    }

    /// Every replica, indexed by chunk handle.
    pub fn replicas(&self) -> &[MemReplica] {
        &self.contents.replicas
    }

    pub fn replica(&self, chunk: ChunkHandle) -> Option<&MemReplica> {
        self.contents.replicas.get(chunk as usize)
    }

    /// Changes the contents with `f` and renews the digest.
    fn change<R>(&mut self, f: impl FnOnce(&mut StoreContents) -> R) -> R {
        let r = f(&mut self.contents);
        self.digest = self.contents.digest();
        r
    }

    /// Rewrites every cell with `f` (the symmetry reduction renames clients).
    pub fn map_cells(&mut self, mut f: impl FnMut(Cell) -> Cell) {
        self.change(|c| {
            for r in &mut c.replicas {
                for cell in r.cells.iter_mut().flatten() {
                    *cell = f(*cell);
                }
            }
        })
    }

    /// Changes the replica of `chunk` with `f`, creating it (and any below
    /// it) empty first.
    fn change_replica<R>(&mut self, chunk: ChunkHandle, f: impl FnOnce(&mut MemReplica) -> R) -> R {
        self.change(|c| {
            let i = chunk as usize;
            if c.replicas.len() <= i {
                c.replicas.resize_with(i + 1, MemReplica::default);
            }
            f(&mut c.replicas[i])
        })
    }
}

impl ChunkStore for MemStore {
    type Payload = RecordToken;

    fn meta(&self, chunk: ChunkHandle) -> ReplicaMeta {
        self.replica(chunk).map(|r| r.meta).unwrap_or_default()
    }

    fn set_version(&mut self, chunk: ChunkHandle, version: ChunkVersion) -> Result<(), StoreError> {
        self.check_space()?;
        self.change_replica(chunk, |r| r.meta.version = version);
        Ok(())
    }

    fn chunk_len(&self, chunk: ChunkHandle) -> Offset {
        self.replica(chunk)
            .map(|r| r.cells.len() as Offset)
            .unwrap_or(0)
    }

    fn write_at(
        &mut self,
        chunk: ChunkHandle,
        offset: Offset,
        data: &RecordToken,
        stamp: Stamp,
    ) -> Result<(), StoreError> {
        // Deliberately no bound check here: the model store lets a buggy
        // primary write across the chunk boundary so that APPEND-3 can see it.
        // The file store refuses such writes as a second line of defence.
        self.check_space()?;
        let end = offset + data.len();
        self.change_replica(chunk, |r| {
            if r.cells.len() < end as usize {
                r.cells.resize(end as usize, None);
            }
            for part in 0..data.units {
                r.cells[offset as usize + part as usize] = Some(Cell::Data {
                    record: *data,
                    part,
                    stamp,
                });
            }
            r.meta.applied = stamp;
        });
        Ok(())
    }

    fn pad_to(&mut self, chunk: ChunkHandle, end: Offset, stamp: Stamp) -> Result<(), StoreError> {
        if end > self.chunk_size() as u64 {
            return Err(StoreError::OutOfRange);
        }
        self.check_space()?;
        self.change_replica(chunk, |r| {
            while (r.cells.len() as u64) < end {
                r.cells.push(Some(Cell::Pad(stamp)));
            }
            r.meta.applied = stamp;
        });
        Ok(())
    }

    fn set_applied(&mut self, chunk: ChunkHandle, stamp: Stamp) -> Result<(), StoreError> {
        self.check_space()?;
        self.change_replica(chunk, |r| r.meta.applied = stamp);
        Ok(())
    }

    fn read(
        &self,
        chunk: ChunkHandle,
        offset: Offset,
        len: u64,
    ) -> Result<RecordToken, StoreError> {
        // The model reads whole records only: the token at `offset`.
        let r = self.replica(chunk).ok_or(StoreError::OutOfRange)?;
        if self.contents.corrupt {
            return Err(StoreError::Corrupt);
        }
        match r.cells.get(offset as usize) {
            Some(Some(Cell::Data {
                record, part: 0, ..
            })) if record.len() == len => Ok(*record),
            _ => Err(StoreError::OutOfRange),
        }
    }

    fn read_unverified(
        &self,
        chunk: ChunkHandle,
        offset: Offset,
        len: u64,
    ) -> Result<RecordToken, StoreError> {
        if !self.contents.corrupt {
            return self.read(chunk, offset, len);
        }
        // Bad blocks read as bytes no client sent.
        self.replica(chunk).ok_or(StoreError::OutOfRange)?;
        Ok(RecordToken {
            id: DataId {
                client: CORRUPT_BYTES_CLIENT,
                seq: 0,
            },
            units: len as u8,
        })
    }

    fn clone_part(
        &self,
        chunk: ChunkHandle,
        from: Offset,
        units_max: u64,
    ) -> Result<CloneSlice<RecordToken>, StoreError> {
        if self.contents.corrupt {
            return Err(StoreError::Corrupt);
        }
        let cells = self.replica(chunk).map(|r| &r.cells[..]).unwrap_or(&[]);
        let end = cells.len() as u64;
        let to = from.saturating_add(units_max).min(end);
        let pieces = cells
            .get(from.min(end) as usize..to as usize)
            .unwrap_or(&[])
            .iter()
            .map(|c| match *c {
                None => ClonePiece::Hole,
                Some(Cell::Pad(stamp)) => ClonePiece::Pad(stamp),
                Some(Cell::Data {
                    record,
                    part,
                    stamp,
                }) => ClonePiece::Unit {
                    record,
                    part,
                    stamp,
                },
            })
            .collect();
        Ok((pieces, (to < end).then_some(to)))
    }

    fn install_clone(
        &mut self,
        chunk: ChunkHandle,
        from: Offset,
        pieces: &[ClonePiece<RecordToken>],
        done: Option<ReplicaMeta>,
    ) -> Result<(), StoreError> {
        self.check_space()?;
        self.change_replica(chunk, |r| {
            if from == 0 {
                r.cells.clear();
            }
            r.cells.truncate(from as usize);
            r.cells.resize(from as usize, None);
            r.cells.extend(pieces.iter().map(|p| match *p {
                ClonePiece::Hole | ClonePiece::Bytes(_) => None,
                ClonePiece::Pad(stamp) => Some(Cell::Pad(stamp)),
                ClonePiece::Unit {
                    record,
                    part,
                    stamp,
                } => Some(Cell::Data {
                    record,
                    part,
                    stamp,
                }),
            }));
            r.meta = done.unwrap_or_default();
        });
        Ok(())
    }

    fn chunks(&self) -> Vec<(ChunkHandle, ChunkVersion)> {
        self.replicas()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.meta.version > 0)
            .map(|(i, r)| (i as ChunkHandle, r.meta.version))
            .collect()
    }

    fn incarnation(&self) -> u32 {
        self.contents.incarnation
    }

    fn count_restart(&mut self) -> Result<u32, StoreError> {
        Ok(self.change(|c| {
            c.incarnation += 1;
            c.incarnation
        }))
    }
}
