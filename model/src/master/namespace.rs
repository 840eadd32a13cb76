//! The master's namespace: which paths it takes (PATH-1), opening and
//! creating files, telling a client where a chunk is, and allocating the
//! next chunk of a file ([00105]). Kept apart from leases because none of
//! it depends on who holds one: it reads and grows the durable state only.

use super::*;

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

impl MasterActor {
    /// Opens, or creates, the file at `path`.
    pub(super) fn on_open_file<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        path: String,
        create: bool,
        o: &mut O<S>,
    ) {
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
                s.save_durable(o);
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

    /// Renames the file at `from` to `to` ([0091]: "when master 130 wants
    /// to disable modifications to a file that is being renamed"), or,
    /// with `snapshot`, makes `to` a snapshot of it (GFS §3.4). The leases
    /// of its chunks are revoked now and none is granted until the rename
    /// or snapshot is made, which happens once each has ended, revoked or
    /// expired ([`MasterActor::try_finish_renames`]). A renamed file keeps
    /// its id, so a client appending by id goes on into the renamed file.
    pub(super) fn on_rename_file<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        from: String,
        to: String,
        snapshot: bool,
        o: &mut O<S>,
    ) {
        let reply = |from, to, file| match snapshot {
            false => Msg::FileRenamed { from, to, file },
            true => Msg::SnapshotTaken { from, to, file },
        };
        if path_problem(&from).is_some() || path_problem(&to).is_some() {
            // As for OpenFile: a refused path is not echoed back.
            let (from, to) = (String::new(), String::new());
            o.send(src, reply(from, to, Err(Failure::BadPath)));
            return;
        }
        let asked_again = |r: &Renaming| {
            r.client == src && r.from == from && r.to == to && r.snapshot == snapshot
        };
        if state.renames.iter().any(asked_again) {
            return; // a client's retry: it is answered when the rename is made
        }
        let names = |r: &Renaming| [&r.from, &r.to].into_iter().any(|n| *n == from || *n == to);
        let found = |name: &str| state.durable.files.iter().position(|f| f.name == name);
        let file = if state.renames.iter().any(names) {
            Err(Failure::Busy)
        } else {
            match (found(&from), found(&to)) {
                (None, _) => Err(Failure::NotFound),
                (Some(_), _) if from == to && snapshot => Err(Failure::Exists),
                (Some(f), _) if from == to => Ok(f as FileId),
                (Some(_), Some(_)) => Err(Failure::Exists),
                (Some(f), None) => Ok(f as FileId),
            }
        };
        let file = match file {
            Ok(f) if from != to => f,
            file => {
                o.send(src, reply(from, to, file));
                return;
            }
        };
        let s = state.to_mut();
        s.renames.push(Renaming {
            client: src,
            file,
            from,
            to,
            snapshot,
        });
        s.renames.sort();
        if !self.made_under_lease(snapshot) {
            for chunk in state.durable.files[file as usize].chunks.clone() {
                if let Some(LeaseView::Granted {
                    revoking: false, ..
                }) = state.lease(chunk)
                {
                    self.revoke(state, chunk, o);
                }
            }
        }
        self.try_finish_renames(state, o);
    }

    /// Whether a seeded bug makes a rename (or a snapshot) without
    /// revoking its file's leases or waiting for them to end.
    fn made_under_lease(&self, snapshot: bool) -> bool {
        match snapshot {
            false => self.cfg.bug == Bug::RenamesUnderLease,
            true => self.cfg.bug == Bug::SnapshotUnderLease,
        }
    }

    /// Whether a rename or snapshot of `chunk`'s file is under way: no
    /// lease of it may be granted or extended.
    pub(super) fn renaming(&self, state: &MasterState, chunk: ChunkHandle) -> bool {
        let file = state.durable.chunks[chunk as usize].file;
        state.renames.iter().any(|r| r.file == file)
    }

    /// Makes every rename or snapshot whose file's leases have all ended
    /// (RENAME-1, SNAP-1), answers its client, and lets the file's chunks
    /// be leased again.
    pub(super) fn try_finish_renames<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        o: &mut O<S>,
    ) {
        // A restarted master does not know which leases its previous
        // incarnation granted until its wait is over (LEASE-3).
        if state.quiet && self.cfg.bug != Bug::RenameDuringQuietPeriod {
            return;
        }
        let ended = |state: &MasterState, r: &Renaming| {
            self.made_under_lease(r.snapshot)
                || state.durable.files[r.file as usize]
                    .chunks
                    .iter()
                    .all(|c| state.view(*c).lease == LeaseView::Free)
        };
        while let Some(i) = state.renames.iter().position(|r| ended(state, r)) {
            let s = state.to_mut();
            let r = s.renames.remove(i);
            let chunks = s.durable.files[r.file as usize].chunks.clone();
            let reply = if r.snapshot {
                // Copy-on-write: the snapshot lists the file's chunks, and
                // a chunk is copied only before its next mutation.
                s.durable.files.push(FileMeta {
                    name: r.to.clone(),
                    chunks: chunks.clone(),
                });
                let file = (s.durable.files.len() - 1) as FileId;
                let (from, to) = (r.from, r.to);
                Msg::SnapshotTaken {
                    from,
                    to,
                    file: Ok(file),
                }
            } else {
                s.durable.files[r.file as usize].name = r.to.clone();
                let (from, to) = (r.from, r.to);
                Msg::FileRenamed {
                    from,
                    to,
                    file: Ok(r.file),
                }
            };
            s.save_durable(o);
            o.send(r.client, reply);
            for chunk in chunks {
                self.try_offer(state, chunk, o);
            }
        }
    }

    /// Where chunk `index` of `file` is, with its lease holder if one is granted.
    pub(super) fn on_locate<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        src: Id,
        file: FileId,
        index: u32,
        o: &mut O<S>,
    ) {
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
                let (primary, epoch) = match &state.view(chunk).lease {
                    LeaseView::Granted { primary, epoch, .. } => (Some(*primary), *epoch),
                    _ => (None, 0),
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
                        .filter(|r| Some(*r) != primary)
                        .collect(),
                }
            });
        o.send(src, Msg::Located { info, chunks });
    }

    /// Finds (or allocates, for the next chunk of a record append [00105])
    /// the chunk a client names.
    pub(super) fn resolve<S: ChunkStore>(
        &self,
        state: &mut Cow<MasterState>,
        file: FileId,
        index: ChunkIndex,
        o: &mut O<S>,
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
            granted: 0,
            granted_to: vec![],
            replicas: replicas.clone(),
        });
        s.durable.files[file as usize].chunks.push(chunk);
        s.views.push(fresh_view(replicas));
        s.save_durable(o);
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memstore::MemStore;
    use crate::system::ModelCfg;
    use stateright::actor::Out;

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
