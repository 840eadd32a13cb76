//! What a replayed step shows the requirements: acknowledgements, lease
//! intervals, store events and the changes the global pass rebuilds from
//! ([`super::Change`]).

use super::*;
use leasehold_model::client::ClientState;

/// The master storage `files` saved, latest first.
pub(super) fn master_saves(files: &[NodeTrace]) -> impl Iterator<Item = &MasterDurable> {
    files
        .iter()
        .rev()
        .flat_map(|f| f.steps.iter().rev())
        .flat_map(|s| s.commands.iter().rev())
        .filter_map(|c| match c {
            TraceCommand::Save(TraceStorage::Master(d)) => Some(d),
            _ => None,
        })
}

/// A step's commands, with its `Applied` answers in the order of their
/// stamps and everything else where it was. A secondary that takes an
/// `ApplyBatch` answers each of its mutations in one step, in serial order;
/// a foreign node may emit one step's commands in any order, so which of
/// them it applied first is the stamps', not the list's (the replay checks
/// that the step did what the model's actor does with the same input).
pub(crate) fn commands_in_apply_order(step: &TraceStep) -> Vec<&TraceCommand> {
    let is_applied = |c: &TraceCommand| {
        matches!(
            c,
            TraceCommand::Send {
                msg: Msg::Applied { .. },
                ..
            }
        )
    };
    let mut applied: Vec<&TraceCommand> = step.commands.iter().filter(|c| is_applied(c)).collect();
    applied.sort_by_key(|c| match c {
        TraceCommand::Send {
            msg: Msg::Applied { chunk, stamp, .. },
            ..
        } => (*chunk, *stamp),
        _ => unreachable!("only answers were taken"),
    });
    let mut applied = applied.into_iter();
    step.commands
        .iter()
        .map(|c| {
            if is_applied(c) {
                applied.next().expect("as many as were taken")
            } else {
                c
            }
        })
        .collect()
}

/// Checks over what the node recorded, whether or not its replay got here.
pub(super) fn recorded_checks(
    ctx: &mut NodeCtx,
    step: &TraceStep,
    at: Loc,
    path: &Path,
    open_primary: &BTreeMap<ChunkHandle, OpenLease>,
) {
    let mut late_reported: Vec<ChunkHandle> = vec![];
    let answers_gap_report = matches!(
        step.input,
        TraceInput::Msg {
            msg: Msg::ApplyGap { .. },
            ..
        }
    );
    // A primary's batch goes to each secondary alike: its stamps count once.
    let mut batches_seen: Vec<&Vec<(Stamp, ApplyOp)>> = vec![];
    let mut sent: Vec<(&TraceCommand, Option<(ChunkHandle, Stamp)>)> = vec![];
    for c in commands_in_apply_order(step) {
        match c {
            TraceCommand::Send {
                msg: Msg::ApplyBatch { chunk, applies, .. },
                ..
            } => {
                if !batches_seen.contains(&applies) {
                    batches_seen.push(applies);
                    check_batch_consecutive(ctx, *chunk, applies, at, path);
                    sent.extend(applies.iter().map(|(stamp, _)| (c, Some((*chunk, *stamp)))));
                }
            }
            _ => sent.push((c, None)),
        }
    }
    // LEASE-1 for a primary whose `Apply`s wait to go out together
    // (`Timer::SendApplies`): it orders the mutation in the step that arms
    // the timer, and the step that sends the batch later orders nothing:
    // the timer's own step, or one that is not a `Mutate` and cancels the
    // timer, the end of the lease sending what waited (`fail_in_flight`:
    // its lease clock can run out before the timer fires, and that step
    // comes after the lease's deadline by definition). Found by replaying
    // `primary-keeps-batch-after-lease` with the bug off (2026-12-08).
    let flushes_at_lease_end = !matches!(
        step.input,
        TraceInput::Msg {
            msg: Msg::Mutate { .. },
            ..
        }
    ) && step
        .commands
        .iter()
        .any(|c| matches!(c, TraceCommand::CancelTimer(Timer::SendApplies(_))));
    let sends_waiting =
        matches!(step.input, TraceInput::Timer(Timer::SendApplies(_))) || flushes_at_lease_end;
    for c in &step.commands {
        if let TraceCommand::SetTimer {
            timer: Timer::SendApplies(chunk),
            ..
        } = c
        {
            check_ordered_in_lease(
                ctx,
                step,
                at,
                path,
                open_primary,
                *chunk,
                None,
                &mut late_reported,
            );
        }
    }
    for (c, batched) in sent {
        let TraceCommand::Send { msg, .. } = c else {
            continue;
        };
        let (chunk, stamp, as_primary) = match (batched, msg) {
            (Some((chunk, stamp)), _) => (chunk, stamp, true),
            (None, msg) => match msg {
                // A skip uses up a serial that failed: nothing is applied.
                Msg::Apply {
                    op: ApplyOp::Skip, ..
                } => continue,
                // Applies sent again in answer to a gap report were ordered
                // (and checked) when first sent.
                Msg::Apply { .. } if answers_gap_report => continue,
                Msg::Apply { chunk, stamp, .. } => (*chunk, *stamp, true),
                Msg::Applied {
                    chunk,
                    stamp,
                    result: Ok(()),
                } => (*chunk, *stamp, false),
                Msg::ChunkFull { chunk, .. } => {
                    ctx.out.full.push((*chunk, at, path.to_path_buf()));
                    continue;
                }
                Msg::LeaseHolder { info, .. }
                | Msg::Located {
                    info: Some(info), ..
                } => {
                    ctx.out.named.push(Named {
                        clock_ns: step.clock_ns,
                        at,
                        file: path.to_path_buf(),
                        info: info.clone(),
                    });
                    continue;
                }
                _ => continue,
            },
        };
        // ORDER-2 ([00100]): stamps applied on one replica only grow; a
        // primary sends one stamp (or one batch) to each secondary in one
        // step.
        if let Some((last, last_at)) = ctx.last_applied.get(&chunk).copied() {
            let in_order = stamp > last || (as_primary && stamp == last && last_at == at);
            if !in_order {
                ctx.fail(
                    Check::Order2,
                    at,
                    path,
                    format!("applies {stamp:?} of chunk {chunk} after {last:?} (at {last_at})"),
                );
            }
        }
        let e = ctx.last_applied.entry(chunk).or_insert((stamp, at));
        if stamp >= e.0 {
            *e = (stamp, at);
        }
        if as_primary && !sends_waiting {
            let stamp = Some(stamp);
            check_ordered_in_lease(
                ctx,
                step,
                at,
                path,
                open_primary,
                chunk,
                stamp,
                &mut late_reported,
            );
        }
    }
}

