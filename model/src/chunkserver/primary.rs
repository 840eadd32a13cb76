//! The primary ([0099], [00101], [00104]–[00106]): serial numbers, the
//! local apply, forwarding to the secondaries, the answer to the client,
//! and answering a secondary's gap report.

use super::*;

impl<S: ChunkStore> ChunkserverActor<S> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_mutate(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        client: Id,
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
        kind: MutationKind,
        data: DataId,
        o: &mut O<S>,
    ) {
        let fail = |o: &mut O<S>, reason| {
            o.send(
                client,
                Msg::MutationFailed {
                    chunk,
                    data,
                    reason,
                },
            )
        };
        let granting = state
            .lease(chunk)
            .is_some_and(|l| !l.holding && l.requested && l.epoch == epoch);
        if granting {
            let early = EarlyMutate {
                client,
                chunk,
                epoch,
                kind,
                data,
            };
            if state.early.contains(&early) {
                return;
            }
            if state.early.len() as u32 >= self.cfg.mutations_in_flight_max {
                return fail(o, Failure::Busy);
            }
            let s = state.to_mut();
            s.early.push(early);
            s.early.sort();
            return;
        }
        // The client names the lease it was told of: under another epoch
        // the chunk may no longer be its file's (a snapshot's copy left it
        // to the snapshot, which leased it anew), and a client whose lease
        // ended is told to ask the master again ([0094]).
        let any_epoch = self.cfg.bug == Bug::PrimaryTakesAnyEpoch;
        let Some(lease) = state
            .lease(chunk)
            .filter(|l| l.holding && (l.epoch == epoch || any_epoch))
            .cloned()
        else {
            return fail(o, Failure::NotPrimary);
        };
        if state.store.meta(chunk).applied.epoch > lease.epoch {
            // LEASE-1, ORDER-2: this replica already applied a mutation of a
            // newer lease, so its own lease is over whatever its clock says
            // (only a broken clock bound gets here). Writing under the old
            // epoch now would put an older stamp after a newer one and hold
            // back every later Apply of the newer lease.
            self.drop_lease(state, chunk, o);
            return fail(o, Failure::NotPrimary);
        }
        if state.in_flight.len() as u32 >= self.cfg.mutations_in_flight_max {
            return fail(o, Failure::Busy);
        }
        if let Some(e) = state.store_failure(chunk) {
            // FAULT-2: reported already; the master ends this lease.
            return fail(o, Failure::Store(e.clone()));
        }
        if lease.replica_failed {
            return fail(o, Failure::SecondaryFailed);
        }
        if !state.has_data(data) {
            return fail(o, Failure::DataMissing);
        }
        let s = state.to_mut();
        // PUSH-2 ([0095]): the mutation uses the data up, so a duplicated
        // or repeated `Mutate` for it finds nothing and fails.
        let payload = if self.cfg.bug == Bug::PrimaryKeepsUsedData {
            s.data(data).expect("checked above")
        } else {
            s.take_data(data).expect("checked above")
        };
        o.cancel_timer(Timer::AgeOut(data));
        let chunk_size = self.cfg.chunk_size;
        let too_large = match kind {
            MutationKind::Append => {
                payload.len() > self.cfg.record_size_max()
                    && self.cfg.bug != Bug::PrimarySkipsSizeCheck
            }
            MutationKind::Write { offset } => offset + payload.len() > chunk_size,
        };
        if too_large {
            return fail(o, Failure::TooLarge);
        }
        let stamp = Stamp {
            epoch: lease.epoch,
            serial: lease.next_serial,
        };
        let (op, offset) = match kind {
            MutationKind::Append => {
                let end = s.store.chunk_len(chunk);
                let fits = (end + payload.len() <= chunk_size
                    && self.cfg.bug != Bug::PrimaryPadsAlthoughRecordFits)
                    || self.cfg.bug == Bug::PrimarySkipsFitCheck;
                if fits {
                    (ApplyOp::WriteAt { offset: end, data }, Some(end))
                } else {
                    // [00105]: pad to the full size; the client retries on
                    // the next chunk.
                    (ApplyOp::PadTo { end: chunk_size }, None)
                }
            }
            MutationKind::Write { offset } => (ApplyOp::WriteAt { offset, data }, Some(offset)),
        };
        let applied = match op {
            ApplyOp::WriteAt { offset, .. } => s.store.write_at(chunk, offset, &payload, stamp),
            ApplyOp::PadTo { end } => s.store.pad_to(chunk, end, stamp),
            ApplyOp::Skip => unreachable!("a primary skips only in answer to a gap report"),
        };
        if let Err(e) = applied {
            let version = s.store.meta(chunk).version;
            self.report_store_fault(s, chunk, version, &e, o);
            return fail(o, Failure::Store(e));
        }
        self.save(s, o);
        let l = s.lease_mut(chunk);
        match self.cfg.bug {
            Bug::PrimaryReusesSerial => {}
            Bug::PrimaryCountsSerialsDown => l.next_serial = l.next_serial.wrapping_sub(1),
            _ => l.next_serial += 1,
        }
        // Keep the lease while mutating ([0091]): the next heartbeat asks
        // for an extension.
        if !l.requested && l.extensions < self.cfg.extensions_max && !l.extension_wanted {
            l.extension_wanted = true;
            if !s.heartbeat_due {
                s.heartbeat_due = true;
                o.set_timer(
                    Timer::HeartBeat,
                    Durations::range(self.cfg.durations.heartbeat_ms),
                );
            }
        }
        let secondaries = lease.secondaries.clone();
        let skip_secondaries =
            offset.is_none() && self.cfg.bug == Bug::PrimaryDoesNotPadSecondaries;
        let version = s.store.meta(chunk).version;
        if !skip_secondaries && !secondaries.is_empty() {
            let unsent = UnsentApply {
                chunk,
                version,
                stamp,
                op,
                secondaries: secondaries.clone(),
            };
            self.forward(s, unsent, o);
        }
        if secondaries.is_empty()
            || skip_secondaries
            || self.cfg.bug == Bug::PrimaryAcksBeforeSecondaries
        {
            self.reply_done(client, chunk, data, offset, stamp, o);
        } else {
            s.in_flight.push(InFlight {
                chunk,
                stamp,
                client,
                data,
                offset,
                acked: vec![],
            });
        }
    }

    /// Act 1250: sends the secondaries a mutation just ordered, at once or,
    /// with `apply_batch_max` > 1, together with the next ones of its chunk
    /// when `Timer::SendApplies` fires or the batch is full. A batch holds
    /// consecutive serials of the lease held (one version, one set of
    /// secondaries): the end of a lease sends what waits (`fail_in_flight`).
    fn forward(&self, s: &mut ChunkserverState<S>, apply: UnsentApply, o: &mut O<S>) {
        if self.cfg.apply_batch_max <= 1 {
            return send_applies(&[apply], o);
        }
        let chunk = apply.chunk;
        s.unsent.push(apply);
        let waiting = s.unsent.iter().filter(|u| u.chunk == chunk).count();
        if waiting as u32 >= self.cfg.apply_batch_max {
            self.flush_unsent(s, chunk, o);
        } else {
            o.set_timer(Timer::SendApplies(chunk), Durations::range(0));
        }
    }

    /// `Timer::SendApplies`: the waiting `Apply`s of `chunk` leave.
    pub(super) fn send_unsent(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
        if state.unsent.iter().any(|u| u.chunk == chunk) {
            self.flush_unsent(state.to_mut(), chunk, o);
        }
    }

    pub(super) fn flush_unsent(
        &self,
        s: &mut ChunkserverState<S>,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
        o.cancel_timer(Timer::SendApplies(chunk));
        let (batch, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut s.unsent)
            .into_iter()
            .partition(|u| u.chunk == chunk);
        s.unsent = rest;
        send_applies(&batch, o);
    }

    pub(super) fn reply_done(
        &self,
        client: Id,
        chunk: ChunkHandle,
        data: DataId,
        offset: Option<Offset>,
        stamp: Stamp,
        o: &mut O<S>,
    ) {
        if self.cfg.bug == Bug::PrimaryNeverReplies {
            return;
        }
        match offset {
            Some(offset) => o.send(
                client,
                Msg::MutationDone {
                    chunk,
                    data,
                    offset,
                    stamp,
                },
            ),
            None => o.send(client, Msg::ChunkFull { chunk, data }),
        }
    }

    pub(super) fn on_applied(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        src: Id,
        chunk: ChunkHandle,
        stamp: Stamp,
        result: Result<(), Failure>,
        o: &mut O<S>,
    ) {
        let Some(i) = state
            .in_flight
            .iter()
            .position(|m| m.chunk == chunk && m.stamp == stamp)
        else {
            return;
        };
        let secondaries = state
            .lease(chunk)
            .map(|l| l.secondaries.clone())
            .unwrap_or_default();
        let m = &state.in_flight[i];
        if m.acked.contains(&src) {
            return;
        }
        let s = state.to_mut();
        let ok = result.is_ok() || self.cfg.bug == Bug::PrimaryIgnoresSecondaryError;
        if ok {
            s.in_flight[i].acked.push(src);
            if secondaries.iter().all(|r| s.in_flight[i].acked.contains(r)) {
                let m = s.in_flight.remove(i);
                if self.cfg.bug != Bug::PrimaryAcksBeforeSecondaries {
                    self.reply_done(m.client, chunk, m.data, m.offset, m.stamp, o);
                }
            }
        } else {
            if let Err(Failure::Store(e)) = &result {
                if e.is_replica_fault() {
                    if let Some(l) = s.leases.iter_mut().find(|l| l.chunk == chunk) {
                        l.replica_failed = true;
                    }
                }
            }
            // [00101]: any replica's error fails the mutation.
            let m = s.in_flight.remove(i);
            if self.cfg.bug != Bug::PrimaryAcksBeforeSecondaries {
                o.send(
                    m.client,
                    Msg::MutationFailed {
                        chunk,
                        data: m.data,
                        reason: Failure::SecondaryFailed,
                    },
                );
            }
        }
    }

    /// Primary side of a gap report: every serial the secondary lacks is
    /// either still in flight here (send it again) or decided. A secondary
    /// answers `Applied` Ok only once the mutation is durably in its store
    /// (FAULT-1), so a decided serial it lacks was not acknowledged through
    /// it: it failed ([00101]), and the secondary may use it up (`Skip`).
    /// That holds whether or not this server still holds the lease: on
    /// losing it, it failed everything in flight. A resent write whose
    /// data the secondary no longer has fails there (`DataMissing`), which
    /// fails the mutation and the client retries ([00107]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_apply_gap(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        secondary: Id,
        chunk: ChunkHandle,
        version: ChunkVersion,
        from: Stamp,
        until: Stamp,
        o: &mut O<S>,
    ) {
        if from.epoch != until.epoch || from.serial >= until.serial {
            return;
        }
        // Serials of the lease this server holds that it has not issued are
        // not its to decide (a report can only name issued ones).
        let issued = match state.lease(chunk) {
            Some(l) if l.epoch == from.epoch => l.next_serial,
            _ => Serial::MAX,
        };
        for serial in from.serial..until.serial.min(issued) {
            let stamp = Stamp {
                epoch: from.epoch,
                serial,
            };
            let op = match state
                .in_flight
                .iter()
                .find(|m| m.chunk == chunk && m.stamp == stamp)
            {
                Some(m) if m.acked.contains(&secondary) => continue,
                Some(_) if self.cfg.bug == Bug::PrimarySkipsSerialInFlight => ApplyOp::Skip,
                Some(m) => match m.offset {
                    Some(offset) => ApplyOp::WriteAt {
                        offset,
                        data: m.data,
                    },
                    None => ApplyOp::PadTo {
                        end: self.cfg.chunk_size,
                    },
                },
                None => ApplyOp::Skip,
            };
            o.send(
                secondary,
                Msg::Apply {
                    chunk,
                    version,
                    stamp,
                    op,
                },
            );
        }
    }
}

