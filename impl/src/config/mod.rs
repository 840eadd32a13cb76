//! Cluster configuration: which actor id runs where, in which role, with
//! which data directory.
//!
//! ```toml
//! chunk_bytes = 67108864          # optional, 64 MiB by default
//! leases = "gfs"                  # optional: "gfs" (60 s) or "short" (2 s)
//! trace_dir = "traces"            # optional: every node records its steps
//!                                 # there, for `leasehold validate`
//! secret = "..."                  # optional: every connection must present
//!                                 # it; without it the cluster is open
//!
//! [limits]                        # optional: what one peer may make a node
//! connections_max = 1024          # hold (crate::host::ConnLimits; these
//! connections_per_addr_max = 512  # are the defaults)
//! hello_timeout_ms = 2000
//! connection_idle_ms = 120000
//! unfinished_frame_bytes_max = 268435456
//! inbox_bytes_max = 67108864
//!
//! [[node]]
//! id = 0
//! role = "master"
//! addr = "127.0.0.1:7000"
//! data_dir = "master"             # relative to the config file's folder
//!
//! [[node]]
//! id = 1
//! role = "chunkserver"
//! addr = "127.0.0.1:7001"
//! data_dir = "cs1"
//! position = 10                   # optional: network distance = |a - b|
//!
//! [[node]]                        # optional: a place a client may take
//! id = 9
//! role = "client"
//! position = 10
//! ```
//!
//! Clients need no entry: a client listens nowhere and keeps nothing on
//! disk. It connects to every server, and they answer it on its own
//! connections; it names itself with an id it draws at random (see
//! `crate::client`). A client entry, with neither address nor data
//! directory, only names a place (a network position) that a client may be
//! started at, as `conform` does to read from each replica as its closest
//! client.
//!
//! The host only needs ids and addresses; roles, data directories, positions,
//! the chunk size and the lease periods are for whoever constructs the actors
//! (`crate::nodes`). Lease periods are part of the cluster file, not of each
//! command line, because the lease rule is safe only if the master and every
//! chunkserver use the same pair ([0091], `Durations::satisfy_clock_bound`).

use crate::filestore::Durability;
use crate::host::ConnLimits;
use leasehold_model::config::Durations;
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

/// Chunk size when the config names none: the GFS paper's 64 MiB.
pub const CHUNK_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

// Config ids are u64 and `Id` converts from usize: no id may be truncated.
const _: () = assert!(usize::BITS >= 64);

/// Which timer periods the cluster runs with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Leases {
    /// The GFS paper's 60 s leases ([`Durations::gfs`]).
    #[default]
    Gfs,
    /// 2 s leases for demos and tests ([`Durations::short`]).
    Short,
}

impl Leases {
    pub fn durations(self) -> Durations {
        match self {
            Leases::Gfs => Durations::gfs(),
            Leases::Short => Durations::short(),
        }
    }

    fn is_default(&self) -> bool {
        *self == Leases::default()
    }
}

/// What a node does in the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Master,
    Chunkserver,
    Client,
}

/// One node of the cluster: one actor behind one TCP address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: u64,
    pub role: Role,
    /// Where a server accepts connections; none for a client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<SocketAddr>,
    /// Where a server keeps its saved actor storage (and, for a
    /// chunkserver, its chunk files); none for a client. Absolute after
    /// loading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Position on a line; the distance between two nodes is the difference
    /// of their positions. Chains for pushing data ([0098]) use it when all
    /// nodes involved have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// A chunkserver's room for chunk data, in bytes: a change that would
    /// take its chunk files past it fails as on a full disk (`NoSpace`),
    /// and the replica is reported and left out (FAULT-2). For space kept
    /// free on a shared volume, and to try a full disk without filling one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes_max: Option<u64>,
}

impl NodeConfig {
    pub fn actor_id(&self) -> Id {
        Id::from(self.id as usize)
    }

    /// A server's data directory (a validated config gives every server
    /// one).
    pub fn dir(&self) -> &Path {
        self.data_dir
            .as_deref()
            .expect("validated: every server has a data directory")
    }
}

