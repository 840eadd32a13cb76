//! Leases on the chunkserver's side ([0090], [0091]): a grant taken on the
//! clock its request started, and a lease dropped with everything waiting
//! on it.

use super::*;

impl<S: ChunkStore> ChunkserverActor<S> {
    pub(super) fn accept_grant(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
        version: ChunkVersion,
        secondaries: Vec<Id>,
        o: &mut O<S>,
    ) {
        let s = state.to_mut();
        // The master may have moved the version on past silent replicas.
        if !self.learn_version(s, chunk, version, o) {
            return;
        }
        let l = s.lease_mut(chunk);
        if l.epoch != epoch {
            // Only reachable with the late-grant bug: a grant for a lease
            // this replica never requested.
            l.next_serial = 1;
            l.extensions = 0;
            l.replica_failed = false;
        }
        let late = !l.requested;
        l.epoch = epoch;
        l.holding = true;
        l.requested = false;
        l.secondaries = secondaries;
        // LEASE-2: the lease runs on the clock its request started, so it
        // ends no later than `lease_ms` after the request left, however
        // late the grant came; the previous lease's clock, if this grants
        // an extension, is done.
        o.cancel_timer(Timer::LeaseClock(chunk, 1 - l.clock));
        if late || self.cfg.bug == Bug::GrantRestartsLeaseClock {
            // Only with a seeded bug: a clock started at the grant, which
            // outlasts the master's once the grant was delayed.
            o.set_timer(
                Timer::LeaseClock(chunk, l.clock),
                Durations::range(self.cfg.durations.lease_ms),
            );
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut s.early)
            .into_iter()
            .partition(|m| m.chunk == chunk && m.epoch == epoch);
        s.early = waiting;
        for m in ready {
            self.on_mutate(state, m.client, m.chunk, m.epoch, m.kind, m.data, o);
        }
    }

    /// `Timer::HeartBeat`: tell the master this server is alive, and ask
    /// for the extensions its primaries want ([0091]: piggybacked on the
    /// heartbeat). Each extension's clock starts now, in the step that
    /// sends the heartbeat, before the master's can (LEASE-2); the lease
    /// runs on its own clock until the grant.
    pub(super) fn heartbeat(&self, state: &mut Cow<ChunkserverState<S>>, o: &mut O<S>) {
        let s = state.to_mut();
        s.heartbeat_due = false;
        let mut extensions = vec![];
        for l in s.leases.iter_mut() {
            if !std::mem::take(&mut l.extension_wanted) {
                continue;
            }
            // The lease may have ended, or an extension be on its way,
            // since the mutation that wanted it.
            if !l.holding || l.requested || l.extensions >= self.cfg.extensions_max {
                continue;
            }
            l.extensions += 1;
            l.requested = true;
            l.clock = 1 - l.clock;
            o.set_timer(
                Timer::LeaseClock(l.chunk, l.clock),
                Durations::range(self.cfg.durations.lease_ms),
            );
            extensions.push((l.chunk, l.epoch, l.extensions));
        }
        if !extensions.is_empty() || self.cfg.heartbeats_when_idle {
            o.send(
                self.cfg.master,
                Msg::HeartBeat {
                    incarnation: s.store.incarnation(),
                    extensions,
                },
            );
        }
        if self.cfg.heartbeats_when_idle {
            s.heartbeat_due = true;
            o.set_timer(
                Timer::HeartBeat,
                Durations::range(self.cfg.durations.heartbeat_ms),
            );
        }
    }

    pub(super) fn drop_lease(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
        let s = state.to_mut();
        let l = s.lease_mut(chunk);
        l.holding = false;
        l.requested = false;
        o.cancel_timer(Timer::LeaseClock(chunk, 0));
        o.cancel_timer(Timer::LeaseClock(chunk, 1));
        self.fail_in_flight(s, chunk, o);
        self.fail_early(s, chunk, o);
    }

    /// The grant that early mutations waited for will not count any more.
    pub(super) fn fail_early(&self, s: &mut ChunkserverState<S>, chunk: ChunkHandle, o: &mut O<S>) {
        let (failed, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut s.early)
            .into_iter()
            .partition(|m| m.chunk == chunk);
        s.early = kept;
        not_primary(chunk, failed.iter().map(|m| (m.client, m.data)), o);
    }

    /// A primary that lost its lease cannot complete its mutations: fail
    /// them so clients retry ([00101]); the data may already be on some
    /// replicas, which at-least-once append allows ([00107]). LEASE-6:
    /// nothing else would free their places of the in-flight limit.
    pub(super) fn fail_in_flight(
        &self,
        s: &mut ChunkserverState<S>,
        chunk: ChunkHandle,
        o: &mut O<S>,
    ) {
        // What it ordered under the lease and keeps for a batch leaves now,
        // as it would have in the step that ordered it: so a batch only ever
        // holds the serials of the lease held (over TCP the host sends a
        // batch before its lease clock's expiry is handled, so only a
        // revocation or a newer offer in the same batch finds one left).
        if s.unsent.iter().any(|u| u.chunk == chunk)
            && self.cfg.bug != Bug::PrimaryKeepsBatchAfterLease
        {
            self.flush_unsent(s, chunk, o);
        }
        if self.cfg.bug == Bug::PrimaryKeepsInFlightAfterLease {
            return;
        }
        let (failed, kept): (Vec<_>, Vec<_>) =
            s.in_flight.drain(..).partition(|m| m.chunk == chunk);
        s.in_flight = kept;
        not_primary(chunk, failed.iter().map(|m| (m.client, m.data)), o);
    }
}
