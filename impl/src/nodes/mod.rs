//! Building the real nodes from a [`ClusterConfig`]: the protocol's
//! parameters for real sizes, and a master, chunkserver or client actor
//! hosted over TCP.
//!
//! The actors are the model's, unchanged; this module only chooses their
//! parameters. The model bounds lease grants, extensions and chunks per file
//! so that checking terminates; here those bounds are `u32::MAX`. Two bounds
//! differ on purpose:
//!
//! - `revocations_max = 0`: in the model the master revokes leases early at
//!   will to explore [0091]'s revocation; a real master has no rename or
//!   snapshot that needs it, and revoking every lease halfway through its
//!   period would only churn versions. (A stale secondary still ends its
//!   primary's lease: the master's report handling revokes regardless.)
//! - `client_retries_max` is finite ([`client_retries_max`]): enough
//!   retries, each after its backoff, to outlast the client library's
//!   default deadline, so the actor, not the library, decides every retry
//!   (one policy, the one the model checks), and an operation the library
//!   gave up on still ends, freeing the actor for the next.

use leasehold_model::chunkserver::ChunkserverActor;
use leasehold_model::client::ClientActor;
use leasehold_model::config::{Bug, Durations, ProtocolCfg};
use leasehold_model::master::MasterNote;
use leasehold_model::master::{MasterActor, MasterDurable};
use leasehold_model::msg::{ApplyOp, Msg, MutationKind, Timer};
use leasehold_model::node::Digested;
use leasehold_model::types::{ClonePiece, Payload, StoreError};
use leasehold_model::{Node, NodeState};
use stateright::actor::Id;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{ClusterConfig, ConfigError, NodeConfig, Role};
use crate::filestore::FileStore;
use crate::host::{ActorHost, BatchEnd, HostConfig, HostError, MsgObserver, RunningHost};
use crate::payload::Bytes;
use crate::trace::{TraceActor, TraceInitial, TraceWriter};

/// The actor every real node runs.
pub type RealNode = Node<FileStore>;
/// The messages real nodes exchange.
pub type RealMsg = Msg<Bytes>;

/// Largest fragment of a pipelined push ([0098]) unless the cluster config
/// says otherwise (`push_fragment_bytes`): small enough that the next
/// server starts forwarding early, large enough that framing costs little.
/// One checksum block.
pub const PUSH_FRAGMENT_BYTES_DEFAULT: u64 = 64 * 1024;
/// Pushed records a chunkserver buffers at once; more is `Busy`. With
/// records of at most a quarter chunk, the buffered bytes per server are at
/// most `PUSH_BUFFERS_MAX * chunk_bytes / 4` (512 MiB for 64 MiB chunks).
pub const PUSH_BUFFERS_MAX: u32 = 32;
/// Pushed bytes a chunkserver buffers at once, whatever the record sizes:
/// sixteen records of the largest size for 64 MiB chunks. A fragment past
/// it is `Busy` and its push dropped; the client pushes again later.
pub const PUSH_BUFFER_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Mutations a primary has in flight (and a secondary holds back) at once.
pub const MUTATIONS_IN_FLIGHT_MAX: u32 = 64;
/// Retries of one operation inside the client actor (see the module doc):
/// as many as it takes for their backoffs to add up to the library's
/// default deadline.
pub fn client_retries_max(cluster: &ClusterConfig) -> u32 {
    let deadline = crate::client::op_timeout_default(cluster);
    cluster
        .leases
        .durations()
        .retries_to_cover(deadline.as_millis() as u64)
}
/// Replicas per chunk, as in GFS, fewer if the cluster has fewer servers.
pub const REPLICAS_PER_CHUNK_MAX: u32 = 3;

/// Bytes of a chunk one part of a clone carries (re-replication): a
/// quarter of the largest frame, so a part and its envelope always fit.
pub const CLONE_PART_BYTES: u64 = 4 * 1024 * 1024;

