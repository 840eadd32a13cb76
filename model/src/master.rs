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
//! ended.

use crate::config::{Bug, Durations, ProtocolCfg};
use crate::msg::*;
use crate::types::*;
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::borrow::Cow;
use std::sync::Arc;

/// Longest path the master takes, in bytes. Paths are kept in the master's
/// memory and its saved state for ever, so their size must be bounded.
pub const PATH_BYTES_MAX: usize = 1024;

/// Why the master refuses `path`, or `None` if it takes it (PATH-1). A path
/// is absolute (`/` first), at most [`PATH_BYTES_MAX`] bytes, and its
/// components between single slashes are non-empty, neither `.` nor `..`,
/// of ASCII letters, digits, `.`, `_` and `-`. One spelling per file: no
/// `//`, no trailing `/`, no `.` that could name the same file twice, and
/// no byte that a terminal or a log line would show differently.
pub fn path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("the path is empty");
    }
    if path.len() > PATH_BYTES_MAX {
        return Some("the path is longer than 1024 bytes");
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Some("the path is not absolute (it must start with /)");
    };
    for component in rest.split('/') {
        match component {
            "" => return Some("the path has an empty component (// or a trailing /)"),
            "." | ".." => return Some("the path has a . or .. component"),
            _ => {}
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if !component.bytes().all(allowed) {
            return Some("the path has a character other than A-Z a-z 0-9 . _ - and /");
        }
    }
    None
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileMeta {
    pub name: String,
    pub chunks: Vec<ChunkHandle>,
}

/// What the master persists per chunk.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChunkMeta {
    pub file: FileId,
    pub index: u32,
    pub version: ChunkVersion,
    /// The last lease epoch granted; epochs never repeat, even across restarts.
    pub epoch: LeaseEpoch,
    /// Lease grants so far (the model bounds them).
    pub grants: u32,
    /// Where the chunk's replicas were placed at allocation.
    pub replicas: Vec<Id>,
}

/// The master's durable state: namespace and chunk versions.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct MasterDurable {
    pub files: Vec<FileMeta>,
    /// Indexed by chunk handle.
    pub chunks: Vec<ChunkMeta>,
}

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
}

impl MasterState {
    fn incarnation(&self, id: Id) -> u32 {
        self.servers
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.incarnation)
            .unwrap_or(0)
    }
}

