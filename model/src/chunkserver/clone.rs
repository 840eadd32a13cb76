//! Re-replication on the chunkserver's side (GFS §4.3): a stale replica
//! the master asks to clone a chunk fetches it part by part from the
//! replica offered the chunk's next lease, installs each part, and
//! acknowledges the lease's version once it holds the whole chunk, as the
//! other replicas acknowledge it on `NewVersion`. The source serves a part
//! only while it holds exactly that version: holding it, it refuses every
//! mutation of an older lease, and none of the new lease comes before the
//! master's grant, which waits for the clone. So the copy holds every
//! acknowledged mutation, and the clone starts the new lease even with
//! the other replicas.

use super::*;

impl<S: ChunkStore> ChunkserverActor<S> {
    /// The master asks this replica to copy `chunk` at `version` from
    /// `source`.
    pub(super) fn on_clone_chunk(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        chunk: ChunkHandle,
        version: ChunkVersion,
        source: Id,
        incarnation: u32,
        o: &mut O<S>,
    ) {
        // Meant for a previous life (a copy of an old instruction), or
        // older than what this replica holds: the master has moved on.
        if incarnation != state.store.incarnation() || version <= state.store.meta(chunk).version {
            return;
        }
        // Its store failed the chunk (FAULT-2): it takes nothing of it
        // until it restarts, and says so again (a master that restarted
        // since has forgotten), so the clone ends at once.
        if let Some(error) = state.store_failure(chunk) {
            o.send(
                self.cfg.master,
                Msg::ReplicaFailed {
                    chunk,
                    version,
                    error: error.clone(),
                },
            );
            return;
        }
        if self.cfg.bug == Bug::CloneAckedWithoutCopy {
            // Takes the version without the data.
            if self.learn_version(state.to_mut(), chunk, version, o) {
                o.send(self.cfg.master, Msg::VersionAck { chunk, version });
            }
            return;
        }
        let progress = CloneProgress {
            chunk,
            version,
            source,
            next: 0,
        };
        if state.clones.contains(&progress) {
            return; // a duplicate: the fetch is out already
        }
        let s = state.to_mut();
        s.clones.retain(|c| c.chunk != chunk);
        s.clones.push(progress);
        s.clones.sort();
        o.send(
            source,
            Msg::FetchChunk {
                chunk,
                version,
                from: 0,
            },
        );
    }

    /// A clone target asks this replica for a part of `chunk`.
    pub(super) fn on_fetch_chunk(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        target: Id,
        chunk: ChunkHandle,
        version: ChunkVersion,
        from: Offset,
        o: &mut O<S>,
    ) {
        let meta = state.store.meta(chunk);
        let part = if meta.version != version {
            // Not (or no longer) the version the clone is of: what this
            // replica holds may lack mutations, or have newer ones.
            Err(Failure::StaleReplica)
        } else if let Some(e) = state.store_failure(chunk) {
            Err(Failure::Store(e.clone()))
        } else {
            match state
                .store
                .clone_part(chunk, from, self.cfg.clone_part_units)
            {
                Ok((pieces, next)) => Ok(ClonePart {
                    applied: meta.applied,
                    pieces,
                    next,
                }),
                Err(e) => {
                    // A corrupt block: this replica is faulty (FAULT-2).
                    self.report_store_fault(state.to_mut(), chunk, version, &e, o);
                    Err(Failure::Store(e))
                }
            }
        };
        o.send(
            target,
            Msg::ChunkPart {
                chunk,
                version,
                from,
                part,
            },
        );
    }

    /// A part of a clone this replica asked for arrives.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_chunk_part(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        source: Id,
        chunk: ChunkHandle,
        version: ChunkVersion,
        from: Offset,
        part: Result<ClonePart<S::Payload>, Failure>,
        o: &mut O<S>,
    ) {
        let wanted = CloneProgress {
            chunk,
            version,
            source,
            next: from,
        };
        // Only the part the clone waits for: a duplicate or a late part of
        // an abandoned clone must not overwrite what the replica holds now.
        let Some(i) = state.clones.iter().position(|c| *c == wanted) else {
            return;
        };
        let s = state.to_mut();
        let part = match part {
            Ok(part) => part,
            Err(_) => {
                // The master's grant timeout leaves this replica out.
                s.clones.remove(i);
                return;
            }
        };
        let done = part.next.is_none().then_some(ReplicaMeta {
            version,
            applied: part.applied,
        });
        if let Err(e) = s.store.install_clone(chunk, from, &part.pieces, done) {
            // FAULT-2: reported, so the master ends the clone at once and
            // sends no other. (A file store may have changed the replica
            // before it failed: saved, so the host syncs what it did.)
            s.clones.remove(i);
            self.report_store_fault(s, chunk, version, &e, o);
            self.save(s, o);
            return;
        }
        self.save(s, o);
        match part.next {
            Some(next) => {
                s.clones[i].next = next;
                o.send(
                    source,
                    Msg::FetchChunk {
                        chunk,
                        version,
                        from: next,
                    },
                );
            }
            None => {
                s.clones.remove(i);
                // The failures it had are gone with the old contents.
                s.failed.retain(|(c, _)| *c != chunk);
                o.send(self.cfg.master, Msg::VersionAck { chunk, version });
                self.apply_held(state, chunk, o);
            }
        }
    }

    /// The master asks this replica to copy `chunk`, at `version`, to the
    /// new chunk `to` on its own disk (GFS §3.4): `chunk` is shared by a
    /// file and its snapshot and about to be mutated in one of them. The
    /// copy is made in this one step, so a crash leaves it whole or absent.
    pub(super) fn on_copy_chunk(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        chunk: ChunkHandle,
        to: ChunkHandle,
        version: ChunkVersion,
        incarnation: u32,
        o: &mut O<S>,
    ) {
        let meta = state.store.meta(chunk);
        // Meant for a previous life, or this replica is not at the
        // version copied (stale, or its store failed the chunk): the
        // master's copy timeout goes on without it.
        if incarnation != state.store.incarnation()
            || meta.version != version
            || state.store_failure(chunk).is_some()
        {
            return;
        }
        let copied = Msg::ChunkCopied { chunk: to, version };
        if state.store.meta(to).version == version {
            o.send(self.cfg.master, copied); // a duplicate: made already
            return;
        }
        let s = state.to_mut();
        let mut from = 0;
        let failed = loop {
            let (pieces, next) = match s.store.clone_part(chunk, from, self.cfg.clone_part_units) {
                Ok(part) => part,
                Err(e) => break Some((chunk, e)),
            };
            let done = next.is_none().then_some(meta);
            if let Err(e) = s.store.install_clone(to, from, &pieces, done) {
                break Some((to, e));
            }
            match next {
                Some(next) => from = next,
                None => break None,
            }
        };
        self.save(s, o);
        match failed {
            None => o.send(self.cfg.master, copied),
            // FAULT-2: the replica it failed on is reported.
            Some((failed, e)) => self.report_store_fault(s, failed, version, &e, o),
        }
    }
}
