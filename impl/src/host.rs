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
//! | (any command)              | after the [`Barrier`], if one is given: what the handlers wrote (chunk files) is durable before anything they commanded happens |
//! | `on_msg(src, msg)`         | a frame from a peer, or [`HostHandle::inject`] |
//! | `on_timeout(t)`            | `t`'s deadline passed (it is disarmed first, as in stateright's model) |
//!
//! Why a dedicated OS thread per actor, with tokio for the network: the
//! actor's handlers are synchronous and may block (a chunkserver's handler
//! writes and fsyncs chunk files through [`crate::filestore::FileStore`],
//! and `Save` must be durable before the next command). Blocking a tokio
//! worker would stall every connection; a thread of its own keeps the actor
//! strictly sequential, and it waits for its next event with a tiny
//! single-threaded runtime of its own (channels and a timer only). Reading,
//! writing and accepting connections are tokio tasks on the caller's runtime.
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
//! mutations). A batch stops early at an expired timer, so that timers
//! and cancellations keep their order.
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

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{de::DeserializeOwned, Serialize};
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::{ClusterConfig, ConfigError};
use crate::frame::{self, Envelope};

/// Frames waiting for one peer's connection. When full (the peer is down or
/// slow), new frames for that peer are dropped and logged.
pub const PEER_QUEUE_FRAMES_MAX: usize = 1024;
/// Inbound connections served at once; further peers wait in the OS backlog
/// until one closes.
pub const CONNECTIONS_MAX: usize = 256;
/// Messages received (from peers or injected) but not yet handled. When
/// full, connection readers wait, which pushes back on the senders via TCP.
pub const INBOX_MSGS_MAX: usize = 1024;
/// Messages the actor sent to the application and the application has not
/// taken yet. When full, new ones are dropped and logged.
pub const APP_QUEUE_MSGS_MAX: usize = 1024;
/// Messages the actor sent to itself and has not handled yet.
pub const SELF_QUEUE_MSGS_MAX: usize = 1024;
/// First and largest wait between attempts to reach a peer.
pub const RECONNECT_BACKOFF_MS_MIN: u64 = 10;
pub const RECONNECT_BACKOFF_MS_MAX: u64 = 2_000;
/// First and largest wait after a failed accept (e.g. out of descriptors).
pub const ACCEPT_BACKOFF_MS_MIN: u64 = 10;
pub const ACCEPT_BACKOFF_MS_MAX: u64 = 1_000;
/// A connect or a frame write that takes longer marks the peer unreachable.
pub const PEER_IO_TIMEOUT_MS: u64 = 2_000;
/// Messages handled before one barrier and the execution of their
/// commands; bounds how long a reply waits behind other messages' handlers.
pub const BATCH_MSGS_MAX: usize = 64;
/// Receive buffer growth step; a frame larger than this grows the buffer up
/// to the frame's size (at most [`frame::FRAME_BYTES_MAX`]).
const READ_CHUNK_BYTES: usize = 64 * 1024;

const _: () = assert!(RECONNECT_BACKOFF_MS_MIN <= RECONNECT_BACKOFF_MS_MAX);
const _: () = assert!(ACCEPT_BACKOFF_MS_MIN <= ACCEPT_BACKOFF_MS_MAX);

const STORAGE_MAGIC: &[u8; 8] = b"LHSTORE1";

/// Where and with whom one node runs.
#[derive(Clone, Debug)]
pub struct HostConfig {
    pub id: Id,
    /// Address to accept peers on.
    pub listen: SocketAddr,
    /// Every node's address (this node's own entry is ignored).
    pub peers: HashMap<Id, SocketAddr>,
    /// Where the actor's saved storage lives.
    pub storage_dir: PathBuf,
    /// Messages the actor sends to this id go to the application channel
    /// (see [`RunningHost::take_app_receiver`]) instead of the network. It
    /// must not be a node of the cluster.
    pub app_id: Option<Id>,
    /// Seed for timer durations and random choices; `None` seeds from the
    /// OS. A fixed seed does not make a networked run reproducible, but it
    /// makes one node's choices repeatable given the same inputs.
    pub seed: Option<u64>,
}

