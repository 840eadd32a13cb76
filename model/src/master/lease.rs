//! Leases on the master's side ([0090], [0091], [0093], [0094]): offering a
//! lease with a new version, granting it once the chosen replica asked and
//! the others acknowledged, extending it, and ending it by expiry or
//! revocation. A file of its own because this is the protocol's
//! time-critical half: the order of clocks described in the module doc
//! lives here.

use super::*;

impl MasterActor {
    pub(super) fn on_find_lease<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        file: FileId,
        index: ChunkIndex,
        o: &mut O<S>,
    ) {
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
        let view = state.view(chunk);
        if let LeaseView::Granted {
            revoking: false, ..
        } = view.lease
        {
            o.send(src, self.holder_reply(state, chunk));
            return;
        }
        if self.shared(state, chunk) && !self.renaming(state, chunk) {
            // Shared with a snapshot: copied first (GFS §3.4).
            self.copy_for(state, vec![src], file, chunk, o);
            return;
        }
        if !view.waiting.contains(&src) {
            let s = state.to_mut();
            s.view_mut(chunk).waiting.push(src);
            s.view_mut(chunk).waiting.sort();
        }
        self.try_offer(state, chunk, o);
    }

    /// A replica stored the version of a lease on offer.
    pub(super) fn on_version_ack<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        chunk: ChunkHandle,
        version: ChunkVersion,
        o: &mut O<S>,
    ) {
        if state.views.get(chunk as usize).is_none() {
            return;
        }
        // Alive and storing versions: a clone that failed on it (it was
        // down, or the master's messages waited for a reconnection) may
        // succeed now.
        self.forgive_failed_clones(state, src, o);
        let view = state.view(chunk);
        if version != state.durable.chunks[chunk as usize].version {
            return;
        }
        if view.behind.contains(&src) {
            // It reported an older version (none at all for version 0),
            // then stored the current one, announced by a previous
            // incarnation: this acknowledgement is the report it would
            // send now. Counting it keeps counted a replica that reported
            // after the waiting period, which would otherwise wait for
            // re-replication (since a restarted master adopts the last
            // grant's replicas, `adopts`, liveness rests on the count only
            // through the offer below).
            let s = state.to_mut();
            let view = s.view_mut(chunk);
            view.behind.retain(|r| *r != src);
            view.up_to_date.push(src);
            view.up_to_date.sort();
            // It is now one of the replicas an offer under way waits for,
            // and it may be the offer's clone target: this acknowledgement
            // is its answer too (found by `repl-silent` with a master
            // crash: a clone onto a replica reported behind was never
            // counted, the grant timed out, and the chunk stayed below
            // its goal for good).
            if self.cfg.bug == Bug::BehindAckNotCountedForOffer {
                return;
            }
        }
        let view = state.view(chunk);
        let cloned =
            matches!(&view.lease, LeaseView::Offered { clones, .. } if clones.contains(&src));
        if !view.up_to_date.contains(&src) && !cloned {
            return;
        }
        if let LeaseView::Offered { acked, .. } = &view.lease {
            if !acked.contains(&src) {
                let s = state.to_mut();
                if let LeaseView::Offered { acked, .. } = &mut s.view_mut(chunk).lease {
                    acked.push(src);
                    acked.sort();
                }
                self.try_complete_grant(state, chunk, false, o);
            }
        }
    }

    /// The chosen replica asks for the lease offered to it (`extension`
    /// 0), or its primary for the lease's `extension`-th extension.
    pub(super) fn on_lease_request<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
        extension: u32,
        o: &mut O<S>,
    ) {
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
                if let LeaseView::Offered { requested, .. } = &mut s.view_mut(chunk).lease {
                    *requested = true;
                }
                self.send_clones(state, chunk, o);
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
                        extension,
                        version,
                        secondaries: secondaries.clone(),
                    },
                );
            }
            // The answer to an offer whose grant timed out, while its
            // epoch is still the current one: the replica holds the
            // current version (see `ChunkView::unanswered`). Counted
            // again, it may be offered the next lease; this request lapses.
            // Since a master that counts no replica asks the placed ones to
            // report (`try_offer`), liveness no longer rests on this (the
            // former seeded bug that ignored it is caught by nothing in
            // `live-slow-offer`): it saves that report round trip.
            LeaseView::Free
                if view.unanswered == Some(src)
                    && state.durable.chunks[chunk as usize].epoch == epoch =>
            {
                let s = state.to_mut();
                let view = s.view_mut(chunk);
                view.unanswered = None;
                if !view.up_to_date.contains(&src) {
                    view.up_to_date.push(src);
                    view.up_to_date.sort();
                }
                self.try_offer(state, chunk, o);
            }
            _ => {} // a request for a lease we no longer offer: let it lapse
        }
    }

    /// A chunkserver's heartbeat: each extension it carries is answered
    /// as a request of its own would be ([0091]). (It does not forgive a
    /// failed clone: a server that is alive but cannot take a clone in
    /// time, a large chunk on a slow disk, would have its chunk's lease
    /// revoked for another try after every beat.)
    pub(super) fn on_heartbeat<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        extensions: &[(ChunkHandle, LeaseEpoch, u32)],
        o: &mut O<S>,
    ) {
        for &(chunk, epoch, extension) in extensions {
            self.on_lease_request(state, src, chunk, epoch, extension, o);
        }
    }

    /// The primary gave up a lease the master revoked.
    pub(super) fn on_lease_revoked<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
        o: &mut O<S>,
    ) {
        if let Some(LeaseView::Granted { epoch: e, .. }) = state.lease(chunk) {
            if *e == epoch {
                let s = state.to_mut();
                s.view_mut(chunk).lease = LeaseView::Free;
                o.cancel_timer(Timer::LeaseExpiry(chunk));
                o.cancel_timer(Timer::Revoke(chunk));
                self.try_offer(state, chunk, o);
            }
        }
    }

    pub(super) fn on_lease_expiry<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
        // [0091]: the old lease has expired, a new one may be granted.
        if let Some(LeaseView::Granted { .. }) = state.lease(chunk) {
            state.to_mut().view_mut(chunk).lease = LeaseView::Free;
            o.cancel_timer(Timer::Revoke(chunk));
            self.try_offer(state, chunk, o);
        }
    }

    /// The offer was not completed in time.
    pub(super) fn on_grant_timeout<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
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
            let view = s.view_mut(chunk);
            if let LeaseView::Offered { primary, .. } = view.lease {
                view.up_to_date.retain(|r| *r != primary);
                view.unanswered = Some(primary);
            }
            view.lease = LeaseView::Free;
            self.try_offer(state, chunk, o);
        }
    }

    pub(super) fn on_revoke_timer<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
        // [0091]: the master may revoke a lease before it expires.
        if let Some(LeaseView::Granted {
            revoking: false, ..
        }) = state.lease(chunk)
        {
            if state.view(chunk).revocations < self.cfg.revocations_max
                || self.needs_clone(state, chunk)
            {
                self.revoke(state, chunk, o);
            }
        }
    }

    /// LEASE-3: a restarted master's waiting period is over.
    pub(super) fn on_startup_quiet<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        o: &mut O<S>,
    ) {
        state.to_mut().quiet = false;
        for chunk in 0..state.views.len() as ChunkHandle {
            self.try_offer(state, chunk, o);
        }
    }

    pub(super) fn revoke<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
        let s = state.to_mut();
        let view = s.view_mut(chunk);
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

    /// Starts a lease grant if the chunk needs one and one may be granted.
    pub(super) fn try_offer<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
        let view = state.view(chunk);
        if view.lease != LeaseView::Free || state.quiet {
            return;
        }
        if self.renaming(state, chunk) {
            // Its lease has ended: the rename waited for that.
            self.try_finish_renames(state, o);
            return;
        }
        if self.shared(state, chunk) {
            // Never leased while shared with a snapshot: the clients that
            // waited for it (they mutate the file that owned it) wait for
            // a copy of it instead.
            if !view.waiting.is_empty() {
                let waiting = std::mem::take(&mut state.to_mut().view_mut(chunk).waiting);
                let file = state.durable.chunks[chunk as usize].file;
                self.copy_for(state, waiting, file, chunk, o);
            }
            return;
        }
        // A lease nobody waits for is offered only to bring a stale
        // replica back (re-replication).
        if view.waiting.is_empty() && !self.needs_clone(state, chunk) {
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
            let placed = s.durable.chunks[chunk as usize].replicas.clone();
            let view = &mut s.views[chunk as usize];
            if candidate.is_none()
                && !view.reports_asked
                && self.cfg.bug != Bug::UnannouncedVersionStrandsChunk
            {
                // No replica counted (offers went unanswered, or a master
                // restart found none at the current version): ask the
                // placed ones what they hold, so that their reports can
                // adopt them (`adopts`) instead of the chunk getting no
                // lease for good.
                view.reports_asked = true;
                for r in placed {
                    o.send(r, Msg::ReportRequest);
                }
            }
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
        let clones = self.clone_targets(state, chunk, Some(primary));
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
        s.save_durable(o);
        let view = &mut s.views[chunk as usize];
        view.behind.clear();
        view.unanswered = None;
        // A replica is counted (this offer's): should the chunk lose every
        // counted replica again, the placed ones are asked to report again,
        // however this one came to be counted (a report, a late version
        // acknowledgement, a late answer to an offer).
        view.reports_asked = false;
        view.lease = LeaseView::Offered {
            primary,
            epoch,
            requested: false,
            acked: vec![primary],
            clones,
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
    pub(super) fn try_complete_grant<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        chunk: ChunkHandle,
        timed_out: bool,
        o: &mut O<S>,
    ) {
        let view = state.view(chunk);
        let LeaseView::Offered {
            primary,
            epoch,
            requested: true,
            acked,
            clones,
        } = &view.lease
        else {
            return;
        };
        let all_acked = view
            .up_to_date
            .iter()
            .chain(clones)
            .all(|r| acked.contains(r));
        if !all_acked && !timed_out {
            return;
        }
        let (primary, epoch, acked) = (*primary, *epoch, acked.clone());
        let failed_clones: Vec<Id> = clones
            .iter()
            .copied()
            .filter(|r| !acked.contains(r))
            .collect();
        let s = state.to_mut();
        let offered_version = s.durable.chunks[chunk as usize].version;
        if !all_acked {
            // Silent replicas become stale. One of them may yet store the
            // version it did not acknowledge, so move the version on for the
            // replicas that did answer.
            let meta = &mut s.durable.chunks[chunk as usize];
            if self.cfg.bug != Bug::VersionNotIncremented {
                meta.version += 1;
            }
            let version = meta.version;
            s.view_mut(chunk).behind.clear();
            let others = acked.iter().copied().filter(|r| *r != primary);
            announce_version(&s.servers, chunk, version, others, o);
        }
        // Durable before the grant leaves (the step's save precedes its
        // sends): what a restarted master may adopt (`adopts`).
        let meta = &mut s.durable.chunks[chunk as usize];
        if self.cfg.bug != Bug::GrantNotRecorded {
            meta.granted = offered_version;
            meta.granted_to = acked.clone();
        }
        let version = meta.version;
        s.save_durable(o);
        let view = s.view_mut(chunk);
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
        // After the up-to-date set is the acknowledged one: a target whose
        // clone failed may move to a spare.
        for target in failed_clones {
            self.clone_failed_on(state, chunk, target, o);
        }
        let view = state.to_mut().view_mut(chunk);
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
        // A replica left out of this grant (it did not acknowledge) is
        // brought back after a revocation.
        if self.needs_clone(state, chunk) {
            self.revoke_later(chunk, o);
        }
        o.send(
            primary,
            Msg::LeaseGrant {
                chunk,
                epoch,
                extension: 0,
                version,
                secondaries,
            },
        );
        let reply = self.holder_reply(state, chunk);
        let s = state.to_mut();
        for c in std::mem::take(&mut s.view_mut(chunk).waiting) {
            o.send(c, reply.clone());
        }
        // Offered before a rename of its file began: revoked at once.
        if self.renaming(state, chunk) && self.cfg.bug != Bug::RenamesUnderLease {
            self.revoke(state, chunk, o);
        }
    }

    /// The replicas the master hands to clients: only up-to-date ones.
    pub(super) fn named_replicas(&self, state: &MasterState, chunk: ChunkHandle) -> Vec<Id> {
        if self.cfg.bug == Bug::StaleReplicaHandedToClient {
            return state.durable.chunks[chunk as usize].replicas.clone();
        }
        state.view(chunk).up_to_date.clone()
    }

    fn holder_reply<P>(&self, state: &MasterState, chunk: ChunkHandle) -> Msg<P> {
        let meta = &state.durable.chunks[chunk as usize];
        let LeaseView::Granted { primary, epoch, .. } = &state.view(chunk).lease else {
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
                primary: Some(*primary),
                secondaries,
            },
            chunks,
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
    o: &mut O<S>,
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
