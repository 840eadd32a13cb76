//! Re-replication (GFS §4.3): a placed replica the master no longer counts
//! up to date (it missed a version, crashed, or its store failed) is
//! brought back by cloning the chunk onto it from a current replica, so a
//! chunk does not lose its replicas one by one until none is current.
//!
//! A clone is part of a lease grant: the offer's version is the clone's,
//! its source is the replica offered the lease, and the grant waits for
//! the target's acknowledgement as it does for the other replicas'. The
//! source holds the new version before it is asked (the master sends the
//! clone once the source requested the lease), so it refuses every
//! mutation of an older lease, and none of the new one happens before the
//! grant: the copy holds every acknowledged mutation and nothing more
//! (docs/model.md, "Re-replication"). A target that does not acknowledge
//! in time is left out like any silent replica (the version moves past
//! it) and not tried again until it reports.
//!
//! What starts one: a chunk with such a replica is offered a lease even
//! with no client waiting, as soon as no lease is held; one whose lease
//! is held has it revoked half a lease period after the grant ([0091]'s
//! revocation, for a reason), so that a chunk in constant use is not left
//! short of replicas for as long as its primary keeps extending.

use super::*;

impl MasterActor {
    /// The placed replicas of `chunk` a lease offer to `primary` should
    /// clone the chunk onto.
    pub(super) fn clone_targets(
        &self,
        state: &MasterState,
        chunk: ChunkHandle,
        primary: Option<Id>,
    ) -> Vec<Id> {
        // Without reply timeouts nothing would end a clone that never
        // completes; the configurations without them have no faults, so
        // no replica falls behind.
        if !self.cfg.re_replication
            || !self.cfg.reply_timeouts
            || self.cfg.bug == Bug::StaleReplicaNeverCloned
        {
            return vec![];
        }
        let view = state.view(chunk);
        state.durable.chunks[chunk as usize]
            .replicas
            .iter()
            .copied()
            .filter(|r| {
                Some(*r) != primary
                    && !view.up_to_date.contains(r)
                    && !view.clone_failed.contains(r)
                    && !view.store_failed.contains(r)
            })
            .collect()
    }

    /// Whether `chunk` has a replica to bring back and a current one to
    /// copy from.
    pub(super) fn needs_clone(&self, state: &MasterState, chunk: ChunkHandle) -> bool {
        !state.view(chunk).up_to_date.is_empty()
            && !self.clone_targets(state, chunk, None).is_empty()
    }

    /// The source requested the offered lease, so it holds the offer's
    /// version: the targets may copy from it now.
    pub(super) fn send_clones<S: ChunkStore>(
        &self,
        state: &MasterState,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
        let LeaseView::Offered {
            primary, clones, ..
        } = &state.view(chunk).lease
        else {
            return;
        };
        let version = state.durable.chunks[chunk as usize].version;
        for &target in clones {
            o.send(
                target,
                Msg::CloneChunk {
                    chunk,
                    version,
                    source: *primary,
                    incarnation: state.incarnation(target),
                },
            );
        }
    }

