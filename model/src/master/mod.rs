//! The master: namespace, chunk versions and leases ([0090], [0091],
//! [0093], [0094]).
//!
//! A client asks which replica holds the lease of a chunk (act 1210). If none
//! does, the master picks an up-to-date replica, increments the chunk version
//! and persists it, tells the other up-to-date replicas the new version and
//! offers the lease to the chosen one. The chosen replica *requests* the
//! lease, starting its own lease clock at that moment, and only then does
//! the master grant it and start its own, longer, clock. That order is what
//! makes a late grant harmless: the replica's lease always ends before the
//! master's (docs/model.md, "Time").
//!
//! The grant completes when every up-to-date replica has acknowledged the new
//! version. If some do not answer in time, the master counts them stale and,
//! because a slow replica may still have stored the version it failed to
//! acknowledge, increments the version once more for the replicas that did
//! answer, so a stale replica never carries the current version.
//!
//! Which replicas are up to date is volatile, as in GFS: a restarted master
//! asks every chunkserver for its chunks and versions and grants nothing for
//! one lease period, so that any lease its previous incarnation granted has
//! ended. A replica whose report showed an older version may yet store the
//! current one from an announcement of the previous incarnation still in
//! flight; its acknowledgement of it then counts as the report it would
//! send now ([`ChunkView::behind`]).
//!
//! Files: this one holds the volatile state, the start (and restart), and
//! the dispatch of each message and timer to one small handler;
//! [`durable`] what the master persists, [`namespace`] paths, files and
//! chunk allocation, [`lease`] offering, granting, extending and ending
//! leases, [`reports`] what chunkservers report of their replicas, and
//! [`replication`] bringing stale replicas back by cloning, and
//! [`snapshot`] copying a chunk shared with a snapshot before it changes.

use crate::config::{Bug, Durations, ProtocolCfg};
use crate::msg::*;
use crate::types::*;
use crate::O;
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::borrow::Cow;
use std::sync::Arc;

mod durable;
mod lease;
mod namespace;
mod notes;
mod replication;
mod reports;
mod snapshot;

pub use durable::{ChunkMeta, FileMeta, MasterDurable, NodeStorage};
pub use namespace::{path_problem, PATH_BYTES_MAX};
pub use notes::{notes, MasterNote};

/// The master's view of one chunk's lease.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LeaseView {
    Free,
    /// Offered to `primary`; waiting for its request and version acks.
    Offered {
        primary: Id,
        epoch: LeaseEpoch,
        requested: bool,
        acked: Vec<Id>,
        /// Placed replicas not up to date that are to clone the chunk
        /// from `primary` before the grant (re-replication, GFS §4.3).
        clones: Vec<Id>,
    },
    Granted {
        primary: Id,
        epoch: LeaseEpoch,
        secondaries: Vec<Id>,
        revoking: bool,
    },
}

/// Volatile per-chunk state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChunkView {
    /// Replicas known to hold the current version and every mutation
    /// acknowledged so far. Rebuilt from chunk reports after a restart.
    pub up_to_date: Vec<Id>,
    pub lease: LeaseView,
    /// Clients waiting for a lease holder (act 1220 is sent when granted).
    pub waiting: Vec<Id>,
    pub last_primary: Option<Id>,
    pub revocations: u32,
    /// Placed replicas whose report showed an older version of the chunk
    /// than the current one, or none, and that the master does not count:
    /// an announcement of the current version by a previous incarnation
    /// may still reach them, and their acknowledgement of it then counts
    /// as the report they would send now. Emptied when the version moves.
    pub behind: Vec<Id>,
    /// Chunkservers a clone of this chunk failed on (the grant timed out
    /// without their acknowledgement), placed or since moved away from:
    /// neither cloned onto nor moved to again until they are heard from
    /// (a report, a version acknowledgement; not a heartbeat, which would
    /// retry a slow server's clone after every beat), so a dead server
    /// costs one grant timeout, not one per lease.
    pub clone_failed: Vec<Id>,
    /// Placed replicas whose store failed the chunk (FAULT-2): no clone
    /// goes to them until they restart and report (re-replication only).
    pub store_failed: Vec<Id>,
    /// The replica the current epoch was offered to, if its grant timed
    /// out before its request came: it was up to date when offered, and
    /// nothing was acknowledged under an epoch never granted, so its
    /// request, if it comes while the epoch is still the current one,
    /// shows it holds the current version and counts it again (without
    /// this, offers answered late, as after a restarted master's slow
    /// reconnects, can leave no replica counted: LIVE-2). Cleared when the
    /// epoch moves.
    pub unanswered: Option<Id>,
    /// A client wanted a lease while no replica was counted, and the
    /// placed replicas were asked to report (`ReportRequest`): their
    /// reports may adopt them (`adopts`). Asked once until the next offer
    /// (which needs a counted replica), so that retrying clients do not
    /// multiply the requests. A restarted master starts with it set: it
    /// has just asked every chunkserver.
    pub reports_asked: bool,
}