/// ORDER-2's batch clause (the model's `batch_break`): an `ApplyBatch`
/// holds consecutive serials of one lease in increasing order.
pub(super) fn check_batch_consecutive(
    ctx: &mut NodeCtx,
    chunk: ChunkHandle,
    applies: &[(Stamp, ApplyOp)],
    at: Loc,
    path: &Path,
) {
    if let Some((a, b)) = batch_break(applies) {
        ctx.fail(
            Check::Order2,
            at,
            path,
            format!(
                "sends an ApplyBatch of chunk {chunk} with {b:?} after {a:?}: not consecutive serials of one lease"
            ),
        );
    }
}

/// LEASE-1: a primary orders mutations only within its lease (once per
/// step and chunk: it sends one stamp, or one batch, to every secondary).
#[allow(clippy::too_many_arguments)]
fn check_ordered_in_lease(
    ctx: &mut NodeCtx,
    step: &TraceStep,
    at: Loc,
    path: &Path,
    open_primary: &BTreeMap<ChunkHandle, OpenLease>,
    chunk: ChunkHandle,
    stamp: Option<Stamp>,
    late_reported: &mut Vec<ChunkHandle>,
) {
    if late_reported.contains(&chunk) {
        return;
    }
    late_reported.push(chunk);
    let Some(d) = open_primary
        .get(&chunk)
        .and_then(|l| l.deadline)
        .filter(|d| *d <= step.clock_ns)
    else {
        return;
    };
    let what = match stamp {
        Some(stamp) => format!("{stamp:?}"),
        None => "a mutation".to_string(),
    };
    ctx.fail(
        Check::Lease1,
        at,
        path,
        format!(
            "orders {what} of chunk {chunk} as primary {} ms after its lease ran out",
            ms(step.clock_ns - d)
        ),
    );
}

/// Notes a mutation the client acknowledges to its application in this
/// step, with the data its current operation carries.
pub(super) fn note_ack(
    ctx: &mut NodeCtx,
    c: &leasehold_model::client::ClientState<Bytes>,
    step: &TraceStep,
    report_to: Option<u64>,
    at: Loc,
    path: &Path,
) {
    let TraceInput::Msg {
        src,
        msg:
            Msg::MutationDone {
                chunk,
                data: _,
                offset,
                stamp,
            },
    } = &step.input
    else {
        return;
    };
    let reported = step.commands.iter().any(|cmd| {
        matches!(cmd, TraceCommand::Send { dst, msg: Msg::Done { result: OpResult::Mutated { .. }, .. } } if Some(*dst) == report_to)
    });
    if !reported {
        return;
    }
    // What the application was told: its current operation's record is
    // at this offset, whichever push the answer named (a client that takes
    // an earlier attempt's late answer for it acknowledges a record where
    // another is, which the global properties then find, as the model's).
    let Some(cur) = c.current.as_ref() else {
        return;
    };
    let (bytes, append) = match &cur.op {
        ClientOp::Append { data, .. } => (data.clone(), true),
        ClientOp::Write { data, .. } => (data.clone(), false),
        _ => return,
    };
    ctx.out.acks.push(Ack {
        chunk: *chunk,
        offset: *offset,
        stamp: *stamp,
        data: bytes,
        append,
        primary: *src,
        clock_ns: step.clock_ns,
        started_ns: ctx.op_started_ns,
        at,
        file: path.to_path_buf(),
        file_id: cur.op.file().unwrap_or_default(),
    });
    ctx.changes.push(Change::Ack(ctx.out.acks.len() - 1));
}

