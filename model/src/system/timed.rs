//! The timed fault wrapper around stateright's `ActorModel` (see the
//! module doc of [`super`]: Time).

use super::*;
use crate::config::Bug;
use crate::master::NodeStorage;
use crate::master::{LeaseView, MasterState};
use crate::memstore::*;
use crate::msg::*;
use crate::node::Digested;
use crate::types::*;
use crate::NodeState;
use smallvec::SmallVec;
use stateright::actor::{Actor, ActorModel, ActorModelAction, Command, Envelope, Id, Network, Out};
use stateright::{Model, Path, Property};
use std::borrow::Cow;
use std::sync::Arc;

/// The actors under the timed fault model (see the module doc).
#[derive(Clone)]
pub struct LeaseholdModel {
    pub inner: ActorModel<ModelNode, ModelCfg, History>,
    pub cfg: ModelCfg,
    pub properties: Vec<Property<LeaseholdModel>>,
    /// Each client's script, built once: properties read it on every state.
    pub scripts: Vec<Vec<ClientOp<RecordToken>>>,
}

impl LeaseholdModel {
    pub(super) fn live_chunkservers<'a>(
        &'a self,
        s: &'a State,
    ) -> impl Iterator<Item = (Id, &'a crate::chunkserver::ChunkserverState<MemStore>)> + 'a {
        self.cfg
            .chunkserver_id_iter()
            .filter(move |id| !s.crashed[usize::from(*id)])
            .filter_map(move |id| match &**s.actor_states[usize::from(id)] {
                NodeState::Chunkserver(c) => Some((id, c)),
                _ => None,
            })
    }

    /// Whether some live chunkserver runs a lease clock (for a restarted
    /// master's quiet period: any lease its previous incarnation granted).
    pub(super) fn lease_clock_running(&self, s: &State) -> bool {
        self.live_chunkservers(s).any(|(id, _)| {
            s.timers_set[usize::from(id)]
                .iter()
                .any(|t| matches!(t, Timer::LeaseClock(..)))
        })
    }

    /// Whether a restarted master waits out the leases its previous
    /// incarnation may have granted (LEASE-3). Its waiting period is one
    /// lease period, which every lease clock running now ends within: a
    /// clock running out then is time passing, not the bounded timing
    /// fault (`lease_expiries`), or a crash that left a lease held would
    /// keep the master waiting for ever once that fault was used up.
    fn waiting_out_leases(&self, s: &State) -> bool {
        let i = usize::from(self.cfg.master_id());
        !s.crashed[i] && master(s).quiet
    }

    /// What `id`'s handler commands if it takes `action` (a delivery to it
    /// or its timeout) in `last`: a second run of the step, for what its
    /// state and the network's multiset do not show (a timer re-armed, a
    /// message sent that was already on its way).
    fn commands_of(&self, last: &State, id: Id, action: &Action) -> Option<Out<ModelNode>> {
        let i = usize::from(id);
        let mut out = Out::new();
        let mut state = Cow::Borrowed(&*last.actor_states[i]);
        let actor = &self.inner.actors[i];
        match action {
            ActorModelAction::Deliver { src, msg, .. } => {
                actor.on_msg(id, &mut state, *src, msg.clone(), &mut out)
            }
            ActorModelAction::Timeout(_, timer) => {
                actor.on_timeout(id, &mut state, timer, &mut out)
            }
            _ => return None,
        }
        Some(out)
    }

    /// The chunks whose `LeaseExpiry` the master (re)arms if it takes
    /// `action` in `last`. A re-armed timer leaves the timer set as it was,
    /// so the wrapper asks the master's handler what it commands (a second
    /// run of one master step; the master takes few of them).
    fn expiry_armed_by(&self, last: &State, action: &Action) -> SmallVec<[ChunkHandle; 1]> {
        let master = self.cfg.master_id();
        let i = usize::from(master);
        let ours = match action {
            ActorModelAction::Deliver { dst, .. } => *dst == master && !last.crashed[i],
            ActorModelAction::Timeout(id, _) => *id == master,
            _ => false,
        };
        let Some(out) = ours
            .then(|| self.commands_of(last, master, action))
            .flatten()
        else {
            return SmallVec::new();
        };
        out.iter()
            .filter_map(|c| match c {
                Command::SetTimer(Timer::LeaseExpiry(chunk), _) => Some(*chunk),
                _ => None,
            })
            .collect()
    }

    /// Whether the step re-arms a lease clock that is running (LEASE-2's
    /// deadline rule: a clock starts only in the step that sends its
    /// request, and nothing else restarts it). A
    /// re-armed timer leaves the timer set unchanged, so the untimed model
    /// would not see it: this asks the handler what the step commands, for
    /// the steps whose handlers arm lease clocks (an offer taken, a grant
    /// taken, a heartbeat).
    fn lease_clock_rearmed_by(&self, last: &State, action: &Action) -> bool {
        let (id, arms) = match action {
            ActorModelAction::Deliver { dst, msg, .. } => (
                *dst,
                matches!(msg, Msg::LeaseGrant { .. } | Msg::LeaseOffer { .. }),
            ),
            ActorModelAction::Timeout(id, timer) => (*id, *timer == Timer::HeartBeat),
            _ => return false,
        };
        let i = usize::from(id);
        if !arms || last.crashed[i] || !self.cfg.is_chunkserver(id) {
            return false;
        }
        let running = &last.timers_set[i];
        if !running.iter().any(|t| matches!(t, Timer::LeaseClock(..))) {
            return false;
        }
        let Some(out) = self.commands_of(last, id, action) else {
            return false;
        };
        // A new lease's request (an offer taken) abandons the request its
        // clock timed: the epoch moves on, so no grant of the old one is
        // taken, and its clock starts again for the new request.
        let requested: SmallVec<[ChunkHandle; 1]> = out
            .iter()
            .filter_map(|c| match c {
                Command::Send(_, Msg::LeaseRequest { chunk, .. }) => Some(*chunk),
                _ => None,
            })
            .collect();
        let set = out.iter().filter_map(|c| match c {
            Command::SetTimer(t, _) => Some(t),
            _ => None,
        });
        rearmed_lease_clock(|t| running.iter().any(|r| r == t), set, &requested).is_some()
    }

    /// The live chunkserver that holds mutations back whose step `action`
    /// is, if it is one: only such a step can drop one (ORDER-3's answers).
    fn steps_holder(&self, last: &State, action: &Action) -> Option<Id> {
        let id = match action {
            ActorModelAction::Deliver { dst, .. } => *dst,
            ActorModelAction::Timeout(id, _) => *id,
            _ => return None,
        };
        let i = usize::from(id);
        let holds =
            matches!(&**last.actor_states[i], NodeState::Chunkserver(c) if !c.held.is_empty());
        (self.cfg.is_chunkserver(id) && !last.crashed[i] && holds).then_some(id)
    }

    /// Whether the step of `id` (`steps_holder`'s) dropped a held mutation
    /// and answered it wrongly (`held_drop_misanswered`). The answers are
    /// among the step's sends, which the network's multiset cannot tell
    /// apart from copies already on their way, so this asks the handler
    /// what it sent, only for a step that did drop one.
    fn held_drop_misanswered_by(
        &self,
        last: &State,
        id: Id,
        action: &Action,
        next: &State,
    ) -> bool {
        let i = usize::from(id);
        let (NodeState::Chunkserver(before), NodeState::Chunkserver(after)) =
            (&**last.actor_states[i], &**next.actor_states[i])
        else {
            return false;
        };
        if before.held.iter().all(|h| after.held.contains(h)) {
            return false;
        }
        let Some(out) = self.commands_of(last, id, action) else {
            return false;
        };
        let sent = out.iter().filter_map(|c| match c {
            Command::Send(dst, msg) => Some((*dst, msg)),
            _ => None,
        });
        held_drop_misanswered(&held_with_meta(before), after, sent).is_some()
    }

    /// Keeps `History::expiry_waits` exact after a step: a chunk whose
    /// expiry the master just armed waits for the clocks of its granted
    /// epoch running now; a clock that stopped (ran out, was cancelled, its
    /// server crashed) is waited for no longer.
    fn settle_expiry_waits(&self, next: &mut State, armed: &[ChunkHandle]) {
        let running = |s: &State, id: Id, chunk: ChunkHandle, clock: u8| {
            !s.crashed[usize::from(id)]
                && s.timers_set[usize::from(id)]
                    .iter()
                    .any(|t| *t == Timer::LeaseClock(chunk, clock))
        };
        let mut waits = std::mem::take(&mut next.history.expiry_waits);
        waits.retain(|(id, chunk, clock)| {
            !armed.contains(chunk) && running(next, *id, *chunk, *clock)
        });
        for &chunk in armed {
            let Some(LeaseView::Granted { epoch, .. }) = master(next).lease(chunk) else {
                continue;
            };
            for (id, cs) in self.live_chunkservers(next) {
                if cs.lease(chunk).is_some_and(|l| l.epoch == *epoch) {
                    for clock in 0..2 {
                        if running(next, id, chunk, clock) {
                            waits.push((id, chunk, clock));
                        }
                    }
                }
            }
        }
        waits.sort();
        next.history.expiry_waits = waits;
    }

    /// Whether a message is in flight (to or from `node`, if given) that
    /// its receiver would act on, now or after its restart if it is down:
    /// whatever a timeout waits for may still come (`prompt_network`).
    fn can_still_arrive(&self, s: &State, node: Option<Id>) -> bool {
        let involves =
            |e: &Envelope<&Msg<RecordToken>>| node.is_none_or(|n| e.src == n || e.dst == n);
        s.network.iter_deliverable().filter(involves).any(|e| {
            if s.crashed[usize::from(e.dst)] {
                // It arrives after the restart, unless there is none.
                !(self.cfg.crashes_permanent && self.cfg.is_chunkserver(e.dst))
            } else {
                self.acts_on(s, &e)
            }
        })
    }

    /// Whether the live receiver of `e` would change its state or send
    /// anything if it were delivered now.
    fn acts_on(&self, s: &State, e: &Envelope<&Msg<RecordToken>>) -> bool {
        let i = usize::from(e.dst);
        let mut out = Out::new();
        let mut state = Cow::Borrowed(&*s.actor_states[i]);
        self.inner.actors[i].on_msg(e.dst, &mut state, e.src, e.msg.clone(), &mut out);
        // A server's heartbeat or report re-arms its silence timer at the
        // master: that alone is not acting on it.
        let hearing = |c: &stateright::actor::Command<_, _, _, _>| {
            matches!(
                c,
                stateright::actor::Command::SetTimer(Timer::ServerSilent(_), _)
            )
        };
        matches!(state, Cow::Owned(_)) || out.iter().any(|c| !hearing(c))
    }

    /// Whether a chunk report to the master, or a report request to a live
    /// chunkserver, is in flight that its receiver would act on.
    fn reports_on_their_way(&self, s: &State) -> bool {
        let master = self.cfg.master_id();
        s.network.iter_deliverable().any(|e| {
            let report = match e.msg {
                Msg::ChunkReport { .. } => e.dst == master,
                Msg::ReportRequest => true,
                _ => false,
            };
            report && !s.crashed[usize::from(e.dst)] && self.acts_on(s, &e)
        })
    }

    /// Whether a live chunkserver waits to report a gap.
    fn holding_back(&self, s: &State) -> bool {
        self.live_chunkservers(s).any(|(id, _)| {
            s.timers_set[usize::from(id)]
                .iter()
                .any(|t| matches!(t, Timer::HeldBack(_)))
        })
    }

    /// Whether the live receiver of `e` ignores it now and in every state
    /// that can follow (`drop_ignored`; docs/model.md, "Messages ignored
    /// for ever"). Now: its handler neither changes its state nor
    /// commands anything (`acts_on`). For ever: the message is one of the
    /// kinds below, each stale by a field its receiver never takes back,
    /// which `stays_ignored` checks step by step on unreduced runs:
    /// - anything but `Submit` to a client that has finished its script
    ///   (clients do not crash, and nothing in the model submits more);
    /// - a `LeaseRequest` or `LeaseRevoked` to the master for an epoch
    ///   older than the chunk's last (epochs are durable and never repeat);
    /// - a `VersionAck` to the master for a version older than the
    ///   chunk's (versions only grow), unless the master re-replicates,
    ///   where any acknowledgement may forgive a failed clone;
    /// - a `LeaseOffer` or `NewVersion` to a chunkserver for an earlier
    ///   incarnation of it (incarnations are durable), or for a version
    ///   older than its replica's, or an offer of an epoch no newer than
    ///   the lease it knows (both only grow while it runs; a restart
    ///   makes the offer one of an earlier incarnation);
    /// - a `LeaseGrant` to a chunkserver that no longer waits for it: it
    ///   knows a later epoch, or a later extension of this one, or this
    ///   one's request ran out, or (no lease known) the request it answers
    ///   was an earlier incarnation's;
    /// - an `Applied` to a replica that applied that stamp or a later one
    ///   and has it no longer in flight (each stamp is issued once).
    ///
    /// Versions and applied stamps count only where they never go back
    /// (`versions_only_grow`), and the kinds a seeded bug changes the
    /// handling of are left alone under that bug.
    ///
    /// With `now_only` the second half is skipped: the unsound reduction
    /// the obligation test must reject.
    pub fn ignored_for_ever(
        &self,
        s: &State,
        e: &Envelope<&Msg<RecordToken>>,
        now_only: bool,
    ) -> bool {
        let i = usize::from(e.dst);
        if s.crashed[i] {
            return false;
        }
        let stale = now_only
            || match (&**s.actor_states[i], e.msg) {
                (NodeState::Client(c), msg) => {
                    c.current.is_none() && c.queue.is_empty() && !matches!(msg, Msg::Submit { .. })
                }
                (NodeState::Master(m), Msg::LeaseRequest { chunk, epoch }) => m
                    .durable
                    .chunks
                    .get(*chunk as usize)
                    .is_some_and(|c| *epoch < c.epoch),
                (NodeState::Master(m), Msg::VersionAck { chunk, version }) => {
                    !self.cfg.re_replication
                        && m.durable
                            .chunks
                            .get(*chunk as usize)
                            .is_some_and(|c| *version < c.version)
                }
                (NodeState::Chunkserver(c), Msg::Applied { chunk, stamp, .. }) => {
                    c.store.meta(*chunk).applied >= *stamp
                        && !c
                            .in_flight
                            .iter()
                            .any(|m| m.chunk == *chunk && m.stamp == *stamp)
                        && self.versions_only_grow()
                }
                (NodeState::Master(m), Msg::LeaseRevoked { chunk, epoch }) => m
                    .durable
                    .chunks
                    .get(*chunk as usize)
                    .is_some_and(|c| *epoch < c.epoch),
                (
                    NodeState::Chunkserver(c),
                    Msg::LeaseOffer {
                        chunk,
                        epoch,
                        version,
                        incarnation,
                    },
                ) => {
                    self.cfg.bug != Bug::TakesOfferOfPreviousLife
                        && (*incarnation < c.store.incarnation()
                            || (*version < c.store.meta(*chunk).version
                                && self.versions_only_grow())
                            || c.lease(*chunk).is_some_and(|l| l.epoch >= *epoch))
                }
                (
                    NodeState::Chunkserver(c),
                    Msg::NewVersion {
                        chunk,
                        version,
                        incarnation,
                    },
                ) => {
                    *incarnation < c.store.incarnation()
                        || (*version < c.store.meta(*chunk).version && self.versions_only_grow())
                }
                (
                    NodeState::Chunkserver(c),
                    Msg::LeaseGrant {
                        chunk,
                        epoch,
                        extension,
                        ..
                    },
                ) => {
                    let exact = !matches!(
                        self.cfg.bug,
                        Bug::AcceptsLateGrant | Bug::PrimaryTakesAnyGrantOfEpoch
                    );
                    exact
                        && c.lease(*chunk).is_none_or(|l| {
                            l.epoch > *epoch
                                || (l.epoch == *epoch
                                    && (l.extensions > *extension
                                        || (l.extensions == *extension && !l.requested)))
                        })
                }
                _ => false,
            };
        stale && !self.acts_on(s, e)
    }

    /// Whether a replica's version of a chunk never goes back: not where
    /// the master deletes replicas it moved (re-replication), nor where a
    /// crash may lose or tear what the replica wrote since its barrier.
    fn versions_only_grow(&self) -> bool {
        !self.cfg.re_replication && self.cfg.barrier_crashes == 0 && !self.cfg.torn_syncs
    }

    /// The messages in flight in `s` that `ignored_for_ever` marks.
    pub fn ignored_in(&self, s: &State, now_only: bool) -> Vec<Envelope<Msg<RecordToken>>> {
        let Network::UnorderedNonDuplicating(in_flight) = &s.network else {
            return vec![];
        };
        in_flight
            .keys()
            .filter(|e| self.ignored_for_ever(s, &borrowed(e), now_only))
            .cloned()
            .collect()
    }

    /// The reduction's proof obligation for one step into `next`: a
    /// message marked before it and still in flight is marked after it,
    /// or, if its receiver is down, in the state its restart leads to
    /// (what it restarts with does not change while it is down). So a
    /// marked message is never acted on in any run from where it was
    /// marked, and dropping it leaves every run the same but for a
    /// delivery that changes nothing.
    pub fn stays_ignored(
        &self,
        next: &State,
        marked: &Envelope<Msg<RecordToken>>,
        now_only: bool,
    ) -> bool {
        let Network::UnorderedNonDuplicating(in_flight) = &next.network else {
            return true;
        };
        if !in_flight.contains_key(marked) {
            return true;
        }
        let e = borrowed(marked);
        if next.crashed[usize::from(marked.dst)] {
            let Some(restarted) = self
                .inner
                .next_state(next, ActorModelAction::Recover(marked.dst))
            else {
                return false;
            };
            return self.ignored_for_ever(&restarted, &e, now_only);
        }
        self.ignored_for_ever(next, &e, now_only)
    }

    /// Takes the messages `ignored_for_ever` marks out of `next`.
    fn drop_ignored(&self, next: &mut State) {
        let gone = self.ignored_in(next, false);
        if let Network::UnorderedNonDuplicating(in_flight) = &mut next.network {
            for e in gone {
                in_flight.remove(&e);
            }
        }
    }

    /// Keeps one copy of each message in flight: of gap reports and of the
    /// Applies sent again in answer to them (`all` false), or of every
    /// message (`all`: `prompt_network`, where a client retrying without
    /// bound repeats its requests). Resends repeat what may still be in
    /// flight, and two identical copies behave as one: the receiver of a
    /// repeat ignores it (an Apply already applied or held, a reply to an
    /// answered request) or answers it again the same way. Keeping one,
    /// the other delayed for ever as the network may do anyway, keeps
    /// resend loops finite.
    fn merge_copies(next: &mut State, all: bool) {
        if let Network::UnorderedNonDuplicating(m) = &mut next.network {
            for (env, n) in m.iter_mut() {
                let resend = matches!(env.msg, Msg::Apply { .. } | Msg::ApplyGap { .. });
                if *n > 1 && (all || resend) {
                    *n = 1;
                }
            }
        }
    }

    fn allowed(&self, s: &State, action: &Action) -> bool {
        match action {
            ActorModelAction::Timeout(id, timer) => match timer {
                Timer::LeaseExpiry(chunk) => {
                    if self.cfg.bug == Bug::MasterIgnoresClockBound {
                        return true;
                    }
                    let granted =
                        matches!(master(s).lease(*chunk), Some(LeaseView::Granted { .. }));
                    !granted || !s.history.expiry_waits.iter().any(|w| w.1 == *chunk)
                }
                // Under `prompt_network` the quiet period (a master lease
                // period, seconds over TCP) also outlasts the chunk reports
                // the restarted master asked the live servers for (they
                // come back in milliseconds): it ends with every live
                // replica counted that can be.
                Timer::StartupQuiet => {
                    let reports_due = self.cfg.prompt_network && self.reports_on_their_way(s);
                    !self.lease_clock_running(s) && !reports_due
                }
                // Silence is two master lease periods of heartbeats: on a
                // prompt network only a crashed server is that silent;
                // elsewhere a live one may seem so too (a pause, a slow
                // disk), which the master must survive as well.
                Timer::ServerSilent(server) => {
                    self.cfg.silent_servers
                        && (!self.cfg.prompt_network || s.crashed[usize::from(*server)])
                }
                Timer::LeaseClock(..) => {
                    s.history.lease_expiries < self.cfg.lease_expiries || self.waiting_out_leases(s)
                }
                // A client or the master waits for a chain of replies: its
                // timeout fires once nothing anywhere can still move.
                // A held-back secondary's report (`held_back_ms`) comes
                // well before a client or the master gives up.
                Timer::RequestTimeout | Timer::GrantTimeout(_) if self.cfg.prompt_network => {
                    (!self.can_still_arrive(s, None) && !self.holding_back(s))
                        || (matches!(timer, Timer::GrantTimeout(_))
                            && s.history.early_grant_timeouts < self.cfg.early_grant_timeouts)
                }
                // A secondary waits for its own Applies only: clients that
                // keep retrying elsewhere must not hold its report back.
                // Under `delays` too: there every message may wait behind
                // any step, so a report racing each delayed Apply multiplies
                // the space (`writes`: 0.8 million states to over 11
                // million); a report while the missing Apply is still on
                // its way is checked where the network drops or delivers
                // (`crash`, `lossy`, `master-crash`).
                Timer::HeldBack(_) if self.cfg.prompt_network || self.cfg.delays => {
                    !self.can_still_arrive(s, Some(*id))
                }
                _ => {
                    let _ = id;
                    true
                }
            },
            ActorModelAction::Recover(id) => {
                !(self.cfg.crashes_permanent && self.cfg.is_chunkserver(*id))
            }
            ActorModelAction::Crash(id) => {
                if self.cfg.is_chunkserver(*id) {
                    s.history.chunkserver_crashes < self.cfg.chunkserver_crashes
                } else if *id == self.cfg.master_id() {
                    s.history.master_crashes < self.cfg.master_crashes
                } else {
                    false
                }
            }
            ActorModelAction::Drop(env) => {
                self.cfg.lossy
                    || (matches!(env.msg, Msg::Apply { .. } | Msg::ApplyBatch { .. })
                        && s.history.losses < self.cfg.apply_losses)
                    || (matches!(env.msg, Msg::CloneChunk { .. })
                        && s.history.losses < self.cfg.clone_losses)
                    || (matches!(env.msg, Msg::LeaseOffer { .. } | Msg::NewVersion { .. })
                        && s.history.losses < self.cfg.announce_losses)
            }
            _ => true,
        }
    }
}
/// The key of the action that fills a chunkserver's disk.
const DISK_FULL: &str = "disk full";
/// The key of the action that makes a chunkserver's blocks go bad.
const BLOCKS_CORRUPT: &str = "blocks corrupt";
/// The key of the action that stands for a chunkserver host's barrier: what
/// it wrote since the last one is durable now.
const BARRIER: &str = "barrier";
/// The key of the action that crashes a chunkserver before its barrier:
/// what it wrote since the last one is lost.
const BARRIER_CRASH: &str = "crash before barrier";
/// The start of the key of the action that crashes a chunkserver while its
/// barrier's sync is under way and tears it: the replicas the rest of the
/// key names (their data written since the last barrier) come back
/// damaged, the rest as of the last barrier.
const BARRIER_CRASH_TORN: &str = "crash tearing the sync of chunks ";
/// The start of the key of the action in which a chunkserver takes an
/// `Apply` and crashes during the sync of the barrier it passes within
/// that step, tearing it; the rest names the message.
const STEP_CRASH_TORN: &str = "crash tearing the sync of its step on ";
/// The start of the key of the action that makes the network deliver a
/// message a second time; the rest names the message.
const DUPLICATE: &str = "duplicate ";