// A pushed record must fit one frame fragment by fragment, as must a part
// of a clone.
const _: () = assert!(CLONE_PART_BYTES as usize * 2 <= crate::frame::FRAME_PAYLOAD_BYTES_MAX);
const _: () =
    assert!(PUSH_FRAGMENT_BYTES_DEFAULT as usize * 2 <= crate::frame::FRAME_PAYLOAD_BYTES_MAX);

/// Why a node could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the cluster config needs exactly one master, found {0}")]
    Masters(usize),
    #[error("the cluster config has no chunkservers")]
    NoChunkservers,
    #[error("node {id} is a {actual:?}, not a {wanted:?}")]
    WrongRole { id: u64, actual: Role, wanted: Role },
    #[error(
        "refusing to run: the lease periods break the clock assumption: the master's \
         lease ({master_lease_ms} ms) must be at least {master_lease_ms_min} ms to outlast \
         the chunkserver's ({lease_ms} ms) with every clock's rate within {rate_error} per \
         mille of real time ([0091], docs/model.md \"Time\")"
    )]
    ClockBound {
        lease_ms: u64,
        master_lease_ms: u64,
        master_lease_ms_min: u64,
        rate_error: u64,
    },
    #[error("cannot open the chunk store in {dir}: {error}")]
    Store { dir: PathBuf, error: StoreError },
    #[error("node {id}: {source}")]
    Host { id: u64, source: HostError },
    #[error("cannot record a step trace: {0}")]
    Trace(String),
    #[error("client id {0} is a node of the cluster file")]
    ClientIdTaken(u64),
}

/// A node's network position: the configured one, else one estimated from
/// its IP address ([0097]: "distances can be easily estimated by examining
/// IP addresses"). An IPv4 address as a number puts hosts of one subnet
/// close together; IPv6 uses its first 64 bits (the network prefix).
/// `None` for a client place that names no position.
pub fn position(node: &NodeConfig) -> Option<u64> {
    node.position.or(node.addr.map(|a| ip_position(a.ip())))
}

/// The position [0097] estimates from an IP address.
pub fn ip_position(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(ip) => u64::from(u32::from(ip)),
        IpAddr::V6(ip) => (u128::from(ip) >> 64) as u64,
    }
}

