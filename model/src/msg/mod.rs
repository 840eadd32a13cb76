//! Messages and timers of the mutation protocol.
//!
//! Requests and replies come in pairs; failures are replies with a reason,
//! so the checker explores every retry path. Each variant names the act of
//! the patent's flowcharts (Fig. 12: acts 1210–1270; Fig. 14: acts
//! 1410–1460) it implements, and [`Msg::act`] returns that name for the
//! Explorer and for tracing.

use crate::config::Bug;
use crate::types::*;
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::fmt::Debug;

mod ops;
pub use ops::*;

/// Which chunk of a file a client asks about.
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
pub enum ChunkIndex {
    /// The file's last chunk: where record appends go ([00103]).
    Last,
    /// Chunk number `n` of the file; `n` equal to the chunk count asks the
    /// master to allocate the next chunk ([00105]).
    At(u32),
}

/// What a client asks the primary to do with data it pushed.
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
pub enum MutationKind {
    /// Record append: the primary chooses the offset ([00104]–[00106]).
    Append,
    /// Write at an offset the client chose ([0099]).
    Write { offset: Offset },
}

/// What the primary tells secondaries to apply, in serial order ([00100]).
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
pub enum ApplyOp {
    /// Write the pushed data `data` at exactly `offset`, even over existing
    /// data ([00106]).
    WriteAt { offset: Offset, data: DataId },
    /// Pad the replica from its end to `end` ([00105]).
    PadTo { end: Offset },
    /// Use up the serial without changing the replica: the primary's answer
    /// to a gap report for a mutation it no longer waits for. A secondary
    /// acknowledges a mutation only once it holds it durably, so one it
    /// lacks was never acknowledged through it and has failed ([00101]);
    /// its region stays undefined, as after any failed mutation.
    Skip,
}