/// A lasting fault of a chunkserver's storage, the environment's choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFault {
    /// The disk filled up: every change that needs room fails `NoSpace`.
    DiskFull,
    /// The blocks went bad: every read fails `Corrupt`.
    BlocksCorrupt,
}

impl LeaseholdModel {
    /// The store fault a `SelectRandom` choice under `key` injects, if it
    /// is one: for replaying a path on real nodes.
    pub fn store_fault_by(&self, key: &str) -> Option<StoreFault> {
        match key {
            DISK_FULL => Some(StoreFault::DiskFull),
            BLOCKS_CORRUPT => Some(StoreFault::BlocksCorrupt),
            _ => None,
        }
    }

    /// `id`'s store, and the storage a restart finds, take a lasting fault:
    /// a full disk fails every change from now on, bad blocks every read.
    fn store_fault(&self, last: &State, id: Id, key: &str) -> State {
        let fault = |store: &mut MemStore| match key {
            DISK_FULL => store.fill_disk(),
            _ => store.corrupt_blocks(),
        };
        let mut next = last.clone();
        let i = usize::from(id);
        if let NodeState::Chunkserver(c) = &**last.actor_states[i] {
            let mut c = c.clone();
            fault(&mut c.store);
            next.actor_states[i] = Arc::new(Digested::new(NodeState::Chunkserver(c)));
        }
        if let Some(NodeStorage::Chunkserver(store)) = &mut next.actor_storages[i] {
            fault(Arc::make_mut(store));
        }
        match key {
            DISK_FULL => next.history.store_faults += 1,
            _ => next.history.read_faults += 1,
        }
        next
    }
}