/// Notes a read the client answers its application with in this step:
/// a replica's data for the chunk range its current read asked for.
pub(super) fn note_read(
    ctx: &mut NodeCtx,
    c: &leasehold_model::client::ClientState<Bytes>,
    step: &TraceStep,
    report_to: Option<u64>,
    at: Loc,
) {
    let TraceInput::Msg {
        msg:
            Msg::ReadReply {
                chunk,
                offset,
                result: Ok(data),
            },
        ..
    } = &step.input
    else {
        return;
    };
    let reported = step.commands.iter().any(|cmd| {
        matches!(cmd, TraceCommand::Send { dst, msg: Msg::Done { result: OpResult::Read { .. }, .. } } if Some(*dst) == report_to)
    });
    let Some(ClientOp::Read { len, .. }) = c.current.as_ref().map(|cur| &cur.op) else {
        return;
    };
    if !reported {
        return;
    }
    ctx.out.reads.push(Read {
        chunk: *chunk,
        offset: *offset,
        len: *len,
        data: data.clone(),
        started_ns: ctx.op_started_ns,
        at,
    });
    ctx.changes.push(Change::Read(ctx.out.reads.len() - 1));
}

/// READ-1 (GFS §2.7) at a client's step: a read it sent goes to the
/// closest replica its located chunk names and it has not tried (the
/// model's step rule, `read_not_closest`).
pub(super) fn check_read_closest(
    ctx: &mut NodeCtx,
    cfg: &leasehold_model::config::ProtocolCfg,
    node: u64,
    before: Option<&leasehold_model::client::Phase>,
    after: &leasehold_model::client::ClientState<Bytes>,
    at: Loc,
    path: &Path,
) {
    let me = stateright::actor::Id::from(node as usize);
    if let Some((went, closest)) = read_not_closest(cfg, me, before, after) {
        ctx.fail(
            Check::Read1,
            at,
            path,
            format!(
                "reads from replica {} though replica {} is closer and not yet tried",
                usize::from(went),
                usize::from(closest)
            ),
        );
    }
}

/// APPEND-4 on the client's side: a record append moves on from chunk `i`
/// only to `i + 1`, in the step that takes the `ChunkFull` of the chunk it
/// was mutating (the model's step rule, `skipped_chunk`).
pub(super) fn check_next_chunk(
    ctx: &mut NodeCtx,
    before: &leasehold_model::client::ClientState<Bytes>,
    after: &leasehold_model::client::ClientState<Bytes>,
    step: &TraceStep,
    at: Loc,
    path: &Path,
) {
    let chunk_full = match &step.input {
        TraceInput::Msg {
            msg: Msg::ChunkFull { chunk, .. },
            ..
        } => Some(*chunk),
        _ => None,
    };
    if let Some((from, to)) = skipped_chunk(before, after, chunk_full) {
        let why = match chunk_full {
            Some(chunk) => format!("on a ChunkFull for chunk {chunk}"),
            None => "with no ChunkFull".to_string(),
        };
        ctx.fail(
            Check::Append4,
            at,
            path,
            format!("moved its record append from chunk index {from} to {to} {why}"),
        );
    }
}

/// PUSH-1 on the client's side: a client sends a mutation only in the
/// step that takes the chain's acknowledgement (`DataPushed`) of that
/// mutation's data (the model's step rule, `STEP_PUSH_ORDER`).
pub(super) fn check_mutate_after_push(ctx: &mut NodeCtx, step: &TraceStep, at: Loc, path: &Path) {
    let pushed = match &step.input {
        TraceInput::Msg {
            msg: Msg::DataPushed { data },
            ..
        } => Some(*data),
        _ => None,
    };
    let mutated: Vec<_> = step
        .commands
        .iter()
        .filter_map(|c| match c {
            TraceCommand::Send {
                msg: Msg::Mutate { data, .. },
                ..
            } => Some(*data),
            _ => None,
        })
        .collect();
    if !mutated.is_empty() && !pushed.is_some_and(|d| mutated.contains(&d)) {
        let took = match pushed {
            Some(d) => format!("a DataPushed for {d:?}"),
            None => "no DataPushed".to_string(),
        };
        ctx.fail(
            Check::Push1,
            at,
            path,
            format!("sends the mutation of {mutated:?} in a step that took {took}"),
        );
    }
}

/// WRITE-2 on the primary's side ([00101]): a mutation a replica failed
/// is failed at once and never acknowledged, so a primary that took an
/// `Applied` error for a stamp never sends `MutationDone` for it (within
/// one start; `failed` holds the stamps failed so far). The trace-level
/// form of the model's step rule `STEP_WRITE_FAILURE_HIDDEN`.
pub(super) fn check_failure_not_acked(
    ctx: &mut NodeCtx,
    failed: &mut std::collections::HashSet<(ChunkHandle, Stamp)>,
    step: &TraceStep,
    at: Loc,
    path: &Path,
) {
    if let TraceInput::Msg {
        msg:
            Msg::Applied {
                chunk,
                stamp,
                result: Err(_),
            },
        ..
    } = &step.input
    {
        failed.insert((*chunk, *stamp));
    }
    for c in &step.commands {
        if let TraceCommand::Send {
            msg: Msg::MutationDone { chunk, stamp, .. },
            dst,
        } = c
        {
            if failed.contains(&(*chunk, *stamp)) {
                ctx.fail(
                    Check::Write2,
                    at,
                    path,
                    format!(
                        "acknowledges {stamp:?} of chunk {chunk} to {dst} after a replica failed it"
                    ),
                );
            }
        }
    }
}

