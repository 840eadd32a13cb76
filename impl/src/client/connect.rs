//! Starting a client: its actor hosted in this process under the client id
//! the cluster config gives it, with the observer and the answer channel
//! the rest of the library uses, and stopping it again. Kept apart because
//! only here does the library deal with the host's life (its start, its
//! port, its shutdown); the operations reach the actor through `submit.rs`.

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
use crate::host::HostError;
use crate::nodes::{self, NodeError};

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

impl Client {
    /// Starts client `client_id` of `cluster` in this process (it listens on
    /// its configured address, where the servers answer it).
    pub async fn connect(cluster: &ClusterConfig, client_id: u64) -> Result<Client> {
        Self::connect_with_timeout(cluster, client_id, op_timeout_default(cluster)).await
    }

    pub async fn connect_with_timeout(
        cluster: &ClusterConfig,
        client_id: u64,
        op_timeout: Duration,
    ) -> Result<Client> {
        let is_client = cluster
            .node(Id::from(client_id as usize))
            .map(|n| n.role == Role::Client)
            .unwrap_or(false);
        if !is_client {
            return Err(ClientError::NotAClient(client_id));
        }
        let push_clock = Arc::new(Mutex::new(PushClock::default()));
        let read_failures: Arc<Mutex<Vec<(u64, Failure)>>> = Arc::default();
        let observer = observe::observer(push_clock.clone(), read_failures.clone());
        let mut host = nodes::start_client(cluster, client_id, Id::from(APP_ID), Some(observer))
            .await
            .map_err(|source| ClientError::Start {
                id: client_id,
                source,
            })?;
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

    /// Starts the first client id of the config that is free in this
    /// machine (its address can be bound).
    pub async fn connect_any(cluster: &ClusterConfig, op_timeout: Duration) -> Result<Client> {
        let mut last = String::from("the config has no client nodes");
        for id in cluster.ids_with_role(Role::Client) {
            let id = usize::from(id) as u64;
            match Self::connect_with_timeout(cluster, id, op_timeout).await {
                Ok(c) => return Ok(c),
                Err(ClientError::Start {
                    source:
                        NodeError::Host {
                            source: HostError::Bind { .. },
                            ..
                        },
                    ..
                }) => last = format!("client {id}'s address is in use"),
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::NoFreeClient(last))
    }

    /// Stops the client actor and waits until its port is free.
    pub async fn shutdown(self) {
        let host = self.inner.host.lock().expect("host lock").take();
        if let Some(host) = host {
            let _ = host.shutdown().await;
        }
    }
}