impl LeaseholdModel {
    /// After a chunkserver's step: a send that must follow the barrier
    /// means the host passed it, so everything written so far is durable;
    /// a step that changed the saved store and sent nothing of that kind
    /// leaves its writes unsynced, behind the store as of the last barrier.
    /// A crash that keeps the store (a process that stopped after its
    /// barrier) leaves nothing unsynced.
    fn track_barrier(
        &self,
        last: &State,
        next: &mut State,
        stepped: Option<Id>,
        crash: Option<Id>,
    ) {
        let passed = std::mem::take(&mut next.history.barrier_passed);
        if next.history.barrier_crashes >= self.cfg.barrier_crashes {
            // No crash before a barrier is left to lose what is unsynced:
            // keeping it would only split states by when barriers pass.
            next.history.unsynced.clear();
            return;
        }
        if let Some(id) = crash {
            next.history.unsynced.retain(|(u, _)| *u != id);
        }
        let Some(id) = stepped else {
            return;
        };
        let i = usize::from(id);
        let tracked = next.history.has_unsynced(id);
        if passed {
            if tracked {
                next.history.unsynced.retain(|(u, _)| *u != id);
            }
        } else if !tracked && last.actor_storages[i] != next.actor_storages[i] {
            if let Some(NodeStorage::Chunkserver(before)) = &last.actor_storages[i] {
                next.history.unsynced.push((id, before.clone()));
            }
        }
    }

