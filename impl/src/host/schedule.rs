//! A host run by a scheduler instead of the clock and arrival order: for
//! replaying a checker's counterexample on real nodes (`leasehold replay`,
//! issue #11).
//!
//! Frames still cross real TCP connections, are decoded by the real
//! readers and land in the node's inbox; there they are *held*. The actor
//! handles one only when the scheduler orders it delivered, and a timer
//! fires only when ordered, whatever its deadline: the schedule, not
//! sleeps or the order frames happen to arrive in, decides every step. A
//! step's commands are carried out (barrier, saves, sends) before the
//! order is answered, so the scheduler's next order finds the sends it
//! caused on their way.
//!
//! Time is a [`VirtualClock`] all nodes of one replay share. Every step
//! reads it, and a step takes a microsecond; firing a timer first moves it to that timer's deadline if it
//! is still ahead (time passes until the timer is due), so a trace of a
//! replay shows no timer firing early (TRACE-3) and its readings compare
//! across nodes as real ones do (LEASE-1 in real time): a lease clock the
//! schedule lets run out late is, in the trace, one that ran out late.

use serde::Serialize;
use stateright::actor::{Actor, Id};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::event_loop::NodeLoop;
use super::{HostError, Inbound, StepClock};
use super::{Step, StepCommand};

/// How long an ordered message may still be on its way before the order
/// is refused. Loopback frames take microseconds; the margin is for a
/// connection still being (re)made with backoff after a peer restarted.
const ARRIVAL_WAIT: Duration = Duration::from_secs(5);

/// How long an order waits for the message it names exactly when only
/// similar ones are held (see [`Likeness::Similar`]).
const EXACT_WAIT: Duration = Duration::from_millis(300);

/// How far the virtual clock moves in one step.
const STEP_NS: u64 = 1_000;

/// Time shared by the nodes of one replay, in nanoseconds on the same
/// scale as [`super::monotonic_ns`] (it starts at a real reading).
#[derive(Clone, Debug)]
pub struct VirtualClock(Arc<AtomicU64>);

impl VirtualClock {
    pub fn starting_now() -> VirtualClock {
        VirtualClock(Arc::new(AtomicU64::new(super::monotonic_ns())))
    }

    pub fn ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// A step's reading: a microsecond after the last step's, so that the
    /// steps of all nodes are ordered by their readings as the scheduler
    /// ordered them (validation builds global states in clock order).
    fn reading(&self) -> StepClock {
        StepClock {
            at: Instant::now(),
            ns: self.0.fetch_add(STEP_NS, Ordering::SeqCst) + STEP_NS,
        }
    }

    fn advance_to(&self, ns: u64) {
        self.0.fetch_max(ns, Ordering::SeqCst);
    }
}

/// How a held message compares with the one an order names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Likeness {
    Same,
    /// The same kind of message, with other contents: the scheduler maps
    /// the model's messages to real ones, and where the stores differ in
    /// shape (the model's store keeps record tokens, the file store bytes)
    /// only the kind can match.
    Similar,
    Unlike,
}

/// Which held message an order means.
pub type Pick<M> = Box<dyn Fn(&M) -> Likeness + Send>;

/// One thing the scheduler tells a node to do.
pub enum Order<A: Actor> {
    /// Handle a held message from `src`; with `keep`, a copy stays held
    /// (a duplicating network may deliver it again).
    Deliver {
        src: Id,
        pick: Pick<A::Msg>,
        keep: bool,
    },
    /// Forget a held message from `src` (the network lost it).
    Lose { src: Id, pick: Pick<A::Msg> },
    /// Fire an armed timer, when [`FireAt`] says.
    Fire { timer: A::Timer, at: FireAt },
    /// Nothing but say when an armed timer is due ([`Done::deadline_ns`]).
    Deadline(A::Timer),
    /// Nothing but say how many messages are held ([`Done::held`]).
    Held,
    /// Handle the message held longest, if any ([`Done::handled`]): a
    /// prompt network's next delivery, once the path is over (replay's
    /// release, LIVE-2).
    DeliverOldest,
    /// Nothing but say when the armed timer due first is due
    /// ([`Done::deadline_ns`], `None` if none is armed).
    Earliest,
    /// Fire the armed timer due first, at its deadline ([`Done::handled`]).
    FireEarliest,
    /// Nothing: answered once every earlier step, the start included, has
    /// been carried out.
    Sync,
    /// The steps from now on do not pass their barrier: each sends what
    /// may leave before it ([`super::EarlySends`]) and keeps the rest of
    /// its commands until [`Order::PassBarrier`], or until a step sends
    /// something that must follow the barrier (which passes it then, for
    /// all of them, as a batch of the event loop would). A crash meanwhile
    /// loses what they wrote if the store loses what was not synced
    /// (`crate::filestore::FileStore::lose_unsynced`): the model's crash
    /// before the barrier (`barrier_crashes`).
    HoldBarrier,
    /// Pass the barrier the steps since [`Order::HoldBarrier`] wait for,
    /// and carry out the rest of their commands; nothing if none wait.
    PassBarrier,
}