/// What the master last heard of a chunkserver's restarts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServerView {
    pub id: Id,
    pub incarnation: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MasterState {
    pub durable: MasterDurable,
    pub views: Vec<ChunkView>,
    /// Chunkservers whose restart count is not 0, from their reports.
    pub servers: Vec<ServerView>,
    /// A restarted master's waiting period: no lease may be granted.
    pub quiet: bool,
    /// Renames taken but not yet made (volatile: a client whose master
    /// restarts asks again).
    pub renames: Vec<Renaming>,
    /// Chunks being copied for a mutation after a snapshot (volatile: a
    /// restarted master copies again, under a new handle).
    pub copies: Vec<Copying>,
}

/// A rename the master has taken and not yet made ([0091]): the leases of
/// the file's chunks are being revoked, none is granted meanwhile, and the
/// name changes once every one has ended (acknowledged or expired).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Renaming {
    pub client: Id,
    pub file: FileId,
    pub from: String,
    pub to: String,
    /// A snapshot (GFS §3.4): once the leases have ended, `to` is made a
    /// new file listing the same chunks, and `from` keeps its name.
    pub snapshot: bool,
}

/// A chunk shared by a file and its snapshot, being copied before its
/// first mutation (GFS §3.4): each current replica of `from` copies it on
/// its own disk to the new chunk `chunk`, which takes `from`'s place in
/// `file` once the copies are made.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Copying {
    pub chunk: ChunkHandle,
    pub from: ChunkHandle,
    pub file: FileId,
    pub index: u32,
    /// The replicas asked to copy, and those that said they did.
    pub targets: Vec<Id>,
    pub copied: Vec<Id>,
}

impl MasterState {
    fn incarnation(&self, id: Id) -> u32 {
        self.servers
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.incarnation)
            .unwrap_or(0)
    }

    /// Saves the durable part, which is all a restarted master finds.
    fn save_durable<S: ChunkStore>(&self, o: &mut O<S>) {
        o.save(NodeStorage::Master(Arc::new(self.durable.clone())));
    }
}

impl MasterState {
    /// The master's view of `chunk`, which it allocated (a handle is an
    /// index into `views`, one per chunk of `durable.chunks`).
    pub(crate) fn view(&self, chunk: ChunkHandle) -> &ChunkView {
        &self.views[chunk as usize]
    }

    pub(crate) fn view_mut(&mut self, chunk: ChunkHandle) -> &mut ChunkView {
        &mut self.views[chunk as usize]
    }

