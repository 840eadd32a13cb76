//! The client's retry policy ([00101]): which failures are worth another
//! try, how long to wait first, and where the retry starts again. The one
//! policy of the real system too (docs/model.md, "Retries").

use super::{ClientActor, ClientState, Phase};
use crate::config::{Bug, Durations};
use crate::msg::*;
use crate::types::*;
use crate::O;
use stateright::actor::Id;
use std::borrow::Cow;

impl<P: Payload> ClientActor<P> {
    /// [00101]: repeat acts 1230–1270 once with the cached primary, then go
    /// back to act 1210; give up after the retry bound, or at once when
    /// trying again cannot help (a refused size or path, a missing file).
    /// The one retry policy of the real system too: its client library
    /// only waits for the answer (docs/model.md, "Retries").
    pub(super) fn retry<S: ChunkStore<Payload = P>>(
        &self,
        id: Id,
        state: &mut Cow<ClientState<P>>,
        reason: Failure,
        o: &mut O<S>,
    ) {
        let cur = state.current.clone().unwrap();
        if cur.retries >= self.cfg.client_retries_max
            || !reason.is_transient()
            || self.cfg.bug == Bug::ClientDoesNotRetry
        {
            return self.finish(id, state, OpResult::Failed(reason), o);
        }
        let s = state.to_mut();
        let c = s.current_mut();
        // An unbounded retry budget (the liveness model's) is not counted,
        // so the state stays finite; its backoff stays the first one.
        let wait = self.cfg.durations.retry_backoff(c.retries);
        if self.cfg.client_retries_max != u32::MAX {
            c.retries += 1;
        }
        if wait == 0 {
            return self.retry_now(id, state, reason, o);
        }
        c.phase = Phase::BackingOff { reason };
        // The wait replaces the reply timeout: a late answer to the failed
        // attempt is dropped (the phase takes none), and its timeout
        // must not count as a second failure.
        o.cancel_timer(Timer::RequestTimeout);
        o.set_timer(Timer::RetryBackoff, Durations::range(wait));
    }

    /// The retry itself, once any backoff is over.
    pub(super) fn retry_now<S: ChunkStore<Payload = P>>(
        &self,
        id: Id,
        state: &mut Cow<ClientState<P>>,
        reason: Failure,
        o: &mut O<S>,
    ) {
        let cur = state.current.clone().unwrap();
        let s = state.to_mut();
        match cur.op {
            ClientOp::Append { .. } | ClientOp::Write { .. } => {
                let cached = self.cached_lease(s, &cur).map(|(info, _)| info);
                let back_to_master = reason == Failure::NotPrimary
                    || cur.retries_at_primary >= 1
                    || cached.is_none();
                if back_to_master {
                    let chunk = cached.map(|c| c.chunk);
                    s.cache.retain(|c| Some(c.chunk) != chunk);
                    s.current_mut().retries_at_primary = 0;
                    self.find_lease(state, o);
                } else {
                    s.current_mut().retries_at_primary += 1;
                    self.push(id, state, &cached.unwrap(), o);
                }
            }
            ClientOp::Open { path, create } => {
                s.current_mut().phase = Phase::Opening;
                o.send(self.cfg.master, Msg::OpenFile { path, create });
                self.arm_timeout(o);
            }
            ClientOp::Rename { from, to } => {
                s.current_mut().phase = Phase::Opening;
                o.send(self.cfg.master, Msg::RenameFile { from, to });
                self.arm_timeout(o);
            }
            ClientOp::Snapshot { from, to } => {
                s.current_mut().phase = Phase::Opening;
                o.send(self.cfg.master, Msg::SnapshotFile { from, to });
                self.arm_timeout(o);
            }
            ClientOp::Read { file, index, .. } | ClientOp::Stat { file, index } => {
                let c = s.current_mut();
                c.phase = Phase::Locating;
                c.tried.clear();
                o.send(self.cfg.master, Msg::Locate { file, index });
                self.arm_timeout(o);
            }
        }
    }
}