    /// `id` crashes before its barrier: its saved store goes back to what
    /// it was at the last barrier. Did an `Apply` it sent tell of a write
    /// that is now gone? Then the companion is reached.
    ///
    /// The replicas in `torn` come back damaged instead: a store that makes
    /// a replica's data and the metadata covering it durable with one sync
    /// can be caught with the metadata on disk and the data not, and its
    /// load then refuses the replica (the sync was not acknowledged, but a
    /// load cannot tell that from blocks that went bad after it was).
    fn barrier_crash(&self, last: &State, id: Id, torn: &[ChunkHandle]) -> Option<State> {
        let (_, mut before) = last
            .history
            .unsynced
            .iter()
            .find(|(u, _)| *u == id)?
            .clone();
        for chunk in torn {
            Arc::make_mut(&mut before).damage_replica(*chunk);
        }
        let mut next = self.next_state(last, ActorModelAction::Crash(id))?;
        next.history.chunkserver_crashes -= 1;
        next.history.barrier_crashes += 1;
        next.history.unsynced.clear();
        let lost = last
            .history
            .applied
            .iter()
            .any(|(u, chunk, stamp)| *u == id && before.meta(*chunk).applied < *stamp);
        next.history.unsynced_apply_lost |= lost;
        next.history.sync_torn |= !torn.is_empty();
        next.actor_storages[usize::from(id)] = Some(NodeStorage::Chunkserver(before));
        Some(next)
    }

