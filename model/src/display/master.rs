//! Master: namespace, then the lease table, one line per chunk.

use super::{Block, Cs, CsList};
use crate::master::{ChunkView, LeaseView, MasterState};
use std::fmt::{self, Display, Formatter};

pub(super) fn master(m: &MasterState, f: &mut Formatter<'_>) -> fmt::Result {
    let mut b = Block::new(f, format_args!("master"))?;
    if m.quiet {
        // [0091]: a restarted master waits out any lease its previous
        // incarnation may have granted before it grants one itself.
        b.line(format_args!(
            "quiet period: restarted, grants no lease for one lease period"
        ))?;
    }
    for (i, file) in m.durable.files.iter().enumerate() {
        b.line(format_args!(
            "file {i} {:?}: chunks {:?}",
            file.name, file.chunks
        ))?;
    }
    for (c, meta) in m.durable.chunks.iter().enumerate() {
        let view = m.views.get(c);
        // What a restarted master may adopt (VERSION-3), shown only when a
        // bump came after the last grant: otherwise it is the version.
        let last_grant = if meta.granted > 0 && meta.granted < meta.version {
            format!(
                " (last grant at v{} to {})",
                meta.granted,
                CsList(&meta.granted_to)
            )
        } else {
            String::new()
        };
        b.line(format_args!(
            "chunk {c}: v{}{last_grant} e{}, {}",
            meta.version,
            meta.epoch,
            LeaseTableRow(view)
        ))?;
    }
    for r in &m.renames {
        let what = if r.snapshot { "snapshot" } else { "rename" };
        // [0091]: taken, waiting for the file's leases to end.
        b.line(format_args!(
            "{what} {:?} -> {:?} pending (file {}, for client {})",
            r.from,
            r.to,
            r.file,
            usize::from(r.client)
        ))?;
    }
    for c in &m.copies {
        // GFS §3.4: copy-on-write of a chunk shared with a snapshot.
        b.line(format_args!(
            "copying chunk {} to chunk {} for file {} #{}: copied on {} of {}",
            c.from,
            c.chunk,
            c.file,
            c.index,
            CsList(&c.copied),
            CsList(&c.targets)
        ))?;
    }
    if !m.servers.is_empty() {
        let restarts: Vec<String> = m
            .servers
            .iter()
            .map(|s| format!("{} ×{}", Cs(s.id), s.incarnation))
            .collect();
        b.line(format_args!("restarts seen: {}", restarts.join(", ")))?;
    }
    b.finish()
}

struct LeaseTableRow<'a>(Option<&'a ChunkView>);

impl Display for LeaseTableRow<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let Some(v) = self.0 else {
            return f.write_str("no volatile view");
        };
        match &v.lease {
            LeaseView::Free => f.write_str("no lease")?,
            LeaseView::Offered {
                primary,
                epoch,
                requested,
                acked,
                clones,
            } => {
                write!(f, "lease e{epoch} offered to {}", Cs(*primary))?;
                if *requested {
                    f.write_str(" (requested)")?;
                } else {
                    f.write_str(" (not yet requested)")?;
                }
                write!(f, ", version acks {}", CsList(acked))?;
                if !clones.is_empty() {
                    write!(f, ", cloning onto {}", CsList(clones))?;
                }
            }
            LeaseView::Granted {
                primary,
                epoch,
                secondaries,
                revoking,
            } => {
                write!(
                    f,
                    "lease e{epoch} granted to {}, secondaries {}",
                    Cs(*primary),
                    CsList(secondaries)
                )?;
                if *revoking {
                    f.write_str(", revoking")?;
                }
            }
        }
        write!(f, "; up to date {}", CsList(&v.up_to_date))?;
        if !v.waiting.is_empty() {
            write!(f, "; waiting clients {:?}", v.waiting)?;
        }
        if v.revocations > 0 {
            write!(f, "; revocations {}", v.revocations)?;
        }
        if let Some(r) = v.unanswered {
            write!(f, "; offer to {} unanswered", Cs(r))?;
        }
        if !v.behind.is_empty() {
            write!(f, "; reported behind {}", CsList(&v.behind))?;
        }
        if !v.clone_failed.is_empty() {
            write!(f, "; clone failed {}", CsList(&v.clone_failed))?;
        }
        if !v.store_failed.is_empty() {
            write!(f, "; store failed {}", CsList(&v.store_failed))?;
        }
        if v.reports_asked {
            f.write_str("; reports asked")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::master::{ChunkMeta, FileMeta, MasterDurable};
    use crate::memstore::MemStore;
    use crate::NodeState;
    use stateright::actor::Id;

    #[test]
    fn master_lease_table_compact_and_pretty() {
        let m = MasterState {
            durable: MasterDurable {
                files: vec![FileMeta {
                    name: "log".into(),
                    chunks: vec![0],
                }],
                chunks: vec![ChunkMeta {
                    file: 0,
                    index: 0,
                    version: 1,
                    epoch: 1,
                    grants: 1,
                    granted: 1,
                    granted_to: vec![Id::from(1), Id::from(2)],
                    replicas: vec![Id::from(1), Id::from(2)],
                }],
            },
            views: vec![ChunkView {
                up_to_date: vec![Id::from(1), Id::from(2)],
                lease: LeaseView::Granted {
                    primary: Id::from(2),
                    epoch: 1,
                    secondaries: vec![Id::from(1)],
                    revoking: false,
                },
                waiting: vec![],
                last_primary: Some(Id::from(2)),
                revocations: 0,
                behind: vec![],
                clone_failed: vec![],
                store_failed: vec![],
                unanswered: None,
                reports_asked: false,
            }],
            servers: vec![],
            quiet: false,
            renames: vec![],
            copies: vec![],
        };
        let mut bumped = m.clone();
        bumped.durable.chunks[0].version = 2;
        bumped.views[0].lease = LeaseView::Free;
        bumped.views[0].up_to_date.clear();
        bumped.views[0].reports_asked = true;
        let bumped: NodeState<MemStore> = NodeState::Master(bumped);
        assert_eq!(
            format!("{bumped:?}"),
            "master { file 0 \"log\": chunks [0]; chunk 0: v2 (last grant at v1 to [cs1, cs2]) e1, \
             no lease; up to date []; reports asked }"
        );
        let node: NodeState<MemStore> = NodeState::Master(m);
        assert_eq!(
            format!("{node:?}"),
            "master { file 0 \"log\": chunks [0]; chunk 0: v1 e1, lease e1 granted to cs2, \
             secondaries [cs1]; up to date [cs1, cs2] }"
        );
        assert_eq!(
            format!("{node:#?}"),
            "master\n  file 0 \"log\": chunks [0]\n  chunk 0: v1 e1, lease e1 granted to cs2, \
             secondaries [cs1]; up to date [cs1, cs2]"
        );
    }
}