/// When an ordered timer fires on the virtual clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FireAt {
    /// At its deadline or, if later, at `not_before_ns` (a late timer: the
    /// host may fire any timer late, never early).
    Deadline { not_before_ns: u64 },
    /// Now, even before its deadline: the node's clock runs fast, beyond
    /// the drift bound the protocol assumes (replay plays this only for the
    /// seeded bug that stands for such a clock).
    Now,
}

/// Why a node did not carry out an order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no such message arrived from node {src} within {ARRIVAL_WAIT:?}; held: {held:?}")]
    NotArrived { src: u64, held: Vec<String> },
    #[error("timer not armed; armed: {armed:?}")]
    NotArmed { armed: Vec<String> },
    #[error("the node has stopped")]
    Stopped,
}

/// What a node did with an order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Done {
    /// The message handled was only [`Likeness::Similar`] to the order's.
    pub similar: bool,
    /// For [`Order::Deadline`] and [`Order::Earliest`]: the timer's
    /// deadline on the virtual clock.
    pub deadline_ns: Option<u64>,
    /// For [`Order::Held`]: messages held.
    pub held: usize,
    /// For [`Order::DeliverOldest`] and [`Order::FireEarliest`]: a step
    /// was taken.
    pub handled: bool,
}

pub(super) struct Scheduled<A: Actor> {
    order: Order<A>,
    answer: oneshot::Sender<Result<Done, Refusal>>,
}

/// The scheduler's end of one node.
pub struct Schedule<A: Actor> {
    orders: mpsc::UnboundedSender<Scheduled<A>>,
}

impl<A: Actor> Clone for Schedule<A> {
    fn clone(&self) -> Self {
        Schedule {
            orders: self.orders.clone(),
        }
    }
}

/// The node's end, given to [`super::ActorHost::with_schedule`].
pub struct Scheduling<A: Actor> {
    pub(super) orders: mpsc::UnboundedReceiver<Scheduled<A>>,
    pub(super) clock: VirtualClock,
}

impl<A: Actor> Scheduling<A> {
    /// The virtual clock's reading now (where the node's trace starts).
    pub fn clock_ns(&self) -> u64 {
        self.clock.ns()
    }
}

/// A scheduler's handle on one node, and what the node's host takes.
pub fn schedule<A: Actor>(clock: VirtualClock) -> (Schedule<A>, Scheduling<A>) {
    let (orders, rx) = mpsc::unbounded_channel();
    (Schedule { orders }, Scheduling { orders: rx, clock })
}

impl<A: Actor> Schedule<A> {
    /// Has the node carry out `order`, and waits until it has (its step's
    /// commands included) or refused.
    pub async fn order(&self, order: Order<A>) -> Result<Done, Refusal> {
        let (answer, done) = oneshot::channel();
        self.orders
            .send(Scheduled { order, answer })
            .map_err(|_| Refusal::Stopped)?;
        done.await.unwrap_or(Err(Refusal::Stopped))
    }
}