impl HostConfig {
    /// The host settings of node `id` in `cluster`: its address, its data
    /// directory for storage, everyone else as peers.
    pub fn from_cluster(cluster: &ClusterConfig, id: Id) -> Result<Self, ConfigError> {
        let node = cluster.node(id)?;
        Ok(HostConfig {
            id,
            listen: node.addr,
            peers: cluster.addrs(),
            storage_dir: node.data_dir.clone(),
            app_id: None,
            seed: None,
        })
    }

    pub fn with_app_id(mut self, app_id: Id) -> Self {
        self.app_id = Some(app_id);
        self
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The file that holds the actor's last saved storage.
    pub fn storage_path(&self) -> PathBuf {
        self.storage_dir
            .join(format!("actor-{}.storage", usize::from(self.id) as u64))
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
    Barrier(String),
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
            .send(Inbound { src, msg })
            .await
            .map_err(|_| HostClosed)
    }

    /// Like [`HostHandle::inject`], but gives up at once when the inbox is
    /// full.
    pub fn try_inject(&self, src: Id, msg: M) -> Result<(), InjectError> {
        self.inbox
            .try_send(Inbound { src, msg })
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

    pub fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// A started node. Dropping it leaves the node running; use
/// [`RunningHost::shutdown`] to stop it.
pub struct RunningHost<M> {
    handle: HostHandle<M>,
    local_addr: SocketAddr,
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

    /// The address actually listened on (differs from the config for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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
/// it). Runs on the actor thread, so it must be quick.
pub type MsgObserver<M> = Box<dyn FnMut(Passage, Id, Id, &M) + Send>;

/// Makes durable what the actor's handlers wrote outside its state (a
/// chunkserver's chunk files), before any command they emitted is carried
/// out. An error stops the node.
pub type Barrier = Box<dyn FnMut() -> Result<(), String> + Send>;

/// One reading of the monotonic clock: the instant for tokio's timers and
/// the same moment in nanoseconds of `CLOCK_MONOTONIC`, which every process
/// on one machine shares, so traces of several nodes compare directly.
#[derive(Clone, Copy, Debug)]
pub struct StepClock {
    pub at: Instant,
    pub ns: u64,
}

impl StepClock {
    pub fn now() -> StepClock {
        let ns = monotonic_ns();
        StepClock {
            at: Instant::now(),
            ns,
        }
    }

    fn after(&self, d: Duration) -> StepClock {
        StepClock {
            at: self.at + d,
            ns: self.ns.saturating_add(d.as_nanos() as u64),
        }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds (the clock `std::time::Instant` reads
/// on Linux).
pub fn monotonic_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    assert_eq!(rc, 0, "CLOCK_MONOTONIC is always readable");
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// What a step handled.
pub enum StepInput<A: Actor> {
    /// The actor (re)started with the storage it had saved.
    Start(Option<A::Storage>),
    Msg {
        src: Id,
        msg: A::Msg,
    },
    Timer(A::Timer),
    Random(A::Random),
}

/// A command of a step, with timer durations resolved to deadlines.
pub enum StepCommand<A: Actor> {
    Send(Id, A::Msg),
    SetTimer(A::Timer, StepClock),
    CancelTimer(A::Timer),
    ChooseRandom(String, Vec<A::Random>),
    Save(A::Storage),
}

/// One handler call: when, on what (kept only when a recorder wants it),
/// what it commanded, and the digest of the state it left.
pub struct Step<A: Actor> {
    pub clock: StepClock,
    pub input: Option<StepInput<A>>,
    pub commands: Vec<StepCommand<A>>,
    pub digest: u64,
}

/// Records every step a node takes (see the module doc). Runs on the actor
/// thread: `record` encodes into a buffer, `flush` writes it; the host
/// calls both as each handler returns (see the module doc for why).
pub trait StepRecorder<A: Actor>: Send {
    /// A digest of the actor's state right after a step.
    fn digest(&mut self, state: &A::State) -> u64;
    fn record(&mut self, step: &Step<A>);
    /// Writes what was recorded; called before the next handler, the
    /// barrier and the step's commands.
    fn flush(&mut self);
}

/// A test hook: how long to hold a message to `dst` before it is queued
/// for the network (`None`: not at all). Holding is a delay the model
/// allows; it lets a test make a grant arrive late without a proxy.
pub type SendDelay<M> = Box<dyn Fn(Id, &M) -> Option<Duration> + Send>;

/// Runs one actor as one node.
pub struct ActorHost<A: Actor> {
    actor: A,
    config: HostConfig,
    tracer: Option<MsgTracer<A::Msg>>,
    barrier: Option<Barrier>,
    observer: Option<MsgObserver<A::Msg>>,
    recorder: Option<Box<dyn StepRecorder<A>>>,
    send_delay: Option<SendDelay<A::Msg>>,
}

impl<A> ActorHost<A>
where
    A: Actor + Send + 'static,
    A::Msg: Serialize + DeserializeOwned + Send + 'static,
    A::Storage: Serialize + DeserializeOwned + Send + 'static,
    A::Timer: Send + Eq + Hash + Clone,
{
    pub fn new(actor: A, config: HostConfig) -> Self {
        ActorHost {
            actor,
            config,
            tracer: None,
            barrier: None,
            observer: None,
            recorder: None,
            send_delay: None,
        }
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

    /// Loads the saved storage, binds the listen address, and starts the
    /// node: the actor's `on_start` runs on its thread before any message is
    /// handled. Must be called within a tokio runtime, which then carries the
    /// node's network tasks.
    pub async fn start(self) -> Result<RunningHost<A::Msg>, HostError> {
        let ActorHost {
            actor,
            config,
            tracer,
            barrier,
            observer,
            recorder,
            send_delay,
        } = self;
        let id = config.id;
        let span = tracing::info_span!("node", id = usize::from(id) as u64);
        if let Some(app_id) = config.app_id {
            if config.peers.contains_key(&app_id) || app_id == id {
                return Err(HostError::AppIdInCluster(app_id));
            }
        }
        let storage_path = config.storage_path();
        let storage: Option<A::Storage> = load_storage(&storage_path)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| HostError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| HostError::Bind {
            addr: config.listen,
            source,
        })?;

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shutdown_tx = Arc::new(shutdown_tx);
        let (inbox_tx, inbox_rx) = mpsc::channel(INBOX_MSGS_MAX);
        let (done_tx, all_done) = mpsc::channel::<()>(1);

        let mut peers = HashMap::new();
        for (&peer, &addr) in &config.peers {
            if peer == id {
                continue;
            }
            let (tx, rx) = mpsc::channel(PEER_QUEUE_FRAMES_MAX);
            peers.insert(
                peer,
                Peer {
                    frames: tx,
                    dropped: 0,
                },
            );
            let writer = write_peer(peer, addr, rx, shutdown_rx.clone(), done_tx.clone());
            tokio::spawn(writer.instrument(span.clone()));
        }
        let (app_tx, app_rx) = match config.app_id {
            Some(app_id) => {
                let (tx, rx) = mpsc::channel(APP_QUEUE_MSGS_MAX);
                (Some((app_id, tx)), Some(rx))
            }
            None => (None, None),
        };

        tokio::spawn(
            accept_loop::<A::Msg>(
                id,
                listener,
                inbox_tx.clone(),
                shutdown_rx.clone(),
                done_tx.clone(),
            )
            .instrument(span.clone()),
        );

        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let (result_tx, actor_result) = oneshot::channel();
        let thread_span = span.clone();
        let node_shutdown = shutdown_tx.clone();
        let network = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name(format!("leasehold-node-{}", usize::from(id)))
            .spawn(move || {
                let _entered = thread_span.enter();
                let _done = done_tx;
                // Built here so that timer and random values, which live
                // only on this thread, need not be `Send`.
                let node = NodeLoop {
                    actor,
                    id,
                    timers: HashMap::new(),
                    randoms: BTreeMap::new(),
                    local: VecDeque::new(),
                    peers,
                    app: app_tx,
                    storage_path,
                    rng,
                    shutdown: node_shutdown,
                    tracer,
                    barrier,
                    observer,
                    recorder,
                    send_delay,
                    network,
                    saved: storage.as_ref().and_then(|s| postcard::to_allocvec(s).ok()),
                };
                let result = node.run(storage, inbox_rx, shutdown_rx);
                if let Err(e) = &result {
                    tracing::error!("node stopped: {e}");
                }
                let _ = result_tx.send(result);
            })
            .map_err(HostError::Thread)?;

        Ok(RunningHost {
            handle: HostHandle {
                id,
                inbox: inbox_tx,
                shutdown: shutdown_tx,
            },
            local_addr,
            app: app_rx,
            actor_result,
            all_done,
        })
    }
}

/// What woke the actor thread.
enum Wake<M> {
    Inbound(Inbound<M>),
    Timer,
    Shutdown,
}

/// The queue to one peer's writer task.
struct Peer {
    frames: mpsc::Sender<Vec<u8>>,
    /// Frames dropped since the queue was last accepting, so an outage logs
    /// one line when it starts and one when it ends, not one per frame.
    dropped: u64,
}

/// The actor and everything its commands act on. Lives on the actor thread.
struct NodeLoop<A: Actor> {
    actor: A,
    id: Id,
    timers: HashMap<A::Timer, StepClock>,
    /// Pending random choices by key; a BTreeMap so that, with a fixed
    /// seed, the order they are resolved in is repeatable.
    randoms: BTreeMap<String, Vec<A::Random>>,
    local: VecDeque<A::Msg>,
    peers: HashMap<Id, Peer>,
    app: Option<(Id, mpsc::Sender<A::Msg>)>,
    storage_path: PathBuf,
    rng: StdRng,
    /// Kept so a failed save can stop the network side too.
    shutdown: Arc<watch::Sender<bool>>,
    tracer: Option<MsgTracer<A::Msg>>,
    barrier: Option<Barrier>,
    observer: Option<MsgObserver<A::Msg>>,
    recorder: Option<Box<dyn StepRecorder<A>>>,
    send_delay: Option<SendDelay<A::Msg>>,
    /// The runtime of the network tasks, for held messages.
    network: tokio::runtime::Handle,
    /// The payload of the storage file as last loaded or saved.
    saved: Option<Vec<u8>>,
}

impl<A> NodeLoop<A>
where
    A: Actor,
    A::Msg: Serialize + Send + 'static,
    A::Storage: Serialize + Clone,
{
    fn run(
        mut self,
        storage: Option<A::Storage>,
        mut inbox: mpsc::Receiver<Inbound<A::Msg>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), HostError> {
        // Only channels and one timer are awaited here, never I/O.
        let waiter = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(HostError::Thread)?;

        tracing::info!(restored = storage.is_some(), "starting actor");
        let clock = StepClock::now();
        let mut out = Out::new();
        let mut state = self.actor.on_start(self.id, &storage, &mut out);
        let input = self.recorder.is_some().then(|| StepInput::Start(storage));
        let start = self.step(&state, clock, input, out);
        // A message taken from the inbox when a timer had expired: handled
        // after the timers, as the next batch's first.
        let mut carried: Option<Inbound<A::Msg>> = None;
        let result = self.commit(vec![start]).and_then(|()| loop {
            if *shutdown.borrow() {
                break Ok(());
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
            let wake = match carried.take() {
                Some(inbound) => Wake::Inbound(inbound),
                None => waiter.block_on(async {
                    tokio::select! {
                        biased;
                        _ = shutdown.wait_for(|stop| *stop) => Wake::Shutdown,
                        m = inbox.recv() => m.map_or(Wake::Shutdown, Wake::Inbound),
                        _ = sleep_until(deadline) => Wake::Timer,
                    }
                }),
            };
            match wake {
                Wake::Shutdown => break Ok(()),
                Wake::Timer => continue,
                Wake::Inbound(Inbound { src, msg }) => {
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
                    let mut batch = vec![self.handle_msg(&mut state, clock, src, msg)];
                    // Group commit: handle what else has arrived, then pass
                    // one barrier for all of it. A timer that expires
                    // meanwhile ends the batch, so no step's clock reading
                    // is past an armed deadline.
                    // The clock is read after the message is taken, so no
                    // step's reading precedes its message's arrival.
                    for _ in 1..BATCH_MSGS_MAX {
                        let Ok(inbound) = inbox.try_recv() else {
                            break;
                        };
                        let clock = StepClock::now();
                        if self.has_expired_timer(clock) {
                            carried = Some(inbound);
                            break;
                        }
                        batch.push(self.handle_msg(&mut state, clock, inbound.src, inbound.msg));
                    }
                    self.commit(batch)?;
                }
            }
        });
        // Whatever ended the loop, the rest of the node stops with it.
        self.shutdown.send_replace(true);
        tracing::info!("actor stopped");
        result
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

    fn handle_msg(
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

    fn handle_timer(&mut self, state: &mut A::State, clock: StepClock, timer: A::Timer) -> Step<A> {
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
            *state = next;
        }
        out
    }

    /// Makes a handler's commands a step taken at `clock`: each timer's
    /// deadline is fixed now, from the step's clock reading, not when the
    /// command is carried out after the batch and its barrier.
    fn step(
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
            // handler's last write to this write.
            step.digest = r.digest(state);
            r.record(&step);
            r.flush();
        }
        step
    }

    fn has_expired_timer(&self, clock: StepClock) -> bool {
        self.timers.values().any(|d| d.at <= clock.at)
    }

    /// Passes the barrier, then carries out the steps' commands. STORE-2:
    /// what the handlers wrote is durable before anything they commanded
    /// happens. The steps are already recorded (see [`NodeLoop::step`]).
    fn commit(&mut self, steps: Vec<Step<A>>) -> Result<(), HostError> {
        if let Some(barrier) = &mut self.barrier {
            barrier().map_err(HostError::Barrier)?;
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
                StepCommand::Save(storage) => {
                    let payload =
                        postcard::to_allocvec(&storage).map_err(|e| HostError::SaveStorage {
                            path: self.storage_path.clone(),
                            message: e.to_string(),
                        })?;
                    // What is already on disk is already durable: a save of
                    // the same bytes has nothing to add. (A chunkserver saves
                    // after every mutation, but its storage names only its
                    // chunk directory; the chunk files are already synced.)
                    if self.saved.as_deref() == Some(&payload[..]) {
                        tracing::trace!("storage unchanged, save skipped");
                        continue;
                    }
                    let bytes = save_payload(&self.storage_path, &payload)?;
                    self.saved = Some(payload);
                    tracing::debug!(bytes, "saved storage");
                }
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
        let Some(peer) = self.peers.get_mut(&dst) else {
            tracing::warn!(
                dst = usize::from(dst) as u64,
                ?msg,
                "no such node, message dropped"
            );
            return;
        };
        let envelope = Envelope {
            src: self.id,
            dst,
            msg,
        };
        let hold = self
            .send_delay
            .as_ref()
            .and_then(|delay| delay(dst, &envelope.msg));
        let bytes = match frame::encode(&envelope) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(dst = usize::from(dst) as u64, msg = ?envelope.msg, "message dropped: {e}");
                return;
            }
        };
        if let Some(hold) = hold {
            tracing::debug!(dst = usize::from(dst) as u64, ?hold, msg = ?envelope.msg, "message held (test hook)");
            let frames = peer.frames.clone();
            self.network.spawn(async move {
                tokio::time::sleep(hold).await;
                let _ = frames.send(bytes).await;
            });
            return;
        }
        match peer.frames.try_send(bytes) {
            Ok(()) if peer.dropped > 0 => {
                tracing::info!(
                    dst = usize::from(dst) as u64,
                    dropped = peer.dropped,
                    "peer queue accepting again"
                );
                peer.dropped = 0;
            }
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if peer.dropped == 0 {
                    tracing::warn!(
                        dst = usize::from(dst) as u64,
                        "peer queue full, dropping messages to it"
                    );
                }
                peer.dropped += 1;
            }
            // The writer is gone only if the runtime carrying the network
            // tasks was dropped; the node is going down with it.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!(
                    dst = usize::from(dst) as u64,
                    "network stopped, message dropped"
                )
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Accepts peers until shutdown, one reader task per connection, at most
/// [`CONNECTIONS_MAX`] at once. Accept errors are retried with backoff;
/// they never stop the node.
async fn accept_loop<M>(
    id: Id,
    listener: TcpListener,
    inbox: mpsc::Sender<Inbound<M>>,
    mut shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) where
    M: DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut backoff_ms = ACCEPT_BACKOFF_MS_MIN;
    loop {
        let permit = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            permit = permits.clone().acquire_owned() => permit.expect("semaphore is never closed"),
        };
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer_addr)) => {
                backoff_ms = ACCEPT_BACKOFF_MS_MIN;
                tracing::debug!(%peer_addr, "accepted connection");
                let reader = read_connection(
                    id,
                    stream,
                    peer_addr,
                    inbox.clone(),
                    shutdown.clone(),
                    done.clone(),
                );
                tokio::spawn(
                    async move {
                        reader.await;
                        drop(permit);
                    }
                    .in_current_span(),
                );
            }
            Err(e) => {
                tracing::warn!("accept failed, retrying in {backoff_ms} ms: {e}");
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    _ = tokio::time::sleep(Duration::from_millis(backoff_ms)) => {}
                }
                backoff_ms = (backoff_ms * 2).min(ACCEPT_BACKOFF_MS_MAX);
            }
        }
    }
    tracing::debug!("stopped accepting");
    drop(done);
}

/// Reads frames from one peer until it closes, misbehaves, or the node
/// shuts down. A bad frame closes this connection only.
async fn read_connection<M>(
    id: Id,
    mut stream: TcpStream,
    peer_addr: SocketAddr,
    inbox: mpsc::Sender<Inbound<M>>,
    mut shutdown: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
) where
    M: DeserializeOwned + std::fmt::Debug,
{
    let mut buf = bytes::BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        loop {
            match frame::take::<M>(&mut buf) {
                Ok(None) => break,
                Ok(Some(envelope)) => {
                    if envelope.dst != id {
                        tracing::warn!(
                            %peer_addr,
                            dst = usize::from(envelope.dst) as u64,
                            "frame for another node dropped (peer's config differs?)"
                        );
                        continue;
                    }
                    let inbound = Inbound {
                        src: envelope.src,
                        msg: envelope.msg,
                    };
                    tokio::select! {
                        _ = shutdown.wait_for(|stop| *stop) => return,
                        sent = inbox.send(inbound) => if sent.is_err() { return },
                    }
                }
                Err(e) => {
                    tracing::warn!(%peer_addr, "closing connection: {e}");
                    return;
                }
            }
        }
        // Room for the rest of the frame being received, or one more chunk.
        let wanted = match buf.get(..frame::FRAME_HEADER_BYTES) {
            Some(h) => {
                frame::FRAME_HEADER_BYTES
                    + u32::from_be_bytes(h.try_into().expect("4 bytes")) as usize
            }
            None => frame::FRAME_HEADER_BYTES,
        };
        buf.reserve(wanted.saturating_sub(buf.len()).clamp(1, READ_CHUNK_BYTES));
        let read = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            read = stream.read_buf(&mut buf) => read,
        };
        match read {
            Ok(0) if buf.is_empty() => {
                tracing::debug!(%peer_addr, "peer closed connection");
                return;
            }
            Ok(0) => {
                tracing::warn!(%peer_addr, "peer closed connection in the middle of a frame");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(%peer_addr, "connection failed: {e}");
                return;
            }
        }
    }
}

