//! Starting a client: its first actor hosted in this process under an id
//! drawn afresh (`lanes.rs` starts the others), at a network position from
//! the cluster file or its address, and stopping it again. A client listens nowhere: the servers answer it
//! on the connections it opens, so it needs no address of its own. Kept
//! apart because only here does the library deal with the host's life (its
//! start, its connections, its shutdown); the operations reach the actor
//! through `submit.rs`.

use leasehold_model::config::Bug;
use stateright::actor::Id;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::lanes::Lanes;
use super::records;
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
        Self::connect_with_window(cluster, place, op_timeout, 1).await
    }

    /// [`Client::connect_with_timeout`] for a client that keeps up to
    /// `window` operations in flight (at least one), each on a client
    /// actor of its own, started when first needed.
    pub async fn connect_with_window(
        cluster: &ClusterConfig,
        place: u64,
        op_timeout: Duration,
        window: usize,
    ) -> Result<Client> {
        Self::start(
            cluster,
            place_position(cluster, place)?,
            op_timeout,
            Bug::None,
            window,
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
        Self::start(cluster, place_position(cluster, place)?, op_timeout, bug, 1).await
    }

    /// Starts a client of `cluster` in this process with no place in the
    /// cluster file: its network position is estimated from its address
    /// ([0097]).
    pub async fn connect_any(cluster: &ClusterConfig, op_timeout: Duration) -> Result<Client> {
        Self::connect_any_with_window(cluster, op_timeout, 1).await
    }

    /// [`Client::connect_any`] with up to `window` operations in flight.
    pub async fn connect_any_with_window(
        cluster: &ClusterConfig,
        op_timeout: Duration,
        window: usize,
    ) -> Result<Client> {
        Self::start(
            cluster,
            nodes::client_position(cluster),
            op_timeout,
            Bug::None,
            window,
        )
        .await
    }

    async fn start(
        cluster: &ClusterConfig,
        position: u64,
        op_timeout: Duration,
        bug: Bug,
        window: usize,
    ) -> Result<Client> {
        let lanes = Lanes::start(cluster, position, bug, window).await?;
        Ok(Client {
            inner: Arc::new(Inner {
                id: lanes.first_id(),
                chunk_bytes: cluster.chunk_bytes,
                lanes,
                files: Mutex::new(HashMap::new()),
                next_record: AtomicU64::new(records::record_seq_start()),
                op_timeout,
            }),
        })
    }

    /// Stops the client's actors and waits until their connections are
    /// closed.
    pub async fn shutdown(self) {
        self.inner.lanes.shutdown().await;
    }
}