/// The whole cluster, validated: ids, addresses and data directories unique.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    #[serde(default = "chunk_bytes_default")]
    pub chunk_bytes: u64,
    #[serde(default, skip_serializing_if = "Leases::is_default")]
    pub leases: Leases,
    /// Whether chunkservers fsync before they acknowledge (the default) or
    /// leave writes in the page cache (for measuring what fsync costs).
    #[serde(default, skip_serializing_if = "is_fsync")]
    pub durability: Durability,
    /// Largest fragment a client cuts pushed data into ([0098]): smaller
    /// starts the next hop sooner, larger costs fewer messages.
    #[serde(
        default = "push_fragment_bytes_default",
        skip_serializing_if = "is_push_fragment_bytes_default"
    )]
    pub push_fragment_bytes: u64,
    /// Where every node (clients included) writes its step trace for
    /// `leasehold validate` (`crate::trace`); no traces when unset.
    /// Relative to the config file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_dir: Option<PathBuf>,
    /// The cluster secret every connection's hello must carry (docs/tcp.md,
    /// "Handshake"); `None`: the cluster is open, as before secrets existed,
    /// and every server warns so at start. `leasehold cluster` writes one
    /// into a new cluster.toml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Connection limits, the constants in `crate::host` by default.
    #[serde(default, skip_serializing_if = "ConnLimits::is_default")]
    pub limits: ConnLimits,
    #[serde(rename = "node")]
    pub nodes: Vec<NodeConfig>,
}

fn push_fragment_bytes_default() -> u64 {
    crate::nodes::PUSH_FRAGMENT_BYTES_DEFAULT
}

fn is_push_fragment_bytes_default(n: &u64) -> bool {
    *n == push_fragment_bytes_default()
}

fn is_fsync(d: &Durability) -> bool {
    *d == Durability::Fsync
}

/// The largest chunk a cluster may use: its largest record (a quarter
/// chunk, [00104]) must fit a chunkserver's push buffer budget whole.
pub const CHUNK_BYTES_MAX: u64 = 4 * crate::nodes::PUSH_BUFFER_BYTES_MAX;

fn chunk_bytes_default() -> u64 {
    CHUNK_BYTES_DEFAULT
}

/// Why a cluster config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read cluster config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write cluster config {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cluster config {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cluster config has no nodes")]
    Empty,
    #[error("push_fragment_bytes = {bytes}: must be from 1 to {most} (half a frame)")]
    PushFragmentBytes { bytes: u64, most: u64 },
    #[error("node id {0} appears more than once")]
    DuplicateId(u64),
    #[error("address {addr} is used by nodes {first} and {second}")]
    DuplicateAddr {
        addr: SocketAddr,
        first: u64,
        second: u64,
    },
    #[error("data directory {dir} is used by nodes {first} and {second}")]
    DuplicateDataDir {
        dir: PathBuf,
        first: u64,
        second: u64,
    },
    #[error(
        "secret must be 1 to {} bytes of printable ASCII without spaces",
        crate::host::SECRET_BYTES_MAX
    )]
    Secret,
    #[error("limits: {0}")]
    Limits(String),
    #[error("chunk_bytes must be positive")]
    ZeroChunkBytes,
    #[error(
        "chunk_bytes is {bytes}, above the most, {most} (1 GiB): a record may be a quarter chunk, and a chunkserver buffers at most {buffer} bytes of pushed data, so a larger chunk's largest records could never be pushed"
    )]
    ChunkBytesTooLarge { bytes: u64, most: u64, buffer: u64 },
    #[error("node {0}: disk_bytes_max is for chunkservers only, and must be positive")]
    DiskBytesMax(u64),
    #[error("node {0}: a master or chunkserver needs an `addr` and a `data_dir`")]
    ServerPlace(u64),
    #[error(
        "node {0}: a client takes no `addr` or `data_dir`: it listens nowhere (servers answer it \
         on its own connections) and keeps nothing on disk; remove them"
    )]
    ClientPlace(u64),
    #[error("node {0} has no address: it is a client's place, not a server")]
    NoAddress(u64),
    #[error("no node with id {0:?} in the cluster config")]
    UnknownId(Id),
    #[error("cannot pick a free loopback port: {0}")]
    NoFreePort(std::io::Error),
}

