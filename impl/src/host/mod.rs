//! [`ActorHost`]: runs one stateright [`Actor`] as a node on the network.
//!
//! The host decides nothing about the protocol. It maps the actor's commands
//! to the real world and the real world to handler calls:
//!
//! | actor side                 | host side                                   |
//! |----------------------------|---------------------------------------------|
//! | `on_start(id, storage)`    | storage loaded from `<storage_dir>/actor-<id>.storage` |
//! | `Send(dst, msg)`           | frame on the TCP connection to `dst`; to itself: local queue; to the application id: the application channel |
//! | `SetTimer(t, lo..hi)`      | deadline = the step's clock reading + uniform(lo..hi); re-setting an armed `t` re-arms it |
//! | `CancelTimer(t)`           | deadline removed (no-op if not armed)      |
//! | `ChooseRandom(key, xs)`    | pending choice under `key` (empty `xs` removes it); later one `x` picked uniformly → `on_random` |
//! | `Save(storage)`            | temp file, fsync, rename, fsync of the directory, before the next command |
//! | (any command)              | after the [`Barrier`], if one is given: what the handlers wrote (chunk files) is durable before anything they commanded happens, but for the [`EarlySends`] |
//! | `on_msg(src, msg)`         | a frame from a peer, or [`HostHandle::inject`] |
//! | `on_timeout(t)`            | `t`'s deadline passed (it is disarmed first, as in stateright's model) |
//!
//! Why a dedicated OS thread per server actor: the actor's handlers are
//! synchronous and a server's may block (a chunkserver's handler writes and
//! fsyncs chunk files through [`crate::filestore::FileStore`], and `Save`
//! must be durable before the next command). Blocking a tokio worker would
//! stall every other node's connections; a thread of its own keeps the
//! actor strictly sequential. The thread runs a single-threaded runtime of
//! its own that carries the server's connections too (reading, writing,
//! accepting are tasks on it), so a frame read is handled, and a frame sent
//! is written, without waking another thread (issue #13: 0.6-0.9× the
//! cluster's CPU per 1 KiB append; docs/performance.md). While a handler or
//! the barrier syncs, the server's own reading and writing wait, as in any
//! single event loop. A client's handlers never block (no files, no
//! barrier), so its loop, the same code, is a task on the caller's runtime,
//! as are its connections: a message reaches it, and its sends leave,
//! without waking a thread of their own.
//!
//! Group commit: when messages are waiting, the host hands up to
//! [`BATCH_MSGS_MAX`] of them to their handlers one after another, then
//! passes the [`Barrier`] once and carries out all their commands in order.
//! Delaying a command until the batch ends is a delay the model already
//! allows (messages may take any time to arrive); running the handlers in
//! arrival order keeps each one's view of the state exact. So one fsync
//! covers the mutations of every message in the batch, and nothing a
//! handler commanded, least of all an acknowledgement, leaves the node
//! before its writes are durable ([0099]: replies report applied
//! mutations), but for what the protocol names ([`EarlySends`]: a
//! primary's `Apply`, so that its own write and the secondaries' overlap,
//! and the push, which tells of buffers only),
//! which leaves before the barrier from the batch's steps up to the first
//! that sends anything else (the model's `barrier_crashes` checks what a
//! crash then loses). A batch stops early at an expired timer, so that
//! timers and cancellations keep their order. Before the barrier the loop
//! yields to its runtime, whose writers then write the early sends and
//! whose readers take in what arrived meanwhile; those messages join the
//! batch, which changes nothing the model sees (they could have been
//! there when the batch began).
//!
//! Time: every step (a handler call) has one reading of the monotonic
//! clock, taken before its handler runs and before any timer that expired
//! by then is handled. A timer the step sets is due that long after the
//! reading, however long the step's batch, barrier or sends then take, so
//! the host never makes a deadline later than the actor asked for. A lease
//! clock started in the step that sends the lease request therefore runs
//! out no later than `lease_ms` after the request left ([0091],
//! docs/model.md "Time"). And no step's reading is past the deadline of a
//! timer armed when it began: expired timers are handled first.
//!
//! Step traces: with a [`StepRecorder`], every step (input, clock reading,
//! commands with their deadlines, a digest of the state after it) is handed
//! to the recorder and written as soon as its handler returns, before the
//! next handler, the barrier and any of its commands: a trace never lacks a
//! step whose messages left, nor (but for the instant between a handler's
//! last write and its record) one whose chunk writes a killed process left
//! behind.
//!
//! Failure handling: a peer that sends an oversized or malformed frame has
//! its connection closed and logged; the node goes on. A peer that cannot be
//! reached is retried with capped exponential backoff while frames for it
//! queue up to [`PEER_QUEUE_FRAMES_MAX`]; beyond that, new frames for it are
//! dropped (the protocol tolerates loss, memory must stay bounded). A failed
//! `Save` or barrier stops the node (fail-stop: the commands after it depend
//! on it), as a crash would in the model.
//!
//! Hostile and excessive input: everything a peer can make a node hold has
//! a named limit ([`ConnLimits`]): connections in total and per address,
//! time to say hello, idle time, bytes of unfinished frames across all
//! connections, and bytes of received messages the actor has yet to
//! handle. A peer over a limit is sent one refusal line naming the
//! limit, logged at WARN with its address, and closed; everyone else goes
//! on being served. The inbox's byte budget is the exception: reaching it
//! is no fault of the peer's, only of a busy actor, so readers wait for
//! room instead (TCP pushes back on the senders), and the actor never
//! waits for it. With a cluster secret, every connection opens with a
//! hello that carries it, and a peer without it is refused the same way
//! before any of its frames reaches the actor (docs/tcp.md, "Handshake").
//!
//! The code, one concern a file: this file holds the public face (config,
//! errors, handles, [`ActorHost::start`]) and every limit;
//! `event_loop.rs` the actor thread's loop over steps, batches and timers;
//! `step.rs` what a step is and who records it; `clock.rs` the step's clock
//! reading; `net/` the accept, read and write tasks (admission, hello,
//! inbound, outbound); `storage.rs` the saved storage and the barrier.