/// Debug names each message by its protocol step first
/// (`[act 1210 find lease] FindLease { .. }`), so messages in flight read
/// like the protocol in the Explorer and in counterexamples.
#[derive(
    Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum Msg<P> {
    // ---- application ↔ client actor (TCP host only; the model scripts ops)
    /// An operation for the client actor, under an id the application
    /// chose; the actor runs operations in submission order.
    Submit {
        op_id: OpId,
        op: ClientOp<P>,
    },
    /// The answer to the submission with that id: an application that gave
    /// up waiting for one tells a late answer by its id.
    Done {
        op_id: OpId,
        result: OpResult<P>,
    },

    // ---- client ↔ master: acts 1210 and 1220
    OpenFile {
        path: String,
        create: bool,
    },
    /// `file`: `Err(NotFound)` for a missing file opened without create,
    /// `Err(BadPath)` for a refused path (then `path` is empty: echoing a
    /// refused path would send its bytes back).
    FileOpened {
        path: String,
        file: Result<FileId, Failure>,
        chunks: u32,
    },
    /// Act 1210: who holds the lease of this chunk, and where are the others?
    FindLease {
        file: FileId,
        index: ChunkIndex,
    },
    /// Act 1220.
    LeaseHolder {
        info: LeaseInfo,
        chunks: u32,
    },
    /// Read path: where are the up-to-date replicas? No lease is granted.
    Locate {
        file: FileId,
        index: u32,
    },
    Located {
        info: Option<LeaseInfo>,
        chunks: u32,
    },
    /// The master cannot answer `FindLease`/`Locate` (with why).
    NoLease {
        file: FileId,
        index: ChunkIndex,
        reason: Failure,
    },

    // ---- master ↔ chunkservers: lease grants, versions ([0090], [0091])
    /// Master to the chosen replica: request lease `epoch` now.
    LeaseOffer {
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
        version: ChunkVersion,
        /// The receiver's restart count as the master last heard it, as in
        /// `NewVersion`: a restarted replica ignores an offer meant for its
        /// previous life, so a copy of an old offer arriving after the
        /// restart (a duplicating network) cannot start a request that an
        /// old copy of its grant would answer (LEASE-1).
        incarnation: u32,
    },
    /// Master to the other up-to-date replicas: the chunk's new version.
    /// `incarnation` is the receiver's restart count as the master last
    /// heard it: a restarted replica ignores announcements meant for its
    /// previous life, which the master may since have counted stale.
    NewVersion {
        chunk: ChunkHandle,
        version: ChunkVersion,
        incarnation: u32,
    },
    VersionAck {
        chunk: ChunkHandle,
        version: ChunkVersion,
    },
    /// Replica to master: grant (or extend) lease `epoch`. The replica's own
    /// lease clock starts when it sends this, before the master's.
    LeaseRequest {
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
    },
    /// Master to primary: lease `epoch` granted or extended. `extension`
    /// names the request it answers (0 the lease's `LeaseRequest`, n the
    /// n-th extension asked on a heartbeat): a primary takes a grant only
    /// for the request it has pending, so a duplicated grant of an earlier
    /// request does not pass for the answer to a later one, whose clock
    /// started after the master's for the earlier (LEASE-4).
    LeaseGrant {
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
        extension: u32,
        version: ChunkVersion,
        #[schemars(with = "Vec<u64>")]
        secondaries: Vec<Id>,
    },
    /// Early revocation ([0091]: e.g. before a rename).
    RevokeLease {
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
    },
    LeaseRevoked {
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
    },
    /// Chunkserver to master on restart or on request: its chunks and
    /// versions, so the master can tell stale replicas.
    ChunkReport {
        incarnation: u32,
        chunks: Vec<(ChunkHandle, ChunkVersion)>,
    },
    ReportRequest,

    // ---- data push: act 1230, along a chain ([0095]–[0098])
    /// Names the chunk the data is for, so that a replica that failed
    /// that chunk (FAULT-2) refuses it rather than keep data no mutation
    /// will use, which filled its buffer (nemesis seed 20).
    PushData {
        data: DataId,
        chunk: ChunkHandle,
        fragment: u32,
        last: bool,
        bytes: P,
        #[schemars(with = "Vec<u64>")]
        chain: Vec<Id>,
        #[schemars(with = "u64")]
        client: Id,
    },
    /// From the end of the chain: every replica on it has the data.
    DataPushed {
        data: DataId,
    },

    // ---- mutations: acts 1240–1270 and 1410–1460
    /// Act 1240 / record append request ([00103]).
    Mutate {
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
        kind: MutationKind,
        data: DataId,
    },
    /// Act 1250: primary to secondaries, in serial order.
    Apply {
        chunk: ChunkHandle,
        version: ChunkVersion,
        stamp: Stamp,
        op: ApplyOp,
    },
    /// Act 1260.
    Applied {
        chunk: ChunkHandle,
        stamp: Stamp,
        result: Result<(), Failure>,
    },
    /// Act 1270 / 1460: the mutation is applied on every replica.
    MutationDone {
        chunk: ChunkHandle,
        data: DataId,
        offset: Offset,
        stamp: Stamp,
    },
    /// Act 1440: the chunk was padded; retry on the next chunk.
    ChunkFull {
        chunk: ChunkHandle,
        data: DataId,
    },
    MutationFailed {
        chunk: ChunkHandle,
        data: DataId,
        reason: Failure,
    },

    // ---- reads
    Read {
        chunk: ChunkHandle,
        version: ChunkVersion,
        offset: Offset,
        len: u64,
    },
    ReadReply {
        chunk: ChunkHandle,
        offset: Offset,
        result: Result<P, Failure>,
    },
    /// Secondary to primary: mutations `from` up to (not including)
    /// `until` never arrived, and `until` (held back, [00100]) waits behind
    /// them. The primary sends each again, or `ApplyOp::Skip` for one it
    /// no longer waits for, so the secondary can go on in serial order.
    /// Last in the enum so that every earlier variant keeps its wire index.
    ApplyGap {
        chunk: ChunkHandle,
        version: ChunkVersion,
        from: Stamp,
        until: Stamp,
    },
    /// Chunkserver to master: this replica of `chunk` (at `version`) could
    /// not store a mutation (a full disk, a corrupt block, an I/O error).
    /// The master leaves it out of the chunk's up-to-date replicas and ends
    /// the lease, so the next one moves the version past it and mutations
    /// go on without it (FAULT-2).
    ReplicaFailed {
        chunk: ChunkHandle,
        version: ChunkVersion,
        error: StoreError,
    },
    /// A server refuses to buffer pushed `data` (act 1230): it has no room
    /// (`Busy`). No chunk is involved yet, so the client only learns to
    /// push again later. (New messages go last in the enum, which keeps
    /// the wire indices of the others.)
    PushRefused {
        data: DataId,
        reason: Failure,
    },
    /// Master to a placed replica of `chunk` it does not count up to date
    /// (re-replication, GFS §4.3): copy the chunk from `source`, the
    /// replica offered its next lease, at `version`, the lease's. Sent
    /// once the source has requested the lease, so it holds `version`
    /// already and, holding it, refuses every mutation of an older lease:
    /// what it copies out holds every acknowledged mutation, and nothing
    /// is mutated under the new lease before the master grants it, which
    /// it does only once the copy is acknowledged (or its grant timeout
    /// left the target out). `incarnation` as in `NewVersion`.
    CloneChunk {
        chunk: ChunkHandle,
        version: ChunkVersion,
        #[schemars(with = "u64")]
        source: Id,
        incarnation: u32,
    },
    /// Clone target to source: the part of `chunk` at `version` from `from`.
    FetchChunk {
        chunk: ChunkHandle,
        version: ChunkVersion,
        from: Offset,
    },
    /// Source to clone target: the part asked for, or why not (the source
    /// does not hold `version`, or its store failed).
    ChunkPart {
        chunk: ChunkHandle,
        version: ChunkVersion,
        from: Offset,
        part: Result<ClonePart<P>, Failure>,
    },
    /// Chunkserver to master, every `heartbeat_ms` ([0091]: "extension
    /// requests and grants may be piggybacked on the heartbeat messages"):
    /// the extensions its primaries want, as `(chunk, epoch, extension)`
    /// (the n-th extension of that lease), each lease's clock started when
    /// this is sent (LEASE-2). The master answers each with a `LeaseGrant`
    /// naming the same extension in the same step, and hears that the
    /// server is alive.
    HeartBeat {
        incarnation: u32,
        extensions: Vec<(ChunkHandle, LeaseEpoch, u32)>,
    },

    // ---- client ↔ master: the namespace (appended, so earlier variants
    // keep their wire numbers)
    /// Rename a file ([0091]). The master answers once the leases of the
    /// file's chunks have been revoked (acknowledged) or have expired.
    RenameFile {
        from: String,
        to: String,
    },
    /// `file`: the renamed file, or `NotFound` (no file at `from`),
    /// `Exists` (a file at `to`), `BadPath`, `Busy` (a rename of either
    /// name is already under way).
    FileRenamed {
        from: String,
        to: String,
        file: Result<FileId, Failure>,
    },

    // ---- master → chunkserver: garbage collection (appended, as above)
    /// Master to a chunkserver holding a replica of `chunk` that the master
    /// no longer places there (GFS §4.4): the replica moved to another
    /// server, so this copy is garbage. Delete it if it is at `version` or
    /// older and no clone of the chunk is under way here. The version
    /// bound keeps a late copy of this message from deleting a replica the
    /// master has since placed here again and cloned afresh (at a newer
    /// version); a clone under way has emptied the replica already. Sent
    /// when the master moves a replica away, and whenever a server reports
    /// a replica it does not place.
    DeleteReplica {
        chunk: ChunkHandle,
        version: ChunkVersion,
    },

    // ---- snapshot (GFS §3.4; appended, as above)
    /// Client to master: make `to` a snapshot of the file at `from`. The
    /// master revokes the leases of `from`'s chunks, waits for each to end
    /// (acknowledged or expired), then lists the same chunks under `to`:
    /// copy-on-write, so nothing is copied until a chunk is mutated.
    SnapshotFile {
        from: String,
        to: String,
    },
    /// `file`: the snapshot's file, or `NotFound` (no file at `from`),
    /// `Exists` (a file at `to`, or `from` and `to` the same), `BadPath`,
    /// `Busy` (a rename or snapshot of either name is already under way).
    SnapshotTaken {
        from: String,
        to: String,
        file: Result<FileId, Failure>,
    },
    /// Master to a chunkserver holding the current replica of `chunk`
    /// (one shared by a file and its snapshot, about to be mutated):
    /// copy it, on this server's own disk, to the new chunk `to` at
    /// `version` (GFS §3.4: no data crosses the network). Ignored unless
    /// the replica is at exactly `version`, by a restarted server.
    CopyChunk {
        chunk: ChunkHandle,
        to: ChunkHandle,
        version: ChunkVersion,
        incarnation: u32,
    },
    /// Chunkserver to master: the new chunk `chunk` holds the copy, at
    /// `version`.
    ChunkCopied {
        chunk: ChunkHandle,
        version: ChunkVersion,
    },

    // ---- batched serials (issue #13; appended, as above)
    /// Act 1250 for several mutations at once: primary to a secondary, the
    /// `Apply`s of consecutive serials of one lease that were waiting
    /// together, in serial order ([0099]). The secondary takes them one by
    /// one, exactly as that many `Apply`s in this order, within one step,
    /// so its host passes one barrier for all of them. Sent only when the
    /// primary has more than one waiting (`ProtocolCfg::apply_batch_max`);
    /// a resend in answer to a gap report is always a single `Apply`.
    ApplyBatch {
        chunk: ChunkHandle,
        version: ChunkVersion,
        applies: Vec<(Stamp, ApplyOp)>,
    },
}