/// Sends one peer its frames over one persistent connection, in order,
/// reconnecting with capped exponential backoff. Ends when the actor thread
/// ends (its sender is dropped), after writing what was queued if the peer
/// is connected; once shutting down it no longer reconnects.
async fn write_peer(
    peer: Id,
    addr: SocketAddr,
    mut frames: mpsc::Receiver<Vec<u8>>,
    shutdown: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
) {
    let peer_id = usize::from(peer) as u64;
    let io_timeout = Duration::from_millis(PEER_IO_TIMEOUT_MS);
    let mut stream: Option<TcpStream> = None;
    let mut backoff_ms = RECONNECT_BACKOFF_MS_MIN;
    let mut failures: u64 = 0;
    while let Some(bytes) = frames.recv().await {
        if stream.as_ref().is_some_and(peer_closed) {
            // The peer closed its end (e.g. a client process exited and a
            // new one took its id). Writing would lose this frame to the
            // old connection's reset: connect anew first.
            tracing::debug!(peer = peer_id, %addr, "peer closed the connection, reconnecting");
            stream = None;
        }
        if stream.is_none() {
            if *shutdown.borrow() {
                // Nobody will wait for an unreachable peer during shutdown.
                continue;
            }
            match tokio::time::timeout(io_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    if failures > 0 {
                        tracing::info!(peer = peer_id, %addr, failures, "reconnected");
                    }
                    stream = Some(s);
                    backoff_ms = RECONNECT_BACKOFF_MS_MIN;
                    failures = 0;
                }
                Ok(Err(e)) => {
                    // One line per outage, not one per attempt.
                    if failures == 0 {
                        tracing::warn!(peer = peer_id, %addr, "cannot connect, will retry: {e}");
                    }
                    failures += 1;
                }
                Err(_) => {
                    if failures == 0 {
                        tracing::warn!(peer = peer_id, %addr, "connect timed out, will retry");
                    }
                    failures += 1;
                }
            }
        }
        let Some(s) = stream.as_mut() else {
            // This frame is lost; wait before the next attempt so an
            // unreachable peer costs neither CPU nor log lines. Frames
            // arriving meanwhile queue up to the peer queue limit.
            let mut shutdown = shutdown.clone();
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => {}
                _ = tokio::time::sleep(Duration::from_millis(backoff_ms)) => {}
            }
            backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MS_MAX);
            continue;
        };
        match tokio::time::timeout(io_timeout, s.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(peer = peer_id, %addr, "connection lost, frame dropped: {e}");
                stream = None;
            }
            Err(_) => {
                tracing::warn!(peer = peer_id, %addr, "write timed out, frame dropped, reconnecting");
                stream = None;
            }
        }
    }
    if let Some(mut s) = stream {
        let _ = tokio::time::timeout(io_timeout, s.shutdown()).await;
    }
}