/// A replica's `Applied` error the primary's step takes, and whether the
/// primary was still waiting for that replica's answer for the stamp
/// before the step (WRITE-2's other half).
pub(super) struct FailureBefore {
    chunk: ChunkHandle,
    stamp: Stamp,
    replica: u64,
    awaited: bool,
}

pub(super) fn failure_before(
    before: &leasehold_model::chunkserver::ChunkserverState<ReplayStore>,
    step: &TraceStep,
) -> Option<FailureBefore> {
    let TraceInput::Msg {
        src,
        msg:
            Msg::Applied {
                chunk,
                stamp,
                result: Err(_),
            },
    } = &step.input
    else {
        return None;
    };
    Some(FailureBefore {
        chunk: *chunk,
        stamp: *stamp,
        replica: *src,
        awaited: awaits_replica(before, Id::from(*src as usize), *chunk, *stamp),
    })
}

/// WRITE-2 at the step that takes a replica's error ([00101]): the primary
/// fails the mutation at once, so it leaves the in-flight list in that
/// step (the model's `STEP_WRITE_FAILURE_HIDDEN`, its other half, with the
/// same `awaits_replica` and `keeps_in_flight`: a primary that kept it
/// could acknowledge it once the others answer).
pub(super) fn check_failure_ends_mutation(
    ctx: &mut NodeCtx,
    before: &FailureBefore,
    after: &leasehold_model::chunkserver::ChunkserverState<ReplayStore>,
    at: Loc,
    path: &Path,
) {
    if before.awaited && keeps_in_flight(after, before.chunk, before.stamp) {
        ctx.fail(
            Check::Write2,
            at,
            path,
            format!(
                "keeps {:?} of chunk {} in flight after replica {} failed it",
                before.stamp, before.chunk, before.replica
            ),
        );
    }
}

/// ORDER-3's answers ([00100], [00101]): a held-back mutation the step
/// dropped is answered as a late arrival is, `StaleLease` for an older
/// lease's and nothing for a copy already applied (the model's
/// `STEP_HELD_MISANSWERED`, the same `held_drop_misanswered`).
pub(super) fn check_held_drops_answered(
    ctx: &mut NodeCtx,
    before: &[(
        leasehold_model::chunkserver::HeldApply,
        leasehold_model::types::ReplicaMeta,
    )],
    after: &leasehold_model::chunkserver::ChunkserverState<ReplayStore>,
    step: &TraceStep,
    at: Loc,
    path: &Path,
) {
    let sent = step.commands.iter().filter_map(|c| match c {
        TraceCommand::Send { dst, msg } => Some((Id::from(*dst as usize), msg)),
        _ => None,
    });
    if let Some((chunk, stamp)) = held_drop_misanswered(before, after, sent) {
        ctx.fail(
            Check::Order3,
            at,
            path,
            format!(
                "drops held-back mutation {stamp:?} of chunk {chunk} without the answer a late \
                 arrival gets (StaleLease for an older lease's, none for a copy already applied)"
            ),
        );
    }
}

/// PUSH-2 ([0095]): pushed data that ages out leaves the buffer (the
/// model's step rule `STEP_STALE_DATA`, its age-out half).
pub(super) fn check_aged_out(
    ctx: &mut NodeCtx,
    after: &leasehold_model::chunkserver::ChunkserverState<ReplayStore>,
    step: &TraceStep,
    at: Loc,
    path: &Path,
) {
    if let TraceInput::Timer(Timer::AgeOut(data)) = &step.input {
        if holds_push(after, *data) {
            ctx.fail(
                Check::Push2,
                at,
                path,
                format!("keeps {data:?} in its buffer after it aged out"),
            );
        }
    }
}

/// PUSH-2 with age-out on (the real nodes always run it): after a
/// chunkserver's step, the `AgeOut` timers armed (as the trace's
/// `SetTimer`, `CancelTimer` and firings left them) are exactly the
/// pushes buffered, the model's step rule with the same
/// `age_out_unmatched`. A push buffered without its timer would stay
/// until a mutation used it; a timer left for data gone would fire on
/// nothing, or on the next push of that data too early.
pub(super) fn check_age_out_armed(
    ctx: &mut NodeCtx,
    after: &leasehold_model::chunkserver::ChunkserverState<ReplayStore>,
    armed: &HashMap<Timer, u64>,
    at: Loc,
    path: &Path,
) {
    if let Some(data) = age_out_unmatched(after, armed.keys()) {
        let what = if holds_push(after, data) {
            format!("buffers {data:?} without its age-out timer armed")
        } else {
            format!("keeps an age-out timer armed for {data:?}, which it no longer buffers")
        };
        ctx.fail(Check::Push2, at, path, what);
    }
}

/// PUSH-2 with FAULT-2: after a chunkserver's step, nothing is buffered
/// for a chunk its replica has failed (the model's step rule
/// `STEP_STALE_DATA`, with the same `push_for_failed_chunk`).
pub(super) fn check_no_push_for_failed_chunk(
    ctx: &mut NodeCtx,
    after: &leasehold_model::chunkserver::ChunkserverState<ReplayStore>,
    at: Loc,
    path: &Path,
) {
    if let Some((data, chunk)) = push_for_failed_chunk(after) {
        ctx.fail(
            Check::Push2,
            at,
            path,
            format!("keeps {data:?} pushed for chunk {chunk}, whose replica here failed"),
        );
    }
}

