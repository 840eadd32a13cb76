//! The secondary ([00100]): applying in serial order, holding back what
//! arrives early, and reporting a gap that does not close.

use super::*;

impl<S: ChunkStore> ChunkserverActor<S> {
    /// Secondary side of act 1250: apply in serial order, or hold back.
    pub(super) fn on_apply(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        primary: Id,
        a: HeldApply,
        o: &mut O<S>,
    ) {
        let chunk = a.chunk;
        let meta = state.store.meta(chunk);
        // A skipped serial has nobody waiting for its answer.
        let skip = a.op == ApplyOp::Skip;
        let reply = |o: &mut O<S>, result| {
            if !skip {
                o.send(
                    primary,
                    Msg::Applied {
                        chunk,
                        stamp: a.stamp,
                        result,
                    },
                )
            }
        };
        if from_older_lease(&meta, &a) {
            return reply(o, Err(Failure::StaleLease));
        }
        if let Some(e) = state.store_failure(chunk) {
            // FAULT-2: this replica cannot store it; nothing is held back.
            return reply(o, Err(Failure::Store(e.clone())));
        }
        let expected = expected_serial(&meta, a.stamp.epoch);
        if already_applied(&meta, &a) && self.cfg.bug != Bug::SecondaryAppliesOutOfOrder {
            return;
        }
        let in_turn = a.version == meta.version && a.stamp.serial == expected;
        // The bug applies whatever arrives, in arrival order.
        let out_of_order_bug =
            self.cfg.bug == Bug::SecondaryAppliesOutOfOrder && a.version == meta.version;
        if !in_turn && !out_of_order_bug {
            // Early: a previous serial, or the new version, is still on its
            // way. Hold it, within bounds.
            if state.held.contains(&a) {
                return;
            }
            if state.held.len() as u32 >= self.cfg.mutations_in_flight_max {
                return reply(o, Err(Failure::Busy));
            }
            let s = state.to_mut();
            s.held.push(a);
            s.held.sort_by_key(|h| (h.chunk, h.stamp));
            return;
        }
        let s = state.to_mut();
        let result = match a.op {
            ApplyOp::WriteAt { offset, data } => match s.take_data(data) {
                Some(payload) => {
                    o.cancel_timer(Timer::AgeOut(data));
                    // [00106]: exactly the primary's offset, even over data.
                    let at = if self.cfg.bug == Bug::SecondaryAppendsAtOwnEnd {
                        s.store.chunk_len(chunk)
                    } else {
                        offset
                    };
                    s.store
                        .write_at(chunk, at, &payload, a.stamp)
                        .map_err(Failure::Store)
                }
                None => Err(Failure::DataMissing),
            },
            ApplyOp::PadTo { end } => s.store.pad_to(chunk, end, a.stamp).map_err(Failure::Store),
            // The primary no longer waits for this mutation: it failed.
            // Nothing to write, and nobody to answer.
            ApplyOp::Skip => Err(Failure::SecondaryFailed),
        };
        if let Err(Failure::Store(e)) = &result {
            self.report_store_fault(s, chunk, a.version, e, o);
        }
        if result.is_err() {
            // The serial is used up even though it failed here, so later
            // mutations are not held behind it; its region is undefined.
            let _ = s.store.set_applied(chunk, a.stamp);
        }
        self.save(s, o);
        reply(o, result);
    }

    /// Whether this secondary reports a serial it is missing. Only a lost
    /// message or a crash leaves a gap for good, so without faults (no
    /// reply timeouts) the timer is not armed and the model does not grow.
    pub(super) fn reports_gaps(&self) -> bool {
        self.cfg.reply_timeouts && self.cfg.bug != Bug::SecondaryWaitsForLostSerial
    }

    /// `Timer::HeldBack`: the first mutation held back is still waiting
    /// for an earlier serial of its lease. Ask its primary for the missing
    /// serials, and keep asking while the gap stays open (the report, or
    /// the answer, may be lost too).
    pub(super) fn report_gap(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
        let meta = state.store.meta(chunk);
        let Some(first) = first_behind_gap(state, chunk) else {
            return;
        };
        o.set_timer(
            Timer::HeldBack(chunk),
            Durations::range(self.cfg.durations.held_back_ms),
        );
        let serial = expected_serial(&meta, first.stamp.epoch);
        o.send(
            first.primary,
            Msg::ApplyGap {
                chunk,
                version: first.version,
                from: Stamp {
                    epoch: first.stamp.epoch,
                    serial,
                },
                until: first.stamp,
            },
        );
    }