    /// The crashes of `id` that tear its sync: one per non-empty set of the
    /// replicas whose data it wrote since its last barrier (a sync covers
    /// every such replica, and each may be torn or not).
    fn torn_sync_actions(&self, state: &State, id: Id, actions: &mut Vec<Action>) {
        let Some((_, before)) = state.history.unsynced.iter().find(|(u, _)| *u == id) else {
            return;
        };
        let Some(NodeStorage::Chunkserver(now)) = &state.actor_storages[usize::from(id)] else {
            return;
        };
        let written = written_between(before, now);
        for set in 1..1u32 << written.len() {
            let chunks: Vec<String> = written
                .iter()
                .enumerate()
                .filter(|(bit, _)| set & (1 << bit) != 0)
                .map(|(_, c)| c.to_string())
                .collect();
            actions.push(ActorModelAction::SelectRandom {
                actor: id,
                key: format!("{BARRIER_CRASH_TORN}{}", chunks.join(", ")),
                random: (),
            });
        }
    }

    /// `id` takes the `Apply` named `which` and crashes during the sync
    /// of the barrier it passes within that step (before its `Applied`
    /// leaves), tearing it: the replicas the step wrote come back damaged,
    /// the rest as they were, and nothing the step would send leaves. The
    /// host passes one barrier per batch of such steps, so a kill during
    /// a secondary's sync does this; a step's own barrier is otherwise
    /// atomic here, so without it only a sync a step leaves pending (a
    /// primary's) is ever torn. Only for a node with nothing unsynced, so
    /// its saved store is the one as of its last barrier.
    fn step_crash_torn(&self, last: &State, id: Id, which: &str) -> Option<State> {
        // Generated only for such a node (`actions`); the store below
        // must be the barrier's, so a path replayed or edited by hand
        // that breaks this is refused rather than torn wrongly.
        if last.history.has_unsynced(id) {
            return None;
        }
        let env = last
            .network
            .iter_deliverable()
            .find(|e| e.dst == id && self.envelope_name(e) == which)?
            .to_cloned_msg();
        let i = usize::from(id);
        let Some(NodeStorage::Chunkserver(before)) = &last.actor_storages[i] else {
            return None;
        };
        let deliver = ActorModelAction::Deliver {
            src: env.src,
            dst: env.dst,
            msg: env.msg.clone(),
        };
        let stepped = self.inner.next_state(last, deliver)?;
        let Some(NodeStorage::Chunkserver(after)) = &stepped.actor_storages[i] else {
            return None;
        };
        let torn: Vec<ChunkHandle> = written_between(before, after)
            .into_iter()
            .map(|c| c as ChunkHandle)
            .collect();
        if torn.is_empty() {
            return None;
        }
        // The message is taken; the crash then leaves the store as of the
        // last barrier, the written replicas damaged.
        let mut taken = self.inner.next_state(last, ActorModelAction::Drop(env))?;
        taken.history.unsynced.push((id, before.clone()));
        self.barrier_crash(&taken, id, &torn)
    }

