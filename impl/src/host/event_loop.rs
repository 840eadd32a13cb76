//! A node's loop, on its actor thread (a client's: a task): takes one
//! event at a time (an expired timer, a message to itself, a random
//! choice, or else a batch of inbound messages), calls the handlers,
//! records each step, passes the barrier and carries out the commands in
//! order (see "Group commit" and "Time" in the [module doc](super)).

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde::Serialize;
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

use super::clock::Wakeup;
use super::net::{Peer, Routes, Unrouted};
use super::storage::StorageFile;
use super::{
    Barrier, BatchEnd, EarlySends, HostError, Inbound, MsgObserver, MsgTracer, Passage, SendDelay,
    StateNarrator, Step, StepClock, StepCommand, StepInput, StepRecorder, BATCH_MSGS_MAX,
    SELF_QUEUE_MSGS_MAX,
};
use crate::frame::{self, Envelope};

/// What woke the actor thread.
enum Wake<M> {
    Inbound(Inbound<M>),
    Timer,
    Shutdown,
}

/// The actor and everything its commands act on. Lives on the actor thread.
pub(super) struct NodeLoop<A: Actor> {
    pub(super) actor: A,
    pub(super) id: Id,
    pub(super) timers: HashMap<A::Timer, StepClock>,
    /// Pending random choices by key; a BTreeMap so that, with a fixed
    /// seed, the order they are resolved in is repeatable.
    pub(super) randoms: BTreeMap<String, Vec<A::Random>>,
    pub(super) local: VecDeque<A::Msg>,
    pub(super) peers: HashMap<Id, Peer>,
    /// The ways back to clients, which have no address.
    pub(super) routes: Arc<Routes>,
    pub(super) app: Option<(Id, mpsc::Sender<A::Msg>)>,
    pub(super) storage: StorageFile,
    pub(super) rng: StdRng,
    /// Kept so a failed save can stop the network side too.
    pub(super) shutdown: Arc<watch::Sender<bool>>,
    pub(super) tracer: Option<MsgTracer<A::Msg>>,
    pub(super) narrator: Option<StateNarrator<A::State>>,
    pub(super) barrier: Option<Barrier>,
    pub(super) observer: Option<MsgObserver<A::Msg>>,
    pub(super) recorder: Option<Box<dyn StepRecorder<A>>>,
    pub(super) send_delay: Option<SendDelay<A::Msg>>,
    pub(super) early_sends: Option<EarlySends<A::Msg>>,
    pub(super) batch_end: Option<BatchEnd<A>>,
    /// The runtime of the network tasks, for held messages.
    pub(super) network: tokio::runtime::Handle,
}