/// One part of a chunk a clone copies ([`Msg::ChunkPart`]).
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct ClonePart<P> {
    /// The source's last applied mutation: the clone takes its place in
    /// the serial order ([00100]) from there.
    pub applied: Stamp,
    pub pieces: Vec<ClonePiece<P>>,
    /// Where the next part starts; `None`: this is the last.
    pub next: Option<Offset>,
}

impl<P> Msg<P> {
    /// Whether a node may send this message before what its step wrote is
    /// durable (the host's barrier; issue #13). `Apply` claims nothing
    /// about the sender's replica, so the primary forwards a mutation while
    /// its own write of it is still on its way to disk, and the
    /// secondaries' writes overlap its own ([0099] asks only that the
    /// primary apply it; the order is its serial's, not the time's). The
    /// push (`PushData` forwarded down the chain, `DataPushed` back) tells
    /// of buffers, which no crash keeps anyway ([0095]). Every other
    /// message may report a durable change (an acknowledgement, a version,
    /// a replica's failure), so it leaves after the barrier. A
    /// crash before the barrier then loses the primary's write of a
    /// mutation whose `Apply` left: the model's `barrier_crashes` fault.
    /// `Bug::AckLeavesBeforeBarrier` lets a primary's answer to its client
    /// out early too.
    pub fn leaves_before_barrier(&self, bug: Bug) -> bool {
        match self {
            Msg::Apply { .. }
            | Msg::ApplyBatch { .. }
            | Msg::PushData { .. }
            | Msg::DataPushed { .. } => true,
            Msg::MutationDone { .. } | Msg::ChunkFull { .. } => bug == Bug::AckLeavesBeforeBarrier,
            _ => false,
        }
    }