/// The pushed data a chunkserver's step may write (a `Mutate` at the
/// primary, an `Apply` of a write at a secondary, or each write of an
/// `ApplyBatch`), and whether its buffer held all of it before the step
/// (PUSH-2's other half).
pub(super) struct DataBefore {
    /// Each data id, whether the buffer held its whole push, and the
    /// stamp of the mutation that writes it (known before the step for an
    /// `Apply` and a batch, not for a `Mutate`).
    data: Vec<(leasehold_model::types::DataId, bool, Option<Stamp>)>,
    /// From a batch: some of its mutations may have been applied before
    /// (a repeated batch), so only data held before is checked.
    batch: bool,
}

pub(super) fn data_before(
    before: &leasehold_model::chunkserver::ChunkserverState<ReplayStore>,
    step: &TraceStep,
) -> Option<DataBefore> {
    let TraceInput::Msg { msg, .. } = &step.input else {
        return None;
    };
    let (data, batch) = match msg {
        // A primary's write of a `Mutate` is stamped only as it is taken.
        Msg::Mutate { data, .. } => (vec![(*data, None)], false),
        // An `Apply` may be skipped (its data missing) and release a held
        // one's write in the same step (nemesis seed 4501): only a write
        // under its own stamp uses its data.
        Msg::Apply {
            stamp,
            op: ApplyOp::WriteAt { data, .. },
            ..
        } => (vec![(*data, Some(*stamp))], false),
        Msg::ApplyBatch { applies, .. } => {
            let data = applies.iter().filter_map(|(stamp, op)| match op {
                ApplyOp::WriteAt { data, .. } => Some((*data, Some(*stamp))),
                _ => None,
            });
            (data.collect(), true)
        }
        _ => return None,
    };
    let data = data
        .into_iter()
        .map(|(d, stamp)| (d, holds_whole_push(before, d), stamp))
        .collect();
    Some(DataBefore { data, batch })
}

/// PUSH-2 ([0095], [00101]) at a step that writes a mutation's data: the
/// replica applies only data whose push it holds whole, and the write
/// uses it up, so a duplicated or repeated mutation finds nothing to
/// apply again (the model's step rule `STEP_STALE_DATA`, its other half,
/// with the same `holds_whole_push` and `holds_push`).
pub(super) fn check_data_used_up(
    ctx: &mut NodeCtx,
    before: &DataBefore,
    after: &leasehold_model::chunkserver::ChunkserverState<ReplayStore>,
    at: Loc,
    path: &Path,
) {
    // Which writes the step made: the stamps written, since a batch's
    // mutation may also be held back behind a gap or refused (a store that
    // failed an earlier one of the batch: nemesis seed 11, 2026-12-07), and
    // then its data stays for later, unwritten; and a skipped `Apply` may
    // release a held one's write (seed 4501, 2026-12-08).
    let written: Vec<Stamp> = ctx
        .journal
        .lock()
        .expect("journal lock")
        .iter()
        .filter_map(|e| match e {
            StoreEvent::Wrote { stamp, .. } => Some(*stamp),
            _ => None,
        })
        .collect();
    if written.is_empty() {
        return;
    }
    for &(data, held, stamp) in &before.data {
        if stamp.is_some_and(|s| !written.contains(&s)) {
            continue;
        }
        let kept = holds_push(after, data);
        if (!held && !before.batch) || (held && kept) {
            ctx.fail(
                Check::Push2,
                at,
                path,
                format!(
                    "writes {data:?} {}",
                    if held {
                        "and keeps it in its buffer, for a repeated mutation to apply again"
                    } else {
                        "though its buffer did not hold the whole push"
                    }
                ),
            );
        }
    }
}

/// LEASE-2 ([0091]) at a chunkserver's step: no step re-arms a lease
/// clock that is running (armed before the step), except one that sends a
/// new request for the chunk's lease, whose clock starts again for it (the
/// model's `STEP_LEASE_CLOCK_REARMED`, the same `rearmed_lease_clock`). A
/// clock restarted at a grant would let the lease outlast its request's
/// deadline, and so the master's.
pub(super) fn check_lease_clock_not_rearmed(
    ctx: &mut NodeCtx,
    step: &TraceStep,
    armed: &HashMap<Timer, u64>,
    at: Loc,
    path: &Path,
) {
    let requested: Vec<ChunkHandle> = step
        .commands
        .iter()
        .filter_map(|c| match c {
            TraceCommand::Send {
                msg: Msg::LeaseRequest { chunk, .. },
                ..
            } => Some(*chunk),
            _ => None,
        })
        .collect();
    let set = step.commands.iter().filter_map(|c| match c {
        TraceCommand::SetTimer { timer, .. } => Some(timer),
        _ => None,
    });
    if let Some(t) = rearmed_lease_clock(|t| armed.contains_key(t), set, &requested) {
        let Timer::LeaseClock(chunk, _) = t else {
            unreachable!("rearmed_lease_clock finds lease clocks only")
        };
        ctx.fail(
            Check::Lease2,
            at,
            path,
            format!("re-arms its running lease clock {t:?} of chunk {chunk}"),
        );
    }
}

