//! `leasehold replay`: a checker's counterexample run on real nodes
//! (issue #11, "Counterexample replay on the real system").
//!
//! The checker finds the shortest path to a violation of a configuration
//! with a seeded bug. Replay starts that configuration as a local cluster
//! of real nodes: the same actors (the bug switched on in each, as
//! `--bug` does), chunk files in a [`FileStore`], frames over loopback
//! TCP, every node recording a step trace. Each node runs scheduled
//! (`crate::host::Schedule`): it holds what arrives and acts only on the
//! scheduler's orders. Replay then walks the path and orders each step of
//! it: deliver this message to that node, lose it, fire that timer, crash
//! or restart that node, fill its disk or make its blocks go bad, hold a
//! chunkserver's barrier and then pass it, crash it before that barrier or
//! tear its sync. Last, `validate` checks the traces; the run shows
//! the bug if it names the property the checker found violated.
//!
//! Model and real messages differ only in their payload: the model pushes
//! record tokens, real nodes bytes. A token becomes `units` bytes that
//! name its client and operation ([`token_bytes`]); every message of the
//! path is mapped so, and a node handles the held message equal to the
//! mapped one. Where the stores' shapes differ (a clone part of the model
//! store lists units, of the file store bytes; a read returns what each
//! store returns), a held message of the same kind stands in, and the
//! report counts such steps.
//!
//! What the schedule cannot say ([`Divergence`]): with the bug off, or
//! where the real node does differ, an ordered message may never be sent
//! or a timer never armed; that step is skipped and reported, and the
//! rest of the path goes on. A message the model kept in flight for a node
//! that crashed is gone with the real node's memory, and a frame written
//! into a connection whose peer crashed is lost with it; replay sends such
//! a message again (sent, never handed over, not arriving), as the
//! model's network would still deliver it.

use leasehold_model::config::Bug;
use leasehold_model::master::MasterActor;
use leasehold_model::memstore::RecordToken;
use leasehold_model::msg::Msg;
use leasehold_model::node::Node;
use leasehold_model::system::{Action, LeaseholdModel, ModelCfg, State, StoreFault};
use leasehold_model::types::{ChunkStore, DataId, Stamp};
use leasehold_model::{chunkserver::ChunkserverActor, client::ClientActor};
use stateright::actor::{ActorModelAction, Id};
use stateright::Model;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{ClusterConfig, Role};
use crate::filestore::{Durability, FileStore};
use crate::host::{
    schedule, FireAt, HostConfig, Likeness, Order, Refusal, RunningHost, Schedule, VirtualClock,
};
use crate::nodes::{self, chunk_dir, RealMsg, RealNode};
use crate::payload::Bytes;
use crate::trace::TraceInitial;
use crate::validate::{self, ValidateOptions};

mod release;
pub use release::{ReleaseEnd, Released, RELEASE_STEPS_MAX};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the checker found no violation of {property} within {searched}")]
    NoCounterexample { property: String, searched: String },
    #[error("cannot set up the cluster: {0}")]
    Setup(String),
    #[error("node {0} failed: {1}")]
    Node(u64, String),
    #[error("validating the traces: {0}")]
    Validate(String),
}

/// What to replay.
pub struct ReplayPlan {
    pub cfg: ModelCfg,
    /// The property whose counterexample to replay (a name prefix, e.g.
    /// `LEASE-1`); `None`: the first the checker finds violated, or, if
    /// none is, the liveness requirement. `LIVE-1`, `LIVE-2` or `REPL-1`
    /// asks for the liveness check's counterexample, a path to a state
    /// from which not every client can succeed: the nodes then run on
    /// past it ([`release`]).
    pub property: Option<String>,
    /// Run the path with the bug switched off in the real nodes (the
    /// checker still finds it with the bug on).
    pub bug_off: bool,
    /// Fire each timer as late as the path's next timer allows (see
    /// [`LATE_TIMER_MARGIN_NS`]), not at its own deadline.
    pub late_timers: bool,
    /// Take the counterexample from seeded random walks
    /// (`leasehold_checks::swarm`) instead of the exhaustive search, for a
    /// configuration the checker cannot close: the first walk that breaks
    /// the property.
    pub swarm: Option<leasehold_checks::swarm::SwarmOptions>,
    /// Where the cluster's files and traces go; a temporary directory
    /// (removed afterwards) if `None`.
    pub dir: Option<PathBuf>,
    pub max_states: usize,
}

/// A step of the path the real run did not take.
#[derive(Clone, Debug)]
pub struct Divergence {
    pub step: usize,
    pub action: String,
    pub why: String,
}

/// What a replay did and what validation found.
#[derive(Debug)]
pub struct ReplayReport {
    pub config: String,
    pub bug: Bug,
    pub bug_on_nodes: bool,
    /// The property the checker found violated, by full name.
    pub property: &'static str,
    pub path: Vec<String>,
    /// Steps carried out, and of them those where only a similar message
    /// stood in for the path's.
    pub steps_done: usize,
    pub steps_similar: usize,
    /// Messages sent again: sent by a real node, lost on the way (see
    /// [`Passages`]).
    pub resent: usize,
    pub divergences: Vec<Divergence>,
    /// For a liveness counterexample: how the nodes ran on past the path,
    /// and the bound validation judged them by.
    pub released: Option<(Released, u64)>,
    pub validation: validate::Report,
    pub trace_dir: PathBuf,
}