use leasehold_model::types::StoreError;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{de::DeserializeOwned, Serialize};
use stateright::actor::{Actor, Id};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit};
use tracing::Instrument;

use crate::config::{ClusterConfig, ConfigError};

mod clock;
mod event_loop;
mod limits;
mod net;
mod schedule;
mod step;
mod storage;

pub use clock::{monotonic_ns, StepClock};
pub use limits::*;
pub(crate) use net::{hello, opening, Opening, HELLO_HEADER_BYTES};
pub use schedule::{
    schedule, Done, FireAt, Likeness, Order, Pick, Refusal, Schedule, Scheduling, VirtualClock,
};
pub use step::{Step, StepCommand, StepInput, StepRecorder};
pub use storage::{decode_storage, encode_storage, load_storage, Barrier};

use event_loop::NodeLoop;
use net::{accept_loop, spawn_writers};
use storage::StorageFile;

/// Where a node's loop runs.
enum Seat<A: Actor> {
    /// A task of the caller's runtime (a client).
    Task,
    /// A thread of its own.
    Thread(OwnThread<A>),
}

/// What runs a node's loop on its own thread.
enum OwnThread<A: Actor> {
    /// A runtime of the thread's, which carries the node's network tasks
    /// too (a server), and the channel those tasks hold until they end.
    Runtime(tokio::runtime::Runtime, mpsc::Receiver<()>),
    /// A schedule (replay).
    Scheduled(Scheduling<A>),
}

/// Where and with whom one node runs.
#[derive(Clone, Debug)]
pub struct HostConfig {
    pub id: Id,
    /// Address to accept peers on; `None` for a client, which listens
    /// nowhere: it stays connected to every peer, and each answers it on
    /// that connection (docs/tcp.md, "Handshake").
    pub listen: Option<SocketAddr>,
    /// Every server's address (this node's own entry is ignored).
    pub peers: HashMap<Id, SocketAddr>,
    /// Where the actor's saved storage lives; `None`: it keeps none.
    pub storage_dir: Option<PathBuf>,
    /// Messages the actor sends to this id go to the application channel
    /// (see [`RunningHost::take_app_receiver`]) instead of the network. It
    /// must not be a node of the cluster.
    pub app_id: Option<Id>,
    /// Seed for timer durations and random choices; `None` seeds from the
    /// OS. A fixed seed does not make a networked run reproducible, but it
    /// makes one node's choices repeatable given the same inputs.
    pub seed: Option<u64>,
    /// The cluster secret: every connection must open with a hello that
    /// carries it, and this node's writers send it. `None`: the cluster is
    /// open (anyone who can reach the port may send frames), as before
    /// secrets existed.
    pub secret: Option<String>,
    pub limits: ConnLimits,
}