    /// Whether a host handles this message, among those of a batch, before
    /// the timers that fire at the batch's end ([`Timer::fires_at_batch_end`]):
    /// a `Mutate` orders a mutation whose `Apply` then leaves with the
    /// batch's others, before any step of the batch that must wait for the
    /// barrier (a reply to a client) and so before the barrier itself.
    pub fn handled_before_batch_end(&self) -> bool {
        matches!(self, Msg::Mutate { .. })
    }

    /// The protocol step a message belongs to, for the Explorer and traces.
    pub fn act(&self) -> &'static str {
        match self {
            Msg::Submit { .. } => "submit",
            Msg::Done { .. } => "done",
            Msg::OpenFile { .. } | Msg::FileOpened { .. } => "open",
            Msg::FindLease { .. } => "act 1210 find lease",
            Msg::LeaseHolder { .. } => "act 1220 lease holder",
            Msg::Locate { .. } | Msg::Located { .. } => "locate",
            Msg::NoLease { .. } => "act 1220 no lease",
            Msg::LeaseOffer { .. } => "lease offer",
            Msg::NewVersion { .. } | Msg::VersionAck { .. } => "new version",
            Msg::LeaseRequest { .. } => "lease request",
            Msg::LeaseGrant { .. } => "lease grant",
            Msg::RevokeLease { .. } | Msg::LeaseRevoked { .. } => "lease revoke",
            Msg::ChunkReport { .. } | Msg::ReportRequest => "chunk report",
            Msg::DeleteReplica { .. } => "garbage collection",
            Msg::PushData { .. } | Msg::DataPushed { .. } | Msg::PushRefused { .. } => {
                "act 1230 push"
            }
            Msg::Mutate {
                kind: MutationKind::Append,
                ..
            } => "act 1410 append request",
            Msg::Mutate { .. } => "act 1240 write request",
            Msg::Apply { .. } => "act 1250 apply",
            Msg::ApplyBatch { .. } => "act 1250 apply (batch)",
            Msg::ApplyGap { .. } => "act 1250 apply gap",
            Msg::ReplicaFailed { .. } => "replica failed",
            Msg::Applied { .. } => "act 1260 applied",
            Msg::MutationDone { .. } => "act 1270 done",
            Msg::ChunkFull { .. } => "act 1440 chunk full",
            Msg::MutationFailed { .. } => "act 1270 failed",
            Msg::Read { .. } | Msg::ReadReply { .. } => "read",
            Msg::CloneChunk { .. } | Msg::FetchChunk { .. } | Msg::ChunkPart { .. } => {
                "re-replication"
            }
            Msg::HeartBeat { .. } => "heartbeat",
            Msg::RenameFile { .. } | Msg::FileRenamed { .. } => "rename",
            Msg::SnapshotFile { .. } | Msg::SnapshotTaken { .. } => "snapshot",
            Msg::CopyChunk { .. } | Msg::ChunkCopied { .. } => "copy-on-write",
        }
    }
}