impl ReplayReport {
    /// The property's requirement ID (`LEASE-1`).
    pub fn requirement(&self) -> &str {
        self.property.split(' ').next().unwrap_or(self.property)
    }

    /// Whether validation of the real run failed the same requirement.
    pub fn caught(&self) -> bool {
        self.validation
            .failures
            .iter()
            .any(|f| f.check.id() == self.requirement())
    }
}

/// Record tokens as bytes: `units` bytes, each naming the token's client
/// and its place in the client's script, so that different records differ
/// in every byte and none is zero (the file store pads with zeros).
pub fn token_bytes(token: &RecordToken) -> Vec<u8> {
    let byte = if token.id.client == DataId::PREFILLED_CLIENT {
        0x7f
    } else {
        0x80 | ((token.id.client as u8 & 7) << 4) | (token.id.seq as u8 & 15)
    };
    vec![byte; token.units as usize]
}

/// A model message as the real nodes send it: every record token replaced
/// by its bytes ([`token_bytes`]). Through JSON, where a token is the only
/// object of exactly `id` (with `client` and `seq`) and `units`, so that
/// no message kind needs a mapping of its own.
pub fn real_msg(msg: &Msg<RecordToken>) -> RealMsg {
    fn map(v: &mut serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::Object(o) => {
                let token = o.len() == 2
                    && o.contains_key("units")
                    && o.get("id").and_then(Value::as_object).is_some_and(|id| {
                        id.len() == 2 && id.contains_key("client") && id.contains_key("seq")
                    });
                if token {
                    let t: RecordToken = serde_json::from_value(Value::Object(o.clone()))
                        .expect("a token's shape is a token");
                    *v = Value::Array(token_bytes(&t).into_iter().map(Value::from).collect());
                } else {
                    o.values_mut().for_each(map);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(map),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(msg).expect("messages serialize");
    map(&mut v);
    serde_json::from_value(v).expect("a mapped message is a real message")
}

fn likeness(expected: &RealMsg, held: &RealMsg) -> Likeness {
    if held == expected {
        Likeness::Same
    } else if std::mem::discriminant(held) == std::mem::discriminant(expected) {
        Likeness::Similar
    } else {
        Likeness::Unlike
    }
}

fn pick(expected: RealMsg) -> crate::host::Pick<RealMsg> {
    Box::new(move |held: &RealMsg| likeness(&expected, held))
}

/// Every message the real nodes sent and were handed, as `(src, dst,
/// message)`: whether the message a step names was sent at all (if not,
/// the run has left the path and the step is skipped at once), and
/// whether one sent was lost on the way (a frame written into a
/// connection its peer had closed by crashing, or held by the crashed
/// incarnation), so that replay sends it again as the model's network
/// would still deliver it.
#[derive(Default)]
struct Passages {
    sent: Vec<(Id, Id, RealMsg)>,
    delivered: Vec<(Id, Id, RealMsg)>,
    /// Deliveries of a duplicated message's copy (`keep`): handed over,
    /// but of no send of their own, so no later send of an identical
    /// message counts as handed over by them.
    copies: Vec<(Id, Id, RealMsg)>,
}

impl Passages {
    /// Of the messages from `src` to `dst` that were sent (or, with
    /// `delivered`, handed over): how many are `expected`, and how many
    /// only of its kind.
    fn like(&self, delivered: bool, src: Id, dst: Id, expected: &RealMsg) -> (usize, usize) {
        let log = if delivered {
            &self.delivered
        } else {
            &self.sent
        };
        let (same, like) = Self::count(log, src, dst, expected);
        if !delivered {
            return (same, like);
        }
        let (same_copies, like_copies) = Self::count(&self.copies, src, dst, expected);
        (
            same.saturating_sub(same_copies),
            like.saturating_sub(like_copies),
        )
    }

    fn count(log: &[(Id, Id, RealMsg)], src: Id, dst: Id, expected: &RealMsg) -> (usize, usize) {
        let mut same = 0;
        let mut like = 0;
        for (s, d, m) in log {
            if (*s, *d) == (src, dst) {
                match likeness(expected, m) {
                    Likeness::Same => same += 1,
                    Likeness::Similar => like += 1,
                    Likeness::Unlike => {}
                }
            }
        }
        (same, like)
    }
}

/// The application a replayed client reports to (none listens: the
/// results are in the client's trace): an id past every node's.
fn app_id(client: u64) -> Id {
    Id::from((APP_IDS + client) as usize)
}

const APP_IDS: u64 = 1 << 20;

/// The nodes of a replay and how to (re)start them.
struct Cluster {
    cfg: ModelCfg,
    /// What the actors run with: the configuration's protocol, with
    /// shorter durations for a liveness replay.
    protocol: Arc<leasehold_model::config::ProtocolCfg>,
    cluster: ClusterConfig,
    clock: VirtualClock,
    running: BTreeMap<u64, (RunningHost<RealMsg>, Schedule<RealNode>)>,
    passages: Arc<std::sync::Mutex<Passages>>,
    /// Each running chunkserver's store, for injecting the path's store
    /// faults (dropped when the node stops, so that a restart reads what
    /// is on disk), and the faults each took: a restarted server's store
    /// keeps them, as the model's storage does.
    stores: BTreeMap<u64, FileStore>,
    store_faults: BTreeMap<u64, Vec<StoreFault>>,
}

impl Cluster {
    /// Node `id`'s actor, and what its trace header must say it started
    /// with besides (a chunkserver's prefilled chunk, on its first start).
    fn actor(&self, id: u64, fresh: bool) -> Result<(RealNode, Option<TraceInitial>), ReplayError> {
        let protocol = self.protocol.clone();
        let n = self.cfg.chunkservers as u64;
        let mut initial = None;
        let actor = match id {
            0 => Node::Master(MasterActor {
                cfg: protocol,
                initial: self.cfg.initial_master(),
            }),
            id if id <= n => {
                let node = self
                    .cluster
                    .node(Id::from(id as usize))
                    .map_err(|e| ReplayError::Setup(e.to_string()))?;
                let dir = chunk_dir(node);
                let mut store =
                    FileStore::open_with(&dir, self.cfg.chunk_units as u64, Durability::Fsync)
                        .map_err(|e| ReplayError::Setup(format!("{}: {e}", dir.display())))?;
                store.keep_room_for_restart_count();
                for fault in self.store_faults.get(&id).into_iter().flatten() {
                    match fault {
                        StoreFault::DiskFull => store.fill_disk(),
                        StoreFault::BlocksCorrupt => store.keep_blocks_bad(),
                    }
                }
                if fresh
                    && self.cfg.prefill_units > 0
                    && self.cfg.prefill_placed().contains(&Id::from(id as usize))
                {
                    let old = RecordToken {
                        id: DataId {
                            client: DataId::PREFILLED_CLIENT,
                            seq: 0,
                        },
                        units: self.cfg.prefill_units,
                    };
                    let data = Bytes::from(token_bytes(&old));
                    store
                        .write_at(0, 0, &data, Stamp::default())
                        .map_err(|e| ReplayError::Setup(format!("prefill: {e:?}")))?;
                    initial = Some(TraceInitial::Chunks(vec![(0, 0, data)]));
                }
                Node::Chunkserver(ChunkserverActor {
                    cfg: protocol,
                    initial_store: store,
                })
            }
            id => Node::Client(ClientActor {
                cfg: protocol,
                number: id - n - 1,
                script: self
                    .cfg
                    .script((id - n - 1) as usize)
                    .into_iter()
                    .map(|op| {
                        let Msg::Submit { op, .. } = real_msg(&Msg::Submit { op_id: 0, op }) else {
                            unreachable!("a submit maps to a submit")
                        };
                        op
                    })
                    .collect(),
                // Results go out as `Done` messages, which is how
                // validation learns what was acknowledged.
                report_to: Some(app_id(id)),
                fragment_max: u64::MAX,
            }),
        };
        Ok((actor, initial))
    }

    async fn start(&mut self, id: u64, fresh: bool) -> Result<(), ReplayError> {
        let (actor, initial) = self.actor(id, fresh)?;
        let is_client = matches!(actor, Node::Client(_));
        let me = Id::from(id as usize);
        let (config, barrier) = match &actor {
            Node::Client(_) => (
                HostConfig::client_of(&self.cluster, me).with_app_id(app_id(id)),
                None,
            ),
            Node::Chunkserver(c) => {
                let store = c.initial_store.clone();
                self.stores.insert(id, store.clone());
                let barrier: crate::host::Barrier = Box::new(move || store.sync());
                (
                    HostConfig::from_cluster(&self.cluster, me)
                        .map_err(|e| ReplayError::Setup(e.to_string()))?,
                    Some(barrier),
                )
            }
            Node::Master(_) => (
                HostConfig::from_cluster(&self.cluster, me)
                    .map_err(|e| ReplayError::Setup(e.to_string()))?,
                None,
            ),
        };
        // Timer durations drawn from a range are drawn the same way in
        // every replay of the path.
        let config = config.with_seed(id);
        let (handle, scheduling) = schedule(self.clock.clone());
        let passages = self.passages.clone();
        let observer: crate::host::MsgObserver<RealMsg> =
            Box::new(move |passage, src, dst, msg: &RealMsg| {
                let mut p = passages.lock().unwrap_or_else(|e| e.into_inner());
                let log = match passage {
                    crate::host::Passage::Sent => &mut p.sent,
                    crate::host::Passage::Delivered => &mut p.delivered,
                };
                log.push((src, dst, msg.clone()));
            });
        let host = nodes::start_scheduled(
            &self.cluster,
            actor,
            config,
            scheduling,
            barrier,
            observer,
            initial,
        )
        .await
        .map_err(|e| ReplayError::Node(id, e.to_string()))?;
        if is_client {
            // A client: answers to its first requests need its connections.
            host.dialed(std::time::Duration::from_secs(5)).await;
        }
        // The start step's sends are logged before the path goes on.
        handle
            .order(Order::Sync)
            .await
            .map_err(|e| ReplayError::Node(id, e.to_string()))?;
        self.running.insert(id, (host, handle));
        Ok(())
    }

    async fn stop(&mut self, id: u64) -> Result<(), ReplayError> {
        self.stores.remove(&id);
        if let Some((host, _)) = self.running.remove(&id) {
            host.shutdown()
                .await
                .map_err(|e| ReplayError::Node(id, e.to_string()))?;
        }
        Ok(())
    }

    /// Stops chunkserver `id` as a kill would: what its store wrote since
    /// its last sync is lost with it (the model's crash before the
    /// barrier), where an orderly stop would sync it.
    async fn crash_before_barrier(&mut self, id: u64) -> Result<(), ReplayError> {
        if let Some(store) = self.stores.get(&id) {
            store.lose_unsynced();
        }
        self.stop(id).await
    }

    /// Arms chunkserver `id`'s store to tear its next sync of what is
    /// written from now on (`FileStore::tear_next_sync`).
    fn tear_next_sync(&self, id: u64) {
        if let Some(store) = self.stores.get(&id) {
            store.tear_next_sync();
        }
    }

    /// Stops a node whose loop ended in an error the path asked for (a
    /// torn sync): that error is the crash, not a failure of the replay.
    async fn stop_failed(&mut self, id: u64) -> Result<(), String> {
        match self.stop(id).await {
            Ok(()) => Ok(()),
            Err(ReplayError::Node(_, why)) if why.contains(crate::filestore::TORN_SYNC) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Whether the real run sent a message like `real` from `src` to
    /// `dst` that was not handed over yet (or, with `again`, at all: a
    /// duplicating network may deliver one twice); if not, the step
    /// cannot happen (the run left the path).
    fn sent(&self, src: Id, dst: Id, real: &RealMsg, again: bool) -> Result<(), String> {
        let p = self.passages.lock().unwrap_or_else(|e| e.into_inner());
        let (same, like) = p.like(false, src, dst, real);
        let (same_in, like_in) = p.like(true, src, dst, real);
        let outstanding = same + like > same_in + like_in;
        if same + like > 0 && (again || outstanding) {
            return Ok(());
        }
        Err(format!(
            "node {} sent node {} no such message{} in this run",
            usize::from(src),
            usize::from(dst),
            if same + like > 0 {
                " still to hand over"
            } else {
                ""
            }
        ))
    }

    /// Whether more copies of `real` were sent from `src` to `dst` than
    /// handed to `dst`.
    fn lost(&self, src: Id, dst: Id, real: &RealMsg) -> bool {
        let p = self.passages.lock().unwrap_or_else(|e| e.into_inner());
        p.like(false, src, dst, real).0 > p.like(true, src, dst, real).0
    }

    /// The environment's choice of a store fault at `id` (a full disk,
    /// bad blocks), made on the real node's files; the node is idle
    /// between orders.
    fn store_fault(&mut self, id: u64, fault: StoreFault) -> Result<(), String> {
        let store = self
            .stores
            .get(&id)
            .ok_or_else(|| format!("node {id} is not a running chunkserver"))?;
        match fault {
            StoreFault::DiskFull => store.fill_disk(),
            StoreFault::BlocksCorrupt => store.corrupt_blocks().map_err(|e| format!("{e:?}"))?,
        }
        self.store_faults.entry(id).or_default().push(fault);
        Ok(())
    }

    /// When node `id`'s armed `timer` is due on the virtual clock.
    async fn deadline(&self, id: u64, timer: &leasehold_model::msg::Timer) -> Option<u64> {
        let (_, schedule) = self.running.get(&id)?;
        schedule
            .order(Order::Deadline(timer.clone()))
            .await
            .ok()
            .and_then(|done| done.deadline_ns)
    }

    async fn order(&self, id: u64, order: Order<RealNode>) -> Result<bool, String> {
        let Some((_, schedule)) = self.running.get(&id) else {
            return Err(format!("node {id} is not running"));
        };
        schedule
            .order(order)
            .await
            .map(|done| done.similar)
            .map_err(|r: Refusal| r.to_string())
    }
}

/// Finds the counterexample and replays it (see the module doc).
pub async fn replay(plan: ReplayPlan) -> Result<ReplayReport, ReplayError> {
    let cfg = plan.cfg;
    let temp;
    let dir = match &plan.dir {
        Some(dir) => {
            // A directory of an earlier run would add its traces and chunk
            // files to this one's; replay deletes nothing it did not make.
            let used = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
            if used {
                return Err(ReplayError::Setup(format!(
                    "{} is not empty: give a new or empty directory",
                    dir.display()
                )));
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| ReplayError::Setup(format!("{}: {e}", dir.display())))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().map_err(|e| ReplayError::Setup(e.to_string()))?;
            temp.path().to_path_buf()
        }
    };
    let bug = cfg.bug;
    let liveness_asked = plan
        .property
        .as_deref()
        .is_some_and(|p| ["LIVE-", "REPL-"].iter().any(|l| p.starts_with(l)));
    let found = match &plan.swarm {
        _ if liveness_asked => None,
        None => leasehold_checks::check::counterexample(
            cfg.clone(),
            plan.property.as_deref(),
            plan.max_states,
        ),
        Some(walks) => {
            let walks = leasehold_checks::swarm::SwarmOptions {
                keep_steps: true,
                ..walks.clone()
            };
            leasehold_checks::swarm::swarm(cfg.clone(), &walks)
                .violations
                .into_iter()
                .find(|f| {
                    plan.property
                        .as_deref()
                        .is_none_or(|p| f.property.starts_with(p))
                })
                .map(|f| (f.property, f.steps))
        }
    };
    let liveness =
        found.is_none() && plan.swarm.is_none() && (liveness_asked || plan.property.is_none());
    let found = match found {
        Some(found) => Some(found),
        None if liveness => leasehold_checks::liveness::doomed_counterexample(
            &cfg.clone().into_model(),
            plan.max_states,
        )
        .filter(|(requirement, _)| {
            plan.property
                .as_deref()
                .is_none_or(|p| requirement.starts_with(p))
        }),
        None => None,
    };
    let (property, path) = found.ok_or_else(|| ReplayError::NoCounterexample {
        property: plan.property.clone().unwrap_or("any property".into()),
        searched: match &plan.swarm {
            None => format!("{} states", plan.max_states),
            Some(w) => format!("{} random walks of {} steps", w.seeds, w.depth),
        },
    })?;
    let model = cfg.clone().into_model();
    let shown: Vec<String> = path.iter().map(|(_, a)| model.format_action(a)).collect();

    let trace_dir = dir.join("traces");
    let mut cluster = ClusterConfig::local(cfg.chunkservers as usize, &dir)
        .map_err(|e| ReplayError::Setup(e.to_string()))?;
    cluster.nodes.retain(|n| n.role != Role::Client);
    cluster.chunk_bytes = cfg.chunk_units as u64;
    cluster.trace_dir = Some(trace_dir.clone());
    let node_cfg = node_cfg(&cfg, plan.bug_off);
    let mut protocol = node_cfg.protocol();
    if liveness {
        // The run goes on past the path for LIVE-2's bound, two master
        // lease periods: with the demo's 2 s leases a client that retries
        // every 20 ms takes hundreds of steps to get there, not thousands.
        // The path itself does not depend on durations (each timer fires
        // when the path says).
        cluster.leases = crate::config::Leases::Short;
        // Idle servers beat, as over TCP: the model leaves idle beats out
        // (they change nothing its properties read) and lets the master
        // find only a crashed server silent, which real time gives only
        // with them.
        protocol.heartbeats_when_idle = true;
        protocol.durations = leasehold_model::config::Durations {
            retry_backoff_ms: protocol.durations.retry_backoff_ms,
            ..crate::config::Leases::Short.durations()
        };
    }

    // LIVE-2's bound over TCP is two master lease periods; REPL-1's,
    // four (specs/requirements.md: a silent server counts for two, and a
    // revocation waits half of one, before the clone).
    let periods = if cfg.replication_goal { 4 } else { 2 };
    let within_ns = periods * protocol.durations.master_lease_ms * 1_000_000;
    let mut nodes = Cluster {
        cfg: node_cfg,
        protocol: Arc::new(protocol),
        cluster,
        clock: VirtualClock::starting_now(),
        running: BTreeMap::new(),
        passages: Arc::default(),
        stores: BTreeMap::new(),
        store_faults: BTreeMap::new(),
    };
    let ids = 1 + cfg.chunkservers as u64 + cfg.clients() as u64;
    for id in 0..ids {
        nodes.start(id, true).await?;
    }

    // `master-ignores-clock-bound` is no bug of the nodes but of the
    // environment: the model's time rule lets the master's lease expiry
    // fire while the primary's lease clock runs, as a master clock that
    // runs fast beyond the drift bound would. Replay plays that clock: the
    // master's expiry fires when the path says, before its deadline. With
    // the bug off, the clock keeps the bound.
    let drift = bug == Bug::MasterIgnoresClockBound && !plan.bug_off;
    let outcome = walk(&mut nodes, &model, &path, &shown, plan.late_timers, drift).await;
    // A liveness path ends in a state from which the clients cannot all
    // succeed: the nodes run on, fault-free, for the requirement's bound
    // over TCP (`within_ns`).
    let released = match (&outcome, liveness) {
        (Ok(_), true) => {
            // A crash is a crash-restart: a node the path left down comes
            // back (the model's recovery, which any continuation may
            // take), unless the configuration's crashes are for good.
            for id in 0..ids {
                let down_for_good =
                    cfg.crashes_permanent && (1..=cfg.chunkservers as u64).contains(&id);
                if !nodes.running.contains_key(&id) && !down_for_good {
                    nodes.start(id, false).await?;
                }
            }
            Some(
                nodes
                    .release(within_ns)
                    .await
                    .map_err(|e| ReplayError::Node(0, format!("running on past the path: {e}")))?,
            )
        }
        _ => None,
    };
    let gone: Vec<u64> = (1..=cfg.chunkservers as u64)
        .filter(|id| !nodes.running.contains_key(id))
        .collect();
    let ids: Vec<u64> = nodes.running.keys().copied().collect();
    for id in ids {
        nodes.stop(id).await?;
    }
    let (steps_done, steps_similar, resent, divergences) = outcome?;
    let requirement = match property {
        "LIVE-1" => Some(validate::Check::Live1),
        "LIVE-2" => Some(validate::Check::Live2),
        "REPL-1" => Some(validate::Check::Repl1),
        _ => None,
    };
    // A release stopped by its step cap never reached the bound: nothing
    // is judged.
    let judged = released.filter(|r| r.end != ReleaseEnd::StepCap);
    let window = judged
        .zip(requirement)
        .map(|(r, requirement)| validate::live::Window {
            requirement,
            from_ns: r.from_ns,
            within_ns,
            // A server the path left down is down for good only where the
            // model's crashes are (REPL-1 counts the rest).
            gone: if cfg.crashes_permanent { gone } else { vec![] },
        });
    let options = ValidateOptions {
        liveness: window,
        // The path's duplicates are the environment's, as its losses are.
        network_duplicates: cfg.duplicating || cfg.duplications > 0,
        ..ValidateOptions::default()
    };
    let validation = validate::validate_dir(&trace_dir, &options)
        .map_err(|e| ReplayError::Validate(e.to_string()))?;
    Ok(ReplayReport {
        config: cfg.name.to_string(),
        bug,
        bug_on_nodes: !plan.bug_off,
        property,
        path: shown,
        steps_done,
        steps_similar,
        resent,
        divergences,
        released: released.map(|r| (r, within_ns)),
        validation,
        trace_dir,
    })
}

/// Whether the model's chunkserver `n` wrote since its last barrier and
/// may still lose it to a crash before the next.
fn unsynced(state: &State, n: u64) -> bool {
    state
        .history
        .unsynced
        .iter()
        .any(|(id, _)| usize::from(*id) as u64 == n)
}

/// Whether the barrier chunkserver `id` is about to hold is the one a
/// crash of the rest of the path tears: the path's first choice about
/// that barrier is such a crash, before a later step of the node passes
/// the barrier itself (the model's state no longer lists it unsynced).
fn torn_later(model: &LeaseholdModel, rest: &[(State, Action)], id: Id) -> bool {
    let n = usize::from(id) as u64;
    for (before, action) in rest {
        if !unsynced(before, n) {
            return false;
        }
        if let ActorModelAction::SelectRandom { actor, key, .. } = action {
            if *actor == id
                && (model.is_barrier(key)
                    || model.is_barrier_crash(key)
                    || model.is_torn_barrier_crash(key))
            {
                return model.is_torn_barrier_crash(key);
            }
        }
    }
    false
}

/// The configuration the nodes run: the checked one, the bug switched
/// off with `bug_off`.
fn node_cfg(cfg: &ModelCfg, bug_off: bool) -> ModelCfg {
    if bug_off {
        cfg.clone().with_bug(Bug::None)
    } else {
        cfg.clone()
    }
}

type Walked = (usize, usize, usize, Vec<Divergence>);

/// How long before the path's next timer is due a late timer fires: room
/// for the steps between (a microsecond each on the virtual clock).
pub const LATE_TIMER_MARGIN_NS: u64 = 1_000_000;

async fn walk(
    nodes: &mut Cluster,
    model: &LeaseholdModel,
    path: &[(State, Action)],
    shown: &[String],
    late_timers: bool,
    drift: bool,
) -> Result<Walked, ReplayError> {
    let mut done = 0;
    let mut similar = 0;
    let mut resent = 0;
    let mut divergences = vec![];
    // Envelopes the model duplicated: their next delivery leaves a copy.
    let mut duplicated: Vec<(Id, Id, Msg<RecordToken>)> = vec![];
    let mut kept: Vec<(Id, Id, Msg<RecordToken>)> = vec![];
    let keep_all = model.cfg.duplicating;
    // Chunkservers whose steps wait for their barrier, as the model's
    // `unsynced` says (configurations with `barrier_crashes` only).
    let mut holding: BTreeSet<u64> = BTreeSet::new();
    for (step, (state, action)) in path.iter().enumerate() {
        let last_after;
        let after = match path.get(step + 1) {
            Some((next, _)) => Some(next),
            None => {
                last_after = model.next_state(state, action.clone());
                last_after.as_ref()
            }
        };
        let stepping = match action {
            ActorModelAction::Deliver { dst: id, .. } | ActorModelAction::Timeout(id, _) => {
                Some(*id)
            }
            _ => None,
        };
        if let (Some(id), Some(after)) = (stepping, after) {
            let n = usize::from(id) as u64;
            if model.cfg.is_chunkserver(id) && unsynced(after, n) && holding.insert(n) {
                // The step writes, and tells of it only by what may leave
                // before the barrier: the node keeps the barrier until
                // the path passes it, or crashes before it. A crash that
                // will tear that barrier's sync must be armed before the
                // writes it tears.
                if torn_later(model, &path[step + 1..], id) {
                    nodes.tear_next_sync(n);
                }
                if let Err(why) = nodes.order(n, Order::HoldBarrier).await {
                    tracing::warn!(node = n, %why, "cannot hold the barrier");
                }
            }
        }
        let result: Result<bool, String> = match action {
            ActorModelAction::Deliver { src, dst, msg } => {
                let dst_n = usize::from(*dst) as u64;
                let key = (*src, *dst, msg.clone());
                let dup = duplicated.iter().position(|d| *d == key);
                let keep = keep_all || dup.is_some();
                // The second delivery of a duplicated message takes the
                // copy the first left held.
                let copy = kept.iter().position(|d| *d == key);
                if let Some(i) = dup {
                    kept.push(duplicated.remove(i));
                } else if let Some(i) = copy {
                    kept.remove(i);
                }
                let again = keep || copy.is_some();
                let real = real_msg(msg);
                let handed_copy = copy.is_some().then(|| (*src, *dst, real.clone()));
                let order = |real: RealMsg| Order::Deliver {
                    src: *src,
                    pick: pick(real),
                    keep,
                };
                let result = match nodes.sent(*src, *dst, &real, again) {
                    Err(why) => Err(why),
                    Ok(()) => match nodes.order(dst_n, order(real.clone())).await {
                        Err(why)
                            if why.contains("no such message")
                                && (again || nodes.lost(*src, *dst, &real)) =>
                        {
                            // Sent, never handed over, not on its way:
                            // lost with a connection or a crashed node's
                            // memory (see [`Passages`]); or a duplicate's
                            // copy, held by a node that crashed since.
                            let injected = nodes
                                .running
                                .get(&dst_n)
                                .map(|(h, _)| h.handle().try_inject(*src, real.clone()));
                            match injected {
                                Some(Ok(())) => {
                                    resent += 1;
                                    nodes.order(dst_n, order(real)).await
                                }
                                _ => Err(why),
                            }
                        }
                        other => other,
                    },
                };
                if let (Ok(_), Some(handed)) = (&result, handed_copy) {
                    nodes
                        .passages
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .copies
                        .push(handed);
                }
                result
            }
            ActorModelAction::Drop(envelope) => {
                let real = real_msg(&envelope.msg);
                match nodes.sent(envelope.src, envelope.dst, &real, keep_all) {
                    Err(why) => Err(why),
                    Ok(()) => {
                        let order = Order::Lose {
                            src: envelope.src,
                            pick: pick(real),
                        };
                        nodes.order(usize::from(envelope.dst) as u64, order).await
                    }
                }
            }
            ActorModelAction::Timeout(id, timer) => {
                // A late timer: just before the path's next one is due, if
                // that is armed already and due after this one.
                let next = path[step + 1..].iter().find_map(|(_, a)| match a {
                    ActorModelAction::Timeout(id, timer) => Some((usize::from(*id) as u64, timer)),
                    _ => None,
                });
                let not_before_ns = match next {
                    Some((next_id, next_timer)) if late_timers => nodes
                        .deadline(next_id, next_timer)
                        .await
                        .map_or(0, |due| due.saturating_sub(LATE_TIMER_MARGIN_NS)),
                    _ => 0,
                };
                let master_fast = drift
                    && *id == model.cfg.master_id()
                    && matches!(timer, leasehold_model::msg::Timer::LeaseExpiry(_));
                let order = Order::Fire {
                    timer: timer.clone(),
                    at: if master_fast {
                        FireAt::Now
                    } else {
                        FireAt::Deadline { not_before_ns }
                    },
                };
                nodes.order(usize::from(*id) as u64, order).await
            }
            ActorModelAction::Crash(id) => {
                let id = usize::from(*id) as u64;
                nodes
                    .stop(id)
                    .await
                    .map(|()| false)
                    .map_err(|e| e.to_string())
            }
            ActorModelAction::Recover(id) => {
                let id = usize::from(*id) as u64;
                nodes
                    .start(id, false)
                    .await
                    .map(|()| false)
                    .map_err(|e| e.to_string())
            }
            ActorModelAction::SelectRandom { actor, key, .. } => {
                match (model.duplicated_by(state, key), model.store_fault_by(key)) {
                    (Some(envelope), _) => {
                        duplicated.push(envelope);
                        Ok(false)
                    }
                    (None, Some(fault)) => nodes
                        .store_fault(usize::from(*actor) as u64, fault)
                        .map(|()| false),
                    // Passed below, once the model's state says so.
                    (None, None) if model.is_barrier(key) => Ok(false),
                    (None, None) if model.is_torn_barrier_crash(key) => {
                        // Its sync, armed to tear when the barrier was
                        // held, fails and stops the node as a crash would.
                        let n = usize::from(*actor) as u64;
                        holding.remove(&n);
                        let _ = nodes.order(n, Order::PassBarrier).await;
                        nodes.stop_failed(n).await.map(|()| false)
                    }
                    (None, None) if model.torn_step_of(state, key).is_some() => {
                        let (src, dst, msg) = model.torn_step_of(state, key).expect("matched");
                        let n = usize::from(dst) as u64;
                        let real = real_msg(&msg);
                        match nodes.sent(src, dst, &real, false) {
                            Err(why) => Err(why),
                            Ok(()) => {
                                // The step's own barrier tears and stops the
                                // node (the order's answer is lost with it).
                                nodes.tear_next_sync(n);
                                let order = Order::Deliver {
                                    src,
                                    pick: pick(real),
                                    keep: false,
                                };
                                let _ = nodes.order(n, order).await;
                                nodes.stop_failed(n).await.map(|()| false)
                            }
                        }
                    }
                    (None, None) if model.is_barrier_crash(key) => {
                        let n = usize::from(*actor) as u64;
                        holding.remove(&n);
                        nodes
                            .crash_before_barrier(n)
                            .await
                            .map(|()| false)
                            .map_err(|e| e.to_string())
                    }
                    (None, None) => {
                        Err(format!("environment choice {key} has no real counterpart"))
                    }
                }
            }
        };
        // A held barrier the model's state no longer lists is passed: by
        // the path's "barrier", or because no crash before one is left.
        for n in holding.clone() {
            if after.is_none_or(|a| !unsynced(a, n)) {
                holding.remove(&n);
                tracing::debug!(node = n, step, "the path passes the held barrier");
                if nodes.running.contains_key(&n) {
                    if let Err(why) = nodes.order(n, Order::PassBarrier).await {
                        tracing::warn!(node = n, %why, "cannot pass the held barrier");
                    }
                }
            }
        }
        match result {
            Ok(was_similar) => {
                done += 1;
                similar += usize::from(was_similar);
            }
            Err(why) => {
                tracing::warn!(step, action = %shown[step], %why, "replay step skipped");
                divergences.push(Divergence {
                    step,
                    action: shown[step].clone(),
                    why,
                });
            }
        }
    }
    Ok((done, similar, resent, divergences))
}

/// Prints a report (the CLI's output).
pub fn print_report(r: &ReplayReport, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "replay of {} with seeded bug {} ({} on the real nodes)",
        r.config,
        r.bug.name(),
        if r.bug_on_nodes {
            "switched on"
        } else {
            "switched OFF"
        }
    )?;
    writeln!(out, "the checker's counterexample to: {}", r.property)?;
    for (i, step) in r.path.iter().enumerate() {
        let mark = match r.divergences.iter().find(|d| d.step == i) {
            Some(_) => "skipped",
            None => "",
        };
        writeln!(out, "  {:>3} {:<8}{}", i + 1, mark, step)?;
    }
    writeln!(
        out,
        "{} of {} steps carried out on the real nodes ({} by a message of the same kind, {} lost on \
         the way and sent again)",
        r.steps_done,
        r.path.len(),
        r.steps_similar,
        r.resent
    )?;
    for d in &r.divergences {
        writeln!(out, "  step {} skipped: {}", d.step + 1, d.why)?;
    }
    if let Some((released, within_ns)) = &r.released {
        writeln!(
            out,
            "then ran on with no faults (a prompt network, timers at their deadlines) for {} steps, \
             {}; {} is judged {:.1} s after the path ({} master lease periods of the demo's \
             2 s leases)",
            released.steps,
            match released.end {
                ReleaseEnd::Bound => "until the next timer was due past the bound",
                ReleaseEnd::Quiet => "until nothing was left to do",
                ReleaseEnd::StepCap => "until the step cap",
            },
            r.requirement(),
            *within_ns as f64 / 1e9,
            if r.requirement() == "REPL-1" {
                "four"
            } else {
                "two"
            },
        )?;
        if released.end == ReleaseEnd::StepCap {
            writeln!(
                out,
                "  the step cap came before the bound: {} is not judged (a client that retries \
                 at once takes steps without time passing; try --set retry_backoff=true)",
                r.requirement()
            )?;
        }
    }
    writeln!(
        out,
        "validate {}: {}",
        r.trace_dir.display(),
        r.validation.summary()
    )?;
    for f in &r.validation.failures {
        writeln!(out, "  {f}")?;
    }
    writeln!(
        out,
        "{}",
        if r.caught() {
            format!("CAUGHT: the real run violates {}", r.requirement())
        } else if r.validation.is_clean() {
            "clean: the real run violates nothing".to_string()
        } else {
            format!("NOT CAUGHT as {} (other failures above)", r.requirement())
        }
    )
}