impl<A> NodeLoop<A>
where
    A: Actor,
    A::Msg: Serialize + Send + 'static,
    A::Storage: Serialize + Clone,
{
    /// The loop. Its only await is the wait for the next event (channels
    /// and one timer, never I/O); the handlers run synchronously between
    /// waits. A node whose handlers may block runs it on a thread of its
    /// own ([`waiter`]); one whose handlers never block (a client) may run
    /// it as a task of the network's runtime.
    pub(super) async fn run(
        mut self,
        storage: Option<A::Storage>,
        mut inbox: mpsc::Receiver<Inbound<A::Msg>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), HostError> {
        tracing::info!(restored = storage.is_some(), "starting actor");
        let (state, start) = self.start_actor(storage, StepClock::now());
        let result = match self.commit(vec![start]) {
            Ok(()) => self.serve(state, &mut inbox, &mut shutdown).await,
            Err(e) => Err(e),
        };
        // Whatever ended the loop, the rest of the node stops with it.
        self.shutdown.send_replace(true);
        tracing::info!("actor stopped");
        result
    }

    /// Takes events until shutdown or a failed commit.
    async fn serve(
        &mut self,
        mut state: A::State,
        inbox: &mut mpsc::Receiver<Inbound<A::Msg>>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), HostError> {
        // Messages taken from the inbox when a timer had expired: handled
        // after the timers, in the next batch.
        let mut carried: VecDeque<Inbound<A::Msg>> = VecDeque::new();
        let mut wakeup = Wakeup::new();
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            // Local work first, but an expired timer before anything else
            // so a busy inbox cannot starve timers.
            let clock = StepClock::now();
            if let Some(timer) = self.take_expired_timer(clock) {
                let step = self.handle_timer(&mut state, clock, timer);
                self.commit(vec![step])?;
                continue;
            }
            if let Some(msg) = self.local.pop_front() {
                let step = self.handle_msg(&mut state, clock, self.id, msg);
                self.commit(vec![step])?;
                continue;
            }
            if let Some((key, choices)) = self.randoms.pop_first() {
                let random = choices
                    .choose(&mut self.rng)
                    .expect("empty choices are removed")
                    .clone();
                tracing::debug!(%key, ?random, "random choice");
                let mut out = Out::new();
                let mut cow = Cow::Borrowed(&state);
                self.actor.on_random(self.id, &mut cow, &random, &mut out);
                if let Cow::Owned(next) = cow {
                    state = next;
                }
                let input = self.recorder.is_some().then(|| StepInput::Random(random));
                let step = self.step(&state, clock, input, out);
                self.commit(vec![step])?;
                continue;
            }
            let deadline = self.timers.values().map(|d| d.at).min();
            let wake = match carried.pop_front() {
                Some(inbound) => Wake::Inbound(inbound),
                None => tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|stop| *stop) => Wake::Shutdown,
                    m = inbox.recv() => m.map_or(Wake::Shutdown, Wake::Inbound),
                    _ = wakeup.until(deadline) => Wake::Timer,
                },
            };
            match wake {
                Wake::Shutdown => return Ok(()),
                Wake::Timer => continue,
                Wake::Inbound(first) => {
                    // The select may pick a message although a deadline has
                    // passed meanwhile (e.g. the process was stopped with
                    // SIGSTOP and continued): expired timers go first, so a
                    // primary whose lease clock ran out while it was paused
                    // sees the expiry before the request ([0091]).
                    let mut clock = StepClock::now();
                    while let Some(timer) = self.take_expired_timer(clock) {
                        let step = self.handle_timer(&mut state, clock, timer);
                        self.commit(vec![step])?;
                        clock = StepClock::now();
                    }
                    let mut budgets = vec![];
                    let mut batch = vec![];
                    let mut taken = vec![first];
                    // Group commit: handle what else has arrived, then pass
                    // one barrier for all of it. A timer that expires
                    // meanwhile ends the batch, so no step's clock reading
                    // is past an armed deadline.
                    // The clock is read after the message is taken, so no
                    // step's reading precedes its message's arrival.
                    loop {
                        while batch.len() + taken.len() < BATCH_MSGS_MAX && carried.is_empty() {
                            let Ok(inbound) = inbox.try_recv() else {
                                break;
                            };
                            taken.push(inbound);
                        }
                        self.handle_taken(
                            &mut state,
                            &mut taken,
                            &mut batch,
                            &mut budgets,
                            &mut carried,
                        );
                        self.send_early(&mut batch)?;
                        if self.barrier.is_none()
                            || batch.len() >= BATCH_MSGS_MAX
                            || !carried.is_empty()
                        {
                            break;
                        }
                        // This thread's runtime carries the node's
                        // connections: let its writers take the early
                        // sends before the barrier syncs (so the
                        // secondaries' writes overlap this replica's sync),
                        // and its readers take what has arrived meanwhile
                        // into this batch, as they would from threads of
                        // their own (issue #13).
                        tokio::task::yield_now().await;
                        if inbox.is_empty() {
                            break;
                        }
                    }
                    self.pass_barrier(batch)?;
                    // Only now: until the batch's commands are carried out
                    // they may still hold its messages' bytes (a forwarded
                    // fragment). From here on what is kept is the actor's
                    // state or a queue with its own limit, and readers may
                    // take the bytes in again.
                    drop(budgets);
                }
            }
        }
    }

    /// Handles the messages `taken` from the inbox into `batch`: those the
    /// protocol orders mutations with first, then the timers that fire at
    /// the batch's end (a primary's waiting `Apply`s, which then leave
    /// early, before any step that must wait for the barrier), then the
    /// rest, each kind in arrival order. The network's order between
    /// messages of different senders is no promise the protocol relies on
    /// (the model's network is unordered), and a sender's `Mutate` never
    /// depends on a message of its own that arrives with it. At a timer
    /// that expires meanwhile the batch ends: what is left is carried to
    /// the next one, after the timer.
    fn handle_taken(
        &mut self,
        state: &mut A::State,
        taken: &mut Vec<Inbound<A::Msg>>,
        batch: &mut Vec<Step<A>>,
        budgets: &mut Vec<Option<tokio::sync::OwnedSemaphorePermit>>,
        carried: &mut VecDeque<Inbound<A::Msg>>,
    ) {
        let (first, rest): (Vec<_>, Vec<_>) =
            taken.drain(..).partition(|i| self.handled_first(&i.msg));
        // `None` marks the batch's end for its timers.
        let mut order = (first.into_iter().map(Some))
            .chain([None])
            .chain(rest.into_iter().map(Some));
        while let Some(next) = order.next() {
            let Some(inbound) = next else {
                self.fire_batch_end_timers(state, batch);
                continue;
            };
            let clock = StepClock::now();
            if self.has_expired_timer(clock) {
                carried.push_back(inbound);
                carried.extend(order.flatten());
                break;
            }
            let Inbound { src, msg, budget } = inbound;
            budgets.push(budget);
            batch.push(self.handle_msg(state, clock, src, msg));
        }
        self.fire_batch_end_timers(state, batch);
    }

    /// What the batch left for its end goes now, so that it leaves before
    /// the barrier as it would have from the steps themselves. The batch's
    /// commands are carried out only after its barrier, so a timer its
    /// steps armed is armed in their commands, not yet in `timers`: firing
    /// it here takes those commands out of what is carried out (armed,
    /// then fired, leaves it disarmed, as the trace's steps say).
    fn fire_batch_end_timers(&mut self, state: &mut A::State, batch: &mut Vec<Step<A>>) {
        while let Some(timer) = self.armed_batch_end_timer(batch) {
            self.timers.remove(&timer);
            for step in batch.iter_mut() {
                step.commands.retain(|c| {
                    !matches!(c, StepCommand::SetTimer(t, _) | StepCommand::CancelTimer(t) if *t == timer)
                });
            }
            let clock = StepClock::now();
            batch.push(self.handle_timer(state, clock, timer));
        }
    }

    /// A timer that fires at the batch's end and is armed once the batch's
    /// commands so far are carried out.
    fn armed_batch_end_timer(&self, batch: &[Step<A>]) -> Option<A::Timer> {
        let mut armed: Vec<A::Timer> = self
            .timers
            .keys()
            .filter(|t| self.fires_at_batch_end(t))
            .cloned()
            .collect();
        for c in batch.iter().flat_map(|s| &s.commands) {
            match c {
                StepCommand::SetTimer(t, _) if self.fires_at_batch_end(t) && !armed.contains(t) => {
                    armed.push(t.clone());
                }
                StepCommand::CancelTimer(t) => armed.retain(|a| a != t),
                _ => {}
            }
        }
        armed.into_iter().next()
    }

    fn trace(&mut self, src: Id, msg: &A::Msg) {
        if let Some(observer) = &mut self.observer {
            observer(Passage::Delivered, src, self.id, msg);
        }
        match self.tracer {
            Some(tracer) => tracer(src, self.id, msg),
            None => tracing::debug!(src = usize::from(src) as u64, ?msg, "deliver"),
        }
    }

    pub(super) fn handle_msg(
        &mut self,
        state: &mut A::State,
        clock: StepClock,
        src: Id,
        msg: A::Msg,
    ) -> Step<A> {
        self.trace(src, &msg);
        let input = self.recorder.is_some().then(|| StepInput::Msg {
            src,
            msg: msg.clone(),
        });
        let out = self.handle(state, |a, id, s, o| a.on_msg(id, s, src, msg, o));
        self.step(state, clock, input, out)
    }

    pub(super) fn handle_timer(
        &mut self,
        state: &mut A::State,
        clock: StepClock,
        timer: A::Timer,
    ) -> Step<A> {
        tracing::debug!(?timer, "timer fired");
        let out = self.handle(state, |a, id, s, o| a.on_timeout(id, s, &timer, o));
        let input = self.recorder.is_some().then(|| StepInput::Timer(timer));
        self.step(state, clock, input, out)
    }

    /// Calls one handler and keeps its new state if it made one.
    fn handle(
        &self,
        state: &mut A::State,
        handler: impl FnOnce(&A, Id, &mut Cow<A::State>, &mut Out<A>),
    ) -> Out<A> {
        let mut out = Out::new();
        let mut cow = Cow::Borrowed(&*state);
        handler(&self.actor, self.id, &mut cow, &mut out);
        if let Cow::Owned(next) = cow {
            if let Some(narrate) = self.narrator {
                narrate(state, &next);
            }
            *state = next;
        }
        out
    }

    /// Makes a handler's commands a step taken at `clock`: each timer's
    /// deadline is fixed now, from the step's clock reading, not when the
    /// command is carried out after the batch and its barrier.
    /// The actor's start on `storage` (what a restart restored), as the
    /// node's first step.
    pub(super) fn start_actor(
        &mut self,
        storage: Option<A::Storage>,
        clock: StepClock,
    ) -> (A::State, Step<A>) {
        let mut out = Out::new();
        let state = self.actor.on_start(self.id, &storage, &mut out);
        let input = self.recorder.is_some().then(|| StepInput::Start(storage));
        let start = self.step(&state, clock, input, out);
        (state, start)
    }

    pub(super) fn step(
        &mut self,
        state: &A::State,
        clock: StepClock,
        input: Option<StepInput<A>>,
        out: Out<A>,
    ) -> Step<A> {
        let commands = out
            .into_iter()
            .map(|command| match command {
                Command::Send(dst, msg) => StepCommand::Send(dst, msg),
                Command::SetTimer(timer, range) => {
                    let after = if range.start < range.end {
                        self.rng.random_range(range)
                    } else {
                        range.start
                    };
                    StepCommand::SetTimer(timer, clock.after(after))
                }
                Command::CancelTimer(timer) => StepCommand::CancelTimer(timer),
                Command::ChooseRandom(key, choices) => StepCommand::ChooseRandom(key, choices),
                Command::Save(storage) => StepCommand::Save(storage),
            })
            .collect();
        let mut step = Step {
            clock,
            input,
            commands,
            digest: 0,
        };
        if let Some(r) = &mut self.recorder {
            // Recorded at once, before the next handler and the barrier: a
            // killed process keeps the chunk writes its handlers made (the
            // page cache survives it), so the step that made them must be
            // in the trace by then too. The window left is from the
            // handler's last write to the record's copy into the mapped
            // trace file (no system call, `crate::trace::MappedTrace`).
            step.digest = r.digest(state);
            r.record(&step);
            r.flush();
        }
        step
    }

    /// Whether a timer that fires at its deadline has expired (one that
    /// fires at the batch's end does not end the batch early).
    fn has_expired_timer(&self, clock: StepClock) -> bool {
        self.timers
            .iter()
            .any(|(t, d)| d.at <= clock.at && !self.fires_at_batch_end(t))
    }

    fn fires_at_batch_end(&self, timer: &A::Timer) -> bool {
        self.batch_end
            .as_ref()
            .is_some_and(|b| (b.fires_at_end)(timer))
    }

    fn handled_first(&self, msg: &A::Msg) -> bool {
        self.batch_end
            .as_ref()
            .is_some_and(|b| (b.handled_first)(msg))
    }

    /// Passes the barrier, then carries out the steps' commands. STORE-2:
    /// what the handlers wrote is durable before anything they commanded
    /// happens, but for the sends the protocol lets leave first
    /// ([`EarlySends`]: a primary's `Apply`, so that its own write and the
    /// secondaries' overlap, and the push). Those go before the barrier,
    /// from each step of the batch up to the first that also sends
    /// something else: a crash before the barrier then loses only writes
    /// that nothing but such sends told of, which is the model's
    /// `barrier_crashes` fault.
    /// The steps are already recorded (see [`NodeLoop::step`]).
    pub(super) fn commit(&mut self, mut steps: Vec<Step<A>>) -> Result<(), HostError> {
        self.send_early(&mut steps)?;
        self.pass_barrier(steps)
    }

    /// Carries out, and takes from `steps`, the sends that may leave before
    /// the barrier (see [`NodeLoop::commit`]).
    pub(super) fn send_early(&mut self, steps: &mut [Step<A>]) -> Result<(), HostError> {
        if let Some(early) = &self.early_sends {
            let mut now = Vec::new();
            for step in steps.iter_mut() {
                let only_early = step.commands.iter().all(|c| match c {
                    StepCommand::Send(_, msg) => early(msg),
                    _ => true,
                });
                if !only_early {
                    break;
                }
                // A step that sends nothing (a timer re-armed, a save) has
                // nothing to move: its commands are not rebuilt.
                if !step
                    .commands
                    .iter()
                    .any(|c| matches!(c, StepCommand::Send(..)))
                {
                    continue;
                }
                let (sends, rest) = std::mem::take(&mut step.commands)
                    .into_iter()
                    .partition(|c| matches!(c, StepCommand::Send(..)));
                step.commands = rest;
                now.extend(sends);
            }
            if !now.is_empty() {
                self.execute(now)?;
            }
        }
        Ok(())
    }

    /// Passes the barrier, then carries out what is left of the steps'
    /// commands.
    pub(super) fn pass_barrier(&mut self, steps: Vec<Step<A>>) -> Result<(), HostError> {
        if let Some(barrier) = &mut self.barrier {
            barrier().map_err(HostError::Barrier)?;
        }
        if let Some(r) = &mut self.recorder {
            r.committed();
        }
        for step in steps {
            self.execute(step.commands)?;
        }
        Ok(())
    }

    /// The armed timer with the earliest deadline at or before `clock`,
    /// disarmed.
    fn take_expired_timer(&mut self, clock: StepClock) -> Option<A::Timer> {
        let (timer, _) = self
            .timers
            .iter()
            .filter(|(_, d)| d.at <= clock.at)
            .min_by_key(|(_, d)| d.at)?;
        let timer = timer.clone();
        self.timers.remove(&timer);
        Some(timer)
    }

    /// Carries out a step's commands strictly in order. A failed save
    /// returns at once, so no later command of that step takes effect.
    fn execute(&mut self, commands: Vec<StepCommand<A>>) -> Result<(), HostError> {
        for command in commands {
            match command {
                StepCommand::Send(dst, msg) => self.send(dst, msg),
                StepCommand::SetTimer(timer, deadline) => {
                    self.timers.insert(timer, deadline);
                }
                StepCommand::CancelTimer(timer) => {
                    self.timers.remove(&timer);
                }
                StepCommand::ChooseRandom(key, choices) => {
                    if choices.is_empty() {
                        self.randoms.remove(&key);
                    } else {
                        self.randoms.insert(key, choices);
                    }
                }
                StepCommand::Save(storage) => self.storage.save(&storage)?,
            }
        }
        Ok(())
    }

    fn send(&mut self, dst: Id, msg: A::Msg) {
        if let Some(observer) = &mut self.observer {
            observer(Passage::Sent, self.id, dst, &msg);
        }
        if dst == self.id {
            if self.local.len() >= SELF_QUEUE_MSGS_MAX {
                tracing::warn!(?msg, "self queue full, message dropped");
            } else {
                self.local.push_back(msg);
            }
            return;
        }
        if let Some((app_id, app)) = &self.app {
            if dst == *app_id {
                match app.try_send(msg) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(msg)) => {
                        tracing::warn!(?msg, "application queue full, message dropped")
                    }
                    // The application stopped listening; nothing to tell.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
                return;
            }
        }
        let hold = self.send_delay.as_ref().and_then(|delay| delay(dst, &msg));
        let envelope = Envelope {
            src: self.id,
            dst,
            msg,
        };
        match self.peers.get_mut(&dst) {
            Some(peer) => peer.send(envelope, hold, &self.network),
            // The `SendDelay` test hook holds frames between servers only.
            None => self.answer(envelope),
        }
    }

    /// Sends a client its message on the connection it opened (a client
    /// has no address). A client that is not connected, or reads slower
    /// than it is answered, loses the message, as a lossy network would:
    /// the protocol retries it.
    fn answer(&mut self, envelope: Envelope<A::Msg>) {
        let dst = usize::from(envelope.dst) as u64;
        let bytes = match frame::encode_shared(&envelope) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(dst, msg = ?envelope.msg, "message dropped: {e}");
                return;
            }
        };
        match self.routes.send(envelope.dst, bytes) {
            Ok(()) => {}
            Err(Unrouted::NoConnection) => tracing::debug!(
                dst,
                msg = ?envelope.msg,
                "no connection from this client (gone, or not yet connected), message dropped"
            ),
            Err(Unrouted::Full) => tracing::warn!(
                dst,
                msg = ?envelope.msg,
                "the client reads slower than it is answered, message dropped"
            ),
        }
    }
}

/// The runtime a server's actor thread drives its loop with: channels and
/// timers only.
pub(super) fn waiter() -> Result<tokio::runtime::Runtime, HostError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(HostError::Thread)
}