/// A chunkserver's lease of the chunk a step's `LeaseGrant` is for, as it
/// was before the step, with the grant (for LEASE-2's step rule).
pub(super) struct GrantBefore {
    chunk: ChunkHandle,
    epoch: leasehold_model::types::LeaseEpoch,
    extension: u32,
    lease: Option<ReplicaLease>,
}

pub(super) fn grant_taken_before(
    before: &leasehold_model::chunkserver::ChunkserverState<ReplayStore>,
    step: &TraceStep,
) -> Option<GrantBefore> {
    match &step.input {
        TraceInput::Msg {
            msg:
                Msg::LeaseGrant {
                    chunk,
                    epoch,
                    extension,
                    ..
                },
            ..
        } => Some(GrantBefore {
            chunk: *chunk,
            epoch: *epoch,
            extension: *extension,
            lease: before.lease(*chunk).cloned(),
        }),
        _ => None,
    }
}

/// LEASE-2 at the step that takes a grant ([0091]): a grant makes the
/// replica the lease holder only when it answers the replica's own
/// request, still pending: the same epoch and the same extension of it
/// (the model's step rule, `grant_taken_unasked`). A grant taken otherwise
/// puts the lease on a clock that started for another request, or none.
pub(super) fn check_grant_answers_request(
    ctx: &mut NodeCtx,
    before: &GrantBefore,
    after: &leasehold_model::chunkserver::ChunkserverState<ReplayStore>,
    at: Loc,
    path: &Path,
) {
    let unasked = grant_taken_unasked(
        before.lease.as_ref(),
        after,
        before.chunk,
        before.epoch,
        before.extension,
    );
    if unasked {
        ctx.fail(
            Check::Lease2,
            at,
            path,
            format!(
                "takes the grant of epoch {} (extension {}) of chunk {} though no such request \
                 of its own was pending (its lease before: {:?})",
                before.epoch, before.extension, before.chunk, before.lease
            ),
        );
    }
}

/// FAULT-2 ([00101]) at the master's step that takes a replica's report
/// that its store failed a change of a chunk at the chunk's current
/// version: the replica is no longer counted up to date after it (the
/// model's `failed_replica_still_counted`).
pub(super) fn check_failed_replica_left_out(
    ctx: &mut NodeCtx,
    before: &MasterState,
    after: &MasterState,
    step: &TraceStep,
    at: Loc,
    path: &Path,
) {
    let TraceInput::Msg {
        src,
        msg: Msg::ReplicaFailed { chunk, version, .. },
    } = &step.input
    else {
        return;
    };
    let src = Id::from(*src as usize);
    if failed_replica_still_counted(before, after, src, *chunk, *version) {
        ctx.fail(
            Check::Fault2,
            at,
            path,
            format!(
                "still counts node {} up to date for chunk {chunk} after its report that its \
                 store failed a change at the chunk's version {version}",
                usize::from(src)
            ),
        );
    }
}

/// The result a client's step reported, if any: sent to its application
/// (`Done`), or kept in its state (a scripted client without one).
fn reported<'a>(
    before: &ClientState<Bytes>,
    after: &'a ClientState<Bytes>,
    step: &'a TraceStep,
) -> Option<&'a OpResult<Bytes>> {
    step.commands
        .iter()
        .find_map(|c| match c {
            TraceCommand::Send {
                msg: Msg::Done { result, .. },
                ..
            } => Some(result),
            _ => None,
        })
        .or_else(|| {
            (after.results.len() > before.results.len())
                .then(|| after.results.get(before.results.len()))
                .flatten()
        })
}

/// At a client's step that reports a result for the operation under way:
/// CLIENT-1, the result answers that operation (`result_answers`, the
/// model's step rule); APPEND-5 and WRITE-2, a record append or write is
/// reported failed, for a failure another try could mend, only with its
/// retries used up (the model's `STEP_APPEND_GAVE_UP` and
/// `STEP_WRITE_FAILURE_HIDDEN`; a failure no retry can mend, a refused
/// size or path, is reported at once by the retry policy).
pub(super) fn check_result(
    ctx: &mut NodeCtx,
    cfg: &leasehold_model::config::ProtocolCfg,
    before: &ClientState<Bytes>,
    after: &ClientState<Bytes>,
    step: &TraceStep,
    at: Loc,
    path: &Path,
) {
    let (Some(result), Some(cur)) = (reported(before, after, step), &before.current) else {
        return;
    };
    if !result_answers(&cur.op, result) {
        ctx.fail(
            Check::Client1,
            at,
            path,
            format!(
                "reports {result:?} for the operation under way, {:?}",
                cur.op
            ),
        );
    }
    if let OpResult::Failed(reason) = result {
        let check = match cur.op {
            ClientOp::Append { .. } => Some(Check::Append5),
            ClientOp::Write { .. } => Some(Check::Write2),
            _ => None,
        };
        if let Some(check) = check {
            if reason.is_transient() && cur.retries < cfg.client_retries_max {
                ctx.fail(
                    check,
                    at,
                    path,
                    format!(
                        "reports its operation failed ({reason:?}) after {} of {} retries",
                        cur.retries, cfg.client_retries_max
                    ),
                );
            }
        }
    }
}

