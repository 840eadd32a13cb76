//! What chunkservers tell the master of their replicas: chunk reports,
//! which rebuild the volatile up-to-date sets after a restart and find
//! replicas that missed a version, and failure reports (FAULT-2). Kept
//! apart from the lease code, which it only calls into to end a lease a
//! stale replica takes part in.

use super::*;

impl MasterActor {
    /// A chunkserver lists its chunks and versions.
    pub(super) fn on_chunk_report<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        incarnation: u32,
        chunks: &[(ChunkHandle, ChunkVersion)],
        o: &mut O<S>,
    ) {
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
        self.on_report(state, src, restarted, chunks, o);
        self.replicate_after_report(state, src, restarted, o);
    }

    /// FAULT-2: `src`'s replica of `chunk` failed to store something at
    /// `version`. It is no longer counted up to date, and the lease it
    /// takes part in ends (revoked, or its offer withdrawn), so that the
    /// next lease moves the version past it: until then every mutation
    /// would fail on it, and after, none is sent to it. A report about an
    /// older version, or from a replica already left out, changes nothing.
    pub(super) fn on_replica_failed<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        chunk: ChunkHandle,
        version: ChunkVersion,
        o: &mut O<S>,
    ) {
        if state.durable.chunks.get(chunk as usize).is_none() {
            return;
        }
        self.clone_target_failed(state, src, chunk, o);
        let meta = &state.durable.chunks[chunk as usize];
        let view = state.view(chunk);
        if version != meta.version
            || !view.up_to_date.contains(&src)
            || self.cfg.bug == Bug::FailedReplicaKept
        {
            return;
        }
        let s = state.to_mut();
        s.view_mut(chunk).up_to_date.retain(|r| *r != src);
        match &s.view(chunk).lease {
            LeaseView::Granted {
                primary,
                secondaries,
                revoking: false,
                ..
            } if *primary == src || secondaries.contains(&src) => self.revoke(state, chunk, o),
            LeaseView::Offered { .. } => {
                // It may have acknowledged the offer's version already:
                // a new offer moves the version past it.
                s.view_mut(chunk).lease = LeaseView::Free;
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
        o: &mut O<S>,
    ) {
        // A restarted server that no longer reports a chunk the master
        // counts it up to date for holds it at version 0: stale (its
        // replica was lost, or its metadata is unreadable, issue #15).
        let missing: Vec<(ChunkHandle, ChunkVersion)> = if restarted {
            (0..state.views.len() as ChunkHandle)
                .filter(|c| {
                    state.view(*c).up_to_date.contains(&src)
                        && state.durable.chunks[*c as usize].version > 0
                        && !chunks.iter().any(|(r, _)| r == c)
                })
                .map(|c| (c, 0))
                .collect()
        } else {
            vec![]
        };
        // A chunk never granted holds no data anywhere, and a replica whose
        // offer was lost does not even report it: when none is counted,
        // any placed replica that reports at all is as up to date as any.
        let never_granted: Vec<(ChunkHandle, ChunkVersion)> = (0..state.views.len() as ChunkHandle)
            .filter(|c| {
                let meta = &state.durable.chunks[*c as usize];
                meta.granted == 0
                    && meta.replicas.contains(&src)
                    && state.view(*c).up_to_date.is_empty()
                    && !chunks.iter().any(|(r, _)| r == c)
            })
            .map(|c| (c, 0))
            .collect();
        for &(chunk, version) in chunks.iter().chain(&missing).chain(&never_granted) {
            let Some(meta) = state.durable.chunks.get(chunk as usize) else {
                continue;
            };
            let current = meta.version;
            // Garbage collection (GFS §4.4): a replica the master no longer
            // places there (it moved to another server) is deleted. Not a
            // stale one it places: that is brought back by a clone, and
            // after a master crash it may be the one the master adopts.
            let placed = meta.replicas.contains(&src);
            let stale = restarted && version < current;
            let gc_bug = self.cfg.bug == Bug::GcDeletesStaleReplica && placed && stale;
            if version > 0 && (!placed || gc_bug) {
                o.send(src, Msg::DeleteReplica { chunk, version });
            }
            if !placed {
                continue;
            }
            let view = state.view(chunk);
            let counted = view.up_to_date.contains(&src);
            if version < current && counted && restarted {
                // A stale replica: it missed a version increment.
                let s = state.to_mut();
                s.view_mut(chunk).up_to_date.retain(|r| *r != src);
                match &s.view(chunk).lease {
                    LeaseView::Granted {
                        secondaries,
                        revoking: false,
                        ..
                    } if secondaries.contains(&src)
                        && self.cfg.bug != Bug::LostSecondaryKeepsLease =>
                    {
                        // Its primary would keep forwarding to it; end the
                        // lease so the next one leaves it out. At once:
                        // clients were told of it under this lease, and
                        // only the lease's end un-names it (VERSION-2).
                        self.revoke(state, chunk, o);
                    }
                    LeaseView::Granted { primary, epoch, .. }
                        if *primary == src && self.cfg.bug != Bug::LostPrimaryKeepsLease =>
                    {
                        let epoch = *epoch;
                        // The primary lost its replica in a restart (a
                        // torn sync, unreadable metadata). The report of
                        // its new incarnation proves the one that held
                        // the lease is gone, as its `LeaseRevoked` would:
                        // the lease is over, and waiting for it to expire
                        // would leave clients sent to a replica that
                        // holds nothing (VERSION-2).
                        self.on_lease_revoked(state, chunk, epoch, o);
                    }
                    LeaseView::Offered { primary, .. } if *primary == src => {
                        // The chosen replica restarted: offer anew (with a
                        // new version) instead of leading with a stale one.
                        s.view_mut(chunk).lease = LeaseView::Free;
                        o.cancel_timer(Timer::GrantTimeout(chunk));
                        self.try_offer(state, chunk, o);
                    }
                    _ => {}
                }
            } else if !counted
                && meta.replicas.contains(&src)
                && (version == current || self.adopts(state, chunk, src, version))
            {
                // Rebuilding the up-to-date set after a restart. A replica the
                // master left out of a grant never holds the current version
                // (the grant moves the version past it), so holding it means
                // it has every acknowledged mutation; see `adopts` for one
                // below it.
                let s = state.to_mut();
                let view = s.view_mut(chunk);
                view.up_to_date.push(src);
                view.up_to_date.sort();
            }
        }
        // A placed replica left uncounted by an older version, or none, may
        // still store the current one: an announcement of a previous
        // master incarnation can be on its way (`ChunkView::behind`). Not
        // after a restart of its own, which proved it stale: it ignores
        // announcements addressed to its previous incarnation.
        if restarted {
            return;
        }
        for chunk in 0..state.views.len() as ChunkHandle {
            let meta = &state.durable.chunks[chunk as usize];
            let view = state.view(chunk);
            let reported = chunks
                .iter()
                .find(|(c, _)| *c == chunk)
                .map_or(0, |(_, v)| *v);
            let behind = reported < meta.version
                && meta.replicas.contains(&src)
                && !view.up_to_date.contains(&src);
            if behind != view.behind.contains(&src) {
                let v = &mut state.to_mut().view_mut(chunk).behind;
                v.retain(|r| *r != src);
                if behind {
                    v.push(src);
                    v.sort();
                }
            }
        }
    }

    /// Whether a report of `version`, below the chunk's current one, counts
    /// `src` up to date: while the master rebuilds its replica sets (its
    /// waiting period after a restart, or a chunk with none counted), a
    /// replica of the last grant holding at least the version it stored
    /// before that grant holds every acknowledged mutation
    /// (`ChunkMeta::granted`). A master that crashed after making a bump
    /// durable but before any replica learned it (an offer, or a grant
    /// that moved the version past a silent replica) would otherwise count
    /// none, and the chunk would get no lease for good. A replica whose
    /// store failed is not adopted.
    fn adopts(
        &self,
        state: &MasterState,
        chunk: ChunkHandle,
        src: Id,
        version: ChunkVersion,
    ) -> bool {
        let meta = &state.durable.chunks[chunk as usize];
        let view = state.view(chunk);
        self.cfg.bug != Bug::UnannouncedVersionStrandsChunk
            && version >= meta.granted
            && (meta.granted == 0
                || meta.granted_to.contains(&src)
                || self.cfg.bug == Bug::AdoptsReplicaLeftOut)
            && (state.quiet || view.up_to_date.is_empty())
            && !view.store_failed.contains(&src)
    }
}