impl MasterState {
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
        o: &mut Out<crate::Node<S>>,
    ) -> MasterState {
        match storage {
            None => {
                let durable = self.initial.clone();
                if !durable.files.is_empty() {
                    o.save(NodeStorage::Master(Arc::new(durable.clone())));
                }
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
                }
            }
            Some(durable) => {
                // Locations and leases were volatile: ask every chunkserver
                // for its versions, and wait out any lease the previous
                // incarnation may have granted.
                // A chunk still at version 0 was never offered, so no
                // replica holds anything of it or reports it: every replica
                // it was placed on is as up to date as it can be. Waiting
                // for reports would leave it with none, and the file's
                // appends would stall for good (found by the nemesis).
                let views = durable
                    .chunks
                    .iter()
                    .map(|c| {
                        fresh_view(if c.version == 0 {
                            c.replicas.clone()
                        } else {
                            vec![]
                        })
                    })
                    .collect();
                for cs in &self.cfg.chunkservers {
                    o.send(*cs, Msg::ReportRequest);
                }
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
                }
            }
        }
    }

    pub fn on_msg<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        msg: Msg<S::Payload>,
        o: &mut Out<crate::Node<S>>,
    ) {
        match msg {
            Msg::OpenFile { path, create } => {
                // PATH-1: a path is checked before it is looked up or
                // stored, so a refused one costs the master nothing.
                if path_problem(&path).is_some() {
                    let file = Err(Failure::BadPath);
                    let path = String::new();
                    o.send(
                        src,
                        Msg::FileOpened {
                            path,
                            file,
                            chunks: 0,
                        },
                    );
                    return;
                }
                let found = state.durable.files.iter().position(|f| f.name == path);
                let file = match (found, create) {
                    (Some(i), _) => Some(i as FileId),
                    (None, true) => {
                        let s = state.to_mut();
                        s.durable.files.push(FileMeta {
                            name: path.clone(),
                            chunks: vec![],
                        });
                        o.save(NodeStorage::Master(Arc::new(s.durable.clone())));
                        Some((s.durable.files.len() - 1) as FileId)
                    }
                    (None, false) => None,
                };
                let chunks = file
                    .map(|f| state.durable.files[f as usize].chunks.len() as u32)
                    .unwrap_or(0);
                let file = file.ok_or(Failure::NotFound);
                o.send(src, Msg::FileOpened { path, file, chunks });
            }
            Msg::FindLease { file, index } => {
                // Act 1210 → 1220 ([0093], [0094]).
                let chunk = match self.resolve(state, file, index, o) {
                    Ok(chunk) => chunk,
                    Err(reason) => {
                        o.send(
                            src,
                            Msg::NoLease {
                                file,
                                index,
                                reason,
                            },
                        );
                        return;
                    }
                };
                let view = &state.views[chunk as usize];
                if let LeaseView::Granted {
                    revoking: false, ..
                } = view.lease
                {
                    o.send(src, self.holder_reply(state, chunk));
                    return;
                }
                if !view.waiting.contains(&src) {
                    let s = state.to_mut();
                    s.views[chunk as usize].waiting.push(src);
                    s.views[chunk as usize].waiting.sort();
                }
                self.try_offer(state, chunk, o);
            }
            Msg::Locate { file, index } => {
                let chunks = state
                    .durable
                    .files
                    .get(file as usize)
                    .map(|f| f.chunks.len() as u32)
                    .unwrap_or(0);
                let info = state
                    .durable
                    .files
                    .get(file as usize)
                    .and_then(|f| f.chunks.get(index as usize))
                    .map(|&chunk| {
                        let (primary, epoch) = match &state.views[chunk as usize].lease {
                            LeaseView::Granted { primary, epoch, .. } => (*primary, *epoch),
                            _ => (Id::from(usize::MAX), 0),
                        };
                        let meta = &state.durable.chunks[chunk as usize];
                        LeaseInfo {
                            file,
                            index,
                            chunk,
                            version: meta.version,
                            epoch,
                            primary,
                            secondaries: self
                                .named_replicas(state, chunk)
                                .into_iter()
                                .filter(|r| *r != primary)
                                .collect(),
                        }
                    });
                o.send(src, Msg::Located { info, chunks });
            }
            Msg::VersionAck { chunk, version } => {
                let Some(view) = state.views.get(chunk as usize) else {
                    return;
                };
                if version != state.durable.chunks[chunk as usize].version
                    || !view.up_to_date.contains(&src)
                {
                    return;
                }
                if let LeaseView::Offered { acked, .. } = &view.lease {
                    if !acked.contains(&src) {
                        let s = state.to_mut();
                        if let LeaseView::Offered { acked, .. } = &mut s.views[chunk as usize].lease
                        {
                            acked.push(src);
                            acked.sort();
                        }
                        self.try_complete_grant(state, chunk, false, o);
                    }
                }
            }
            Msg::LeaseRequest { chunk, epoch } => {
                let Some(view) = state.views.get(chunk as usize) else {
                    return;
                };
                match &view.lease {
                    LeaseView::Offered {
                        primary,
                        epoch: e,
                        requested: false,
                        ..
                    } if *primary == src && *e == epoch => {
                        let s = state.to_mut();
                        if let LeaseView::Offered { requested, .. } =
                            &mut s.views[chunk as usize].lease
                        {
                            *requested = true;
                        }
                        self.try_complete_grant(state, chunk, false, o);
                    }
                    LeaseView::Granted {
                        primary,
                        epoch: e,
                        secondaries,
                        revoking: false,
                    } if *primary == src && *e == epoch => {
                        // Extension ([0091]): restart the master's clock, which
                        // again starts after the primary's (it sent the request
                        // before we received it).
                        let version = state.durable.chunks[chunk as usize].version;
                        if self.cfg.bug != Bug::MasterKeepsClockOnExtension {
                            o.set_timer(
                                Timer::LeaseExpiry(chunk),
                                Durations::range(self.cfg.durations.master_lease_ms),
                            );
                        }
                        o.send(
                            src,
                            Msg::LeaseGrant {
                                chunk,
                                epoch,
                                version,
                                secondaries: secondaries.clone(),
                            },
                        );
                    }
                    _ => {} // a request for a lease we no longer offer: let it lapse
                }
            }
            Msg::LeaseRevoked { chunk, epoch } => {
                if let Some(LeaseView::Granted { epoch: e, .. }) = state.lease(chunk) {
                    if *e == epoch {
                        let s = state.to_mut();
                        s.views[chunk as usize].lease = LeaseView::Free;
                        o.cancel_timer(Timer::LeaseExpiry(chunk));
                        o.cancel_timer(Timer::Revoke(chunk));
                        self.try_offer(state, chunk, o);
                    }
                }
            }
            Msg::ReplicaFailed { chunk, version, .. } => {
                self.on_replica_failed(state, src, chunk, version, o)
            }
            Msg::ChunkReport {
                incarnation,
                chunks,
            } => {
                // Only a report from a new incarnation can prove a replica
                // stale: without a restart, a lower version may just be a
                // report that crossed the announcement of the new one.
                let restarted = incarnation > state.incarnation(src);
                if restarted {
                    let s = state.to_mut();
                    s.servers.retain(|v| v.id != src);
                    s.servers.push(ServerView {
                        id: src,
                        incarnation,
                    });
                    s.servers.sort_by_key(|v| v.id);
                }
                self.on_report(state, src, restarted, &chunks, o)
            }
            _ => {}
        }
    }

    pub fn on_timeout<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        timer: &Timer,
        o: &mut Out<crate::Node<S>>,
    ) {
        match *timer {
            Timer::LeaseExpiry(chunk) => {
                // [0091]: the old lease has expired, a new one may be granted.
                if let Some(LeaseView::Granted { .. }) = state.lease(chunk) {
                    state.to_mut().views[chunk as usize].lease = LeaseView::Free;
                    o.cancel_timer(Timer::Revoke(chunk));
                    self.try_offer(state, chunk, o);
                }
            }
            Timer::GrantTimeout(chunk) => {
                let Some(LeaseView::Offered { requested, .. }) = state.lease(chunk) else {
                    return;
                };
                if *requested {
                    self.try_complete_grant(state, chunk, true, o);
                } else {
                    // The chosen replica never asked: it may be down. Count it
                    // stale (the next offer increments the version past
                    // whatever it may hold) and offer to another.
                    let s = state.to_mut();
                    let view = &mut s.views[chunk as usize];
                    if let LeaseView::Offered { primary, .. } = view.lease {
                        view.up_to_date.retain(|r| *r != primary);
                    }
                    view.lease = LeaseView::Free;
                    self.try_offer(state, chunk, o);
                }
            }
            Timer::Revoke(chunk) => {
                // [0091]: the master may revoke a lease before it expires.
                if let Some(LeaseView::Granted {
                    revoking: false, ..
                }) = state.lease(chunk)
                {
                    if state.views[chunk as usize].revocations < self.cfg.revocations_max {
                        self.revoke(state, chunk, o);
                    }
                }
            }
            Timer::StartupQuiet if state.quiet => {
                state.to_mut().quiet = false;
                for chunk in 0..state.views.len() as ChunkHandle {
                    self.try_offer(state, chunk, o);
                }
            }
            _ => {}
        }
    }

    fn revoke<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        chunk: ChunkHandle,
        o: &mut Out<crate::Node<S>>,
    ) {
        let s = state.to_mut();
        let view = &mut s.views[chunk as usize];
        if let LeaseView::Granted {
            primary,
            epoch,
            revoking,
            ..
        } = &mut view.lease
        {
            *revoking = true;
            view.revocations += 1;
            o.send(
                *primary,
                Msg::RevokeLease {
                    chunk,
                    epoch: *epoch,
                },
            );
        }
    }

    /// Finds (or allocates, for the next chunk of a record append [00105])
    /// the chunk a client names.
    fn resolve<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        file: FileId,
        index: ChunkIndex,
        o: &mut Out<crate::Node<S>>,
    ) -> Result<ChunkHandle, Failure> {
        let f = state
            .durable
            .files
            .get(file as usize)
            .ok_or(Failure::NotFound)?;
        let count = f.chunks.len() as u32;
        let n = match index {
            ChunkIndex::Last => count.saturating_sub(1),
            ChunkIndex::At(n) => n,
        };
        if n < count {
            return Ok(f.chunks[n as usize]);
        }
        if n > count || n >= self.cfg.chunks_max {
            return Err(Failure::NotFound);
        }
        // Allocate chunk `n`: every replica starts empty at version 0, so all
        // are up to date.
        let s = state.to_mut();
        let chunk = s.durable.chunks.len() as ChunkHandle;
        let servers = &self.cfg.chunkservers;
        let k = (self.cfg.replicas_per_chunk as usize).min(servers.len());
        let mut replicas: Vec<Id> = (0..k)
            .map(|i| servers[(chunk as usize + i) % servers.len()])
            .collect();
        replicas.sort();
        s.durable.chunks.push(ChunkMeta {
            file,
            index: n,
            version: 0,
            epoch: 0,
            grants: 0,
            replicas: replicas.clone(),
        });
        s.durable.files[file as usize].chunks.push(chunk);
        s.views.push(fresh_view(replicas));
        o.save(NodeStorage::Master(Arc::new(s.durable.clone())));
        Ok(chunk)
    }

    /// Starts a lease grant if the chunk needs one and one may be granted.
    fn try_offer<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        chunk: ChunkHandle,
        o: &mut Out<crate::Node<S>>,
    ) {
        let view = &state.views[chunk as usize];
        if view.waiting.is_empty() || view.lease != LeaseView::Free || state.quiet {
            return;
        }
        let meta = &state.durable.chunks[chunk as usize];
        // Rotate past the last primary so that a re-grant after expiry goes
        // to another replica when one is available.
        let candidate = match view.last_primary {
            Some(last) => view
                .up_to_date
                .iter()
                .copied()
                .find(|r| *r > last)
                .or_else(|| view.up_to_date.first().copied()),
            None => view.up_to_date.first().copied(),
        };
        let Some(primary) = candidate.filter(|_| meta.grants < self.cfg.lease_grants_max) else {
            let s = state.to_mut();
            let view = &mut s.views[chunk as usize];
            let (file, index) = (
                s.durable.chunks[chunk as usize].file,
                s.durable.chunks[chunk as usize].index,
            );
            for c in std::mem::take(&mut view.waiting) {
                o.send(
                    c,
                    Msg::NoLease {
                        file,
                        index: ChunkIndex::At(index),
                        reason: Failure::NoLeaseNow,
                    },
                );
            }
            return;
        };
        let s = state.to_mut();
        let meta = &mut s.durable.chunks[chunk as usize];
        meta.grants += 1;
        meta.epoch += 1;
        // A new lease means a new version, so replicas that miss it are
        // recognisably stale (GFS paper §4.5).
        if self.cfg.bug != Bug::VersionNotIncremented {
            meta.version += 1;
        }
        let (epoch, version) = (meta.epoch, meta.version);
        o.save(NodeStorage::Master(Arc::new(s.durable.clone())));
        let view = &mut s.views[chunk as usize];
        view.lease = LeaseView::Offered {
            primary,
            epoch,
            requested: false,
            acked: vec![primary],
        };
        view.last_primary = Some(primary);
        let others = view.up_to_date.iter().copied().filter(|r| *r != primary);
        announce_version(&s.servers, chunk, version, others, o);
        let incarnation = s.incarnation(primary);
        o.send(
            primary,
            Msg::LeaseOffer {
                chunk,
                epoch,
                version,
                incarnation,
            },
        );
        if self.cfg.reply_timeouts {
            o.set_timer(
                Timer::GrantTimeout(chunk),
                Durations::range(self.cfg.durations.grant_timeout_ms),
            );
        }
    }

    /// Grants the offered lease once the chosen replica requested it and the
    /// other up-to-date replicas acknowledged the version (or, at the grant
    /// timeout, without the silent ones).
    fn try_complete_grant<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        chunk: ChunkHandle,
        timed_out: bool,
        o: &mut Out<crate::Node<S>>,
    ) {
        let view = &state.views[chunk as usize];
        let LeaseView::Offered {
            primary,
            epoch,
            requested: true,
            acked,
        } = &view.lease
        else {
            return;
        };
        let all_acked = view.up_to_date.iter().all(|r| acked.contains(r));
        if !all_acked && !timed_out {
            return;
        }
        let (primary, epoch, acked) = (*primary, *epoch, acked.clone());
        let s = state.to_mut();
        if !all_acked {
            // Silent replicas become stale. One of them may yet store the
            // version it did not acknowledge, so move the version on for the
            // replicas that did answer.
            let meta = &mut s.durable.chunks[chunk as usize];
            if self.cfg.bug != Bug::VersionNotIncremented {
                meta.version += 1;
            }
            let version = meta.version;
            o.save(NodeStorage::Master(Arc::new(s.durable.clone())));
            let others = acked.iter().copied().filter(|r| *r != primary);
            announce_version(&s.servers, chunk, version, others, o);
        }
        let version = s.durable.chunks[chunk as usize].version;
        let view = &mut s.views[chunk as usize];
        if self.cfg.bug != Bug::MasterKeepsSilentReplicas {
            view.up_to_date = acked.clone();
        }
        let secondaries: Vec<Id> = acked.iter().copied().filter(|r| *r != primary).collect();
        view.lease = LeaseView::Granted {
            primary,
            epoch,
            secondaries: secondaries.clone(),
            revoking: false,
        };
        o.cancel_timer(Timer::GrantTimeout(chunk));
        o.set_timer(
            Timer::LeaseExpiry(chunk),
            Durations::range(self.cfg.durations.master_lease_ms),
        );
        if view.revocations < self.cfg.revocations_max {
            o.set_timer(
                Timer::Revoke(chunk),
                Durations::range(self.cfg.durations.master_lease_ms / 2),
            );
        }
        o.send(
            primary,
            Msg::LeaseGrant {
                chunk,
                epoch,
                version,
                secondaries,
            },
        );
        let reply = self.holder_reply(state, chunk);
        let s = state.to_mut();
        for c in std::mem::take(&mut s.views[chunk as usize].waiting) {
            o.send(c, reply.clone());
        }
    }

    /// The replicas the master hands to clients: only up-to-date ones.
    fn named_replicas(&self, state: &MasterState, chunk: ChunkHandle) -> Vec<Id> {
        if self.cfg.bug == Bug::StaleReplicaHandedToClient {
            return state.durable.chunks[chunk as usize].replicas.clone();
        }
        state.views[chunk as usize].up_to_date.clone()
    }

    fn holder_reply<P>(&self, state: &MasterState, chunk: ChunkHandle) -> Msg<P> {
        let meta = &state.durable.chunks[chunk as usize];
        let LeaseView::Granted { primary, epoch, .. } = &state.views[chunk as usize].lease else {
            unreachable!("holder_reply is only called with a granted lease")
        };
        let secondaries = self
            .named_replicas(state, chunk)
            .into_iter()
            .filter(|r| r != primary)
            .collect();
        let chunks = state.durable.files[meta.file as usize].chunks.len() as u32;
        Msg::LeaseHolder {
            info: LeaseInfo {
                file: meta.file,
                index: meta.index,
                chunk,
                version: meta.version,
                epoch: *epoch,
                primary: *primary,
                secondaries,
            },
            chunks,
        }
    }

    /// FAULT-2: `src`'s replica of `chunk` failed to store something at
    /// `version`. It is no longer counted up to date, and the lease it
    /// takes part in ends (revoked, or its offer withdrawn), so that the
    /// next lease moves the version past it: until then every mutation
    /// would fail on it, and after, none is sent to it. A report about an
    /// older version, or from a replica already left out, changes nothing.
    fn on_replica_failed<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        chunk: ChunkHandle,
        version: ChunkVersion,
        o: &mut Out<crate::Node<S>>,
    ) {
        let Some(meta) = state.durable.chunks.get(chunk as usize) else {
            return;
        };
        let view = &state.views[chunk as usize];
        if version != meta.version
            || !view.up_to_date.contains(&src)
            || self.cfg.bug == Bug::FailedReplicaKept
        {
            return;
        }
        let s = state.to_mut();
        s.views[chunk as usize].up_to_date.retain(|r| *r != src);
        match &s.views[chunk as usize].lease {
            LeaseView::Granted {
                primary,
                secondaries,
                revoking: false,
                ..
            } if *primary == src || secondaries.contains(&src) => self.revoke(state, chunk, o),
            LeaseView::Offered { .. } => {
                // It may have acknowledged the offer's version already:
                // a new offer moves the version past it.
                s.views[chunk as usize].lease = LeaseView::Free;
                o.cancel_timer(Timer::GrantTimeout(chunk));
                self.try_offer(state, chunk, o);
            }
            _ => {}
        }
    }

    fn on_report<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        restarted: bool,
        chunks: &[(ChunkHandle, ChunkVersion)],
        o: &mut Out<crate::Node<S>>,
    ) {
        // A restarted server that no longer reports a chunk the master
        // counts it up to date for holds it at version 0: stale (its
        // replica was lost, or its metadata is unreadable, issue #15).
        let missing: Vec<(ChunkHandle, ChunkVersion)> = if restarted {
            (0..state.views.len() as ChunkHandle)
                .filter(|c| {
                    state.views[*c as usize].up_to_date.contains(&src)
                        && state.durable.chunks[*c as usize].version > 0
                        && !chunks.iter().any(|(r, _)| r == c)
                })
                .map(|c| (c, 0))
                .collect()
        } else {
            vec![]
        };
        for &(chunk, version) in chunks.iter().chain(&missing) {
            let Some(meta) = state.durable.chunks.get(chunk as usize) else {
                continue;
            };
            let current = meta.version;
            let view = &state.views[chunk as usize];
            let counted = view.up_to_date.contains(&src);
            if version < current && counted && restarted {
                // A stale replica: it missed a version increment.
                let s = state.to_mut();
                s.views[chunk as usize].up_to_date.retain(|r| *r != src);
                match &s.views[chunk as usize].lease {
                    LeaseView::Granted {
                        secondaries,
                        revoking: false,
                        ..
                    } if secondaries.contains(&src) => {
                        // Its primary would keep forwarding to it; end the
                        // lease so the next one leaves it out.
                        self.revoke(state, chunk, o);
                    }
                    LeaseView::Offered { primary, .. } if *primary == src => {
                        // The chosen replica restarted: offer anew (with a
                        // new version) instead of leading with a stale one.
                        s.views[chunk as usize].lease = LeaseView::Free;
                        o.cancel_timer(Timer::GrantTimeout(chunk));
                        self.try_offer(state, chunk, o);
                    }
                    _ => {}
                }
            } else if version == current && !counted && meta.replicas.contains(&src) {
                // Rebuilding the up-to-date set after a restart. A replica the
                // master left out of a grant never holds the current version
                // (the grant moves the version past it), so holding it means
                // it has every acknowledged mutation.
                let s = state.to_mut();
                let v = &mut s.views[chunk as usize].up_to_date;
                v.push(src);
                v.sort();
            }
        }
    }
}

