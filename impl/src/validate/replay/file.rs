//! Replaying one start of a node: its steps in order, with the checks
//! that read them (numbering, clocks, timers) and the lease intervals it
//! leaves.

use super::*;

pub(super) fn replay_file(ctx: &mut NodeCtx, file: &NodeTrace, later: &[NodeTrace]) {
    let next = later.first();
    let previous = ctx.earlier.last();
    let header = &file.header;
    let node = header.node;
    let start = header.start;
    let path = &file.path;
    let loc = |step: u64| Loc { node, start, step };
    let cfg = Arc::new(header.protocol.clone());
    let id = Id::from(node as usize);
    let kind_now = match header.actor {
        TraceActor::Master => Kind::Master,
        TraceActor::Chunkserver { .. } => Kind::Chunkserver,
        TraceActor::Client { .. } => Kind::Client,
    };
    if kind_now != ctx.out.kind {
        ctx.fail(
            Check::Trace1,
            loc(0),
            path,
            format!(
                "this start runs a {kind_now:?}, the node's first a {:?}",
                ctx.out.kind
            ),
        );
        ctx.out.replayed_whole = false;
        ctx.out.stopped_ns.get_or_insert(header.clock_ns);
        return;
    }
    let role = match &header.actor {
        TraceActor::Master => Role::Master(MasterActor {
            cfg,
            initial: match &header.initial {
                TraceInitial::Master(initial) => initial.clone(),
                _ => MasterDurable::default(),
            },
        }),
        TraceActor::Chunkserver { chunk_bytes } => {
            let store = ctx.carried.take().unwrap_or_else(|| {
                let mut store = ReplayStore::new(*chunk_bytes)
                    .with_journal(ctx.journal.clone())
                    .with_faults(ctx.faults.clone());
                if let TraceInitial::Chunks(writes) = &header.initial {
                    for (chunk, offset, data) in writes {
                        let written = ChunkStore::write_at(
                            &mut store,
                            *chunk,
                            *offset,
                            data,
                            Stamp::default(),
                        );
                        if let Err(e) = written {
                            ctx.fail(
                                Check::Trace1,
                                loc(0),
                                path,
                                format!("the header's initial data does not fit: {e:?}"),
                            );
                        }
                    }
                }
                store
            });
            Role::Chunkserver(ChunkserverActor {
                cfg,
                initial_store: store,
            })
        }
        TraceActor::Client {
            number,
            report_to,
            fragment_max,
        } => Role::Client(ClientActor {
            cfg,
            number: *number,
            script: match &header.initial {
                TraceInitial::Script(script) => script.clone(),
                _ => vec![],
            },
            report_to: report_to.map(|r| Id::from(r as usize)),
            fragment_max: *fragment_max,
        }),
    };
    let report_to = match &header.actor {
        TraceActor::Client { report_to, .. } => *report_to,
        _ => None,
    };

    let mut state: Option<NodeState<ReplayStore>> = None;
    let mut diverged = false;
    let mut armed: HashMap<Timer, u64> = HashMap::new();
    let mut last_clock = header.clock_ns;
    let mut open_primary: BTreeMap<ChunkHandle, OpenLease> = BTreeMap::new();
    let mut open_master: BTreeMap<ChunkHandle, (u64, u64, Loc)> = BTreeMap::new();
    let mut pending_saves: Vec<(StoreView, u64)> = vec![];
    let mut numbering_reported = false;
    let mut failed_at_replica = std::collections::HashSet::new();

    for (index, step) in file.steps.iter().enumerate() {
        let at = loc(step.n);
        check_failure_not_acked(ctx, &mut failed_at_replica, step, at, path);
        let clock = step.clock_ns;
        if step.n != index as u64 && !numbering_reported {
            numbering_reported = true;
            ctx.fail(
                Check::Trace1,
                at,
                path,
                format!(
                    "record {index} is numbered step {}: steps are missing",
                    step.n
                ),
            );
        }
        // TRACE-3: one clock, read before each step, never goes back.
        if clock < last_clock {
            ctx.fail(
                Check::Trace3,
                at,
                path,
                format!(
                    "clock reading {} ms before the previous step's",
                    ms(last_clock - clock)
                ),
            );
        }
        last_clock = last_clock.max(clock);
        let is_start = matches!(step.input, TraceInput::Start { .. });
        if is_start != (index == 0) {
            ctx.fail(
                Check::Trace1,
                at,
                path,
                if is_start {
                    "a start record inside a trace file (each start has its own file)".into()
                } else {
                    "the file does not begin with the node's start".into()
                },
            );
            if index == 0 {
                diverged = true;
                ctx.out.replayed_whole = false;
                ctx.out.stopped_ns.get_or_insert(clock);
            }
            if is_start {
                continue;
            }
        }
        // TRACE-3: the host fires only armed timers, at or after their
        // deadlines, and disarms them first.
        if let TraceInput::Timer(t) = &step.input {
            match armed.remove(t) {
                None => ctx.fail(
                    Check::Trace3,
                    at,
                    path,
                    format!("timer {t:?} fired but no step armed it (or it was cancelled)"),
                ),
                Some(deadline) if clock + TIMER_SLACK_NS < deadline => ctx.fail(
                    Check::Trace3,
                    at,
                    path,
                    format!(
                        "timer {t:?} fired {} ms before its deadline",
                        ms(deadline - clock)
                    ),
                ),
                Some(_) => {}
            }
        }
        // A chunkserver's recorded save shows its store when the batch was
        // recorded; a batch holds messages only.
        if !pending_saves.is_empty() && !matches!(step.input, TraceInput::Msg { .. }) {
            for (_, k) in pending_saves.drain(..) {
                ctx.fail(
                    Check::Trace1,
                    loc(k),
                    path,
                    "a saved store view matches no replayed store up to the end of its batch"
                        .into(),
                );
            }
        }
        // A step recorded but never carried out (the node stopped before
        // its barrier) sent nothing and told its application nothing: to
        // the rest of the run it did not happen, as a model crash before
        // it. The actor still took it, so it is replayed all the same.
        let carried_out = file.carried_out(index);
        if carried_out {
            recorded_checks(ctx, step, at, path, &open_primary);
            if let (Some(NodeState::Client(c)), false) = (&state, diverged) {
                note_ack(ctx, c, step, report_to, at, path);
                note_read(ctx, c, step, report_to, at);
            }
        }
        let client_before = match &state {
            Some(NodeState::Client(c)) => Some(c.clone()),
            _ => None,
        };
        let master_before = match (&state, &step.input) {
            (
                Some(NodeState::Master(m)),
                TraceInput::Msg {
                    msg: Msg::ReplicaFailed { .. },
                    ..
                },
            ) => Some(m.clone()),
            _ => None,
        };
        let held_before = match &state {
            Some(NodeState::Chunkserver(c)) if !c.held.is_empty() => held_with_meta(c),
            _ => vec![],
        };
        let (grant_before, data_before, failure_before) = match &state {
            Some(NodeState::Chunkserver(c)) => (
                grant_taken_before(c, step),
                data_before(c, step),
                failure_before(c, step),
            ),
            _ => (None, None, None),
        };

        if index == file.committed {
            // The last barrier this start passed: its store's chunks were
            // durable there.
            if let Some(NodeState::Chunkserver(c)) = &state {
                ctx.synced_chunks = c.store.chunks().into_iter().map(|(h, _)| h).collect();
            }
        }
        if !diverged {
            match replay_step(ctx, &role, id, &mut state, step, previous, at, path) {
                Ok(pending) => {
                    ctx.out.steps_replayed += 1;
                    if let (Some(before), Some(NodeState::Client(c))) = (&client_before, &state) {
                        check_read_closest(
                            ctx,
                            &header.protocol,
                            node,
                            before.current.as_ref().map(|cur| &cur.phase),
                            c,
                            at,
                            path,
                        );
                        check_next_chunk(ctx, before, c, step, at, path);
                        check_mutate_after_push(ctx, step, at, path);
                        check_result(ctx, &header.protocol, before, c, step, at, path);
                    }
                    if let (Some(before), Some(NodeState::Master(m))) = (&master_before, &state) {
                        check_failed_replica_left_out(ctx, before, m, step, at, path);
                    }
                    if let Some(NodeState::Chunkserver(c)) = &state {
                        check_aged_out(ctx, c, step, at, path);
                        check_no_push_for_failed_chunk(ctx, c, at, path);
                        if let Some(before) = &grant_before {
                            check_grant_answers_request(ctx, before, c, at, path);
                        }
                        if let Some(before) = &data_before {
                            check_data_used_up(ctx, before, c, at, path);
                        }
                        if let Some(before) = &failure_before {
                            check_failure_ends_mutation(ctx, before, c, at, path);
                        }
                        if !held_before.is_empty() {
                            check_held_drops_answered(ctx, &held_before, c, step, at, path);
                        }
                    }
                    pending_saves.extend(pending.into_iter().map(|v| (v, step.n)));
                }
                Err(why) => {
                    diverged = true;
                    // What the step showed before it diverged (an
                    // acknowledgement) still counts, up to here.
                    if !ctx.changes.is_empty() {
                        let changes = std::mem::take(&mut ctx.changes);
                        ctx.out.observed.push(Observed { at, changes });
                    }
                    stop_replay(ctx, file, index, at, &why);
                }
            }
        }
        if carried_out && matches!(role, Role::Chunkserver(_)) {
            check_lease_clock_not_rearmed(ctx, step, &armed, at, path);
        }
        for c in &step.commands {
            match c {
                TraceCommand::SetTimer { timer, deadline_ns } => {
                    armed.insert(timer.clone(), *deadline_ns);
                }
                TraceCommand::CancelTimer(timer) => {
                    armed.remove(timer);
                }
                _ => {}
            }
        }
        if !diverged && header.protocol.age_out {
            if let Some(NodeState::Chunkserver(c)) = &state {
                check_age_out_armed(ctx, c, &armed, at, path);
            }
        }
        if !diverged {
            if !carried_out && matches!(role, Role::Chunkserver(_)) {
                note_unsynced_writes(ctx);
            }
            let observed_before = ctx.out.observed.len();
            after_step(
                ctx,
                &state,
                step,
                at,
                path,
                &armed,
                &mut open_primary,
                &mut open_master,
                &mut pending_saves,
            );
            if let Err(why) = compare_applied(ctx, file, index, observed_before) {
                diverged = true;
                stop_replay(ctx, file, index, at, &why);
            }
        }
        ctx.untold += 1;
        if ctx.untold >= TICK_STEPS {
            (ctx.tick)(ctx.untold);
            ctx.untold = 0;
        }
    }
    for (_, k) in pending_saves.drain(..) {
        ctx.fail(
            Check::Trace1,
            loc(k),
            path,
            "a saved store view matches no replayed store up to the end of the trace".into(),
        );
    }

    // The node's leases end with this start: a held one at its deadline
    // (or when the node came back, if sooner); the master's view of one at
    // the end of the quiet period its next start waits out (LEASE-3).
    let next_start_ns = next.map(|n| n.header.clock_ns);
    for (chunk, l) in std::mem::take(&mut open_primary) {
        let to = match (l.deadline, next_start_ns) {
            (Some(d), Some(n)) => Some(d.min(n)),
            (d, n) => d.or(n),
        };
        ctx.out.primary.push(Interval {
            chunk,
            epoch: l.epoch,
            from_ns: l.from_ns,
            to_ns: to,
            ran_out: to.is_some() && to == l.deadline,
            from: l.from,
            file: path.to_path_buf(),
        });
    }
    // The first later start to wait out its quiet period (LEASE-3) ends
    // them: a start killed before its quiet period ended granted nothing,
    // and the next one counts its own from its start, so until one gets
    // through, the old grants may still run. None gets through: open.
    let quiet_end = later.iter().find_map(|n| {
        n.steps
            .iter()
            .find(|s| matches!(s.input, TraceInput::Timer(Timer::StartupQuiet)))
            .map(|s| s.clock_ns)
    });
    for (chunk, (epoch, from_ns, from)) in std::mem::take(&mut open_master) {
        ctx.out.master_leases.push(Interval {
            chunk,
            epoch,
            from_ns,
            to_ns: quiet_end,
            ran_out: quiet_end.is_some(),
            from,
            file: path.to_path_buf(),
        });
    }

    if file.steps.is_empty() {
        ctx.note(
            Check::Trace1,
            loc(0),
            path,
            "this start recorded no step: the node never ran it (e.g. its address was in use)"
                .into(),
        );
    }
    if file.committed < file.steps.len() {
        ctx.note(
            Check::Trace1,
            loc(file.committed as u64),
            path,
            format!(
                "the last {} recorded steps never had their barrier passed (the node stopped first): their commands were not carried out, and the run is checked as if they were never taken",
                file.steps.len() - file.committed
            ),
        );
    }
    if file.torn_tail {
        ctx.note(
            Check::Trace1,
            loc(file.steps.len() as u64),
            path,
            "the last record is torn (the node was killed while writing it); its step's commands never ran"
                .into(),
        );
    }
    if file.truncated {
        ctx.note(
            Check::Trace1,
            loc(file.steps.len() as u64),
            path,
            "the node's trace budget ran out here: later steps were not recorded".into(),
        );
    }
    match state {
        Some(NodeState::Chunkserver(s)) => {
            if diverged {
                ctx.out.store_exact = false;
            }
            ctx.carried = Some(s.store);
        }
        Some(NodeState::Master(m)) if !diverged => ctx.out.final_master = Some(m.durable),
        None if matches!(role, Role::Chunkserver(_)) => {
            // A start that never ran leaves the store as it found it.
            if let Role::Chunkserver(a) = &role {
                ctx.carried = Some(a.initial_store.clone());
            }
        }
        _ => {
            if ctx.out.kind == Kind::Master {
                if let Some(d) = master_saves(std::slice::from_ref(file)).next() {
                    ctx.out.final_master = Some(d.clone());
                }
            }
        }
    }
}