impl<A> NodeLoop<A>
where
    A: Actor,
    A::Msg: Serialize + Send + 'static,
    A::Storage: Serialize + Clone,
{
    /// The loop of a scheduled node (see the module doc): starts the actor,
    /// then carries out orders one at a time, holding whatever arrives.
    pub(super) fn run_scheduled(
        mut self,
        storage: Option<A::Storage>,
        mut inbox: mpsc::Receiver<Inbound<A::Msg>>,
        mut shutdown: watch::Receiver<bool>,
        mut scheduling: Scheduling<A>,
    ) -> Result<(), HostError> {
        let waiter = super::event_loop::waiter()?;
        let clock = scheduling.clock.clone();
        tracing::info!(restored = storage.is_some(), "starting actor (scheduled)");
        let (mut state, start) = self.start_actor(storage, clock.reading());
        let mut held: Vec<(Id, A::Msg)> = vec![];
        // Steps waiting for their barrier, while one is held.
        let mut unpassed: Option<Vec<Step<A>>> = None;
        let result = self.commit(vec![start]).and_then(|()| loop {
            // What the actor sent itself is held like the rest.
            held.extend(self.local.drain(..).map(|m| (self.id, m)));
            enum Next<A: Actor> {
                Order(Scheduled<A>),
                Arrived(Inbound<A::Msg>),
                Stop,
            }
            let next = waiter.block_on(async {
                tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|stop| *stop) => Next::Stop,
                    m = inbox.recv() => m.map_or(Next::Stop, Next::Arrived),
                    o = scheduling.orders.recv() => o.map_or(Next::Stop, Next::Order),
                }
            });
            let Scheduled { order, answer } = match next {
                Next::Stop => break Ok(()),
                Next::Arrived(Inbound { src, msg, .. }) => {
                    held.push((src, msg));
                    continue;
                }
                Next::Order(o) => o,
            };
            let outcome = match order {
                Order::Deliver { src, pick, keep } => {
                    match wait_for(&waiter, &mut inbox, &mut held, src, &pick) {
                        Ok((i, similar)) => {
                            let msg = if keep {
                                held[i].1.clone()
                            } else {
                                held.remove(i).1
                            };
                            let step = self.handle_msg(&mut state, clock.reading(), src, msg);
                            self.commit_scheduled(&mut unpassed, step)?;
                            Ok(Done {
                                similar,
                                ..Done::default()
                            })
                        }
                        Err(refusal) => Err(refusal),
                    }
                }
                Order::Lose { src, pick } => wait_for(&waiter, &mut inbox, &mut held, src, &pick)
                    .map(|(i, similar)| {
                        let (_, msg) = held.remove(i);
                        tracing::debug!(src = usize::from(src) as u64, ?msg, "lost (scheduled)");
                        Done {
                            similar,
                            ..Done::default()
                        }
                    }),
                Order::Sync => Ok(Done::default()),
                Order::Deadline(timer) => match self.timers.get(&timer) {
                    Some(deadline) => Ok(Done {
                        deadline_ns: Some(deadline.ns),
                        ..Done::default()
                    }),
                    None => Err(Refusal::NotArmed {
                        armed: self.timers.keys().map(|t| format!("{t:?}")).collect(),
                    }),
                },
                Order::Fire { timer, at } => match self.timers.remove(&timer) {
                    Some(deadline) => {
                        if let FireAt::Deadline { not_before_ns } = at {
                            clock.advance_to(deadline.ns.max(not_before_ns));
                        }
                        let step = self.handle_timer(&mut state, clock.reading(), timer);
                        self.commit_scheduled(&mut unpassed, step)?;
                        Ok(Done::default())
                    }
                    None => Err(Refusal::NotArmed {
                        armed: self.timers.keys().map(|t| format!("{t:?}")).collect(),
                    }),
                },
                Order::Held => Ok(Done {
                    held: held.len(),
                    ..Done::default()
                }),
                Order::DeliverOldest => {
                    if held.is_empty() {
                        Ok(Done::default())
                    } else {
                        let (src, msg) = held.remove(0);
                        let step = self.handle_msg(&mut state, clock.reading(), src, msg);
                        self.commit_scheduled(&mut unpassed, step)?;
                        Ok(Done {
                            handled: true,
                            ..Done::default()
                        })
                    }
                }
                Order::Earliest => Ok(Done {
                    deadline_ns: self.earliest_timer().map(|(_, ns)| ns),
                    ..Done::default()
                }),
                Order::FireEarliest => match self.earliest_timer() {
                    Some((timer, ns)) => {
                        self.timers.remove(&timer);
                        clock.advance_to(ns);
                        let step = self.handle_timer(&mut state, clock.reading(), timer);
                        self.commit_scheduled(&mut unpassed, step)?;
                        Ok(Done {
                            handled: true,
                            ..Done::default()
                        })
                    }
                    None => Ok(Done::default()),
                },
                Order::HoldBarrier => {
                    unpassed.get_or_insert_with(Vec::new);
                    Ok(Done::default())
                }
                Order::PassBarrier => {
                    if let Some(steps) = unpassed.take() {
                        self.pass_barrier(steps)?;
                    }
                    Ok(Done::default())
                }
            };
            let _ = answer.send(outcome);
        });
        self.shutdown.send_replace(true);
        tracing::info!("actor stopped");
        result
    }
}

