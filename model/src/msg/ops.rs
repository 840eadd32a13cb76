//! What a client operation is and how it ends: the operation an
//! application submits, its result, why it failed, and the lease holder a
//! client caches ([0094]). Part of [`crate::msg`], which re-exports it.

use crate::types::*;
use serde::{Deserialize, Serialize};
use stateright::actor::Id;

/// Why an operation failed. Carried in failure replies so the client can
/// decide between retrying at the primary and going back to the master.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum Failure {
    /// The receiver holds no lease for the chunk (any more) ([0094]).
    NotPrimary,
    /// Pushed data is not in the buffer: never arrived or aged out ([0095]).
    DataMissing,
    /// The replica's chunk version is behind the primary's: it missed a
    /// lease grant and must not take mutations (stale replica).
    StaleReplica,
    /// The request came from a lease older than the one this replica follows.
    StaleLease,
    /// A secondary did not answer or reported a failure ([00101]).
    SecondaryFailed,
    /// Too many mutations or pushes in flight at this server.
    Busy,
    /// A record larger than a quarter chunk ([00104]) or a write that leaves
    /// the chunk.
    TooLarge,
    /// The master cannot name a primary now: no up-to-date replica, a grant
    /// bound, or a restarted master's waiting period.
    NoLeaseNow,
    /// No such file or chunk.
    NotFound,
    /// The chunk store refused the operation.
    Store(StoreError),
    /// The master refused a path: empty, relative, too long, a character
    /// outside the set, or an empty, `.` or `..` component
    /// ([`crate::master::path_problem`]).
    BadPath,
    /// A rename's target name is taken.
    Exists,
}

impl Failure {
    /// Whether trying the operation again may succeed: the lease, the data
    /// or the server's room may be there next time ([00101], [00107]).
    /// A refused path or size, a missing file, or a store error stays.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Failure::NotPrimary
                | Failure::DataMissing
                | Failure::StaleReplica
                | Failure::StaleLease
                | Failure::SecondaryFailed
                | Failure::Busy
                | Failure::NoLeaseNow
        ) || matches!(self, Failure::Store(e) if e.is_replica_fault())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotPrimary => f.write_str("the replica holds no lease for the chunk"),
            Failure::DataMissing => f.write_str("pushed data never arrived or aged out"),
            Failure::StaleReplica => f.write_str("the replica is stale (it missed a lease grant)"),
            Failure::StaleLease => f.write_str("the request came from an older lease"),
            Failure::SecondaryFailed => f.write_str("a secondary replica failed or did not answer"),
            Failure::Busy => {
                f.write_str("the server is busy (too many pushes or mutations in flight)")
            }
            Failure::TooLarge => {
                f.write_str("the data does not fit the chunk (or exceeds a quarter chunk)")
            }
            Failure::NoLeaseNow => f.write_str("no replica can take a lease now"),
            Failure::NotFound => f.write_str("no such file or chunk, or no replica could serve it"),
            Failure::Store(e) => write!(f, "chunk store: {e}"),
            Failure::BadPath => f.write_str(
                "the master refused the path (absolute, at most 1024 bytes, \
                 components of A-Z a-z 0-9 . _ -, no // . or ..)",
            ),
            Failure::Exists => f.write_str("a file of that name exists"),
        }
    }
}

/// The chunk metadata a client caches after act 1220 ([0094]).
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct LeaseInfo {
    pub file: FileId,
    pub index: u32,
    pub chunk: ChunkHandle,
    pub version: ChunkVersion,
    pub epoch: LeaseEpoch,
    /// The lease holder; `None` in a `Located` answer for a chunk no lease
    /// is held on (reads need no primary).
    #[schemars(with = "Option<u64>")]
    pub primary: Option<Id>,
    /// Up-to-date secondaries only: never a stale replica (VERSION-2).
    /// In a `Located` answer with no primary, every up-to-date replica.
    #[schemars(with = "Vec<u64>")]
    pub secondaries: Vec<Id>,
}

/// A client operation submitted by the application (the TCP client library)
/// or scripted by the model configuration.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum ClientOp<P> {
    /// Look up or create a file by name, so later operations can name it.
    Open { path: String, create: bool },
    /// Record append of `data` to `file` ([00103]).
    Append { file: FileId, data: P },
    /// Write `data` at `offset` within chunk `index` of `file` ([0093]).
    Write {
        file: FileId,
        index: u32,
        offset: Offset,
        data: P,
    },
    /// Read `len` units at `offset` of chunk `index` from an up-to-date replica.
    Read {
        file: FileId,
        index: u32,
        offset: Offset,
        len: u64,
    },
    /// Report a chunk's metadata (replicas, version, primary).
    Stat { file: FileId, index: u32 },
    /// Rename the file at `from` to `to` ([0091]: the master revokes the
    /// leases of its chunks first, so no mutation runs across the rename).
    Rename { from: String, to: String },
    /// Make `to` a snapshot of the file at `from` (GFS §3.4): a file of
    /// its own holding what `from` held when the snapshot was taken.
    Snapshot { from: String, to: String },
}

impl<P> ClientOp<P> {
    /// The file the operation works on (`Open` names it by path instead).
    pub fn file(&self) -> Option<FileId> {
        match self {
            ClientOp::Append { file, .. }
            | ClientOp::Write { file, .. }
            | ClientOp::Read { file, .. }
            | ClientOp::Stat { file, .. } => Some(*file),
            ClientOp::Open { .. } | ClientOp::Rename { .. } | ClientOp::Snapshot { .. } => None,
        }
    }
}

impl LeaseInfo {
    /// Every replica named: the primary, then the secondaries.
    pub fn replicas(&self) -> impl Iterator<Item = Id> + '_ {
        self.primary
            .into_iter()
            .chain(self.secondaries.iter().copied())
    }
}

/// The outcome of a client operation, reported to the application.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum OpResult<P> {
    Opened {
        file: FileId,
        chunks: u32,
    },
    /// A record append or write succeeded at `offset` of `chunk`.
    Mutated {
        chunk: ChunkHandle,
        index: u32,
        offset: Offset,
        stamp: Stamp,
    },
    Read {
        data: P,
    },
    Stat {
        info: LeaseInfo,
        chunks: u32,
    },
    /// The operation gave up after its retries, with the last reason.
    Failed(Failure),
    /// The file (its id unchanged) now has the name the rename gave it.
    Renamed {
        file: FileId,
    },
    /// The snapshot was taken: `file` is the new file.
    Snapshotted {
        file: FileId,
    },
}

/// An application's id for one submitted operation (`Submit`, `Done`).
pub type OpId = u64;