/// Tells replicas a chunk's new version, each addressed to the incarnation
/// the master last heard of, so that a replica which restarted since (and
/// may have been counted stale) ignores it.
fn announce_version<S: ChunkStore>(
    servers: &[ServerView],
    chunk: ChunkHandle,
    version: ChunkVersion,
    to: impl Iterator<Item = Id>,
    o: &mut Out<crate::Node<S>>,
) {
    for r in to {
        let incarnation = servers
            .iter()
            .find(|v| v.id == r)
            .map(|v| v.incarnation)
            .unwrap_or(0);
        o.send(
            r,
            Msg::NewVersion {
                chunk,
                version,
                incarnation,
            },
        );
    }
}

fn fresh_view(up_to_date: Vec<Id>) -> ChunkView {
    ChunkView {
        up_to_date,
        lease: LeaseView::Free,
        waiting: vec![],
        last_primary: None,
        revocations: 0,
    }
}

/// Durable state of any node (stateright has one `Storage` type per actor).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound = "S: ChunkStore")]
pub enum NodeStorage<S> {
    // Shared, not owned: the checker clones every node's storage into every
    // successor state, while a node saves only when its durable state
    // changes. Serialized like the value itself (serde's `rc` feature).
    Master(Arc<MasterDurable>),
    Chunkserver(Arc<S>),
    Client,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::ModelCfg;
    use crate::types::MemStore;

