//! Starting a client: its actor hosted in this process under an id drawn
//! afresh, at a network position from the cluster file or its address,
//! with the observer and the answer channel the rest of the library uses,
//! and stopping it again. A client listens nowhere: the servers answer it
//! on the connections it opens, so it needs no address of its own. Kept
//! apart because only here does the library deal with the host's life (its
//! start, its connections, its shutdown); the operations reach the actor
//! through `submit.rs`.

use leasehold_model::config::Bug;
use leasehold_model::msg::Failure;
use stateright::actor::Id;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::observe::{self, PushClock};
use super::records;
use super::submit::Session;
use super::{Client, ClientError, Inner, Result};
use crate::config::{ClusterConfig, Role};
use crate::nodes;

/// The id the client actor reports to: the application in this process. It
/// is no node of any cluster (cluster ids are small; `usize::MAX` already
/// means "no primary" in `Located`).
pub const APP_ID: usize = usize::MAX - 1;
/// How long one operation may take, all retries included, beyond the
/// cluster's master lease period (see [`op_timeout_default`]).
pub const OP_TIMEOUT_MARGIN: Duration = Duration::from_secs(15);

/// The default deadline of one operation: a restarted master grants no
/// lease for one full master lease period ([0091]), so a mutation right
/// after a master restart must be able to wait that long.
pub fn op_timeout_default(cluster: &ClusterConfig) -> Duration {
    Duration::from_millis(cluster.leases.durations().master_lease_ms) + OP_TIMEOUT_MARGIN
}

/// How long a starting client waits to be connected to every server, so
/// that the answers to its first requests have a way back. A server still
/// unreachable then is tried on in the background.
pub const DIAL_WAIT: Duration = Duration::from_secs(2);

/// The network position of the client entry `place` of `cluster`.
fn place_position(cluster: &ClusterConfig, place: u64) -> Result<u64> {
    let node = cluster
        .node(Id::from(place as usize))
        .ok()
        .filter(|n| n.role == Role::Client)
        .ok_or(ClientError::NotAClient(place))?;
    Ok(nodes::position(node).unwrap_or_else(|| nodes::client_position(cluster)))
}

impl Client {
    /// Starts a client of `cluster` in this process at the place the
    /// cluster file names `place` (a client entry: its network position).
    /// The client's own id is drawn afresh ([`nodes::fresh_client_id`]).
    pub async fn connect(cluster: &ClusterConfig, place: u64) -> Result<Client> {
        Self::connect_with_timeout(cluster, place, op_timeout_default(cluster)).await
    }

    pub async fn connect_with_timeout(
        cluster: &ClusterConfig,
        place: u64,
        op_timeout: Duration,
    ) -> Result<Client> {
        Self::start(
            cluster,
            place_position(cluster, place)?,
            op_timeout,
            Bug::None,
        )
        .await
    }

    /// [`Client::connect_with_timeout`] with a seeded bug in the client's
    /// actor, so that a test can show trace validation catches it on a
    /// real run (as the servers' `--bug NAME --testing`). Not for use.
    #[doc(hidden)]
    pub async fn connect_with_bug(
        cluster: &ClusterConfig,
        place: u64,
        op_timeout: Duration,
        bug: Bug,
    ) -> Result<Client> {
        Self::start(cluster, place_position(cluster, place)?, op_timeout, bug).await
    }

    /// Starts a client of `cluster` in this process with no place in the
    /// cluster file: its network position is estimated from its address
    /// ([0097]).
    pub async fn connect_any(cluster: &ClusterConfig, op_timeout: Duration) -> Result<Client> {
        Self::start(
            cluster,
            nodes::client_position(cluster),
            op_timeout,
            Bug::None,
        )
        .await
    }

    async fn start(
        cluster: &ClusterConfig,
        position: u64,
        op_timeout: Duration,
        bug: Bug,
    ) -> Result<Client> {
        let client_id = nodes::fresh_client_id();
        let push_clock = Arc::new(Mutex::new(PushClock::default()));
        let read_failures: Arc<Mutex<Vec<(u64, Failure)>>> = Arc::default();
        let observer = observe::observer(push_clock.clone(), read_failures.clone());
        let mut host = nodes::start_client(
            cluster,
            client_id,
            position,
            Id::from(APP_ID),
            Some(observer),
            nodes::NodeHooks {
                bug,
                ..nodes::NodeHooks::default()
            },
        )
        .await
        .map_err(|source| ClientError::Start {
            id: client_id,
            source,
        })?;
        let unreached = host.dialed(DIAL_WAIT).await;
        if unreached > 0 {
            tracing::warn!(
                client = client_id,
                unreached,
                "starting with servers not yet reached; trying them on"
            );
        }
        let done = host
            .take_app_receiver()
            .expect("a client host has an application channel");
        let start = records::record_seq_start();
        Ok(Client {
            inner: Arc::new(Inner {
                id: client_id,
                chunk_bytes: cluster.chunk_bytes,
                handle: host.handle(),
                session: tokio::sync::Mutex::new(Session::new(done)),
                host: Mutex::new(Some(host)),
                files: Mutex::new(HashMap::new()),
                next_record: AtomicU64::new(start),
                op_timeout,
                push_clock,
                read_failures,
            }),
        })
    }

    /// Stops the client actor and waits until its connections are closed.
    pub async fn shutdown(self) {
        let host = self.inner.host.lock().expect("host lock").take();
        if let Some(host) = host {
            let _ = host.shutdown().await;
        }
    }
}
