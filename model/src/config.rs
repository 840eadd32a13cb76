//! The protocol's parameters, shared by every actor of one cluster, and the
//! seeded bugs.
//!
//! The same struct configures the model and the TCP system; the model uses
//! tiny sizes (a chunk of a few units) and explicit bounds on retries and
//! grants so that exhaustive checking terminates, the TCP host uses real sizes
//! and effectively unbounded counters.

use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::time::Duration;

/// A protocol bug that can be switched on to show that the checker catches
/// it. `Bug::None` is the protocol as specified. Each variant removes exactly
/// one guard; the guard's code names the bug in a comment.
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
    Default,
    schemars::JsonSchema,
)]
pub enum Bug {
    #[default]
    None,
    /// Secondaries append at their own end instead of the primary's offset
    /// (breaks [00106]).
    SecondaryAppendsAtOwnEnd,
    /// The master's lease-expiry timeout may fire while the primary still
    /// holds its lease: the master re-grants before expiry, as with clock
    /// drift beyond the bound ([0091]).
    MasterIgnoresClockBound,
    /// A restarted master grants leases without waiting one lease period.
    RestartedMasterGrantsImmediately,
    /// Secondaries apply mutations as they arrive, not in serial order
    /// ([00100]).
    SecondaryAppliesOutOfOrder,
    /// The primary pads its own replica but does not tell secondaries
    /// ([00105]).
    PrimaryDoesNotPadSecondaries,
    /// The master does not increment the chunk version on a new lease.
    VersionNotIncremented,
    /// The primary acknowledges a mutation before all secondaries replied
    /// ([00101]).
    PrimaryAcksBeforeSecondaries,
    /// The master hands out replicas it does not know to be up to date.
    StaleReplicaHandedToClient,
    /// The client gives up on the first failure instead of retrying
    /// ([00101], [00107]).
    ClientDoesNotRetry,
    /// A chunkserver accepts a lease grant that arrives after its request's
    /// timer ran out (the late-grant hole).
    AcceptsLateGrant,
    /// The primary appends without checking that the record fits ([00104]).
    PrimarySkipsFitCheck,
    /// The primary does not advance the serial number ([0099]).
    PrimaryReusesSerial,
    /// The primary never answers record appends (a liveness bug).
    PrimaryNeverReplies,
    /// A grant restarts the lease clock at its arrival instead of leaving
    /// the lease on the clock its request started (LEASE-2). The model's
    /// timers have no durations, so the checker cannot see this; trace
    /// validation of a real run with a delayed grant does (LEASE-1 in real
    /// time, `a_delayed_grant_never_makes_two_primaries`).
    GrantRestartsLeaseClock,
    /// The master grants an extension without restarting its own lease
    /// clock, so its lease can end while the primary's extended one runs
    /// ([0091]).
    MasterKeepsClockOnExtension,
    /// The primary pads the chunk and sends the client on even when the
    /// record fits ([00105]: padding only for a record that does not fit).
    PrimaryPadsAlthoughRecordFits,
    /// The client takes a `MutationDone` for data other than its current
    /// operation's (a late duplicate answer to an earlier operation's
    /// retried attempt) as its current operation's acknowledgement.
    ClientAcceptsStaleDone,
    /// At a grant timeout the master keeps the replicas that did not
    /// acknowledge the new version counted up to date (GFS §4.5).
    MasterKeepsSilentReplicas,
    /// The client sends its mutation as soon as it starts the push, without
    /// waiting for the chain's `DataPushed` ([0099]).
    ClientMutatesBeforeDataPushed,
    /// The primary counts a secondary's error reply as an acknowledgement
    /// ([00101]: any replica's error fails the mutation).
    PrimaryIgnoresSecondaryError,
    /// A chunkserver keeps pushed data in its buffer when it ages out
    /// ([0095]).
    AgedOutDataKept,
    /// The primary appends a record larger than a quarter chunk instead of
    /// refusing it `TooLarge` ([00104]).
    PrimarySkipsSizeCheck,
    /// A chunkserver forwards a push to the first server left on the chain
    /// (lowest id), not the closest one ([0096]).
    PushSkipsClosest,
    /// A secondary that holds back a mutation behind a serial it never got
    /// (lost in a crash or by the network) waits for it for ever instead of
    /// reporting the gap to the primary: the chunk stalls while the lease
    /// lasts (LIVE-2).
    SecondaryWaitsForLostSerial,
    /// A restarted chunkserver takes a lease offer addressed to its
    /// previous incarnation (the protocol before offers carried it).
    TakesOfferOfPreviousLife,
    /// The master ignores a replica's report that its store failed: the
    /// replica stays in the chunk's replica set and every later mutation
    /// fails on it (FAULT-2).
    FailedReplicaKept,
    /// A chunkserver serves a read without verifying the blocks'
    /// checksums: a corrupt block goes to the client as data (READ-1).
    ReplicaServesCorruptBlock,
    /// A stale replica asked to clone a chunk takes the lease's version
    /// and acknowledges it without copying the data: the master counts a
    /// replica that lacks acknowledged mutations (VERSION-1).
    CloneAckedWithoutCopy,
    /// The master never clones a chunk onto a stale replica: a chunk that
    /// lost a replica stays below its replication goal for good (REPL-1).
    StaleReplicaNeverCloned,
    /// A replica moved to a spare server (its clone onto the old one
    /// failed) is counted up to date at once, before any clone put the
    /// chunk there (VERSION-1).
    SpareCountedWithoutClone,
    /// The master renames a file at once, without revoking the leases of
    /// its chunks or waiting for them to end (RENAME-1).
    RenamesUnderLease,
    /// A primary acknowledges a revocation but keeps its lease, and goes
    /// on ordering mutations under it (LEASE-5).
    RevokedPrimaryKeepsLease,
    /// A client reads from the farthest named replica it has not tried,
    /// not the closest (READ-1, GFS §2.7: reads go to the closest).
    ClientReadsFarthest,
    /// A restarted master counts only replicas at the chunk's current
    /// version: after it crashed between making a version bump durable and
    /// any replica learning it, no replica is counted and every append gets
    /// `NoLeaseNow` for good (LIVE-2; issue #12).
    UnannouncedVersionStrandsChunk,
    /// The master grants a lease without recording the grant durably: a
    /// restarted master adopts a replica of an older grant that was left
    /// out of the last one (VERSION-1).
    GrantNotRecorded,
    /// A restarted master adopts any placed replica at the last grant's
    /// version, also one left out of that grant that had stored the
    /// offer's version without acknowledging it in time (VERSION-1).
    AdoptsReplicaLeftOut,
    /// The master garbage-collects a stale replica it still places (one a
    /// restart left behind the chunk's version) instead of leaving it for
    /// its clone: a replica the master may yet adopt as the only holder of
    /// acknowledged data (VERSION-3) is deleted (GC-1).
    GcDeletesStaleReplica,
    /// A replica whose store failed reports it once only: a master that
    /// restarts after the report offers it leases again, and every append
    /// fails on it until its server restarts (LIVE-2; seen over TCP in the
    /// nemesis campaign before the model found it).
    StoreFailureReportedOnce,
    /// A restarted master makes a rename during its waiting period, when
    /// it cannot know which leases its previous life granted: a replica
    /// may still hold one while the file's name changes (RENAME-1).
    RenameDuringQuietPeriod,
    /// The master ignores a chunkserver's silence: a server gone for good
    /// stays counted up to date in every chunk nobody mutates, which then
    /// never gets back to its replication goal (REPL-1).
    SilentServerStaysCounted,
    /// The master takes a snapshot at once, without revoking the leases of
    /// the file's chunks or waiting for them to end: a primary goes on
    /// ordering mutations into chunks the snapshot shares (SNAP-1).
    SnapshotUnderLease,
    /// The master leases a chunk a file shares with its snapshot without
    /// copying it first: the file's next mutation lands in the snapshot
    /// too (SNAP-1).
    SharedChunkMutated,
    /// A restarted master that finds a server silent in its waiting
    /// period neither acts on it nor listens on: a dead server counted
    /// at the restart (a never-granted chunk's placed replica) stays
    /// counted for good (REPL-1).
    SilenceForgottenInQuietPeriod,
    /// A replica the master counted behind that acknowledges the current
    /// version is counted up to date, but its acknowledgement is not
    /// taken as its answer to the offer under way, which then waits for
    /// an answer already given (a clone's: REPL-1).
    BehindAckNotCountedForOffer,
    /// A primary takes a mutation sent under any epoch of the chunk while
    /// it holds a lease of it: a client's mutation sent under a lease the
    /// snapshot revoked, still in flight when the chunk (left to the
    /// snapshot by its file's copy) is leased anew, lands in the snapshot
    /// and not in the file it was acknowledged to (SNAP-1).
    PrimaryTakesAnyEpoch,
    /// A client takes a file's `FileOpened` whatever it is doing: a late
    /// or repeated answer to an open it finished completes its next
    /// operation (a record append reported as an open) (CLIENT-1).
    ClientTakesAnyFileOpened,
    /// A primary leaves pushed data in its buffer after a mutation used
    /// it: a duplicated or repeated `Mutate` for that data is applied
    /// again under a new serial, a record the client appended once (PUSH-2:
    /// the data waits only until a mutation uses it).
    PrimaryKeepsUsedData,
    /// A client takes a `ChunkFull` for its current record whatever it is
    /// doing: a late or repeated one, for the chunk it already left, sends
    /// the record one chunk further, past a chunk with room (APPEND-4: the
    /// append moves on to the next chunk only).
    ClientTakesLateChunkFull,
    /// The primary takes any grant of its lease's epoch as the answer to
    /// its pending request, whichever request the grant names: a
    /// duplicated grant of an earlier request extends a lease the master
    /// has not (LEASE-4).
    PrimaryTakesAnyGrantOfEpoch,
    /// The client's lease cache forgets which file an entry is for: a
    /// record appended to one file goes to the cached chunk of another at
    /// the same index (FILE-1).
    ClientCacheIgnoresFile,
    /// A primary whose lease ends (its clock ran out, or it was revoked)
    /// keeps the mutations it had in flight instead of failing them: their
    /// clients wait out a reply timeout, and until then they hold places
    /// of the in-flight limit that nothing will free (LEASE-6).
    PrimaryKeepsInFlightAfterLease,
    /// The primary counts its lease's serials down instead of up ([0099]:
    /// consecutive serials in increasing order): the second mutation of a
    /// lease gets a lower serial than the first, which the secondaries
    /// take for a duplicate and ignore (ORDER-2).
    PrimaryCountsSerialsDown,
    /// The host lets a primary's answer to its client (`MutationDone`,
    /// `ChunkFull`) leave before its barrier, as it lets `Apply` leave: a
    /// crash before the barrier then loses a record the client was told
    /// is stored (APPEND-1, under `barrier_crashes`).
    AckLeavesBeforeBarrier,
    /// A secondary keeps an `Apply` it holds back after moving past it (a
    /// newer version learned, a later lease's mutation applied): it will
    /// never be in turn, and takes a place of the hold-back limit until a
    /// restart (ORDER-3).
    SecondaryKeepsPassedHeld,
    /// A primary answers a gap report with `Skip` for every serial the
    /// secondary lacks, also one it still waits for: that mutation is used
    /// up unwritten and its client learns only by a reply timeout
    /// (ORDER-4).
    PrimarySkipsSerialInFlight,
    /// A secondary that moves past an older lease's mutation it holds
    /// back drops it without answering: its primary waits for an answer
    /// that never comes and fails the mutation only by a timeout, or when
    /// its lease ends (ORDER-3's answers).
    SecondaryDropsHeldUnanswered,
    /// The master keeps the lease of a primary whose restart report shows
    /// it lost its replica (a torn sync) until the lease expires, naming
    /// to clients meanwhile a primary that holds nothing (VERSION-2).
    LostPrimaryKeepsLease,
    /// A secondary looks for held mutations it has moved past only before
    /// it applies the held ones in turn, not after each: a `Skip` held
    /// beside the real `Apply` of the same stamp is applied, and the real
    /// one stays held, never in turn again (ORDER-3).
    SecondaryKeepsHeldCopyOfApplied,
    /// The master keeps the lease of a primary whose secondary's restart
    /// report shows it lost its replica (a torn sync), so clients go on
    /// holding a lease that names a replica holding nothing (VERSION-2).
    LostSecondaryKeepsLease,
    /// A secondary answers every mutation of an `ApplyBatch` as applied
    /// but writes only the first: the primary acknowledges a record one
    /// replica lacks (APPEND-1, in `batched`).
    SecondaryAcksBatchUnapplied,
    /// A replica that failed a chunk (FAULT-2) still buffers data pushed
    /// for it, and keeps what it held: data no mutation will use, which
    /// filled a chunkserver's buffer over TCP (nemesis seed 20) and kept
    /// every push out, for the chunks it still served too (PUSH-2;
    /// LIVE-2 in `live-buffers`).
    FailedReplicaBuffersPush,
    /// A primary whose lease ends keeps the `Apply`s waiting for a batch
    /// instead of sending them then: they leave when their `SendApplies`
    /// fires, which may be after the primary, now a secondary of the
    /// chunk's next lease, took that lease's mutations, so its `Apply`s
    /// leave out of (epoch, serial) order (ORDER-2 in `batched-expiry`);
    /// granted the chunk again first, its next mutation joins them in one
    /// `ApplyBatch` of two leases (ORDER-2's batch clause in
    /// `batched-regrant`). Mutant `lease.rs` 2 of the forty-third
    /// session.
    PrimaryKeepsBatchAfterLease,
}

