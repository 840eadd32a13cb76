//! A node's start: the actor's `on_start` on what the trace says was
//! restored, checked against what the previous start left.

use super::*;

/// Runs the node's start handler on the storage the trace says it found.
#[allow(clippy::too_many_arguments)]
pub(super) fn start(
    ctx: &mut NodeCtx,
    role: &Role,
    id: Id,
    state: &mut Option<NodeState<ReplayStore>>,
    restored: Option<&TraceStorage>,
    previous: Option<&NodeTrace>,
    at: Loc,
    path: &Path,
) -> ReplayOut {
    let mut out = ReplayOut::new();
    match role {
        Role::Master(a) => {
            let durable = match restored {
                Some(TraceStorage::Master(d)) => Some(d.clone()),
                Some(other) => {
                    ctx.fail(
                        Check::Trace1,
                        at,
                        path,
                        format!("the master restored {other:?}"),
                    );
                    None
                }
                None => None,
            };
            // A foreign master's saves are its own business: its restart
            // finds what the model's actor saved last before the crash.
            let durable = match (ctx.foreign, previous) {
                (Some(_), Some(_)) => {
                    let saved = ctx.replayed_master_save.clone();
                    if durable.is_some() && durable != saved {
                        ctx.note(
                            Check::Trace1,
                            at,
                            path,
                            "the trace's restored master storage differs from what the model's master saved last; the replay restarts on the model's".into(),
                        );
                    }
                    saved
                }
                _ => durable,
            };
            // A restart finds what the previous start saved last, or an
            // earlier save if it was killed after recording its step but
            // before carrying out the save.
            if let (Some(prev), None) = (previous, ctx.foreign) {
                let mut saves = master_saves(ctx.earlier);
                let explained = match &durable {
                    None => saves.next().is_none(),
                    Some(d) => saves.next() == Some(d),
                };
                if !explained {
                    // Saves that were recorded but never carried out are
                    // at most one batch's.
                    let skipped = durable.as_ref().and_then(|d| {
                        master_saves(ctx.earlier)
                            .take(2 * BATCH_MSGS_MAX)
                            .position(|s| s == d)
                    });
                    match skipped {
                        Some(i) => ctx.note(
                            Check::Trace1,
                            at,
                            path,
                            format!(
                                "restored the master's storage as saved {i} saves before the last of start {}: the later ones were recorded but not carried out (the node stopped in between)",
                                prev.header.start
                            ),
                        ),
                        None => ctx.fail(
                            Check::Trace1,
                            at,
                            path,
                            format!(
                                "restored master storage that start {} never saved",
                                prev.header.start
                            ),
                        ),
                    }
                }
            }
            *state = Some(NodeState::Master(
                a.on_start::<ReplayStore>(&durable, &mut out),
            ));
        }
        Role::Chunkserver(a) => {
            // Replicas the node came back without, whose data the previous
            // start wrote after its last barrier into chunks that were
            // durable before it: the kill tore that batch's sync, and the
            // file store found them damaged (docs/model.md, "Torn syncs").
            let synced = std::mem::take(&mut ctx.synced_chunks);
            let unsynced = std::mem::take(&mut ctx.unsynced_writes);
            let torn: Vec<ChunkHandle> = match restored {
                Some(TraceStorage::Chunkserver(view)) => a
                    .initial_store
                    .chunks()
                    .into_iter()
                    .map(|(h, _)| h)
                    .filter(|h| synced.contains(h) && unsynced.contains(h))
                    .filter(|h| !view.chunks.iter().any(|(v, ..)| v == h))
                    .collect(),
                _ => vec![],
            };
            // The replay's store where it differs from what the node found.
            let mut differs = None;
            let storage = match restored {
                Some(TraceStorage::Chunkserver(view)) => {
                    // What the node found is what its start step acts on
                    // (its chunk report above all), so a difference found
                    // below is adopted before the start step is replayed.
                    // The view shows the restart already counted.
                    let mut store = a.initial_store.clone();
                    let mut mine = StoreView::of(&store);
                    mine.incarnation += 1;
                    if mine != *view {
                        let mut found = view.clone();
                        found.incarnation = view.incarnation.saturating_sub(1);
                        store.adopt_view(&found, &torn);
                        differs = Some(mine);
                    }
                    Some(NodeStorage::Chunkserver(Arc::new(store)))
                }
                Some(other) => {
                    ctx.fail(
                        Check::Trace1,
                        at,
                        path,
                        format!("a chunkserver restored {other:?}"),
                    );
                    None
                }
                None => None,
            };
            let mut s = a.on_start(&storage, &mut out);
            if let Some(TraceStorage::Chunkserver(view)) = restored {
                // The trace shows the restored store as it was once the
                // start step ran (the restart already counted).
                if let Some(mine) = differs {
                    let why = describe_view_difference(&mine, view);
                    match previous {
                        None => ctx.note(
                            Check::Trace1,
                            at,
                            path,
                            format!("the node's store predates its trace ({why}); its earlier bytes are unknown"),
                        ),
                        Some(p) if p.torn_tail || p.truncated => ctx.note(
                            Check::Trace1,
                            at,
                            path,
                            format!(
                                "restored store differs from the replay of start {} ({why}); that start's trace ends {}, so steps whose records were lost may have changed it",
                                p.header.start,
                                if p.torn_tail { "with a torn record" } else { "truncated" }
                            ),
                        ),
                        Some(p) if within_one_batch(&mine, view) => ctx.note(
                            Check::Trace1,
                            at,
                            path,
                            format!(
                                "restored store differs from the replay of start {} by no more than one batch of mutations ({why}): that start was killed with a batch of chunk writes written but not yet synced, or synced but not yet recorded",
                                p.header.start
                            ),
                        ),
                        Some(p) => ctx.fail(
                            Check::Trace1,
                            at,
                            path,
                            format!(
                                "restored store differs from what start {} left ({why})",
                                p.header.start
                            ),
                        ),
                    }
                    if !torn.is_empty() {
                        ctx.note(
                            Check::Trace1,
                            at,
                            path,
                            format!(
                                "restored without the replicas of chunks {torn:?}, which steps of start {} wrote after its last barrier: the kill tore that batch's sync, and the replicas are taken as damaged (refusing every read and change until cloned back)",
                                previous.map_or(0, |p| p.header.start)
                            ),
                        );
                    }
                    ctx.out.store_exact = false;
                    s.store.adopt_view(view, &torn);
                    for (chunk, meta, _) in &view.chunks {
                        ctx.out
                            .versions
                            .push((*chunk, at_clock(previous), meta.version));
                    }
                }
            }
            *state = Some(NodeState::Chunkserver(s));
        }
        Role::Client(a) => {
            *state = Some(NodeState::Client(a.on_start::<ReplayStore>(id, &mut out)));
        }
    }
    out
}