    /// After a report of `src`: a replica found stale, or one whose clone
    /// failed and that is heard from again, is brought back now if no
    /// lease is held, or after the held one is revoked. A store failure
    /// is forgotten only when `src` restarted (its chunkserver keeps
    /// refusing the chunk until then).
    pub(super) fn replicate_after_report<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        restarted: bool,
        o: &mut O<S>,
    ) {
        for chunk in 0..state.views.len() as ChunkHandle {
            let view = state.view(chunk);
            let forgets_store = restarted && view.store_failed.contains(&src);
            if view.clone_failed.contains(&src) || forgets_store {
                let view = state.to_mut().view_mut(chunk);
                view.clone_failed.retain(|r| *r != src);
                if forgets_store {
                    view.store_failed.retain(|r| *r != src);
                }
            }
            self.replicate(state, chunk, o);
        }
    }

    /// `src`'s store failed `chunk` (FAULT-2): it takes no clone of it
    /// until it restarts, and a clone it was to take is over.
    pub(super) fn clone_target_failed<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
        if !self.cfg.re_replication {
            return;
        }
        let view = state.view(chunk);
        let placed = state.durable.chunks[chunk as usize].replicas.contains(&src);
        if placed && !view.store_failed.contains(&src) {
            let v = &mut state.to_mut().view_mut(chunk).store_failed;
            v.push(src);
            v.sort();
        }
        let cloning = matches!(
            &state.view(chunk).lease,
            LeaseView::Offered { clones, .. } if clones.contains(&src)
        );
        if cloning {
            if let LeaseView::Offered { clones, .. } = &mut state.to_mut().view_mut(chunk).lease {
                clones.retain(|r| *r != src);
            }
            self.try_complete_grant(state, chunk, false, o);
        }
    }

    /// `src` answered the master (a version acknowledgement): clones that
    /// failed on it are tried again. Only when some did, so an
    /// acknowledgement changes nothing else.
    pub(super) fn forgive_failed_clones<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        o: &mut O<S>,
    ) {
        for chunk in 0..state.views.len() as ChunkHandle {
            if state.view(chunk).clone_failed.contains(&src) {
                state
                    .to_mut()
                    .view_mut(chunk)
                    .clone_failed
                    .retain(|r| *r != src);
                self.replicate(state, chunk, o);
            }
        }
    }

    /// Starts bringing `chunk`'s stale replicas back, if it has any: an
    /// offer now if no lease is held, a revocation of the held one later.
    fn replicate<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
        if !self.needs_clone(state, chunk) {
            return;
        }
        match state.view(chunk).lease {
            LeaseView::Free => self.try_offer(state, chunk, o),
            LeaseView::Granted {
                revoking: false, ..
            } => self.revoke_later(chunk, o),
            _ => {}
        }
    }

    /// A clone onto `target` failed (it did not acknowledge in time). It
    /// is counted failed, and if a chunkserver that holds no replica of
    /// `chunk` has not failed a clone of it, the chunk's replica moves
    /// there (durably): a server gone for good is replaced rather than
    /// waited for. The moved replica is stale, so the next lease clones
    /// onto it; `target`'s old copy is garbage (no longer placed, so never
    /// counted or named), and the master asks it to delete it. A server is
    /// tried again when it is heard
    /// from (a report, a version acknowledgement), so a dead one is
    /// not moved back to.
    pub(super) fn clone_failed_on<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        chunk: ChunkHandle,
        target: Id,
        o: &mut O<S>,
    ) {
        let s = state.to_mut();
        let view = &mut s.views[chunk as usize];
        if !view.clone_failed.contains(&target) {
            view.clone_failed.push(target);
            view.clone_failed.sort();
        }
        let meta = &s.durable.chunks[chunk as usize];
        let spare = self
            .cfg
            .chunkservers
            .iter()
            .copied()
            .find(|r| !meta.replicas.contains(r) && !view.clone_failed.contains(r));
        let Some(spare) = spare else {
            return;
        };
        let meta = &mut s.durable.chunks[chunk as usize];
        meta.replicas.retain(|r| *r != target);
        meta.replicas.push(spare);
        meta.replicas.sort();
        let below = meta.version.saturating_sub(1);
        s.save_durable(o);
        // What `target` holds of the chunk is older than the clone that
        // failed, and no longer placed: garbage (GFS §4.4). Sent after the
        // move is durable, so a restarted master never places a replica
        // it had deleted. A target that did get the clone's version after
        // all keeps it until it next reports.
        o.send(
            target,
            Msg::DeleteReplica {
                chunk,
                version: below,
            },
        );
        let view = s.view_mut(chunk);
        view.behind.retain(|r| *r != target);
        if self.cfg.bug == Bug::SpareCountedWithoutClone {
            view.up_to_date.push(spare);
            view.up_to_date.sort();
        }
    }

    /// Revokes the lease of `chunk` half a lease period from now (the
    /// `Revoke` timer), so that a chunk in use is re-replicated too.
    pub(super) fn revoke_later<S: ChunkStore>(&self, chunk: ChunkHandle, o: &mut O<S>) {
        o.set_timer(
            Timer::Revoke(chunk),
            Durations::range(self.cfg.durations.master_lease_ms / 2),
        );
    }
}

/// Silent servers: the master learns a server is gone from its silence,
/// not only from a lease whose version bump it misses, so that a chunk
/// nobody mutates is re-replicated too (GFS §4.3: the master re-replicates
/// "as soon as the number of available replicas falls below" the goal).
impl MasterActor {
    /// How long a chunkserver may stay silent before its replicas are no
    /// longer counted: two master lease periods, many heartbeats, so that
    /// a slow disk or a busy master does not cost a clone of every chunk.
    fn silence_ms(&self) -> u64 {
        2 * self.cfg.durations.master_lease_ms
    }

    /// Arms the silence timer of every chunkserver (at start).
    pub(super) fn listen_for_all<S: ChunkStore>(&self, o: &mut O<S>) {
        for &server in &self.cfg.chunkservers {
            self.heard_from(server, o);
        }
    }

    /// `server` was heard from: its silence counts from now.
    pub(super) fn heard_from<S: ChunkStore>(&self, server: Id, o: &mut O<S>) {
        if self.cfg.re_replication {
            o.set_timer(
                Timer::ServerSilent(server),
                Durations::range(self.silence_ms()),
            );
        }
    }

    /// `server` has been silent too long. Its replicas are no longer
    /// counted up to date where that changes nothing under way: not where
    /// it leads (its lease ends by expiry, and the next offer finds it
    /// silent like any other), not while an offer waits for
    /// acknowledgements (its grant timeout leaves a silent one out). Each
    /// chunk that lost one is re-replicated: a clone onto the server
    /// first, which fails if it is gone, then onto a spare. Leaving a
    /// replica out is always safe (VERSION-1 asks only that counted ones
    /// hold every acknowledged mutation); a server that was only slow is
    /// cloned back. A restarted master in its waiting period listens on
    /// instead: it counts the placed replicas of chunks never granted
    /// without a report, so a server that died before the restart may be
    /// counted, and must still be found silent once the wait is over.
    pub(super) fn on_server_silent<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        server: Id,
        o: &mut O<S>,
    ) {
        if self.cfg.bug == Bug::SilentServerStaysCounted {
            return;
        }
        if state.quiet {
            if self.cfg.bug != Bug::SilenceForgottenInQuietPeriod {
                self.heard_from(server, o);
            }
            return;
        }
        for chunk in 0..state.views.len() as ChunkHandle {
            let view = state.view(chunk);
            let settled_otherwise = match &view.lease {
                LeaseView::Free => false,
                LeaseView::Granted { primary, .. } => *primary == server,
                LeaseView::Offered { .. } => true,
            };
            if settled_otherwise || !view.up_to_date.contains(&server) {
                continue;
            }
            state
                .to_mut()
                .view_mut(chunk)
                .up_to_date
                .retain(|r| *r != server);
            self.replicate(state, chunk, o);
        }
    }
}