    pub fn lease(&self, chunk: ChunkHandle) -> Option<&LeaseView> {
        self.views.get(chunk as usize).map(|v| &v.lease)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MasterActor {
    pub cfg: Arc<ProtocolCfg>,
    /// What a fresh master starts with: nothing over TCP; the model's file,
    /// and possibly a first chunk already holding data.
    pub initial: MasterDurable,
}

impl MasterActor {
    pub fn on_start<S: ChunkStore>(
        &self,
        storage: &Option<MasterDurable>,
        o: &mut O<S>,
    ) -> MasterState {
        match storage {
            None => {
                let durable = self.initial.clone();
                if !durable.files.is_empty() {
                    o.save(NodeStorage::Master(Arc::new(durable.clone())));
                }
                self.listen_for_all(o);
                let views = durable
                    .chunks
                    .iter()
                    .map(|c| fresh_view(c.replicas.clone()))
                    .collect();
                MasterState {
                    durable,
                    views,
                    servers: vec![],
                    quiet: false,
                    renames: vec![],
                    copies: vec![],
                }
            }
            Some(durable) => {
                // Locations and leases were volatile: ask every chunkserver
                // for its versions, and wait out any lease the previous
                // incarnation may have granted.
                // A chunk never granted holds no data on any replica, and a
                // replica may not even report it (one still at version 0
                // was never offered; one offered by a master that crashed
                // before any replica heard of it is at version 0
                // everywhere): every replica it was placed on is as up to
                // date as it can be. Waiting for reports would leave it
                // with none, and the file's appends would stall for good
                // (found by the nemesis, and for offered chunks by
                // `live-unannounced`).
                let never_granted = |c: &ChunkMeta| {
                    if self.cfg.bug == Bug::UnannouncedVersionStrandsChunk {
                        c.version == 0
                    } else {
                        c.granted == 0
                    }
                };
                let views = durable
                    .chunks
                    .iter()
                    .map(|c| {
                        let mut view = fresh_view(if never_granted(c) {
                            c.replicas.clone()
                        } else {
                            vec![]
                        });
                        // Every chunkserver is asked to report just below.
                        view.reports_asked = true;
                        view
                    })
                    .collect();
                for cs in &self.cfg.chunkservers {
                    o.send(*cs, Msg::ReportRequest);
                }
                self.listen_for_all(o);
                // LEASE-3: no grant until one lease period has passed.
                let quiet = self.cfg.bug != Bug::RestartedMasterGrantsImmediately;
                if quiet {
                    o.set_timer(
                        Timer::StartupQuiet,
                        Durations::range(self.cfg.durations.master_lease_ms),
                    );
                }
                MasterState {
                    durable: durable.clone(),
                    views,
                    servers: vec![],
                    quiet,
                    renames: vec![],
                    copies: vec![],
                }
            }
        }
    }

    pub fn on_msg<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        msg: Msg<S::Payload>,
        o: &mut O<S>,
    ) {
        // A server's heartbeats and reports say it is alive. Not every
        // message: an answer the master ignores would then count as a step
        // that acts, which the model's network treats differently.
        if matches!(msg, Msg::HeartBeat { .. } | Msg::ChunkReport { .. })
            && self.cfg.chunkservers.contains(&src)
        {
            self.heard_from(src, o);
        }
        match msg {
            Msg::OpenFile { path, create } => self.on_open_file(state, src, path, create, o),
            Msg::RenameFile { from, to } => self.on_rename_file(state, src, from, to, false, o),
            Msg::SnapshotFile { from, to } => self.on_rename_file(state, src, from, to, true, o),
            Msg::ChunkCopied { chunk, version } => {
                self.on_chunk_copied(state, src, chunk, version, o)
            }
            Msg::FindLease { file, index } => self.on_find_lease(state, src, file, index, o),
            Msg::Locate { file, index } => self.on_locate(state, src, file, index, o),
            Msg::VersionAck { chunk, version } => {
                self.on_version_ack(state, src, chunk, version, o)
            }
            Msg::LeaseRequest { chunk, epoch } => {
                self.on_lease_request(state, src, chunk, epoch, 0, o)
            }
            Msg::LeaseRevoked { chunk, epoch } => self.on_lease_revoked(state, chunk, epoch, o),
            Msg::ReplicaFailed { chunk, version, .. } => {
                self.on_replica_failed(state, src, chunk, version, o)
            }
            Msg::ChunkReport {
                incarnation,
                chunks,
            } => self.on_chunk_report(state, src, incarnation, &chunks, o),
            Msg::HeartBeat { extensions, .. } => self.on_heartbeat(state, src, &extensions, o),
            _ => {}
        }
    }

    pub fn on_timeout<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        timer: &Timer,
        o: &mut O<S>,
    ) {
        match *timer {
            Timer::LeaseExpiry(chunk) => self.on_lease_expiry(state, chunk, o),
            Timer::GrantTimeout(chunk) => self.on_grant_timeout(state, chunk, o),
            Timer::Revoke(chunk) => self.on_revoke_timer(state, chunk, o),
            Timer::StartupQuiet if state.quiet => self.on_startup_quiet(state, o),
            Timer::ServerSilent(server) => self.on_server_silent(state, server, o),
            Timer::CopyTimeout(chunk) => self.finish_copy(state, chunk, o),
            _ => {}
        }
    }
}

fn fresh_view(up_to_date: Vec<Id>) -> ChunkView {
    ChunkView {
        up_to_date,
        lease: LeaseView::Free,
        waiting: vec![],
        last_primary: None,
        revocations: 0,
        behind: vec![],
        clone_failed: vec![],
        store_failed: vec![],
        unanswered: None,
        reports_asked: false,
    }
}