impl<A> NodeLoop<A>
where
    A: Actor,
    A::Msg: Serialize + Send + 'static,
    A::Storage: Serialize + Clone,
{
    /// Commits a scheduled step, or, while a barrier is held
    /// ([`Order::HoldBarrier`]), sends what may leave before it and keeps
    /// the rest, passing it at once if the step sends anything that must
    /// follow it. A node stopped meanwhile never carries the rest out.
    fn commit_scheduled(
        &mut self,
        unpassed: &mut Option<Vec<Step<A>>>,
        step: Step<A>,
    ) -> Result<(), HostError> {
        let Some(steps) = unpassed else {
            return self.commit(vec![step]);
        };
        steps.push(step);
        self.send_early(steps)?;
        let must_pass = steps.iter().any(|s| {
            s.commands
                .iter()
                .any(|c| matches!(c, StepCommand::Send(..)))
        });
        if must_pass {
            tracing::debug!("a held step sends what must follow the barrier: passing it");
            let steps = unpassed.take().unwrap_or_default();
            self.pass_barrier(steps)?;
        }
        Ok(())
    }
}

impl<A> NodeLoop<A>
where
    A: Actor,
{
    /// The armed timer due first and its deadline; of timers due at once,
    /// the first by name, so that a replay fires them in the same order
    /// every time.
    fn earliest_timer(&self) -> Option<(A::Timer, u64)> {
        self.timers
            .iter()
            .min_by_key(|(t, d)| (d.ns, format!("{t:?}")))
            .map(|(t, d)| (t.clone(), d.ns))
    }
}

/// The index of the held message from `src` that `pick` means, waiting
/// for arrivals while there is none: the first the same, else (after a
/// short wait for the same one) the first similar.
fn wait_for<M>(
    waiter: &tokio::runtime::Runtime,
    inbox: &mut mpsc::Receiver<Inbound<M>>,
    held: &mut Vec<(Id, M)>,
    src: Id,
    pick: &Pick<M>,
) -> Result<(usize, bool), Refusal>
where
    M: std::fmt::Debug,
{
    let started = Instant::now();
    loop {
        let mut similar = None;
        for (i, (from, msg)) in held.iter().enumerate() {
            if *from != src {
                continue;
            }
            match pick(msg) {
                Likeness::Same => return Ok((i, false)),
                Likeness::Similar if similar.is_none() => similar = Some(i),
                _ => {}
            }
        }
        let waited = started.elapsed();
        if let Some(i) = similar {
            if waited >= EXACT_WAIT {
                return Ok((i, true));
            }
        }
        let limit = if similar.is_some() {
            EXACT_WAIT
        } else {
            ARRIVAL_WAIT
        };
        let Some(left) = limit.checked_sub(waited) else {
            return Err(Refusal::NotArrived {
                src: usize::from(src) as u64,
                held: held
                    .iter()
                    .map(|(from, m)| format!("{} {m:?}", usize::from(*from)))
                    .collect(),
            });
        };
        match waiter.block_on(async { tokio::time::timeout(left, inbox.recv()).await }) {
            Ok(Some(Inbound { src, msg, .. })) => held.push((src, msg)),
            Ok(None) => return Err(Refusal::Stopped),
            Err(_) => {}
        }
    }
}
