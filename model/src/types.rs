//! Protocol vocabulary: the names the patent and the GFS paper use, as types.
//!
//! Everything that crosses the wire is a sized integer (`u32`/`u64`), never
//! `usize`, so the TCP host and the model agree on encodings.
//!
//! Two traits form the *host interface* for chunk data: [`Payload`] (the bytes
//! a client pushes) and [`ChunkStore`] (where a chunkserver keeps its chunk
//! replicas). The model implements both with tiny in-memory values
//! ([`crate::memstore::RecordToken`], [`crate::memstore::MemStore`]) so every
//! replica's contents are part of the checked state; the TCP host implements
//! them with byte buffers and files.
//! The actors never know which one they run on.

use serde::{Deserialize, Serialize};
use std::fmt::{self, Debug, Formatter};
use std::hash::Hash;

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

/// Identifies data a client pushed ([0095]): the client's number and a
/// per-client sequence number. Replicas buffer pushed data under this id
/// until a mutation names it or it ages out. The number is 64 bits because
/// a real client draws it at random when it starts (it has no place in the
/// cluster file to take one from), and a repeat would let one client's
/// mutation name another's buffered data.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct DataId {
    pub client: u64,
    pub seq: u32,
}

impl DataId {
    /// The client number of data no client sent: what a configuration's
    /// chunk holds before the run starts (`prefill_units`).
    pub const PREFILLED_CLIENT: u64 = u64::MAX;
    /// The client number of the bytes of a corrupt block, read without
    /// verifying its checksum.
    pub const CORRUPT_BYTES_CLIENT: u64 = u64::MAX - 1;
}

impl Debug for DataId {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "d{}.{}", self.client, self.seq)
    }
}

/// Which lease and which slot within it a mutation was applied under: the
/// global order of mutations on a chunk ([0090]).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    Default,
    schemars::JsonSchema,
)]
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
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
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
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
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
    /// Deletes the replica (garbage collection, GFS §4.4): afterwards the
    /// chunk is one this server never saw (version 0, empty), and no
    /// report names it.
    fn delete_replica(&mut self, chunk: ChunkHandle) -> Result<(), StoreError>;
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
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
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

/// A piece of a replica's contents as a clone carries it from a current
/// replica to a stale one (GFS §4.3). The model's store sends one piece
/// per unit, which keeps what each unit holds and which mutation wrote it
/// (the properties look at both); the file store sends its bytes as they
/// are, padding included, since it keeps no stamp per byte.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
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

/// A 64-bit digest of `value` that stands for it in the checker's
/// fingerprints (see [`crate::memstore::MemStore`] and [`crate::node::Digested`]). Fixed
/// keys, so fingerprints are the same in every run; aHash, the hasher
/// stateright fingerprints with, because SipHash on many small fields cost
/// more than the digest saves.
pub fn digest<T: Hash + ?Sized>(value: &T) -> u64 {
    ahash::RandomState::with_seeds(0x6c65_6173, 0x6568_6f6c, 0x6467_6673, 0x6d6f_6465)
        .hash_one(value)
}