    /// How a duplication action names its message: readable in
    /// counterexamples, and unique among the messages in flight.
    fn envelope_name(&self, e: &Envelope<&Msg<RecordToken>>) -> String {
        format!(
            "{} → {}: {:?}",
            self.node_name(e.src),
            self.node_name(e.dst),
            e.msg
        )
    }

    /// Whether a `SelectRandom` choice under `key` is a chunkserver's
    /// barrier (`barrier_crashes`): a real node passes its own barrier at
    /// the end of each batch, so replaying one has nothing to do.
    pub fn is_barrier(&self, key: &str) -> bool {
        key == BARRIER
    }

    /// Whether an environment choice under `key` crashes its chunkserver
    /// before its barrier (for replaying a path on real nodes).
    pub fn is_barrier_crash(&self, key: &str) -> bool {
        key == BARRIER_CRASH
    }

    /// The message a duplication choice (`SelectRandom` under `key`)
    /// copies in `last`, if `key` is one: for replaying a path on real
    /// nodes, which cannot parse the name back.
    pub fn duplicated_by(&self, last: &State, key: &str) -> Option<(Id, Id, Msg<RecordToken>)> {
        self.envelope_named(last, key.strip_prefix(DUPLICATE)?)
    }

    /// The message a chunkserver takes in the step whose barrier's sync
    /// a crash tears (`SelectRandom` under `key`), if `key` is such a
    /// choice: for replaying a path on real nodes.
    pub fn torn_step_of(&self, last: &State, key: &str) -> Option<(Id, Id, Msg<RecordToken>)> {
        self.envelope_named(last, key.strip_prefix(STEP_CRASH_TORN)?)
    }

    /// Whether an environment choice under `key` crashes its chunkserver
    /// tearing the sync of the barrier its last steps wait for.
    pub fn is_torn_barrier_crash(&self, key: &str) -> bool {
        key.starts_with(BARRIER_CRASH_TORN)
    }

    fn envelope_named(&self, last: &State, which: &str) -> Option<(Id, Id, Msg<RecordToken>)> {
        last.network
            .iter_deliverable()
            .find(|e| self.envelope_name(e) == which)
            .map(|e| (e.src, e.dst, e.msg.clone()))
    }

    /// The network delivers the message named `which` a second time: one
    /// more copy of it is in flight (a retransmission both ends of a
    /// connection saw, or a resend after a reconnection).
    fn duplicate(&self, last: &State, which: &str) -> Option<State> {
        let env = last
            .network
            .iter_deliverable()
            .find(|e| self.envelope_name(e) == which)?
            .to_cloned_msg();
        let mut next = last.clone();
        let Network::UnorderedNonDuplicating(m) = &mut next.network else {
            return None;
        };
        *m.get_mut(&env)? += 1;
        next.history.duplications += 1;
        Some(next)
    }
}