/// Whether the peer has closed a connection we only write to: it never
/// sends anything, so readable means end of stream (or an error).
fn peer_closed(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    match stream.try_read(&mut probe) {
        Ok(0) => true,
        Ok(_) => false, // unexpected bytes; the protocol never sends any back
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Reads the last saved storage: `None` if nothing was ever saved. A file
/// that exists but does not check out stops the node from starting, because
/// starting empty would forget promises the actor made (e.g. a lease epoch).
/// Public so that tools can inspect a stopped node's state.
pub fn load_storage<S: DeserializeOwned>(path: &Path) -> Result<Option<S>, HostError> {
    let fail = |message: String| HostError::LoadStorage {
        path: path.into(),
        message,
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    let header = STORAGE_MAGIC.len() + 4;
    if bytes.len() < header || &bytes[..STORAGE_MAGIC.len()] != STORAGE_MAGIC {
        return Err(fail("not a Leasehold storage file".into()));
    }
    let crc = u32::from_le_bytes(
        bytes[STORAGE_MAGIC.len()..header]
            .try_into()
            .expect("4 bytes"),
    );
    let payload = &bytes[header..];
    if crc32c::crc32c(payload) != crc {
        return Err(fail("checksum mismatch".into()));
    }
    postcard::from_bytes(payload)
        .map(Some)
        .map_err(|e| fail(e.to_string()))
}

/// Replaces the saved storage atomically and durably; returns its size.
#[cfg(test)]
fn save_storage<S: Serialize>(path: &Path, storage: &S) -> Result<usize, HostError> {
    let payload = postcard::to_allocvec(storage).map_err(|e| HostError::SaveStorage {
        path: path.into(),
        message: e.to_string(),
    })?;
    save_payload(path, &payload)
}

/// Replaces the saved storage with an encoded payload, atomically and
/// durably; returns the file's size.
fn save_payload(path: &Path, payload: &[u8]) -> Result<usize, HostError> {
    let fail = |message: String| HostError::SaveStorage {
        path: path.into(),
        message,
    };
    let dir = path.parent().expect("storage path has a directory");
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let tmp = path.with_extension("storage.tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(STORAGE_MAGIC)?;
        file.write_all(&crc32c::crc32c(payload).to_le_bytes())?;
        file.write_all(payload)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        // The rename is durable only once the directory is.
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| fail(e.to_string()))?;
    Ok(STORAGE_MAGIC.len() + 4 + payload.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_round_trips_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("actor-3.storage");
        assert_eq!(load_storage::<(u64, String)>(&path).unwrap(), None);
        save_storage(&path, &(7u64, "x".to_string())).unwrap();
        save_storage(&path, &(8u64, "yz".to_string())).unwrap();
        assert_eq!(
            load_storage::<(u64, String)>(&path).unwrap(),
            Some((8, "yz".into()))
        );
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            load_storage::<(u64, String)>(&path),
            Err(HostError::LoadStorage { .. })
        ));
    }
}