    /// ORDER-3: drops the mutations of `chunk` held back that this
    /// replica has moved past (it learned a newer version, or applied a
    /// later lease's or the same serial's mutation): they can never be in
    /// turn again, and kept they would take places of the hold-back limit
    /// (`Busy` beyond it) until a restart. Answered as `on_apply` answers
    /// one that arrives that late, so their primary fails them at once.
    pub(super) fn drop_passed_held(
        &self,
        s: &mut ChunkserverState<S>,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
        if self.cfg.bug == Bug::SecondaryKeepsPassedHeld {
            return;
        }
        let meta = s.store.meta(chunk);
        let (gone, kept) = std::mem::take(&mut s.held)
            .into_iter()
            .partition(|h| passed(&meta, chunk, h));
        s.held = kept;
        for h in gone {
            let answered = self.cfg.bug != Bug::SecondaryDropsHeldUnanswered;
            if from_older_lease(&meta, &h) && h.op != ApplyOp::Skip && answered {
                o.send(
                    h.primary,
                    Msg::Applied {
                        chunk,
                        stamp: h.stamp,
                        result: Err(Failure::StaleLease),
                    },
                );
            }
        }
    }

    pub(super) fn apply_held(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
        let mut first = true;
        loop {
            // Before each held mutation is applied, not only the first:
            // applying one may pass another held copy of its stamp (a
            // `Skip` held beside the real `Apply` its primary gave up on,
            // the first to arrive applied), which is never in turn again.
            // Mutably only when something is dropped: a step that changes
            // nothing (a copy of an `Apply` already held, ignored) is no step.
            let bug_skips_drop = !first && self.cfg.bug == Bug::SecondaryKeepsHeldCopyOfApplied;
            first = false;
            if !bug_skips_drop && passed_held(state, chunk) {
                self.drop_passed_held(state.to_mut(), chunk, o);
            }
            let meta = state.store.meta(chunk);
            let next = state.held.iter().position(|h| {
                h.chunk == chunk
                    && h.version == meta.version
                    && h.stamp.serial == expected_serial(&meta, h.stamp.epoch)
            });
            let Some(i) = next else { return };
            let h = state.to_mut().held.remove(i);
            let primary = h.primary;
            self.on_apply(state, primary, h, o);
        }
    }
}

/// Whether a mutation of `chunk` held back here can never be in turn
/// again (ORDER-3): `drop_passed_held` drops exactly these.
fn passed_held<S: ChunkStore>(s: &ChunkserverState<S>, chunk: ChunkHandle) -> bool {
    let meta = s.store.meta(chunk);
    s.held.iter().any(|h| passed(&meta, chunk, h))
}

fn passed(meta: &ReplicaMeta, chunk: ChunkHandle, h: &HeldApply) -> bool {
    h.chunk == chunk && (from_older_lease(meta, h) || already_applied(meta, h))
}

/// From a lease older than one this replica already follows (its version
/// is older, or a later lease's mutation is applied here): never in turn.
fn from_older_lease(meta: &ReplicaMeta, a: &HeldApply) -> bool {
    a.version < meta.version || a.stamp.epoch < meta.applied.epoch
}

/// A second copy of a mutation already applied here (a resend answering
/// a gap report, or the network's duplicate): never in turn again.
fn already_applied(meta: &ReplicaMeta, a: &HeldApply) -> bool {
    a.stamp.epoch == meta.applied.epoch && a.stamp.serial <= meta.applied.serial
}

/// The serial a replica applies next under lease `epoch` ([00100]): the
/// one after the last it applied of that lease, or the first of a newer.
fn expected_serial(meta: &ReplicaMeta, epoch: LeaseEpoch) -> Serial {
    if epoch == meta.applied.epoch {
        meta.applied.serial + 1
    } else {
        1
    }
}

/// The first mutation held back behind a serial gap of `chunk`: one of
/// the replica's own version and of its current (or a newer) lease,
/// which therefore waits for an earlier serial from its primary, never
/// for the master. One of a newer version waits for the master's
/// `NewVersion` (which the master's grant timeout covers), and one of an
/// older lease will never be applied: neither is a gap to report.
pub(super) fn first_behind_gap<S: ChunkStore>(
    state: &ChunkserverState<S>,
    chunk: ChunkHandle,
) -> Option<&HeldApply> {
    let meta = state.store.meta(chunk);
    state.held.iter().find(|h| {
        h.chunk == chunk && h.version == meta.version && h.stamp.epoch >= meta.applied.epoch
    })
}

/// The chunks with a serial gap (`first_behind_gap`), in held order.
pub(super) fn gapped_chunks<S: ChunkStore>(
    state: &ChunkserverState<S>,
) -> SmallVec<[ChunkHandle; 2]> {
    let mut chunks = SmallVec::new();
    for h in &state.held {
        if !chunks.contains(&h.chunk) && first_behind_gap(state, h.chunk).is_some() {
            chunks.push(h.chunk);
        }
    }
    chunks
}