/// `e` as the network's iterators give it.
fn borrowed(e: &Envelope<Msg<RecordToken>>) -> Envelope<&Msg<RecordToken>> {
    Envelope {
        src: e.src,
        dst: e.dst,
        msg: &e.msg,
    }
}

/// The replicas (by chunk) whose data differs between two stores.
fn written_between(before: &MemStore, now: &MemStore) -> Vec<usize> {
    fn cells(s: &MemStore, c: usize) -> Option<&[Option<Cell>]> {
        s.replicas().get(c).map(|r| r.cells.as_slice())
    }
    (0..now.replicas().len().max(before.replicas().len()))
        .filter(|&c| cells(before, c) != cells(now, c))
        .collect()
}

pub fn master(s: &State) -> &MasterState {
    match &**s.actor_states[0] {
        NodeState::Master(m) => m,
        _ => unreachable!("node 0 is the master"),
    }
}

impl Model for LeaseholdModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        self.inner.init_states()
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        self.inner.actions(state, actions);
        actions.retain(|a| self.allowed(state, a));
        // A disk filling up is the environment's choice, as a crash is;
        // stateright's random selection carries it (the actors make no
        // random choices of their own).
        let faults = [
            (
                DISK_FULL,
                state.history.store_faults < self.cfg.store_faults,
            ),
            (
                BLOCKS_CORRUPT,
                state.history.read_faults < self.cfg.read_faults,
            ),
        ];
        if state.history.duplications < self.cfg.duplications {
            for e in state.network.iter_deliverable() {
                actions.push(ActorModelAction::SelectRandom {
                    actor: e.dst,
                    key: format!("{DUPLICATE}{}", self.envelope_name(&e)),
                    random: (),
                });
            }
        }
        if self.cfg.barrier_crashes > 0 {
            let none_down = !state.crashed.iter().any(|c| *c);
            let crash_left = state.history.barrier_crashes < self.cfg.barrier_crashes;
            for (id, _) in &state.history.unsynced {
                if state.crashed[usize::from(*id)] {
                    continue;
                }
                actions.push(ActorModelAction::SelectRandom {
                    actor: *id,
                    key: BARRIER.into(),
                    random: (),
                });
                if none_down && crash_left {
                    actions.push(ActorModelAction::SelectRandom {
                        actor: *id,
                        key: BARRIER_CRASH.into(),
                        random: (),
                    });
                    if self.cfg.torn_syncs {
                        self.torn_sync_actions(state, *id, actions);
                    }
                }
            }
            if none_down && crash_left && self.cfg.torn_syncs {
                for e in state.network.iter_deliverable() {
                    if matches!(e.msg, Msg::Apply { .. } | Msg::ApplyBatch { .. })
                        && self.cfg.is_chunkserver(e.dst)
                        && !state.crashed[usize::from(e.dst)]
                        && !state.history.has_unsynced(e.dst)
                    {
                        actions.push(ActorModelAction::SelectRandom {
                            actor: e.dst,
                            key: format!("{STEP_CRASH_TORN}{}", self.envelope_name(&e)),
                            random: (),
                        });
                    }
                }
            }
        }
        for (key, left) in faults {
            if !left {
                continue;
            }
            for (id, c) in self.live_chunkservers(state) {
                let had = match key {
                    DISK_FULL => c.store.is_full(),
                    _ => c.store.is_corrupt(),
                };
                if !had {
                    actions.push(ActorModelAction::SelectRandom {
                        actor: id,
                        key: key.into(),
                        random: (),
                    });
                }
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        if let ActorModelAction::SelectRandom { actor, key, .. } = &action {
            if key == DISK_FULL || key == BLOCKS_CORRUPT {
                return Some(self.store_fault(last, *actor, key));
            }
            if let Some(which) = key.strip_prefix(DUPLICATE) {
                return self.duplicate(last, which);
            }
            if key == BARRIER {
                let mut next = last.clone();
                next.history.unsynced.retain(|(id, _)| id != actor);
                return Some(next);
            }
            if key == BARRIER_CRASH {
                return self.barrier_crash(last, *actor, &[]);
            }
            if let Some(which) = key.strip_prefix(STEP_CRASH_TORN) {
                return self.step_crash_torn(last, *actor, which);
            }
            if let Some(chunks) = key.strip_prefix(BARRIER_CRASH_TORN) {
                let torn: Vec<ChunkHandle> = chunks
                    .split(", ")
                    .map(|c| c.parse().expect("the wrapper names chunks by number"))
                    .collect();
                return self.barrier_crash(last, *actor, &torn);
            }
        }
        let crash = match &action {
            ActorModelAction::Crash(id) => Some(*id),
            _ => None,
        };
        // The chunkserver whose handler this action runs, if any.
        let stepped = match &action {
            ActorModelAction::Deliver { dst: id, .. }
            | ActorModelAction::Timeout(id, _)
            | ActorModelAction::Recover(id) => Some(*id).filter(|id| self.cfg.is_chunkserver(*id)),
            _ => None,
        };
        // A lease clock running out, held or requested, is the bounded
        // timing fault, unless a restarted master is waiting it out.
        let expiry = matches!(&action, ActorModelAction::Timeout(_, Timer::LeaseClock(..)))
            && !self.waiting_out_leases(last);
        let armed = self.expiry_armed_by(last, &action);
        let rearmed = self.lease_clock_rearmed_by(last, &action);
        let lost = matches!(&action, ActorModelAction::Drop(_));
        // Only a configuration that allows early grant timeouts counts
        // them (the check replays every message in flight).
        let early = self.cfg.early_grant_timeouts > 0
            && self.cfg.prompt_network
            && matches!(
                &action,
                ActorModelAction::Timeout(_, Timer::GrantTimeout(_))
            )
            && (self.can_still_arrive(last, None) || self.holding_back(last));
        let holder_step = self
            .steps_holder(last, &action)
            .map(|id| (id, action.clone()));
        let action_copy = self.step_kind(&action);
        let resends = matches!(
            &action,
            ActorModelAction::Timeout(_, Timer::HeldBack(_))
                | ActorModelAction::Deliver {
                    msg: Msg::ApplyGap { .. },
                    ..
                }
        );
        // A delivery that changes nothing is no step to stateright, so a
        // master that takes a failure report and keeps the replica counted
        // (FAULT-2) would go unseen: such a delivery is a step here, one
        // that changes nothing but the broken rule. A correct master
        // changes its state whenever the rule applies, so this adds no
        // state to a run without the bug.
        let report = match &action {
            ActorModelAction::Deliver {
                src,
                dst,
                msg: Msg::ReplicaFailed { chunk, version, .. },
            } if *dst == self.cfg.master_id() => Some((*src, *chunk, *version)),
            _ => None,
        };
        let Some(mut next) = self.inner.next_state(last, action) else {
            let (src, chunk, version) = report?;
            let m = master(last);
            let master_up = !last.crashed[usize::from(self.cfg.master_id())];
            if !master_up || !failed_replica_still_counted(m, m, src, chunk, version) {
                return None;
            }
            let mut next = last.clone();
            next.history.broken |= STEP_FAILED_REPLICA_COUNTED;
            return Some(next);
        };
        if resends || self.cfg.prompt_network {
            Self::merge_copies(&mut next, self.cfg.prompt_network);
        }
        if expiry {
            next.history.lease_expiries += 1;
        }
        if lost && !self.cfg.lossy {
            next.history.losses += 1;
        }
        if early {
            next.history.early_grant_timeouts += 1;
        }
        if last.history.snapshot.is_none() && next.history.snapshot.is_some() {
            let ids = self.cfg.chunkserver_ids();
            let mut history = next.history.clone();
            history.settle_snapshot(ids.iter().map(|id| store(&next, *id)));
            next.history = history;
        }
        self.settle_expiry_waits(&mut next, &armed);
        self.record_starts(last, &mut next);
        if self.cfg.age_out && !next.history.failed_push_dropped {
            if let Some(id) = stepped {
                next.history.failed_push_dropped = self.failed_push_dropped(last, id, &next);
            }
        }
        if !next.history.replica_deleted && self.deletion(last, &action_copy, &next).is_some() {
            next.history.replica_deleted = true;
        }
        let mut broken = self.step_breaks(last, &action_copy, &next);
        if rearmed {
            broken |= STEP_LEASE_CLOCK_REARMED;
        }
        if let Some((id, action)) = &holder_step {
            if self.held_drop_misanswered_by(last, *id, action, &next) {
                broken |= STEP_HELD_MISANSWERED;
            }
        }
        if broken & !next.history.broken != 0 {
            next.history.broken |= broken;
        }
        if let Some(id) = crash {
            if id == self.cfg.master_id() {
                next.history.master_crashes += 1;
            } else {
                next.history.chunkserver_crashes += 1;
            }
        }
        if self.cfg.barrier_crashes > 0 {
            self.track_barrier(last, &mut next, stepped, crash);
        }
        // Last, so that the step rules above see every message this step
        // sent.
        if self.cfg.drop_ignored {
            self.drop_ignored(&mut next);
        }
        Some(next)
    }

    fn format_action(&self, action: &Action) -> String {
        match action {
            ActorModelAction::Deliver { src, dst, msg } => {
                // The act leads the line; the message's own Debug repeats it
                // in brackets, which this drops.
                let text = format!("{msg:?}");
                let body = text.split_once("] ").map(|(_, b)| b).unwrap_or(&text);
                format!(
                    "{} {} → {}: {body}",
                    msg.act(),
                    self.node_name(*src),
                    self.node_name(*dst)
                )
            }
            ActorModelAction::Timeout(id, timer) => {
                format!("timeout {}: {timer:?}", self.node_name(*id))
            }
            ActorModelAction::Crash(id) => format!("crash {}", self.node_name(*id)),
            ActorModelAction::SelectRandom { key, .. } if key.starts_with(DUPLICATE) => key.clone(),
            ActorModelAction::SelectRandom { actor, key, .. } => {
                format!("{key} {}", self.node_name(*actor))
            }
            ActorModelAction::Recover(id) => format!("restart {}", self.node_name(*id)),
            ActorModelAction::Drop(env) => format!(
                "lose {} → {}: {:?}",
                self.node_name(env.src),
                self.node_name(env.dst),
                env.msg
            ),
        }
    }

    fn format_step(&self, last: &State, action: Action) -> Option<String> {
        self.inner.format_step(last, action)
    }

    fn as_svg(&self, path: Path<State, Action>) -> Option<String> {
        // Same states and actions: the inner model can replay the path.
        let steps = path.into_vec();
        let init = steps.first()?.0.clone();
        let actions: Vec<Action> = steps.into_iter().filter_map(|(_, a)| a).collect();
        Path::from_actions(&self.inner, init, actions.iter()).and_then(|p| self.inner.as_svg(p))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        self.properties.clone()
    }

    fn within_boundary(&self, state: &State) -> bool {
        (self.inner.within_boundary)(&self.cfg, state)
    }
}

impl LeaseholdModel {
    pub fn node_name(&self, id: Id) -> String {
        let i = usize::from(id);
        if i == 0 {
            "master".into()
        } else if self.cfg.is_chunkserver(id) {
            format!("cs{i}")
        } else if i < 1 + self.cfg.chunkservers as usize + self.cfg.clients() {
            format!("client{}", i - 1 - self.cfg.chunkservers as usize)
        } else {
            format!("node{i}")
        }
    }
}