impl ClusterConfig {
    /// Builds a config from nodes, checking it like a loaded file.
    pub fn new(chunk_bytes: u64, nodes: Vec<NodeConfig>) -> Result<Self, ConfigError> {
        let config = ClusterConfig {
            chunk_bytes,
            leases: Leases::default(),
            durability: Durability::default(),
            push_fragment_bytes: push_fragment_bytes_default(),
            trace_dir: None,
            secret: None,
            limits: ConnLimits::default(),
            nodes,
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads and validates a TOML file; relative data directories are taken
    /// relative to the file's folder, so a config works from any cwd.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.into(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text, resolving data directories against
    /// `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        let mut config: ClusterConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        for node in &mut config.nodes {
            if let Some(dir) = node.data_dir.as_mut().filter(|d| d.is_relative()) {
                *dir = base_dir.join(&*dir);
            }
        }
        if let Some(dir) = &mut config.trace_dir {
            if dir.is_relative() {
                *dir = base_dir.join(&*dir);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// The same cluster with another chunk size (checked like a load).
    pub fn with_chunk_bytes(mut self, chunk_bytes: u64) -> Result<Self, ConfigError> {
        self.chunk_bytes = chunk_bytes;
        self.validate()?;
        Ok(self)
    }

    pub fn with_leases(mut self, leases: Leases) -> Self {
        self.leases = leases;
        self
    }

    /// Every node records its steps in `dir` (see `crate::trace`).
    pub fn with_trace_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.trace_dir = dir;
        self
    }

    /// Sets the cluster secret (see [`ClusterConfig::secret`]).
    pub fn with_secret(mut self, secret: Option<String>) -> Result<Self, ConfigError> {
        self.secret = secret;
        self.validate()?;
        Ok(self)
    }

    /// A new random secret: 32 hex digits (128 bits).
    pub fn random_secret() -> String {
        format!("{:032x}", rand::random::<u128>())
    }

    pub fn with_limits(mut self, limits: ConnLimits) -> Result<Self, ConfigError> {
        self.limits = limits;
        self.validate()?;
        Ok(self)
    }

    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    pub fn with_push_fragment_bytes(mut self, bytes: u64) -> Result<Self, ConfigError> {
        self.push_fragment_bytes = bytes;
        self.validate()?;
        Ok(self)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a cluster config always serializes to TOML")
    }

    pub fn write(&self, path: &Path) -> Result<(), ConfigError> {
        std::fs::write(path, self.to_toml()).map_err(|source| ConfigError::Write {
            path: path.into(),
            source,
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.nodes.is_empty() {
            return Err(ConfigError::Empty);
        }
        if self.chunk_bytes == 0 {
            return Err(ConfigError::ZeroChunkBytes);
        }
        if self.chunk_bytes > CHUNK_BYTES_MAX {
            return Err(ConfigError::ChunkBytesTooLarge {
                bytes: self.chunk_bytes,
                most: CHUNK_BYTES_MAX,
                buffer: crate::nodes::PUSH_BUFFER_BYTES_MAX,
            });
        }
        let fragment_most = (crate::frame::FRAME_PAYLOAD_BYTES_MAX / 2) as u64;
        if !(1..=fragment_most).contains(&self.push_fragment_bytes) {
            return Err(ConfigError::PushFragmentBytes {
                bytes: self.push_fragment_bytes,
                most: fragment_most,
            });
        }
        if let Some(secret) = &self.secret {
            // Printable ASCII keeps the secret writable in TOML and on a
            // command line, and its length bounds the hello.
            let printable = secret.bytes().all(|b| b.is_ascii_graphic());
            if secret.is_empty() || secret.len() > crate::host::SECRET_BYTES_MAX || !printable {
                return Err(ConfigError::Secret);
            }
        }
        let l = &self.limits;
        if l.connections_max == 0 || l.connections_per_addr_max == 0 {
            return Err(ConfigError::Limits(
                "connection limits must be at least 1".into(),
            ));
        }
        if l.inbox_bytes_max == 0 {
            return Err(ConfigError::Limits(
                "inbox_bytes_max must be at least 1".into(),
            ));
        }
        if l.hello_timeout_ms == 0 || l.connection_idle_ms < l.hello_timeout_ms {
            return Err(ConfigError::Limits(
                "hello_timeout_ms must be positive and at most connection_idle_ms".into(),
            ));
        }
        let mut ids = HashMap::new();
        let mut addrs = HashMap::new();
        let mut dirs = HashMap::new();
        for node in &self.nodes {
            if ids.insert(node.id, ()).is_some() {
                return Err(ConfigError::DuplicateId(node.id));
            }
            if node
                .disk_bytes_max
                .is_some_and(|b| b == 0 || node.role != Role::Chunkserver)
            {
                return Err(ConfigError::DiskBytesMax(node.id));
            }
            let (addr, dir) = match (node.role, node.addr, &node.data_dir) {
                (Role::Client, None, None) => continue,
                (Role::Client, _, _) => return Err(ConfigError::ClientPlace(node.id)),
                (_, Some(addr), Some(dir)) => (addr, dir),
                _ => return Err(ConfigError::ServerPlace(node.id)),
            };
            if let Some(first) = addrs.insert(addr, node.id) {
                return Err(ConfigError::DuplicateAddr {
                    addr,
                    first,
                    second: node.id,
                });
            }
            // Two nodes in one directory would overwrite each other's chunk
            // files and saved state.
            if let Some(first) = dirs.insert(dir.clone(), node.id) {
                return Err(ConfigError::DuplicateDataDir {
                    dir: dir.clone(),
                    first,
                    second: node.id,
                });
            }
        }
        Ok(())
    }

    pub fn node(&self, id: Id) -> Result<&NodeConfig, ConfigError> {
        let raw = usize::from(id) as u64;
        self.nodes
            .iter()
            .find(|n| n.id == raw)
            .ok_or(ConfigError::UnknownId(id))
    }

    /// Server `id`'s address.
    pub fn addr(&self, id: Id) -> Result<SocketAddr, ConfigError> {
        let node = self.node(id)?;
        node.addr.ok_or(ConfigError::NoAddress(node.id))
    }

    /// Ids of the nodes with `role`, in config order.
    pub fn ids_with_role(&self, role: Role) -> Vec<Id> {
        self.nodes
            .iter()
            .filter(|n| n.role == role)
            .map(NodeConfig::actor_id)
            .collect()
    }

    /// Every server's id and address.
    pub fn addrs(&self) -> HashMap<Id, SocketAddr> {
        self.nodes
            .iter()
            .filter_map(|n| Some((n.actor_id(), n.addr?)))
            .collect()
    }

    /// A cluster on this machine: master id 0, chunkservers `1..=n`, each
    /// on a free 127.0.0.1 port with data under `base_dir`, and one client
    /// place `n + 1`.
    pub fn local(n_chunkservers: usize, base_dir: &Path) -> Result<Self, ConfigError> {
        Self::local_with_clients(n_chunkservers, 1, base_dir)
    }

    /// Like [`ClusterConfig::local`] with `n_clients` client places after
    /// the chunkservers. Positions are the ids, so distance follows
    /// numbering.
    pub fn local_with_clients(
        n_chunkservers: usize,
        n_clients: usize,
        base_dir: &Path,
    ) -> Result<Self, ConfigError> {
        let servers = 1 + n_chunkservers;
        let ports = free_loopback_ports(servers).map_err(ConfigError::NoFreePort)?;
        let nodes = (0..servers + n_clients)
            .map(|i| {
                let (role, name) = match i {
                    0 => (Role::Master, Some("master".to_string())),
                    i if i <= n_chunkservers => {
                        (Role::Chunkserver, Some(format!("chunkserver-{i}")))
                    }
                    _ => (Role::Client, None),
                };
                NodeConfig {
                    id: i as u64,
                    role,
                    addr: name
                        .is_some()
                        .then(|| SocketAddr::from((Ipv4Addr::LOCALHOST, ports[i]))),
                    data_dir: name.map(|name| base_dir.join(name)),
                    position: Some(i as u64),
                    disk_bytes_max: None,
                }
            })
            .collect();
        Self::new(CHUNK_BYTES_DEFAULT, nodes)
    }
}

/// Ports the OS reports free right now. All listeners are held until every
/// port is chosen, so the ports are distinct; another process may still take
/// one before the node binds it, which tests accept as a rare flake.
/// `n` loopback ports free now, for nodes that bind them later. Taken
/// below the kernel's ephemeral range when there is room: a port the
/// kernel hands out for `bind(0)` is in that range, where any outgoing
/// connection of any process may take it as its source port before the
/// node binds it (cluster tests running side by side met that as
/// "address already in use"). Ports handed out by this process are not
/// handed out again.
fn free_loopback_ports(n: usize) -> std::io::Result<Vec<u16>> {
    use rand::Rng;
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let mut given = GIVEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    const FLOOR: u16 = 10_000;
    let mut ports = Vec::with_capacity(n);
    if ephemeral_low > FLOOR + 1_000 {
        let mut rng = rand::rng();
        for _ in 0..100 * n {
            if ports.len() == n {
                break;
            }
            let port = rng.random_range(FLOOR..ephemeral_low);
            if given.contains(&port) || ports.contains(&port) {
                continue;
            }
            if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                ports.push(port);
            }
        }
    }
    // No room below the range (or no luck): the kernel's choice.
    let listeners = (ports.len()..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    for l in &listeners {
        ports.push(l.local_addr()?.port());
    }
    given.extend(&ports);
    Ok(ports)
}

#[cfg(test)]
mod tests;