/// Where a client with no place in the cluster file is: estimated from
/// the address this machine would reach the master from (no packet is
/// sent), or the master's own position if there is none.
pub fn client_position(cluster: &ClusterConfig) -> u64 {
    let master = cluster
        .ids_with_role(Role::Master)
        .first()
        .and_then(|&m| cluster.node(m).ok());
    let from_here = master.and_then(|m| m.addr).and_then(|addr| {
        let unspecified: SocketAddr = match addr {
            SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let probe = std::net::UdpSocket::bind(unspecified).ok()?;
        probe.connect(addr).ok()?;
        Some(ip_position(probe.local_addr().ok()?.ip()))
    });
    from_here.or(master.and_then(position)).unwrap_or(0)
}

/// The protocol's parameters for this cluster.
pub fn protocol_cfg(cluster: &ClusterConfig) -> Result<ProtocolCfg, NodeError> {
    let masters = cluster.ids_with_role(Role::Master);
    if masters.len() != 1 {
        return Err(NodeError::Masters(masters.len()));
    }
    let chunkservers = cluster.ids_with_role(Role::Chunkserver);
    if chunkservers.is_empty() {
        return Err(NodeError::NoChunkservers);
    }
    let durations = cluster.leases.durations();
    check_clock_bound(&durations)?;
    Ok(ProtocolCfg {
        chunk_size: cluster.chunk_bytes,
        replicas_per_chunk: REPLICAS_PER_CHUNK_MAX.min(chunkservers.len() as u32),
        master: masters[0],
        chunkservers,
        positions: cluster
            .nodes
            .iter()
            .filter_map(|n| Some((n.actor_id(), position(n)?)))
            .collect(),
        lease_grants_max: u32::MAX,
        extensions_max: u32::MAX,
        revocations_max: 0,
        chunks_max: u32::MAX,
        client_retries_max: client_retries_max(cluster),
        age_out: true,
        reply_timeouts: true,
        push_buffers_max: PUSH_BUFFERS_MAX,
        push_buffer_bytes_max: PUSH_BUFFER_BYTES_MAX,
        mutations_in_flight_max: MUTATIONS_IN_FLIGHT_MAX,
        heartbeats_when_idle: true,
        re_replication: true,
        clone_part_units: CLONE_PART_BYTES,
        // A primary's Applies wait only until its host's batch of messages
        // ends, and a batch holds at most this many Mutates.
        apply_batch_max: crate::host::BATCH_MSGS_MAX as u32,
        durations,
        bug: Bug::None,
    })
}

/// The model's lease rule is safe only under the clock assumption; a node
/// whose periods break it must not run at all.
pub fn check_clock_bound(d: &Durations) -> Result<(), NodeError> {
    if d.satisfy_clock_bound() {
        Ok(())
    } else {
        Err(NodeError::ClockBound {
            lease_ms: d.lease_ms,
            master_lease_ms: d.master_lease_ms,
            master_lease_ms_min: Durations::master_lease_ms_min(d.lease_ms),
            rate_error: Durations::CLOCK_RATE_ERROR_PER_MILLE_MAX,
        })
    }
}

fn node_with_role(
    cluster: &ClusterConfig,
    id: u64,
    wanted: Role,
) -> Result<&NodeConfig, NodeError> {
    let node = cluster.node(Id::from(id as usize))?;
    if node.role != wanted {
        return Err(NodeError::WrongRole {
            id,
            actual: node.role,
            wanted,
        });
    }
    Ok(node)
}

/// Test hooks for a node's host: faults injected at the host, never in
/// the protocol. Empty by default.
#[derive(Default)]
pub struct NodeHooks {
    /// Holds chosen outgoing messages (see [`crate::host::SendDelay`]).
    pub send_delay: Option<crate::host::SendDelay<RealMsg>>,
    /// A seeded bug for this node's actor, to show that a test or trace
    /// validation catches it over TCP (`Bug::None` by default).
    pub bug: Bug,
}

async fn start(
    cluster: &ClusterConfig,
    actor: RealNode,
    config: HostConfig,
    hooks: NodeHooks,
    more: impl FnOnce(ActorHost<RealNode>) -> ActorHost<RealNode>,
) -> Result<RunningHost<RealMsg>, NodeError> {
    start_at(cluster, actor, config, hooks, None, None, more).await
}

/// [`start`] for a node whose trace starts at `clock_ns` rather than now
/// (a scheduled node's virtual clock), with `initial` in its trace header
/// rather than what the actor shows (a chunkserver's prefilled chunk).
async fn start_at(
    cluster: &ClusterConfig,
    actor: RealNode,
    config: HostConfig,
    hooks: NodeHooks,
    clock_ns: Option<u64>,
    initial: Option<TraceInitial>,
    more: impl FnOnce(ActorHost<RealNode>) -> ActorHost<RealNode>,
) -> Result<RunningHost<RealMsg>, NodeError> {
    let id = usize::from(config.id) as u64;
    let actor = with_bug(actor, hooks.bug);
    let mut host = ActorHost::new(actor.clone(), config)
        .with_msg_tracer(trace_msg)
        .with_state_narrator(narrate_step);
    if let Some(dir) = &cluster.trace_dir {
        let (params, protocol, shown) = trace_actor(&actor);
        let initial = initial.unwrap_or(shown);
        let clock_ns = clock_ns.unwrap_or_else(crate::host::monotonic_ns);
        let writer = TraceWriter::create_with(dir, id, params, protocol, initial, clock_ns)
            .map_err(|e| NodeError::Trace(e.to_string()))?;
        tracing::info!(path = %writer.path().display(), "recording a step trace");
        host = host.with_recorder(Box::new(writer));
    }
    if let Some(delay) = hooks.send_delay {
        host = host.with_send_delay(delay);
    }
    let bug = actor_bug(&actor);
    host = host.with_batch_end(BatchEnd {
        fires_at_end: Box::new(Timer::fires_at_batch_end),
        handled_first: Box::new(RealMsg::handled_before_batch_end),
    });
    host = host.with_early_sends(Box::new(move |msg: &RealMsg| {
        msg.leaves_before_barrier(bug)
    }));
    more(host)
        .start()
        .await
        .map_err(|source| NodeError::Host { id, source })
}

/// The seeded bug the node runs with (`Bug::None` but in tests).
fn actor_bug(actor: &RealNode) -> Bug {
    match actor {
        Node::Master(a) => a.cfg.bug,
        Node::Chunkserver(a) => a.cfg.bug,
        Node::Client(a) => a.cfg.bug,
    }
}

fn with_bug(mut actor: RealNode, bug: Bug) -> RealNode {
    if bug != Bug::None {
        let cfg = match &mut actor {
            Node::Master(a) => &mut a.cfg,
            Node::Chunkserver(a) => &mut a.cfg,
            Node::Client(a) => &mut a.cfg,
        };
        Arc::make_mut(cfg).bug = bug;
        tracing::warn!(bug = bug.name(), "running with a seeded bug (test hook)");
    }
    actor
}

/// What a trace needs to rebuild `actor` for replay.
fn trace_actor(actor: &RealNode) -> (TraceActor, ProtocolCfg, TraceInitial) {
    match actor {
        Node::Master(a) => (
            TraceActor::Master,
            ProtocolCfg::clone(&a.cfg),
            if a.initial == MasterDurable::default() {
                TraceInitial::Empty
            } else {
                TraceInitial::Master(a.initial.clone())
            },
        ),
        Node::Chunkserver(a) => (
            TraceActor::Chunkserver {
                chunk_bytes: a.cfg.chunk_size,
            },
            ProtocolCfg::clone(&a.cfg),
            TraceInitial::Empty,
        ),
        Node::Client(a) => (
            TraceActor::Client {
                number: a.number,
                report_to: a.report_to.map(|id| usize::from(id) as u64),
                fragment_max: a.fragment_max,
            },
            ProtocolCfg::clone(&a.cfg),
            if a.script.is_empty() {
                TraceInitial::Empty
            } else {
                TraceInitial::Script(a.script.clone())
            },
        ),
    }
}

/// Starts the master `id` of `cluster` in this tokio runtime.
pub async fn start_master(
    cluster: &ClusterConfig,
    id: u64,
) -> Result<RunningHost<RealMsg>, NodeError> {
    start_master_with(cluster, id, NodeHooks::default()).await
}

/// [`start_master`] with test hooks.
pub async fn start_master_with(
    cluster: &ClusterConfig,
    id: u64,
    hooks: NodeHooks,
) -> Result<RunningHost<RealMsg>, NodeError> {
    node_with_role(cluster, id, Role::Master)?;
    let cfg = Arc::new(protocol_cfg(cluster)?);
    let actor = Node::Master(MasterActor {
        cfg,
        initial: MasterDurable::default(),
    });
    let config = HostConfig::from_cluster(cluster, Id::from(id as usize))?;
    start(cluster, actor, config, hooks, |host| host).await
}

/// Starts the master and every chunkserver of `cluster` in this process,
/// the master with `master` hooks and chunkserver `id` with
/// `chunkserver(id)`'s (tests that give some nodes a hook or a seeded bug).
pub async fn start_servers_with(
    cluster: &ClusterConfig,
    master: NodeHooks,
    mut chunkserver: impl FnMut(u64) -> NodeHooks,
) -> Result<Vec<RunningHost<RealMsg>>, NodeError> {
    let mut running = vec![];
    let mut master = Some(master);
    for node in &cluster.nodes {
        running.push(match node.role {
            Role::Master => {
                let hooks = master.take().unwrap_or_default();
                start_master_with(cluster, node.id, hooks).await?
            }
            Role::Chunkserver => {
                start_chunkserver_with(cluster, node.id, chunkserver(node.id)).await?
            }
            _ => continue,
        });
    }
    Ok(running)
}

/// The directory of a chunkserver's chunk files.
pub fn chunk_dir(node: &NodeConfig) -> PathBuf {
    node.dir().join("chunks")
}

/// Starts chunkserver `id` of `cluster`, with its chunks in
/// `<data_dir>/chunks`.
pub async fn start_chunkserver(
    cluster: &ClusterConfig,
    id: u64,
) -> Result<RunningHost<RealMsg>, NodeError> {
    start_chunkserver_with(cluster, id, NodeHooks::default()).await
}

/// [`start_chunkserver`] with test hooks.
pub async fn start_chunkserver_with(
    cluster: &ClusterConfig,
    id: u64,
    hooks: NodeHooks,
) -> Result<RunningHost<RealMsg>, NodeError> {
    let node = node_with_role(cluster, id, Role::Chunkserver)?;
    let cfg = Arc::new(protocol_cfg(cluster)?);
    let dir = chunk_dir(node);
    let store = FileStore::open_with(&dir, cluster.chunk_bytes, cluster.durability)
        .map_err(|error| NodeError::Store { dir, error })?;
    store.limit_disk_bytes(node.disk_bytes_max);
    store.keep_room_for_restart_count();
    let synced = store.clone();
    let actor = Node::Chunkserver(ChunkserverActor {
        cfg,
        initial_store: store,
    });
    // Group commit: the host syncs the chunk files once per batch of
    // handled messages, before any reply or forward leaves.
    let config = HostConfig::from_cluster(cluster, Id::from(id as usize))?;
    start(cluster, actor, config, hooks, |host| {
        host.with_barrier(Box::new(move || synced.sync()))
    })
    .await
}

/// The ids a client draws its own from: above every id a cluster file is
/// likely to give a server, and below 2^53, so that JSON readers that keep
/// numbers as doubles (foreign traces are JSON) read them exactly.
pub const CLIENT_IDS: std::ops::Range<u64> = (1 << 32)..(1 << 53);

/// A client's id: drawn at random, since a client has no place in the
/// cluster file to take one from. Two clients that drew the same id would
/// be answered on each other's connections and could name each other's
/// pushed data; with 2^53 - 2^32 ids, the chance that two of a thousand
/// clients collide is about one in ten billion.
pub fn fresh_client_id() -> u64 {
    rand::random_range(CLIENT_IDS)
}

/// Starts a client of `cluster` under `id` at network `position`; its
/// results go to the application channel under `app_id` (see
/// [`crate::client`]); `observer` sees its messages. It listens nowhere:
/// it connects to every server, which answer it on those connections.
pub async fn start_client(
    cluster: &ClusterConfig,
    id: u64,
    position: u64,
    app_id: Id,
    observer: Option<MsgObserver<RealMsg>>,
    hooks: NodeHooks,
) -> Result<RunningHost<RealMsg>, NodeError> {
    let me = Id::from(id as usize);
    if cluster.node(me).is_ok() {
        return Err(NodeError::ClientIdTaken(id));
    }
    let mut cfg = protocol_cfg(cluster)?;
    cfg.positions.push((me, position));
    let actor = Node::Client(ClientActor {
        cfg: Arc::new(cfg),
        number: id,
        script: vec![],
        report_to: Some(app_id),
        fragment_max: cluster.push_fragment_bytes,
    });
    let config = HostConfig::client_of(cluster, me).with_app_id(app_id);
    start(cluster, actor, config, hooks, |host| match observer {
        Some(o) => host.with_observer(o),
        None => host,
    })
    .await
}

mod fields;
pub use fields::{msg_fields, narrate_step, trace_msg, MsgFields};

/// Starts `actor` as node `config.id` of `cluster`, run by a scheduler's
/// orders ([`crate::replay`]), with `barrier` passed after each step if
/// given (a chunkserver's store sync), and every message it sends and is
/// handed shown to `observer`.
pub async fn start_scheduled(
    cluster: &ClusterConfig,
    actor: RealNode,
    config: HostConfig,
    scheduling: crate::host::Scheduling<RealNode>,
    barrier: Option<crate::host::Barrier>,
    observer: MsgObserver<RealMsg>,
    initial: Option<TraceInitial>,
) -> Result<RunningHost<RealMsg>, NodeError> {
    let clock_ns = Some(scheduling.clock_ns());
    let hooks = NodeHooks::default();
    start_at(cluster, actor, config, hooks, clock_ns, initial, |host| {
        let host = host.with_schedule(scheduling).with_observer(observer);
        match barrier {
            Some(barrier) => host.with_barrier(barrier),
            None => host,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Leases;
    use std::path::Path;

    #[test]
    fn real_parameters_from_a_local_cluster() {
        let c = ClusterConfig::local_with_clients(3, 2, Path::new("/tmp/x")).unwrap();
        let cfg = protocol_cfg(&c).unwrap();
        assert_eq!(cfg.master, Id::from(0));
        assert_eq!(cfg.chunkservers, Id::vec_from(1..4));
        assert_eq!(cfg.replicas_per_chunk, 3);
        assert_eq!(cfg.chunk_size, c.chunk_bytes);
        assert_eq!(cfg.position(Id::from(5)), 5);
        assert!(cfg.durations.satisfy_clock_bound());
        assert_eq!(cfg.bug, Bug::None);
    }

    #[test]
    fn the_retry_budget_outlasts_the_default_deadline() {
        let mut c = ClusterConfig::local(1, Path::new("/tmp/x")).unwrap();
        for (leases, budget) in [(Leases::Gfs, 87), (Leases::Short, 23)] {
            c.leases = leases;
            let d = leases.durations();
            let retries = client_retries_max(&c);
            assert_eq!(retries, budget, "{leases:?}");
            let waited = |n: u32| (0..n).map(|r| d.retry_backoff(r)).sum::<u64>();
            let deadline = crate::client::op_timeout_default(&c).as_millis() as u64;
            // The fewest that cover it: one fewer falls short.
            assert!(waited(retries) >= deadline && waited(retries - 1) < deadline);
        }
        let d = Durations::short();
        let waits: Vec<u64> = (0..9).map(|r| d.retry_backoff(r)).collect();
        assert_eq!(waits, [20, 40, 80, 160, 320, 640, 1_000, 1_000, 1_000]);
        assert_eq!(d.retry_backoff(u32::MAX), 1_000);
        let at_once = Durations {
            retry_backoff_ms: 0,
            ..d
        };
        assert_eq!(at_once.retry_backoff(3), 0);
        assert_eq!(at_once.retries_to_cover(10_000), 1);
    }

    #[test]
    fn positions_come_from_ip_addresses_without_a_topology() {
        let mut c = ClusterConfig::local(1, Path::new("/tmp/x")).unwrap();
        for n in &mut c.nodes {
            n.position = None;
        }
        c.nodes[0].addr = Some("10.0.0.7:1".parse().unwrap());
        c.nodes[1].addr = Some("10.0.1.7:1".parse().unwrap());
        let cfg = protocol_cfg(&c).unwrap();
        assert_eq!(cfg.distance(Id::from(0), Id::from(1)), 256);
        // A client place with no position has none until a client takes
        // it: then it is estimated from the client's own address.
        assert_eq!(position(&c.nodes[2]), None);
        assert!(!cfg.positions.iter().any(|(id, _)| *id == Id::from(2)));
    }

    #[test]
    fn a_broken_clock_bound_is_refused() {
        let mut d = Durations::short();
        d.master_lease_ms = d.lease_ms;
        assert!(matches!(
            check_clock_bound(&d),
            Err(NodeError::ClockBound { .. })
        ));
        // The smallest master period the error names is the bound exactly.
        for lease_ms in [2_000, 60_000, 1] {
            d.lease_ms = lease_ms;
            d.master_lease_ms = Durations::master_lease_ms_min(lease_ms);
            assert!(check_clock_bound(&d).is_ok(), "{d:?}");
            d.master_lease_ms -= 1;
            assert!(check_clock_bound(&d).is_err(), "{d:?}");
        }
    }
}