/// Timers. Their real durations come from [`crate::config::Durations`]; the
/// model ignores durations and the timed model (`crate::system`) decides
/// which timeouts may fire when.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum Timer {
    // chunkserver
    /// One of a chunkserver's two lease clocks for a chunk, started when it
    /// sends a lease request (new or extension) and running out `lease_ms`
    /// later on its own clock. While the request is pending it bounds when
    /// a grant is still good; a grant makes it the clock of the lease, so
    /// no lease outlasts its request's deadline ([0091]). Two, because an
    /// extension's request runs while the held lease's clock still does.
    LeaseClock(ChunkHandle, u8),
    /// Pushed data not used by a mutation ages out of the buffer ([0095]).
    AgeOut(DataId),
    // master
    /// The master's view of a lease runs out ([0091]).
    LeaseExpiry(ChunkHandle),
    /// Waiting for version acknowledgements of a lease offer.
    GrantTimeout(ChunkHandle),
    /// The master revokes a lease early ([0091]).
    Revoke(ChunkHandle),
    /// A restarted master grants nothing for one lease period.
    StartupQuiet,
    // client
    /// No reply in time: retry ([00101]).
    RequestTimeout,
    // chunkserver, last so that every earlier timer keeps its trace index
    /// A secondary has held back a mutation of this chunk behind a serial
    /// gap (an earlier serial of its lease and version is missing,
    /// [00100]) for a while: it reports the gap to the primary. Armed
    /// exactly while the chunk has such a gap.
    HeldBack(ChunkHandle),
    /// A chunkserver's next heartbeat to the master.
    HeartBeat,
    // client, last for the same reason
    /// A client's wait before it retries a failed operation (exponential
    /// backoff, [`crate::config::Durations::retry_backoff`]).
    RetryBackoff,
    // master, last for the same reason
    /// The master has heard nothing from this chunkserver for two master
    /// lease periods (it beats every `heartbeat_ms`): it stops counting
    /// the server's replicas up to date, so that re-replication replaces
    /// them even in chunks nobody mutates (GFS §4.3). Re-armed by each of
    /// the server's heartbeats and chunk reports.
    ServerSilent(#[schemars(with = "u64")] Id),
    /// The copies of a chunk shared with a snapshot, asked for before its
    /// first mutation, are overdue: the new chunk goes on with the
    /// replicas that made theirs.
    CopyTimeout(ChunkHandle),
    // chunkserver, last for the same reason
    /// A primary's `Apply`s of this chunk that wait to go out together
    /// ([`Msg::ApplyBatch`]) leave now. Over TCP it fires when the host's
    /// batch of messages ends ([`Timer::fires_at_batch_end`]); the model
    /// fires it at any moment, which covers every point a batch can end.
    SendApplies(ChunkHandle),
}