    fn open(
        master: &MasterActor,
        state: &mut Cow<MasterState>,
        path: String,
    ) -> Out<crate::Node<MemStore>> {
        let mut o = Out::new();
        master.on_msg::<MemStore>(
            state,
            Id::from(9),
            Msg::OpenFile { path, create: true },
            &mut o,
        );
        o
    }

    // PATH-1: a refused path is answered with `BadPath` and neither stored
    // nor saved; a good one is created as before.
    #[test]
    fn the_master_refuses_bad_paths_and_keeps_nothing_of_them() {
        let cfg = ModelCfg::named("tiny").expect("tiny exists").protocol();
        let master = MasterActor {
            cfg: Arc::new(cfg),
            initial: MasterDurable::default(),
        };
        let mut init = Out::<crate::Node<MemStore>>::new();
        let start = master.on_start::<MemStore>(&None, &mut init);
        let long = format!("/{}", "a".repeat(1024 * 1024));
        let bad = [
            "",
            "relative/path",
            "/a//b",
            "/a/",
            "/",
            "/a/./b",
            "/a/../b",
            "/tab\there",
            long.as_str(),
        ];
        for path in bad {
            assert!(path_problem(path).is_some(), "{path:?} is refused");
            let mut state = Cow::Borrowed(&start);
            let o = open(&master, &mut state, path.to_string());
            assert!(
                matches!(state, Cow::Borrowed(_)),
                "{path:?} changed no state"
            );
            let sent: Vec<_> = o.iter().collect();
            assert_eq!(sent.len(), 1, "{path:?}: one reply, no save: {sent:?}");
            assert!(
                matches!(
                    sent[0],
                    stateright::actor::Command::Send(_, Msg::FileOpened { path, file: Err(Failure::BadPath), chunks: 0 })
                        if path.is_empty()
                ),
                "{sent:?}"
            );
        }
        let longest = format!("/{}", "b".repeat(PATH_BYTES_MAX - 1));
        for path in ["/logs/a", "/a.b/c_d-e/F9", longest.as_str()] {
            assert_eq!(path_problem(path), None, "{path:?} is taken");
            let mut state = Cow::Borrowed(&start);
            open(&master, &mut state, path.to_string());
            assert_eq!(
                state.durable.files.last().map(|f| f.name.as_str()),
                Some(path)
            );
        }
    }
}