impl Bug {
    pub const ALL: [Bug; 63] = [
        Bug::None,
        Bug::SecondaryAppendsAtOwnEnd,
        Bug::MasterIgnoresClockBound,
        Bug::RestartedMasterGrantsImmediately,
        Bug::SecondaryAppliesOutOfOrder,
        Bug::PrimaryDoesNotPadSecondaries,
        Bug::VersionNotIncremented,
        Bug::PrimaryAcksBeforeSecondaries,
        Bug::StaleReplicaHandedToClient,
        Bug::ClientDoesNotRetry,
        Bug::AcceptsLateGrant,
        Bug::PrimarySkipsFitCheck,
        Bug::PrimaryReusesSerial,
        Bug::PrimaryNeverReplies,
        Bug::GrantRestartsLeaseClock,
        Bug::MasterKeepsClockOnExtension,
        Bug::PrimaryPadsAlthoughRecordFits,
        Bug::ClientAcceptsStaleDone,
        Bug::MasterKeepsSilentReplicas,
        Bug::ClientMutatesBeforeDataPushed,
        Bug::PrimaryIgnoresSecondaryError,
        Bug::AgedOutDataKept,
        Bug::PrimarySkipsSizeCheck,
        Bug::PushSkipsClosest,
        Bug::SecondaryWaitsForLostSerial,
        Bug::TakesOfferOfPreviousLife,
        Bug::FailedReplicaKept,
        Bug::ReplicaServesCorruptBlock,
        Bug::CloneAckedWithoutCopy,
        Bug::StaleReplicaNeverCloned,
        Bug::SpareCountedWithoutClone,
        Bug::RenamesUnderLease,
        Bug::RevokedPrimaryKeepsLease,
        Bug::ClientReadsFarthest,
        Bug::UnannouncedVersionStrandsChunk,
        Bug::GrantNotRecorded,
        Bug::AdoptsReplicaLeftOut,
        Bug::GcDeletesStaleReplica,
        Bug::StoreFailureReportedOnce,
        Bug::RenameDuringQuietPeriod,
        Bug::SilentServerStaysCounted,
        Bug::SnapshotUnderLease,
        Bug::SharedChunkMutated,
        Bug::SilenceForgottenInQuietPeriod,
        Bug::BehindAckNotCountedForOffer,
        Bug::PrimaryTakesAnyEpoch,
        Bug::ClientTakesAnyFileOpened,
        Bug::PrimaryKeepsUsedData,
        Bug::ClientTakesLateChunkFull,
        Bug::PrimaryTakesAnyGrantOfEpoch,
        Bug::ClientCacheIgnoresFile,
        Bug::PrimaryKeepsInFlightAfterLease,
        Bug::PrimaryCountsSerialsDown,
        Bug::AckLeavesBeforeBarrier,
        Bug::SecondaryKeepsPassedHeld,
        Bug::PrimarySkipsSerialInFlight,
        Bug::SecondaryDropsHeldUnanswered,
        Bug::LostPrimaryKeepsLease,
        Bug::SecondaryKeepsHeldCopyOfApplied,
        Bug::LostSecondaryKeepsLease,
        Bug::SecondaryAcksBatchUnapplied,
        Bug::FailedReplicaBuffersPush,
        Bug::PrimaryKeepsBatchAfterLease,
    ];

