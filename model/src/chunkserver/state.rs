//! A chunkserver's state: its replicas' leases, the data pushed to it, the
//! mutations it has in flight as primary and holds back as secondary.

use crate::msg::*;
use crate::types::*;
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
/// A chunkserver's view of its lease on one chunk.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaLease {
    pub chunk: ChunkHandle,
    /// The epoch of the lease held, or being requested.
    pub epoch: LeaseEpoch,
    /// Granted and its clock has not run out: this replica is the primary.
    pub holding: bool,
    /// A request (new lease or extension) whose clock is still running.
    pub requested: bool,
    /// Which of the two lease clocks ([`Timer::LeaseClock`]) the latest
    /// request started: while `requested`, the pending request's; otherwise
    /// the held lease's. A held lease with a request pending runs on the
    /// other one.
    pub clock: u8,
    pub secondaries: Vec<Id>,
    /// The serial number the next mutation gets ([0099]).
    pub next_serial: Serial,
    pub extensions: u32,
    /// A mutation under the held lease since its last request: the next
    /// heartbeat asks for an extension ([0091]).
    pub extension_wanted: bool,
    /// A secondary's store failed under this lease (FAULT-2): every later
    /// mutation would fail on it, so the primary orders none until the
    /// master, told by that replica, ends the lease. Without this, each
    /// retry would use up a serial while the master's revocation is on
    /// its way.
    pub replica_failed: bool,
}

/// Data pushed by a client, kept until used or aged out ([0095]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Buffered<P> {
    pub data: DataId,
    /// The chunk it was pushed for: dropped if this replica fails it.
    pub chunk: ChunkHandle,
    pub fragments: Vec<P>,
    pub complete: bool,
}

/// A mutation the primary applied and forwarded, awaiting secondaries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InFlight {
    pub chunk: ChunkHandle,
    pub stamp: Stamp,
    pub client: Id,
    pub data: DataId,
    /// `None` for a pad: the client is sent to the next chunk.
    pub offset: Option<Offset>,
    pub acked: Vec<Id>,
}

/// A client's mutation that reached the chosen replica before the master's
/// grant did. The master names a primary to clients only after granting, so
/// the grant is on its way; the mutation waits for it (or for the request's
/// clock to run out).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EarlyMutate {
    pub client: Id,
    pub chunk: ChunkHandle,
    pub epoch: LeaseEpoch,
    pub kind: MutationKind,
    pub data: DataId,
}

/// A forwarded mutation that arrived before its turn ([00100]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HeldApply {
    pub primary: Id,
    pub chunk: ChunkHandle,
    pub version: ChunkVersion,
    pub stamp: Stamp,
    pub op: ApplyOp,
}

/// A mutation the primary ordered and applied whose `Apply` waits to go
/// out with the next ones of its chunk in one frame per secondary
/// ([`Msg::ApplyBatch`], issue #13). Waiting is a delay the network may
/// add anyway, and a crash loses it as it loses any message not yet sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UnsentApply {
    pub chunk: ChunkHandle,
    pub version: ChunkVersion,
    pub stamp: Stamp,
    pub op: ApplyOp,
    pub secondaries: Vec<Id>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChunkserverState<S: ChunkStore> {
    pub store: S,
    pub leases: Vec<ReplicaLease>,
    pub buffer: Vec<Buffered<S::Payload>>,
    pub in_flight: Vec<InFlight>,
    pub held: Vec<HeldApply>,
    pub early: Vec<EarlyMutate>,
    /// `Apply`s waiting to go out together, in serial order
    /// (`ProtocolCfg::apply_batch_max` > 1).
    pub unsent: Vec<UnsentApply>,
    /// Chunks whose replica here failed to store something, with the
    /// error (FAULT-2). Reported to the master once; until this server
    /// restarts, their mutations fail here at once, so nothing is held
    /// back behind a serial the store cannot record.
    pub failed: Vec<(ChunkHandle, StoreError)>,
    /// Clones of chunks this replica is taking from a current replica
    /// (re-replication, GFS §4.3): only parts of these are installed.
    pub clones: Vec<CloneProgress>,
    /// `Timer::HeartBeat` is armed.
    pub heartbeat_due: bool,
}

/// A clone under way: the part of `chunk` at `version` wanted next from
/// `source`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CloneProgress {
    pub chunk: ChunkHandle,
    pub version: ChunkVersion,
    pub source: Id,
    pub next: Offset,
}

impl ReplicaLease {
    /// The clock the held lease runs on (meaningful while `holding`).
    pub fn held_clock(&self) -> u8 {
        if self.requested {
            1 - self.clock
        } else {
            self.clock
        }
    }
}

impl<S: ChunkStore> ChunkserverState<S> {
    pub fn lease(&self, chunk: ChunkHandle) -> Option<&ReplicaLease> {
        self.leases.iter().find(|l| l.chunk == chunk)
    }

    /// The timer whose expiry ends this replica's lease of `chunk`, if it
    /// holds it (trace validation reads the lease's deadline from it).
    pub fn lease_timer(&self, chunk: ChunkHandle) -> Option<Timer> {
        self.lease(chunk)
            .filter(|l| l.holding)
            .map(|l| Timer::LeaseClock(chunk, l.held_clock()))
    }

    /// The error this replica of `chunk` failed with, if it did (FAULT-2).
    pub fn store_failure(&self, chunk: ChunkHandle) -> Option<&StoreError> {
        self.failed
            .iter()
            .find(|(c, _)| *c == chunk)
            .map(|(_, e)| e)
    }

    /// Whether this replica is the primary of `chunk` right now.
    pub fn is_primary(&self, chunk: ChunkHandle) -> bool {
        self.lease(chunk).is_some_and(|l| l.holding)
    }

    pub(super) fn lease_mut(&mut self, chunk: ChunkHandle) -> &mut ReplicaLease {
        let i = match self.leases.iter().position(|l| l.chunk == chunk) {
            Some(i) => i,
            None => {
                self.leases.push(ReplicaLease {
                    chunk,
                    epoch: 0,
                    holding: false,
                    requested: false,
                    clock: 0,
                    secondaries: vec![],
                    next_serial: 1,
                    extensions: 0,
                    extension_wanted: false,
                    replica_failed: false,
                });
                self.leases.sort_by_key(|l| l.chunk);
                self.leases.iter().position(|l| l.chunk == chunk).unwrap()
            }
        };
        &mut self.leases[i]
    }

    pub(super) fn take_data(&mut self, data: DataId) -> Option<S::Payload> {
        let i = self
            .buffer
            .iter()
            .position(|b| b.data == data && b.complete)?;
        let b = self.buffer.remove(i);
        Some(S::Payload::concat(&b.fragments))
    }

    /// The complete pushed data `data`, left in the buffer (only for the
    /// seeded bug `PrimaryKeepsUsedData`).
    pub(super) fn data(&self, data: DataId) -> Option<S::Payload> {
        let b = self.buffer.iter().find(|b| b.data == data && b.complete)?;
        Some(S::Payload::concat(&b.fragments))
    }

    pub(super) fn has_data(&self, data: DataId) -> bool {
        self.buffer.iter().any(|b| b.data == data && b.complete)
    }
}