impl HostConfig {
    /// The host settings of server `id` in `cluster`: its address, its
    /// data directory for storage, every other server as a peer.
    pub fn from_cluster(cluster: &ClusterConfig, id: Id) -> Result<Self, ConfigError> {
        let node = cluster.node(id)?;
        let Some(addr) = node.addr else {
            return Err(ConfigError::NoAddress(node.id));
        };
        Ok(HostConfig {
            id,
            listen: Some(addr),
            peers: cluster.addrs(),
            storage_dir: node.data_dir.clone(),
            app_id: None,
            seed: None,
            secret: cluster.secret.clone(),
            limits: cluster.limits,
        })
    }

    /// The host settings of a client of `cluster` under `id`: it listens
    /// nowhere and keeps no storage; every server is a peer.
    pub fn client_of(cluster: &ClusterConfig, id: Id) -> Self {
        HostConfig {
            id,
            listen: None,
            peers: cluster.addrs(),
            storage_dir: None,
            app_id: None,
            seed: None,
            secret: cluster.secret.clone(),
            limits: cluster.limits,
        }
    }

    pub fn with_app_id(mut self, app_id: Id) -> Self {
        self.app_id = Some(app_id);
        self
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The file that holds the actor's last saved storage, if it keeps any.
    pub fn storage_path(&self) -> Option<PathBuf> {
        let dir = self.storage_dir.as_ref()?;
        Some(dir.join(format!("actor-{}.storage", usize::from(self.id) as u64)))
    }
}

/// Why a node could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load saved storage {path}: {message}")]
    LoadStorage { path: PathBuf, message: String },
    #[error("cannot save storage {path}: {message}")]
    SaveStorage { path: PathBuf, message: String },
    #[error("cannot make the actor's writes durable: {0}")]
    Barrier(StoreError),
    #[error("application id {0:?} is also a node of the cluster")]
    AppIdInCluster(Id),
    #[error("cannot start the actor thread: {0}")]
    Thread(std::io::Error),
    #[error("the actor thread panicked")]
    Panicked,
}

/// The node is shut down (or stopped after a failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the node has shut down")]
pub struct HostClosed;

/// Why [`HostHandle::try_inject`] did not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    #[error("the node's inbox is full")]
    Full,
    #[error("the node has shut down")]
    Closed,
}

/// A received message on its way to the actor.
struct Inbound<M> {
    src: Id,
    msg: M,
    /// The share of the inbox's byte budget its frame took (none for an
    /// injected message). Carried along so that whatever becomes of the
    /// message (handled, dropped with a closed inbox, or left behind when
    /// the actor stops) gives the budget back, and no reader waits for
    /// bytes that are gone.
    budget: Option<OwnedSemaphorePermit>,
}

/// Talks to a running node from the same process. Cheap to clone.
pub struct HostHandle<M> {
    id: Id,
    inbox: mpsc::Sender<Inbound<M>>,
    shutdown: Arc<watch::Sender<bool>>,
}

