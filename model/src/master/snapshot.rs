//! Copy-on-write after a snapshot (GFS §3.4). A snapshot lists the same
//! chunks as its file, so taking one copies nothing. A chunk listed by
//! more than one file is never leased: before its first mutation in
//! either file, the master allocates a new chunk, asks every current
//! replica to copy the shared one to it on its own disk, and puts the new
//! chunk in the mutating file's place once the copies are made. The other
//! file keeps the old chunk, which no lease touches while two files list
//! it or a copy of it is under way (SNAP-1); once only one file lists it,
//! that file's mutations go to it in place.

use super::*;

impl MasterActor {
    /// Whether `chunk` may not be leased for a mutation: it is listed by
    /// more than one file (a file and its snapshot share it until one of
    /// them mutates it), or a copy of it is under way. A copy for one file
    /// may end after the other file's own copy made it unshared; a lease on
    /// it meanwhile would take mutations the first copy then replaces.
    pub(super) fn shared(&self, state: &MasterState, chunk: ChunkHandle) -> bool {
        self.cfg.bug != Bug::SharedChunkMutated
            && (state
                .durable
                .files
                .iter()
                .filter(|f| f.chunks.contains(&chunk))
                .count()
                > 1
                || state.copies.iter().any(|c| c.from == chunk))
    }

    /// `clients` want to mutate chunk `index` of `file`, which it shares
    /// with a snapshot: they wait for the copy (started now, or under way)
    /// and its lease.
    pub(super) fn copy_for<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        clients: Vec<Id>,
        file: FileId,
        from: ChunkHandle,
        o: &mut O<S>,
    ) {
        let index = state.durable.chunks[from as usize].index;
        let under_way = state
            .copies
            .iter()
            .find(|c| c.from == from && c.file == file)
            .map(|c| c.chunk);
        if let Some(chunk) = under_way {
            let s = state.to_mut();
            let waiting = &mut s.view_mut(chunk).waiting;
            waiting.extend(clients);
            waiting.sort();
            waiting.dedup();
            return;
        }
        let targets = state.view(from).up_to_date.clone();
        if targets.is_empty() || state.quiet {
            // No current replica to copy from, as for a lease with none;
            // or a restarted master still rebuilding which replicas are
            // current (it grants no lease then either).
            for c in clients {
                let index = ChunkIndex::At(index);
                let reason = Failure::NoLeaseNow;
                o.send(
                    c,
                    Msg::NoLease {
                        file,
                        index,
                        reason,
                    },
                );
            }
            return;
        }
        let s = state.to_mut();
        let source = &s.durable.chunks[from as usize];
        let version = source.version;
        let chunk = s.durable.chunks.len() as ChunkHandle;
        let meta = ChunkMeta {
            file,
            index,
            version,
            // Serials go on from the shared chunk's: each copy keeps the
            // stamps of what it copied, and a new lease's must be later.
            epoch: source.epoch,
            grants: 0,
            // A copy is made whole at `version` in one step of its
            // replica, or not at all: a restarted master may count any
            // target that reports the new chunk at this version.
            granted: version,
            granted_to: targets.clone(),
            // Where the shared chunk is placed, so that a placed replica
            // that is stale now, or misses its copy, is re-replicated to
            // the copy's goal rather than lowering it for good.
            replicas: source.replicas.clone(),
        };
        s.durable.chunks.push(meta);
        let mut view = fresh_view(vec![]);
        view.waiting = clients;
        view.waiting.sort();
        view.waiting.dedup();
        s.views.push(view);
        s.copies.push(Copying {
            chunk,
            from,
            file,
            index,
            targets: targets.clone(),
            copied: vec![],
        });
        s.copies.sort();
        s.save_durable(o);
        if version == 0 {
            // Never leased: no replica holds any of it, so there is
            // nothing to copy.
            s.copies.last_mut().expect("just pushed").copied = targets;
            self.finish_copy(state, chunk, o);
            return;
        }
        for target in targets {
            let incarnation = s.incarnation(target);
            o.send(
                target,
                Msg::CopyChunk {
                    chunk: from,
                    to: chunk,
                    version,
                    incarnation,
                },
            );
        }
        if self.cfg.reply_timeouts {
            o.set_timer(
                Timer::CopyTimeout(chunk),
                Durations::range(self.cfg.durations.grant_timeout_ms),
            );
        }
    }

    /// A replica made its copy of a shared chunk.
    pub(super) fn on_chunk_copied<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        chunk: ChunkHandle,
        version: ChunkVersion,
        o: &mut O<S>,
    ) {
        let Some(i) = state.copies.iter().position(|c| c.chunk == chunk) else {
            return;
        };
        let c = &state.copies[i];
        if !c.targets.contains(&src)
            || c.copied.contains(&src)
            || version != state.durable.chunks[chunk as usize].version
        {
            return;
        }
        let s = state.to_mut();
        let c = &mut s.copies[i];
        c.copied.push(src);
        c.copied.sort();
        if c.copied.len() == c.targets.len() {
            self.finish_copy(state, chunk, o);
        }
    }

    /// Ends the copy to `chunk`: every target made its copy, or the copy
    /// timed out. With at least one copy, the new chunk takes the shared
    /// one's place in the mutating file, and its waiting clients get a
    /// lease; with none, the chunk is given up and they try again.
    pub(super) fn finish_copy<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
        let Some(i) = state.copies.iter().position(|c| c.chunk == chunk) else {
            return;
        };
        let s = state.to_mut();
        let c = s.copies.remove(i);
        o.cancel_timer(Timer::CopyTimeout(chunk));
        if c.copied.is_empty() {
            // Placed nowhere, so a late copy is garbage that the server's
            // next report gets deleted (GC-1).
            let meta = &mut s.durable.chunks[chunk as usize];
            meta.replicas.clear();
            meta.granted_to.clear();
            s.save_durable(o);
            let index = ChunkIndex::At(c.index);
            for client in std::mem::take(&mut s.view_mut(chunk).waiting) {
                let reason = Failure::NoLeaseNow;
                o.send(
                    client,
                    Msg::NoLease {
                        file: c.file,
                        index,
                        reason,
                    },
                );
            }
            return;
        }
        s.view_mut(chunk).up_to_date = c.copied;
        let listed = &mut s.durable.files[c.file as usize].chunks;
        if listed.get(c.index as usize) == Some(&c.from) {
            listed[c.index as usize] = chunk;
        }
        // The shared chunk now belongs to a file that still lists it.
        if s.durable.chunks[c.from as usize].file == c.file {
            if let Some(other) = s
                .durable
                .files
                .iter()
                .position(|f| f.chunks.contains(&c.from))
            {
                s.durable.chunks[c.from as usize].file = other as FileId;
            }
        }
        s.save_durable(o);
        self.try_offer(state, chunk, o);
    }
}