/// Sends each secondary the `Apply`s of `batch` (one chunk, version, lease
/// and set of secondaries, in serial order): one `Apply`, or one
/// `ApplyBatch` for more.
fn send_applies<S: ChunkStore>(batch: &[UnsentApply], o: &mut O<S>) {
    let Some(first) = batch.first() else { return };
    for r in &first.secondaries {
        let msg = match batch {
            [one] => Msg::Apply {
                chunk: one.chunk,
                version: one.version,
                stamp: one.stamp,
                op: one.op,
            },
            _ => Msg::ApplyBatch {
                chunk: first.chunk,
                version: first.version,
                applies: batch.iter().map(|u| (u.stamp, u.op)).collect(),
            },
        };
        o.send(*r, msg);
    }
}

/// Tells each waiting client its mutation failed: this replica is not (or no
/// longer) the primary, so the client goes back to the master ([0094]).
pub(super) fn not_primary<S: ChunkStore>(
    chunk: ChunkHandle,
    waiting: impl Iterator<Item = (Id, DataId)>,
    o: &mut O<S>,
) {
    for (client, data) in waiting {
        o.send(
            client,
            Msg::MutationFailed {
                chunk,
                data,
                reason: Failure::NotPrimary,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memstore::{MemStore, RecordToken};
    use crate::system::ModelCfg;
    use stateright::actor::Out;

    /// SNAP-1: a mutation names the lease epoch its client was told of, and
    /// a primary holding another epoch of the chunk refuses it, so one sent
    /// under a lease that has since ended (revoked for a snapshot, the
    /// chunk since leased for the snapshot alone) is not ordered under the
    /// new one.
    #[test]
    fn a_primary_refuses_a_mutation_of_another_epoch() {
        let model = ModelCfg::named("tiny").expect("tiny exists");
        let actor = ChunkserverActor {
            cfg: Arc::new(model.protocol()),
            initial_store: MemStore::new(model.chunk_units),
        };
        let (master, client) = (Id::from(0), Id::from(9));
        let mut o = Out::new();
        let mut state: Cow<ChunkserverState<MemStore>> = Cow::Owned(actor.on_start(&None, &mut o));
        let deliver = |state: &mut Cow<ChunkserverState<MemStore>>, src, msg| {
            deliver_to(&actor, state, src, msg)
        };
        let (chunk, epoch) = (0, 2);
        let incarnation = state.store.incarnation();
        let offer = Msg::LeaseOffer {
            chunk,
            epoch,
            version: 1,
            incarnation,
        };
        assert_eq!(
            deliver(&mut state, master, offer),
            [Msg::LeaseRequest { chunk, epoch }]
        );
        let grant = Msg::LeaseGrant {
            chunk,
            epoch,
            extension: 0,
            version: 1,
            secondaries: vec![],
        };
        deliver(&mut state, master, grant);
        let data = DataId { client: 9, seq: 1 };
        let push = Msg::PushData {
            data,
            chunk: 0,
            fragment: 0,
            last: true,
            bytes: RecordToken { id: data, units: 1 },
            chain: vec![],
            client,
        };
        assert_eq!(
            deliver(&mut state, client, push),
            [Msg::DataPushed { data }]
        );
        let mutate = |epoch| Msg::Mutate {
            chunk,
            epoch,
            kind: MutationKind::Append,
            data,
        };
        assert_eq!(
            deliver(&mut state, client, mutate(1)),
            [Msg::MutationFailed {
                chunk,
                data,
                reason: Failure::NotPrimary
            }]
        );
        let done = deliver(&mut state, client, mutate(epoch));
        assert!(
            matches!(done[..], [Msg::MutationDone { stamp, .. }] if stamp.epoch == epoch),
            "{done:?}"
        );
    }
}
