//! What an operator should hear of the master's decisions about replicas.
//!
//! The master actor only sends, sets timers and saves; a host learns what
//! it decided by comparing its state before and after a step. This module
//! is that comparison, kept beside the actor so that it names the
//! decisions as the protocol does, and so that every host (the TCP nodes
//! log these) reads them the same way.

use super::*;

/// One decision about a chunk's replicas, read from a master's step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterNote {
    /// `replica` counted up to date while the master rebuilt the chunk's
    /// replica set (its waiting period after a restart, or a chunk with no
    /// replica counted): from its report, possibly below the chunk's
    /// current version, when it was one of the last grant's replicas
    /// (GFS §4.5, `ChunkMeta::granted`).
    Adopted {
        chunk: ChunkHandle,
        replica: Id,
        version: ChunkVersion,
    },
    /// `replica` is no longer counted up to date: it missed a version, its
    /// server restarted, or its store failed. Mutations go on without it
    /// until a clone brings it back.
    LeftOut { chunk: ChunkHandle, replica: Id },
    /// `replica` reported that its store failed the chunk (FAULT-2).
    StoreFailed { chunk: ChunkHandle, replica: Id },
    /// The chunk's replicas were placed anew: `from` moved to `to`
    /// (re-replication onto a spare, GFS §4.3).
    Moved {
        chunk: ChunkHandle,
        from: Vec<Id>,
        to: Vec<Id>,
    },
    /// A restarted master's waiting period is over (LEASE-3): it grants
    /// leases again.
    WaitOver,
}

impl MasterNote {
    /// Whether an operator should look: a replica lost or failed.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            MasterNote::LeftOut { .. } | MasterNote::StoreFailed { .. }
        )
    }

    pub fn chunk(&self) -> Option<ChunkHandle> {
        match self {
            MasterNote::Adopted { chunk, .. }
            | MasterNote::LeftOut { chunk, .. }
            | MasterNote::StoreFailed { chunk, .. }
            | MasterNote::Moved { chunk, .. } => Some(*chunk),
            MasterNote::WaitOver => None,
        }
    }
}

impl std::fmt::Display for MasterNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = |r: &Id| usize::from(*r);
        let ids = |rs: &[Id]| rs.iter().map(id).collect::<Vec<_>>();
        match self {
            MasterNote::Adopted {
                chunk,
                replica,
                version,
            } => write!(
                f,
                "replica on {} of chunk {chunk} counted up to date after a restart (chunk version {version})",
                id(replica)
            ),
            MasterNote::LeftOut { chunk, replica } => write!(
                f,
                "replica on {} of chunk {chunk} is no longer counted up to date",
                id(replica)
            ),
            MasterNote::StoreFailed { chunk, replica } => write!(
                f,
                "replica on {} of chunk {chunk} reported its store failed",
                id(replica)
            ),
            MasterNote::Moved { chunk, from, to } => write!(
                f,
                "chunk {chunk} placed on {:?}, was {:?}",
                ids(to),
                ids(from)
            ),
            MasterNote::WaitOver => write!(f, "waiting period over: leases are granted again"),
        }
    }
}

/// The decisions the master made in the step from `before` to `after`.
pub fn notes(before: &MasterState, after: &MasterState) -> Vec<MasterNote> {
    let mut notes = vec![];
    if before.quiet && !after.quiet {
        notes.push(MasterNote::WaitOver);
    }
    for (chunk, next) in after.views.iter().enumerate() {
        let chunk = chunk as ChunkHandle;
        let meta = &after.durable.chunks[chunk as usize];
        let (prev, placed) = match before.views.get(chunk as usize) {
            Some(v) => (v, &before.durable.chunks[chunk as usize].replicas),
            None => continue, // allocated in this step: nothing to compare
        };
        if *placed != meta.replicas {
            notes.push(MasterNote::Moved {
                chunk,
                from: placed.clone(),
                to: meta.replicas.clone(),
            });
        }
        let rebuilding = before.quiet || prev.up_to_date.is_empty();
        for &replica in &next.up_to_date {
            if rebuilding && !prev.up_to_date.contains(&replica) {
                notes.push(MasterNote::Adopted {
                    chunk,
                    replica,
                    version: meta.version,
                });
            }
        }
        for &replica in &prev.up_to_date {
            if !next.up_to_date.contains(&replica) {
                notes.push(MasterNote::LeftOut { chunk, replica });
            }
        }
        for &replica in &next.store_failed {
            if !prev.store_failed.contains(&replica) {
                notes.push(MasterNote::StoreFailed { chunk, replica });
            }
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memstore::MemStore;
    use crate::system::ModelCfg;
    use stateright::actor::Out;

    // A master restarted after a version bump no replica learned (issue
    // #12) counts a replica of the last grant at the grant's version: the
    // step is read as an adoption, and a replica left out of that grant,
    // reporting the same version, is not adopted.
    #[test]
    fn a_restarted_master_adopting_a_replica_is_noted() {
        let cfg = ModelCfg::named("tiny").expect("tiny exists").protocol();
        let servers = cfg.chunkservers.clone();
        let master = MasterActor {
            cfg: Arc::new(cfg),
            initial: MasterDurable::default(),
        };
        let durable = MasterDurable {
            files: vec![FileMeta {
                name: "/log".into(),
                chunks: vec![0],
            }],
            chunks: vec![ChunkMeta {
                file: 0,
                index: 0,
                version: 3,
                epoch: 2,
                grants: 2,
                granted: 2,
                granted_to: vec![servers[0], servers[1]],
                replicas: servers.clone(),
            }],
        };
        let mut o = Out::<crate::Node<MemStore>>::new();
        let start = master.on_start::<MemStore>(&Some(durable), &mut o);
        assert!(start.quiet, "a restarted master waits");
        let report = |state: &MasterState, from: Id| {
            let mut next = Cow::Borrowed(state);
            let mut o = Out::<crate::Node<MemStore>>::new();
            let msg = Msg::ChunkReport {
                incarnation: 0,
                chunks: vec![(0, 2)],
            };
            master.on_msg::<MemStore>(&mut next, from, msg, &mut o);
            next.into_owned()
        };
        let left_out = report(&start, servers[2]);
        assert_eq!(notes(&start, &left_out), vec![], "not of the last grant");
        let adopted = report(&left_out, servers[0]);
        let seen = notes(&left_out, &adopted);
        assert_eq!(
            seen,
            vec![MasterNote::Adopted {
                chunk: 0,
                replica: servers[0],
                version: 3
            }]
        );
        assert!(!seen[0].is_warning());
        assert!(seen[0]
            .to_string()
            .contains("counted up to date after a restart"));
    }
}