impl<M> Clone for HostHandle<M> {
    fn clone(&self) -> Self {
        HostHandle {
            id: self.id,
            inbox: self.inbox.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

impl<M> HostHandle<M> {
    pub fn id(&self) -> Id {
        self.id
    }

    /// Delivers `msg` to the actor as if `src` had sent it, waiting while
    /// the inbox is full.
    pub async fn inject(&self, src: Id, msg: M) -> Result<(), HostClosed> {
        self.inbox
            .send(Inbound {
                src,
                msg,
                budget: None,
            })
            .await
            .map_err(|_| HostClosed)
    }

    /// Like [`HostHandle::inject`], but gives up at once when the inbox is
    /// full.
    pub fn try_inject(&self, src: Id, msg: M) -> Result<(), InjectError> {
        self.inbox
            .try_send(Inbound {
                src,
                msg,
                budget: None,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => InjectError::Full,
                mpsc::error::TrySendError::Closed(_) => InjectError::Closed,
            })
    }

    /// Starts a graceful shutdown: stop accepting, let the current handler
    /// and its commands finish, close every connection. Returns at once;
    /// [`RunningHost::join`] waits for the end.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

/// A started node. Dropping it leaves the node running; use
/// [`RunningHost::shutdown`] to stop it.
pub struct RunningHost<M> {
    handle: HostHandle<M>,
    local_addr: Option<SocketAddr>,
    /// A client's servers whose first connection attempt has yet to end.
    dialing: Option<watch::Receiver<usize>>,
    app: Option<mpsc::Receiver<M>>,
    actor_result: oneshot::Receiver<Result<(), HostError>>,
    /// Closed when every task and the actor thread of this node have ended.
    all_done: mpsc::Receiver<()>,
}

impl<M> RunningHost<M> {
    pub fn handle(&self) -> HostHandle<M> {
        self.handle.clone()
    }

    pub fn id(&self) -> Id {
        self.handle.id
    }

    /// The address actually listened on (differs from the config for port
    /// 0); `None` for a client.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// For a client: waits until it has tried once to connect to every
    /// server (so that answers to its first requests have a way back), or
    /// `limit` has passed. Returns how many servers it is still trying.
    pub async fn dialed(&self, limit: Duration) -> usize {
        let Some(dialing) = &self.dialing else {
            return 0;
        };
        let mut dialing = dialing.clone();
        let _ = tokio::time::timeout(limit, dialing.wait_for(|n| *n == 0)).await;
        let left = *dialing.borrow();
        left
    }

    /// Messages the actor sent to the application id, once. `None` if there
    /// is no application id or the receiver was already taken.
    pub fn take_app_receiver(&mut self) -> Option<mpsc::Receiver<M>> {
        self.app.take()
    }

    /// Waits until the node has stopped (after [`HostHandle::shutdown`] or a
    /// failure) and all its connections are closed and its port released.
    pub async fn join(mut self) -> Result<(), HostError> {
        let result = (&mut self.actor_result)
            .await
            .unwrap_or(Err(HostError::Panicked));
        drop(self.app.take());
        while self.all_done.recv().await.is_some() {}
        result
    }

    /// Shuts the node down and waits for it.
    pub async fn shutdown(self) -> Result<(), HostError> {
        self.handle.shutdown();
        self.join().await
    }
}

/// Logs one delivered message: `(src, dst, msg)`. The host knows nothing of
/// the protocol, so whoever builds the actor may supply one that extracts
/// the protocol's fields (see `crate::nodes::trace_msg`).
pub type MsgTracer<M> = fn(Id, Id, &M);

/// Logs what a step decided, from the actor's state before and after it
/// (called only for steps that changed the state): the actor itself only
/// sends, sets timers and saves.
pub type StateNarrator<S> = fn(&S, &S);

/// Which way a message passed the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Passage {
    /// The actor sent it (before it is framed).
    Sent,
    /// It is about to be handed to the actor.
    Delivered,
}

/// Sees every message the actor sends and is delivered, with source and
/// destination, for measurement (the client library times pushes with
/// it). Runs in the actor's loop, so it must be quick; on a client, whose
/// loop is a task, it must never block.
pub type MsgObserver<M> = Box<dyn FnMut(Passage, Id, Id, &M) + Send>;

/// A test hook: how long to hold a message to `dst` before it is queued
/// for the network (`None`: not at all). Holding is a delay the model
/// allows; it lets a test make a grant arrive late without a proxy.
pub type SendDelay<M> = Box<dyn Fn(Id, &M) -> Option<Duration> + Send>;

/// Which messages may leave before the barrier of the batch whose handlers
/// sent them (`Msg::leaves_before_barrier`): the protocol's answer, handed to
/// the host so that model and host use the same rule.
pub type EarlySends<M> = Box<dyn Fn(&M) -> bool + Send>;

/// Batched serials over the host's group commit (issue #13): which timers
/// fire when the batch of messages the node is handling ends, before its
/// barrier, whatever their deadline (`Timer::fires_at_batch_end`: a
/// primary's waiting `Apply`s leave as one batch), and which messages of a
/// batch are handled before them (`Msg::handled_before_batch_end`: the
/// `Mutate`s, so that every mutation the batch orders is in it). The model
/// fires such timers at any moment and delivers messages in any order,
/// which covers both.
pub struct BatchEnd<A: Actor> {
    pub fires_at_end: Predicate<A::Timer>,
    pub handled_first: Predicate<A::Msg>,
}

/// A predicate the protocol hands the host.
pub type Predicate<T> = Box<dyn Fn(&T) -> bool + Send>;

/// Runs one actor as one node.
pub struct ActorHost<A: Actor> {
    actor: A,
    config: HostConfig,
    tracer: Option<MsgTracer<A::Msg>>,
    narrator: Option<StateNarrator<A::State>>,
    barrier: Option<Barrier>,
    observer: Option<MsgObserver<A::Msg>>,
    recorder: Option<Box<dyn StepRecorder<A>>>,
    send_delay: Option<SendDelay<A::Msg>>,
    scheduling: Option<Scheduling<A>>,
    early_sends: Option<EarlySends<A::Msg>>,
    batch_end: Option<BatchEnd<A>>,
}

impl<A> ActorHost<A>
where
    A: Actor + Send + 'static,
    A::Msg: Serialize + DeserializeOwned + Send + 'static,
    A::Storage: Serialize + DeserializeOwned + Send + 'static,
    A::Timer: Send + Eq + Hash + Clone,
    // A client's loop is a task, held across its waits.
    A::State: Send,
    A::Random: Send,
{
    pub fn new(actor: A, config: HostConfig) -> Self {
        ActorHost {
            actor,
            config,
            tracer: None,
            narrator: None,
            barrier: None,
            observer: None,
            recorder: None,
            send_delay: None,
            scheduling: None,
            early_sends: None,
            batch_end: None,
        }
    }

    /// Runs the node by a scheduler's orders instead of its clock and
    /// arrival order (replay; see `schedule.rs`).
    pub fn with_schedule(mut self, scheduling: Scheduling<A>) -> Self {
        self.scheduling = Some(scheduling);
        self
    }

    /// Hands every step to `recorder` (see the module doc).
    pub fn with_recorder(mut self, recorder: Box<dyn StepRecorder<A>>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Holds chosen outgoing messages for a while (a test hook).
    pub fn with_send_delay(mut self, delay: SendDelay<A::Msg>) -> Self {
        self.send_delay = Some(delay);
        self
    }

    /// Lets the messages `early` picks leave before the batch's barrier
    /// (see [`NodeLoop::commit`](event_loop::NodeLoop)).
    pub fn with_early_sends(mut self, early: EarlySends<A::Msg>) -> Self {
        self.early_sends = Some(early);
        self
    }

    /// Fires the timers `batch_end` picks when a batch of messages ends
    /// rather than at their deadlines, after the messages it picks
    /// ([`BatchEnd`]).
    pub fn with_batch_end(mut self, batch_end: BatchEnd<A>) -> Self {
        self.batch_end = Some(batch_end);
        self
    }

    /// Shows every message sent and delivered to `observer`.
    pub fn with_observer(mut self, observer: MsgObserver<A::Msg>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Passes `barrier` after the handlers of each batch and before their
    /// commands (see the module comment on group commit).
    pub fn with_barrier(mut self, barrier: Barrier) -> Self {
        self.barrier = Some(barrier);
        self
    }

    /// Logs every delivered message with `tracer` instead of the generic
    /// debug line.
    pub fn with_msg_tracer(mut self, tracer: MsgTracer<A::Msg>) -> Self {
        self.tracer = Some(tracer);
        self
    }

    /// Logs the decisions of each step with `narrator`.
    pub fn with_state_narrator(mut self, narrator: StateNarrator<A::State>) -> Self {
        self.narrator = Some(narrator);
        self
    }

    /// Loads the saved storage, binds the listen address, and starts the
    /// node: the actor's `on_start` runs on its thread before any message is
    /// handled. Must be called within a tokio runtime, which then carries a
    /// client's loop and network tasks (a server's have its thread's runtime).
    pub async fn start(self) -> Result<RunningHost<A::Msg>, HostError> {
        let ActorHost {
            actor,
            config,
            tracer,
            narrator,
            barrier,
            observer,
            recorder,
            send_delay,
            scheduling,
            early_sends,
            batch_end,
        } = self;
        let id = config.id;
        let span = tracing::info_span!("node", id = usize::from(id) as u64);
        if let Some(app_id) = config.app_id {
            if config.peers.contains_key(&app_id) || app_id == id {
                return Err(HostError::AppIdInCluster(app_id));
            }
        }
        let storage_path = config.storage_path();
        let storage: Option<A::Storage> = match &storage_path {
            Some(path) => load_storage(path)?,
            None => None,
        };
        let listener = match config.listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| HostError::Bind { addr, source })?;
                let local = listener
                    .local_addr()
                    .map_err(|source| HostError::Bind { addr, source })?;
                Some((listener, local))
            }
            None => None,
        };
        let local_addr = listener.as_ref().map(|(_, local)| *local);
        // On a thread's runtime, the network tasks end with the thread (see
        // below): they count on a channel of the thread's, which holds
        // `done_tx` until they have.
        let mut net_done = None;
        let seat = match scheduling {
            Some(scheduling) => Seat::Thread(OwnThread::Scheduled(scheduling)),
            // A client's handlers never block: no chunk files, no `Save`,
            // no barrier. Its loop runs as a task of the network's runtime,
            // so a message goes from reader to actor to writer without
            // waking a thread of its own (issue #13).
            None if local_addr.is_none() && storage_path.is_none() && barrier.is_none() => {
                Seat::Task
            }
            // A server's handlers write and sync files, so its loop has a
            // thread, whose runtime carries the server's connections too:
            // a frame read is handled, and a frame sent is written, by the
            // thread the loop runs on, without a wake-up of another (see
            // the module doc).
            None => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(HostError::Thread)?;
                let (tx, rx) = mpsc::channel::<()>(1);
                net_done = Some(tx);
                Seat::Thread(OwnThread::Runtime(rt, rx))
            }
        };
        // The node's network tasks are spawned on its thread's runtime, if
        // it has one, and the listener moves to that runtime's reactor.
        let entered = match &seat {
            Seat::Thread(OwnThread::Runtime(rt, _)) => Some(rt.enter()),
            _ => None,
        };
        let listener = match (listener, &entered) {
            (Some((listener, local)), Some(_)) => {
                let moved = listener
                    .into_std()
                    .and_then(TcpListener::from_std)
                    .map_err(|source| HostError::Bind {
                        addr: local,
                        source,
                    })?;
                Some((moved, local))
            }
            (listener, _) => listener,
        };

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shutdown_tx = Arc::new(shutdown_tx);
        let (inbox_tx, inbox_rx) = mpsc::channel(INBOX_MSGS_MAX);
        let (done_tx, all_done) = mpsc::channel::<()>(1);
        let net_done = net_done.unwrap_or_else(|| done_tx.clone());

        if let (None, Some(local_addr)) = (&config.secret, local_addr) {
            // Servers say it; a client of an open cluster needs no warning.
            tracing::warn!(
                "no cluster secret configured: any peer that reaches {local_addr} may send \
                 frames as any node (set `secret` in cluster.toml)"
            );
        }
        let admission = net::Admission::new(config.limits, config.secret.as_deref());
        // A client says who it is in its hello, so that servers can answer.
        let reply_to = listener.is_none().then_some(usize::from(id) as u64);
        let hello = Arc::new(net::hello(config.secret.as_deref(), reply_to));
        let (answers, dialing) = match listener {
            Some(_) => (None, None),
            None => {
                let servers = config.peers.keys().filter(|&&p| p != id).count();
                let (dialing, dialing_rx) = watch::channel(servers);
                let answers = net::Answers {
                    admission: admission.clone(),
                    inbox: inbox_tx.clone(),
                    dialing: Arc::new(dialing),
                };
                (Some(answers), Some(dialing_rx))
            }
        };
        let peers = spawn_writers(
            id,
            &config.peers,
            &hello,
            answers,
            &shutdown_rx,
            &net_done,
            &span,
        );
        let configured = config.peers.keys().copied().chain([id]);
        let routes = Arc::new(net::Routes::new(configured.collect()));
        let (app_tx, app_rx) = match config.app_id {
            Some(app_id) => {
                let (tx, rx) = mpsc::channel(APP_QUEUE_MSGS_MAX);
                (Some((app_id, tx)), Some(rx))
            }
            None => (None, None),
        };

        if let Some((listener, _)) = listener {
            tokio::spawn(
                accept_loop::<A::Msg>(
                    id,
                    listener,
                    admission,
                    routes.clone(),
                    inbox_tx.clone(),
                    shutdown_rx.clone(),
                    net_done,
                )
                .instrument(span.clone()),
            );
        }

        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let (result_tx, actor_result) = oneshot::channel();
        let node_shutdown = shutdown_tx.clone();
        let network = tokio::runtime::Handle::current();
        drop(entered);
        let node = move |saved: Option<&A::Storage>| NodeLoop {
            actor,
            id,
            timers: HashMap::new(),
            randoms: BTreeMap::new(),
            local: VecDeque::new(),
            peers,
            routes,
            app: app_tx,
            storage: StorageFile::new(storage_path, saved),
            rng,
            shutdown: node_shutdown,
            tracer,
            narrator,
            barrier,
            observer,
            recorder,
            send_delay,
            network,
            early_sends,
            batch_end,
        };
        let finish = move |result: Result<(), HostError>| {
            if let Err(e) = &result {
                tracing::error!("node stopped: {e}");
            }
            let _ = result_tx.send(result);
        };
        match seat {
            Seat::Task => {
                tokio::spawn(
                    async move {
                        let _done = done_tx;
                        let node = node(storage.as_ref());
                        finish(node.run(storage, inbox_rx, shutdown_rx).await);
                    }
                    .instrument(span),
                );
            }
            Seat::Thread(own) => {
                std::thread::Builder::new()
                    .name(format!("leasehold-node-{}", usize::from(id)))
                    .spawn(move || {
                        let _entered = span.enter();
                        let _done = done_tx;
                        let node = node(storage.as_ref());
                        let result = match own {
                            OwnThread::Runtime(rt, mut net_done) => {
                                // The loop runs as a task of the runtime,
                                // not as the future `block_on` polls: a
                                // reader task's wake-up of a task is a push
                                // on the thread's run queue, where waking
                                // `block_on`'s future costs a turn of the
                                // runtime's driver (`epoll_wait`), and the
                                // loop takes its turn among the readers, so
                                // a batch gathers more of what they read
                                // (issue #13; docs/performance.md).
                                let result = rt.block_on(async {
                                    match tokio::spawn(node.run(storage, inbox_rx, shutdown_rx))
                                        .await
                                    {
                                        Ok(result) => result,
                                        // As before: the thread unwinds.
                                        Err(e) if e.is_panic() => {
                                            std::panic::resume_unwind(e.into_panic())
                                        }
                                        Err(_) => Err(HostError::Panicked),
                                    }
                                });
                                // The loop has ended and dropped its frame
                                // queues: the writers write what was queued
                                // and close, the readers see the shutdown.
                                // Drive them until they have, within the
                                // time a write may take.
                                let wait = Duration::from_millis(PEER_IO_TIMEOUT_MS);
                                rt.block_on(async {
                                    tokio::time::timeout(wait, net_done.recv()).await
                                })
                                .ok();
                                result
                            }
                            OwnThread::Scheduled(scheduling) => {
                                node.run_scheduled(storage, inbox_rx, shutdown_rx, scheduling)
                            }
                        };
                        finish(result);
                    })
                    .map_err(HostError::Thread)?;
            }
        }

        Ok(RunningHost {
            handle: HostHandle {
                id,
                inbox: inbox_tx,
                shutdown: shutdown_tx,
            },
            local_addr,
            dialing,
            app: app_rx,
            actor_result,
            all_done,
        })
    }
}