/// A foreign step's recorded chunk mutations, if it recorded them, must be
/// the ones the model's actor applied on the same input, in order.
fn compare_applied(
    ctx: &NodeCtx,
    file: &NodeTrace,
    index: usize,
    observed_before: usize,
) -> Result<(), String> {
    let h = &file.header;
    let Some(Some(recorded)) = ctx
        .foreign
        .and_then(|f| f.get(&(h.node, h.start)))
        .and_then(|steps| steps.get(index))
    else {
        return Ok(());
    };
    let replayed: Vec<Applied> = ctx.out.observed[observed_before..]
        .iter()
        .flat_map(|o| o.changes.iter())
        .filter_map(|c| match c {
            Change::Store(e) => e.applied(),
            _ => None,
        })
        .collect();
    if replayed == *recorded {
        return Ok(());
    }
    Err(format!(
        "the model's actor applies {replayed:?} where the trace records {recorded:?}"
    ))
}

/// Step `index` differs from its record: TRACE-1 fails there, and the
/// replay of this start stops (every later state would differ for the
/// same reason).
fn stop_replay(ctx: &mut NodeCtx, file: &NodeTrace, index: usize, at: Loc, why: &str) {
    let step = &file.steps[index];
    ctx.out.replayed_whole = false;
    ctx.out.stopped_ns.get_or_insert(step.clock_ns);
    let rest = file.steps.len() - index - 1;
    ctx.fail(
        Check::Trace1,
        at,
        &file.path,
        format!(
            "on {}: {why} (replay of this start stops; {rest} later steps not replayed)",
            describe_input(&step.input)
        ),
    );
}

/// Notes the chunks whose data the step just replayed wrote, a step whose
/// barrier was never passed: a kill during its batch's sync may have torn
/// them ([`NodeCtx::unsynced_writes`]).
fn note_unsynced_writes(ctx: &mut NodeCtx) {
    let journal = ctx.journal.clone();
    let events = journal.lock().expect("journal lock");
    ctx.unsynced_writes
        .extend(events.iter().filter_map(|e| match e {
            StoreEvent::Wrote { chunk, .. }
            | StoreEvent::Padded { chunk, .. }
            | StoreEvent::Cloned { chunk, .. } => Some(*chunk),
            _ => None,
        }));
}