/// After a replayed step: store events, lease intervals, saved views.
#[allow(clippy::too_many_arguments)]
pub(super) fn after_step(
    ctx: &mut NodeCtx,
    state: &Option<NodeState<ReplayStore>>,
    step: &TraceStep,
    at: Loc,
    path: &Path,
    armed: &HashMap<Timer, u64>,
    open_primary: &mut BTreeMap<ChunkHandle, OpenLease>,
    open_master: &mut BTreeMap<ChunkHandle, (u64, u64, Loc)>,
    pending_saves: &mut Vec<(StoreView, u64)>,
) {
    let clock = step.clock_ns;
    match state {
        Some(NodeState::Chunkserver(s)) => {
            let events: Vec<StoreEvent> =
                std::mem::take(&mut *ctx.journal.lock().expect("journal lock"));
            for e in events {
                ctx.changes.push(Change::Store(e.clone()));
                match e {
                    StoreEvent::Version { chunk, version } => {
                        ctx.out.versions.push((chunk, clock, version));
                    }
                    // A clone's first part empties the replica (version 0),
                    // its last gives it the clone's version.
                    StoreEvent::Cloned {
                        chunk, from, done, ..
                    } if from == 0 || done.is_some() => {
                        let version = done.map_or(0, |m| m.version);
                        ctx.out.versions.push((chunk, clock, version));
                    }
                    StoreEvent::RefusedPastEnd { chunk, end } => ctx.fail(
                        Check::Append3,
                        at,
                        path,
                        format!(
                            "asked its store to write chunk {chunk} up to byte {end}, past the \
                             chunk's end (the store refused): a record placed where it does not \
                             fit, which the fit check and padding rule out ([00105])"
                        ),
                    ),
                    _ => {}
                }
            }
            let leases: Vec<(ReplicaLease, Option<u64>)> = s
                .leases
                .iter()
                .map(|l| {
                    let deadline = s.lease_timer(l.chunk).and_then(|t| armed.get(&t).copied());
                    (l.clone(), deadline)
                })
                .collect();
            if leases != ctx.last_leases {
                ctx.changes.push(Change::Leases(leases.clone()));
                ctx.last_leases = leases;
            }
            // LEASE-6 ([00101]): after every step, a mutation in flight is
            // one ordered under the lease the replica still holds (the
            // model's `STEP_IN_FLIGHT_WITHOUT_LEASE`).
            if let Some((chunk, stamp)) = in_flight_without_lease(s) {
                ctx.fail(
                    Check::Lease6,
                    at,
                    path,
                    format!(
                        "keeps mutation {stamp:?} of chunk {chunk} in flight without holding that lease"
                    ),
                );
            }
            // ORDER-3 ([00100]): after every step, each mutation held back
            // can still be in turn (the model's `STEP_HELD_PASSED`).
            if let Some((chunk, stamp)) = held_passed(s) {
                ctx.fail(
                    Check::Order3,
                    at,
                    path,
                    format!(
                        "holds back mutation {stamp:?} of chunk {chunk}, which it has moved past"
                    ),
                );
            }
            // ORDER-4 ([00100], [00101]): a `Skip` the step sent names no
            // serial the primary still waits for (the model's
            // `STEP_SKIPPED_IN_FLIGHT`).
            let sent = step.commands.iter().filter_map(|c| match c {
                TraceCommand::Send { msg, .. } => Some(msg),
                _ => None,
            });
            if let Some((chunk, stamp)) = skips_in_flight(s, sent) {
                ctx.fail(
                    Check::Order4,
                    at,
                    path,
                    format!(
                        "answers a gap report with Skip for {stamp:?} of chunk {chunk}, still in flight"
                    ),
                );
            }
            // LEASE-5 ([0091]): a replica answers every revocation, and
            // after the step that answers one it neither holds nor asks for
            // that lease (the model's `STEP_REVOKED_LEASE_KEPT`).
            if let TraceInput::Msg {
                msg: Msg::RevokeLease { chunk, epoch },
                ..
            } = &step.input
            {
                let kept = s
                    .lease(*chunk)
                    .is_some_and(|l| l.epoch == *epoch && (l.holding || l.requested));
                if kept {
                    ctx.fail(
                        Check::Lease5,
                        at,
                        path,
                        format!(
                            "still holds or asks for lease {epoch} of chunk {chunk} after answering its revocation"
                        ),
                    );
                }
            }
            // LEASE-1: the lease ends at the step that stops holding it or
            // at its timer's deadline, whichever comes first.
            let ended: Vec<ChunkHandle> = open_primary
                .iter()
                .filter(|(chunk, l)| {
                    !s.lease(**chunk)
                        .is_some_and(|now| now.holding && now.epoch == l.epoch)
                })
                .map(|(c, _)| *c)
                .collect();
            for chunk in ended {
                let l = open_primary.remove(&chunk).expect("listed above");
                ctx.out.primary.push(Interval {
                    chunk,
                    epoch: l.epoch,
                    from_ns: l.from_ns,
                    to_ns: Some(l.deadline.map_or(clock, |d| d.min(clock))),
                    ran_out: l.deadline.is_some_and(|d| d <= clock),
                    from: l.from,
                    file: path.to_path_buf(),
                });
            }
            for l in s.leases.iter().filter(|l| l.holding) {
                let deadline = s.lease_timer(l.chunk).and_then(|t| armed.get(&t).copied());
                let open = open_primary.entry(l.chunk).or_insert(OpenLease {
                    epoch: l.epoch,
                    from_ns: clock,
                    from: at,
                    deadline,
                    untimed_reported: false,
                });
                open.deadline = deadline;
                if deadline.is_none() && !open.untimed_reported {
                    open.untimed_reported = true;
                    ctx.fail(
                        Check::Lease1,
                        at,
                        path,
                        format!(
                            "holds lease {} of chunk {} with no timer armed to end it",
                            l.epoch, l.chunk
                        ),
                    );
                }
            }
            if !pending_saves.is_empty() {
                let view = StoreView::of(&s.store);
                let mut expired = vec![];
                pending_saves.retain(|(v, k)| {
                    if *v == view {
                        ctx.saves_from_later_steps += 1;
                        false
                    } else if step.n - *k + 1 >= BATCH_MSGS_MAX as u64 {
                        expired.push(*k);
                        false
                    } else {
                        true
                    }
                });
                for k in expired {
                    ctx.fail(
                        Check::Trace1,
                        Loc { step: k, ..at },
                        path,
                        "a saved store view matches no replayed store up to the end of its batch"
                            .into(),
                    );
                }
            }
        }
        Some(NodeState::Master(m)) => {
            if ctx.last_master.as_deref() != Some(m) {
                let m = Arc::new(m.clone());
                ctx.changes.push(Change::Master(m.clone()));
                ctx.out.progress.push(Progress {
                    clock_ns: clock,
                    at,
                    file: path.to_path_buf(),
                    idle: false,
                    failed: false,
                    master: Some(m.clone()),
                });
                ctx.last_master = Some(m);
            }
            master_leases(ctx, m, step, at, path, open_master)
        }
        Some(NodeState::Client(c)) => {
            if c.cache != ctx.last_cache {
                ctx.changes.push(Change::Cache(c.cache.clone()));
                ctx.last_cache = c.cache.clone();
            }
            // An operation starts when the client takes it up: with none
            // before, or in the step that reports the previous one done.
            let has = c.current.is_some();
            let reported = step.commands.iter().any(|cmd| {
                matches!(
                    cmd,
                    TraceCommand::Send {
                        msg: Msg::Done { .. },
                        ..
                    }
                )
            });
            if has && (!ctx.had_op || reported) {
                ctx.op_started_ns = clock;
            }
            ctx.had_op = has;
            let idle = !has && c.queue.is_empty();
            let failed = step.commands.iter().any(|cmd| {
                matches!(
                    cmd,
                    TraceCommand::Send {
                        msg: Msg::Done {
                            result: OpResult::Failed(_),
                            ..
                        },
                        ..
                    }
                )
            });
            if failed || ctx.was_idle != Some(idle) {
                ctx.out.progress.push(Progress {
                    clock_ns: clock,
                    at,
                    file: path.to_path_buf(),
                    idle,
                    failed,
                    master: None,
                });
                ctx.was_idle = Some(idle);
            }
        }
        None => {}
    }
    if !ctx.changes.is_empty() {
        let changes = std::mem::take(&mut ctx.changes);
        ctx.out.observed.push(Observed { at, changes });
    }
}