impl Timer {
    /// Whether the host fires this timer when it has handled the batch of
    /// messages that were waiting (before the batch's barrier), rather
    /// than at a deadline: the mutations ordered in that batch then leave
    /// in one frame per secondary.
    pub fn fires_at_batch_end(&self) -> bool {
        matches!(self, Timer::SendApplies(_))
    }
}

/// Formats struct-like variants field by field, as derive(Debug) would.
macro_rules! debug_variants {
    ($self:ident, $f:ident; $($variant:ident { $($field:ident),* }),* ; $($unit:ident),*) => {
        match $self {
            $(Msg::$variant { $($field),* } => {
                let mut d = $f.debug_struct(stringify!($variant));
                $(d.field(stringify!($field), $field);)*
                d.finish()
            })*
            $(Msg::$unit => $f.write_str(stringify!($unit)),)*
        }
    };
}

impl<P: Debug> Debug for Msg<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] ", self.act())?;
        debug_variants!(self, f;
            Submit { op_id, op }, Done { op_id, result }, OpenFile { path, create },
            FileOpened { path, file, chunks }, FindLease { file, index },
            LeaseHolder { info, chunks }, Locate { file, index }, Located { info, chunks },
            NoLease { file, index, reason }, LeaseOffer { chunk, epoch, version, incarnation },
            NewVersion { chunk, version, incarnation }, VersionAck { chunk, version },
            LeaseRequest { chunk, epoch }, LeaseGrant { chunk, epoch, extension, version, secondaries },
            RevokeLease { chunk, epoch }, LeaseRevoked { chunk, epoch },
            ChunkReport { incarnation, chunks },
            PushData { data, chunk, fragment, last, bytes, chain, client }, DataPushed { data },
            Mutate { chunk, epoch, kind, data }, Apply { chunk, version, stamp, op },
            ApplyGap { chunk, version, from, until },
            ReplicaFailed { chunk, version, error },
            Applied { chunk, stamp, result }, MutationDone { chunk, data, offset, stamp },
            ChunkFull { chunk, data }, MutationFailed { chunk, data, reason },
            Read { chunk, version, offset, len }, ReadReply { chunk, offset, result },
            PushRefused { data, reason },
            CloneChunk { chunk, version, source, incarnation },
            FetchChunk { chunk, version, from },
            ChunkPart { chunk, version, from, part },
            HeartBeat { incarnation, extensions },
            RenameFile { from, to }, FileRenamed { from, to, file },
            DeleteReplica { chunk, version },
            SnapshotFile { from, to }, SnapshotTaken { from, to, file },
            CopyChunk { chunk, to, version, incarnation },
            ChunkCopied { chunk, version },
            ApplyBatch { chunk, version, applies };
            ReportRequest)
    }
}