    /// Kebab-case name used on the command line.
    pub fn name(self) -> String {
        let s = format!("{self:?}");
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if ch.is_uppercase() {
                if i > 0 {
                    out.push('-');
                }
                out.extend(ch.to_lowercase());
            } else {
                out.push(ch);
            }
        }
        out
    }

    pub fn parse(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// Real timer durations for the TCP host. The model ignores them; the
/// relation between the two lease periods is the clock assumption the model
/// relies on (docs/model.md, "Time").
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Durations {
    /// How long a chunkserver holds a lease, on its own clock, counted from
    /// a reading taken before its request left; a grant never moves that
    /// deadline later (LEASE-2).
    pub lease_ms: u64,
    /// How long the master holds a lease, on its own clock, counted from a
    /// reading taken after the request arrived (when it grants or extends).
    /// Must exceed `lease_ms` by the clock rate bound
    /// ([`Durations::satisfy_clock_bound`]).
    pub master_lease_ms: u64,
    /// How long pushed data waits in a buffer before it ages out.
    pub age_out_ms: u64,
    /// How long the master waits for version acknowledgements.
    pub grant_timeout_ms: u64,
    /// How long a client waits for a reply before it retries.
    pub request_timeout_ms: u64,
    /// How long a secondary holds back a mutation behind a missing serial
    /// before it reports the gap to the primary (and again as long as the
    /// gap stays open). Well inside the lease, so a lost Apply costs a
    /// fraction of a lease period, not the lease.
    pub held_back_ms: u64,
    /// How often a chunkserver sends the master a heartbeat, which carries
    /// the lease extensions its primaries want ([0091]). Well inside the
    /// lease, so a primary in use asks in time.
    pub heartbeat_ms: u64,
    /// How long a client waits before its first retry of a failed
    /// operation; each later retry of the same operation waits twice as
    /// long, up to `retry_backoff_max_ms` ([`Durations::retry_backoff`]).
    /// 0: retry at once. A lease that cannot be had now (a replica down, a
    /// restarted master's quiet period) is had later, so retrying at once
    /// only spends the retry budget and loads the master.
    pub retry_backoff_ms: u64,
    pub retry_backoff_max_ms: u64,
}

impl Durations {
    /// The clock assumption, as a bound on rates: every node's clock
    /// measures a real interval `d` as somewhere between `d * (1 - ρ)` and
    /// `d * (1 + ρ)`, with ρ = this many parts per thousand. A lease of `L`
    /// on a chunkserver's clock then lasts at most `L / (1 - ρ)` of real
    /// time, and the master's `M` at least `M / (1 + ρ)`.
    pub const CLOCK_RATE_ERROR_PER_MILLE_MAX: u64 = 50;

    /// The paper's 60 s lease; the master's period is longer than the rate
    /// bound needs (63.2 s) by a margin.
    pub fn gfs() -> Self {
        Durations {
            lease_ms: 60_000,
            master_lease_ms: 66_000 + 500,
            age_out_ms: 60_000,
            grant_timeout_ms: 2_000,
            request_timeout_ms: 5_000,
            held_back_ms: 2_000,
            heartbeat_ms: 5_000,
            retry_backoff_ms: 20,
            retry_backoff_max_ms: 1_000,
        }
    }

    /// Short periods for demos and tests of the TCP system (the bound needs
    /// a master period above 2.21 s).
    pub fn short() -> Self {
        Durations {
            lease_ms: 2_000,
            master_lease_ms: 2_300,
            age_out_ms: 10_000,
            grant_timeout_ms: 500,
            request_timeout_ms: 1_500,
            held_back_ms: 200,
            heartbeat_ms: 250,
            retry_backoff_ms: 20,
            retry_backoff_max_ms: 1_000,
        }
    }

    /// The clock assumption, checked where a cluster starts (docs/model.md,
    /// "Time"). The chunkserver's lease starts no later than its request
    /// leaves and the master's no earlier than the request arrives, so the
    /// master's outlasts it in real time when
    /// `M / (1 + ρ) > L / (1 - ρ)`, that is `M (1 - ρ) > L (1 + ρ)`.
    pub fn satisfy_clock_bound(&self) -> bool {
        let rho = Self::CLOCK_RATE_ERROR_PER_MILLE_MAX as u128;
        self.master_lease_ms as u128 * (1000 - rho) > self.lease_ms as u128 * (1000 + rho)
    }

    /// The shortest master lease period the bound allows for `lease_ms`
    /// (for error messages).
    pub fn master_lease_ms_min(lease_ms: u64) -> u64 {
        let rho = Self::CLOCK_RATE_ERROR_PER_MILLE_MAX;
        lease_ms * (1000 + rho) / (1000 - rho) + 1
    }

    /// The wait before retry number `retry` (from 0) of one operation:
    /// exponential backoff from `retry_backoff_ms`, capped.
    pub fn retry_backoff(&self, retry: u32) -> u64 {
        let doubled = self
            .retry_backoff_ms
            .saturating_mul(1u64.checked_shl(retry).unwrap_or(u64::MAX));
        doubled.min(self.retry_backoff_max_ms.max(self.retry_backoff_ms))
    }

    /// The fewest retries whose backoffs add up to at least `span_ms`: a
    /// retry budget that outlasts a client's deadline of that span
    /// (at least one; with no backoff, one: retries at once cover no time).
    pub fn retries_to_cover(&self, span_ms: u64) -> u32 {
        let mut waited = 0u64;
        let mut retries = 0u32;
        while waited < span_ms && self.retry_backoff(retries) > 0 {
            waited = waited.saturating_add(self.retry_backoff(retries));
            retries += 1;
        }
        retries.max(1)
    }

    pub(crate) fn range(ms: u64) -> std::ops::Range<Duration> {
        Duration::from_millis(ms)..Duration::from_millis(ms + 1)
    }
}

fn one() -> u32 {
    1
}

/// The parameters every actor of one cluster shares.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProtocolCfg {
    /// Maximum chunk size in the store's unit ([00104]: e.g. 64 MB).
    pub chunk_size: u64,
    /// Replicas per chunk, chosen by the master when it allocates a chunk.
    pub replicas_per_chunk: u32,
    #[schemars(with = "u64")]
    pub master: Id,
    #[schemars(with = "Vec<u64>")]
    pub chunkservers: Vec<Id>,
    /// Network position of each node (same order as node ids), for the
    /// "closest replica" choice of the chain push ([0096], [0097]).
    #[schemars(with = "Vec<(u64, u64)>")]
    pub positions: Vec<(Id, u64)>,
    /// Model bound: lease grants per chunk (new epochs). The TCP system uses
    /// `u32::MAX`.
    pub lease_grants_max: u32,
    /// Model bound: lease extensions a primary asks for per lease.
    pub extensions_max: u32,
    /// Model bound: early revocations per chunk.
    pub revocations_max: u32,
    /// Model bound: chunks per file.
    pub chunks_max: u32,
    /// Model bound: retries of one client operation.
    pub client_retries_max: u32,
    /// Whether buffered push data ages out (the model turns this off in
    /// small configurations to keep the state space small).
    pub age_out: bool,
    /// Whether clients and the master time out waiting for replies
    /// (requests, lease requests after an offer). Without faults every
    /// request is answered, so the model turns these timeouts off there.
    pub reply_timeouts: bool,
    /// Pushed records a chunkserver buffers at once; more is `Busy`.
    pub push_buffers_max: u32,
    /// Bytes of pushed data a chunkserver buffers at once: a fragment that
    /// would go past it is refused `Busy` and its push dropped, so a server
    /// never holds more, whatever the record sizes. (The model's records
    /// are bounded by `push_buffers_max` alone: it sets this to `u64::MAX`.)
    pub push_buffer_bytes_max: u64,
    /// Mutations a primary has in flight at once; more is `Busy`.
    pub mutations_in_flight_max: u32,
    /// Whether a chunkserver beats with nothing to carry, every
    /// `heartbeat_ms`, so the master hears that it is alive (over TCP). The
    /// model beats only when a primary wants an extension: an idle beat
    /// changes nothing the properties read, and a timer always armed
    /// would double every state.
    pub heartbeats_when_idle: bool,
    /// Whether the master brings stale replicas back by cloning
    /// (re-replication). On over TCP; in the model only where a
    /// configuration checks it (`live-repl`, `repl-crash`): with every
    /// fault configuration's crash or loss it multiplies the states (a
    /// revocation and a clone at any point of the run: `crash` grows from
    /// half a million states past 19 million).
    pub re_replication: bool,
    /// Units of a chunk one part of a clone carries (re-replication): a
    /// frame's worth over TCP, a unit in the model's `live-repl`, so that
    /// a clone of several parts is checked.
    pub clone_part_units: u64,
    /// Mutations a primary sends a secondary in one frame
    /// ([`Msg::ApplyBatch`](crate::msg::Msg::ApplyBatch)): the ones it
    /// ordered while their `Apply`s waited for [`Timer::SendApplies`]
    /// (crate::msg::Timer::SendApplies), which the TCP host fires when its
    /// batch of messages ends. 1 sends each `Apply` at once, as most model
    /// configurations do; `batched` checks 2; the TCP nodes allow as many
    /// as a host batch holds (docs/model.md argues why 2 covers them).
    #[serde(default = "one")]
    pub apply_batch_max: u32,
    pub durations: Durations,
    pub bug: Bug,
}

impl ProtocolCfg {
    /// The largest record a client may append: a quarter chunk ([00104]).
    pub fn record_size_max(&self) -> u64 {
        self.chunk_size / 4
    }

    pub fn position(&self, id: Id) -> u64 {
        self.positions
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, p)| *p)
            .unwrap_or(u64::from(usize::from(id) as u32))
    }

    /// Network distance, estimated from positions as [0097] estimates it
    /// from IP addresses.
    pub fn distance(&self, a: Id, b: Id) -> u64 {
        self.position(a).abs_diff(self.position(b))
    }

    /// The next hop of a chain push: the server in `remaining` closest to
    /// `from` ([0096]); ties go to the lower id so every host agrees.
    pub fn closest(&self, from: Id, remaining: &[Id]) -> Option<Id> {
        remaining
            .iter()
            .copied()
            .min_by_key(|r| (self.distance(from, *r), *r))
    }
}