/// LEASE-1 and VERSION-1 on the master's side: when its view of a lease
/// becomes and stops being `Granted`.
pub(super) fn master_leases(
    ctx: &mut NodeCtx,
    m: &MasterState,
    step: &TraceStep,
    at: Loc,
    path: &Path,
    open: &mut BTreeMap<ChunkHandle, (u64, u64, Loc)>,
) {
    let clock = step.clock_ns;
    let granted = |chunk: ChunkHandle| match m.lease(chunk) {
        Some(LeaseView::Granted { epoch, .. }) => Some(*epoch),
        _ => None,
    };
    let ended: Vec<ChunkHandle> = open
        .iter()
        .filter(|(chunk, (epoch, ..))| granted(**chunk) != Some(*epoch))
        .map(|(c, _)| *c)
        .collect();
    for chunk in ended {
        let (epoch, from_ns, from) = open.remove(&chunk).expect("listed above");
        ctx.out.master_leases.push(Interval {
            chunk,
            epoch,
            from_ns,
            to_ns: Some(clock),
            ran_out: matches!(step.input, TraceInput::Timer(_)),
            from,
            file: path.to_path_buf(),
        });
    }
    for c in &step.commands {
        if let TraceCommand::Send {
            msg:
                Msg::LeaseGrant {
                    chunk,
                    epoch,
                    version,
                    ..
                },
            ..
        } = c
        {
            if open.get(chunk).map(|o| o.0) != Some(*epoch) && granted(*chunk) == Some(*epoch) {
                open.insert(*chunk, (*epoch, clock, at));
                ctx.out.grants.push(Grant {
                    chunk: *chunk,
                    epoch: *epoch,
                    version: *version,
                    clock_ns: clock,
                    at,
                    file: path.to_path_buf(),
                });
            }
        }
    }
}