pub(super) fn at_clock(previous: Option<&NodeTrace>) -> u64 {
    previous
        .and_then(|p| p.steps.last())
        .map_or(0, |s| s.clock_ns)
}

/// Whether two store views differ by what one batch of steps could leave
/// half done when the process is killed: the host records each step as its
/// handler returns and syncs the chunk files once per batch of at most
/// `BATCH_MSGS_MAX` messages, so a kill keeps chunk writes only partly
/// (data, metadata and their syncs are separate calls; the page cache
/// survives the kill). That differs by at most a batch of serials and one
/// version step on any chunk; more is a failure.
pub(super) fn within_one_batch(mine: &StoreView, theirs: &StoreView) -> bool {
    let batch = crate::host::BATCH_MSGS_MAX as u64;
    let close = |a: &(u64, leasehold_model::types::ReplicaMeta, u64),
                 b: &(u64, leasehold_model::types::ReplicaMeta, u64)| {
        let (ma, mb) = (a.1, b.1);
        if ma == mb {
            // The same mutations applied leave the same data.
            return a.2 == b.2;
        }
        ma.version.abs_diff(mb.version) <= 1
            && (ma.applied.epoch != mb.applied.epoch
                || ma.applied.serial.abs_diff(mb.applied.serial) <= batch)
    };
    mine.incarnation == theirs.incarnation
        && theirs.chunks.iter().all(|t| {
            mine.chunks
                .iter()
                .find(|m| m.0 == t.0)
                .is_none_or(|m| close(m, t))
        })
}

pub(super) fn describe_view_difference(mine: &StoreView, theirs: &StoreView) -> String {
    if mine.incarnation != theirs.incarnation {
        return format!(
            "restart count {} where the trace has {}",
            mine.incarnation, theirs.incarnation
        );
    }
    for (h, meta, len) in &theirs.chunks {
        match mine.chunks.iter().find(|(m, ..)| m == h) {
            None => return format!("chunk {h} missing from the replay"),
            Some((_, m, l)) if m != meta || l != len => {
                return format!(
                    "chunk {h}: replay has v{} {:?} {l} bytes, the trace v{} {:?} {len} bytes",
                    m.version, m.applied, meta.version, meta.applied
                )
            }
            _ => {}
        }
    }
    "the replay holds chunks the trace does not".into()
}
