//! Operations in flight: a [`Client`](super::Client) keeps up to its
//! window of operations going at once, each on a lane of its own, so that
//! a later record's push overlaps an earlier record's commit (issue #13).
//!
//! A lane is one client actor, hosted in this process under an id of its
//! own, with its own connections. The client actor runs one operation at a
//! time ([0093]: it asks, pushes, then mutates), and that is the actor the
//! model checks; concurrency comes from more actors, never from one actor
//! holding several operations. So a window of N is N clients as far as the
//! protocol goes, and what the model checks of concurrent clients (two in
//! `default`, three in `three-clients`, with faults in `concurrent-crash`)
//! is what a pipelined client runs: no protocol state is added for it.
//!
//! Lanes start when first needed, so a client that never has two
//! operations at once costs one actor, as before. A lane's answers (and
//! what its observer saw of pushes and failed reads) are its own, so
//! concurrent reads name the failures of their own replicas.

use leasehold_model::config::Bug;
use leasehold_model::msg::Failure;
use stateright::actor::Id;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedMutexGuard, Semaphore, SemaphorePermit};
use tokio::time::{timeout_at, Instant};

use super::observe::{self, PushClock, PushStats};
use super::submit::Session;
use super::{ClientError, APP_ID};
use crate::config::ClusterConfig;
use crate::host::{HostHandle, RunningHost};
use crate::nodes::{self, RealMsg};

/// How long a starting lane waits to be connected to every server, so
/// that the answers to its first requests have a way back. A server still
/// unreachable then is tried on in the background.
const DIAL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// One client actor and the application's side of it.
pub(super) struct Lane {
    pub(super) id: u64,
    pub(super) handle: HostHandle<RealMsg>,
    session: Arc<tokio::sync::Mutex<Session>>,
    host: Mutex<Option<RunningHost<RealMsg>>>,
    push_clock: Arc<Mutex<PushClock>>,
    /// The failures replicas answered reads with since this lane's current
    /// operation began, so that a read that fails names them (a corrupt or
    /// stale replica) instead of only timing out.
    read_failures: Arc<Mutex<Vec<(u64, Failure)>>>,
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl Lane {
    /// Starts a client actor of `cluster` at network `position`.
    async fn start(cluster: &ClusterConfig, position: u64, bug: Bug) -> Result<Lane, ClientError> {
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
        Ok(Lane {
            id: client_id,
            handle: host.handle(),
            session: Arc::new(tokio::sync::Mutex::new(Session::new(done))),
            host: Mutex::new(Some(host)),
            push_clock,
            read_failures,
        })
    }

    /// The read failures seen since the lane's current operation began.
    pub(super) fn take_read_failures(&self) -> Vec<(u64, Failure)> {
        std::mem::take(&mut *self.read_failures.lock().expect("read failures lock"))
    }
}

/// A lane taken for one operation: nobody else submits to its actor until
/// this is dropped.
pub(super) struct Taken<'a> {
    pub(super) lane: Arc<Lane>,
    pub(super) session: OwnedMutexGuard<Session>,
    _window: SemaphorePermit<'a>,
}

/// Why no lane could be had.
#[derive(Debug)]
pub(super) enum TakeError {
    /// The deadline passed while every lane was busy.
    Timeout,
    /// A lane was needed and its actor could not start.
    Start(ClientError),
}

/// The lanes of one client, started as needed up to the window.
pub(super) struct Lanes {
    cluster: ClusterConfig,
    position: u64,
    bug: Bug,
    /// One permit per operation in flight.
    window: Semaphore,
    window_max: usize,
    started: Mutex<Vec<Arc<Lane>>>,
    /// Held while a lane starts, so that callers who all found every lane
    /// busy do not start more than the one each of them needs.
    starting: tokio::sync::Mutex<()>,
}

impl Lanes {
    /// Starts the first lane (so that a client that cannot start says so
    /// at once); the others start when operations need them.
    pub(super) async fn start(
        cluster: &ClusterConfig,
        position: u64,
        bug: Bug,
        window: usize,
    ) -> Result<Lanes, ClientError> {
        if window == 0 {
            return Err(ClientError::NoWindow);
        }
        let first = Lane::start(cluster, position, bug).await?;
        Ok(Lanes {
            cluster: cluster.clone(),
            position,
            bug,
            window: Semaphore::new(window),
            window_max: window,
            started: Mutex::new(vec![Arc::new(first)]),
            starting: tokio::sync::Mutex::new(()),
        })
    }

    /// The first lane's actor id: the client's name in logs and the high
    /// bits of its record ids.
    pub(super) fn first_id(&self) -> u64 {
        self.started.lock().expect("lanes lock")[0].id
    }

    pub(super) fn window(&self) -> usize {
        self.window_max
    }

    pub(super) fn started(&self) -> usize {
        self.started.lock().expect("lanes lock").len()
    }

    fn idle(&self) -> Option<(Arc<Lane>, OwnedMutexGuard<Session>)> {
        let started = self.started.lock().expect("lanes lock");
        started.iter().find_map(|lane| {
            let session = lane.session.clone().try_lock_owned().ok()?;
            Some((lane.clone(), session))
        })
    }

    /// Takes an idle lane, starting one if every started lane is busy and
    /// the window allows, or waits for one until `deadline`.
    pub(super) async fn take(&self, deadline: Instant) -> Result<Taken<'_>, TakeError> {
        let permit = timeout_at(deadline, self.window.acquire())
            .await
            .map_err(|_| TakeError::Timeout)?
            .expect("the window is never closed");
        loop {
            if let Some((lane, session)) = self.idle() {
                return Ok(Taken {
                    lane,
                    session,
                    _window: permit,
                });
            }
            // With a permit there is an idle lane or room for one more: at
            // most `window_max - 1` other operations hold lanes (a `Taken`
            // gives its lane back before its permit). Another caller's
            // scan may hold an idle lane's lock for an instant, hence the
            // loop.
            let more = self.started.lock().expect("lanes lock").len() < self.window_max;
            if more {
                let _one_at_a_time = timeout_at(deadline, self.starting.lock())
                    .await
                    .map_err(|_| TakeError::Timeout)?;
                if self.idle().is_some()
                    || self.started.lock().expect("lanes lock").len() >= self.window_max
                {
                    continue;
                }
                let lane = Lane::start(&self.cluster, self.position, self.bug)
                    .await
                    .map_err(TakeError::Start)?;
                tracing::debug!(
                    client = lane.id,
                    lanes = self.started.lock().expect("lanes lock").len() + 1,
                    "another operation in flight: lane started"
                );
                self.started
                    .lock()
                    .expect("lanes lock")
                    .push(Arc::new(lane));
                continue;
            }
            tokio::task::yield_now().await;
        }
    }

    /// Pushes completed by every lane so far and the time they took.
    pub(super) fn push_stats(&self) -> PushStats {
        let started = self.started.lock().expect("lanes lock");
        started.iter().fold(PushStats::default(), |sum, lane| {
            let s = lane.push_clock.lock().expect("push clock lock").stats;
            PushStats {
                pushes: sum.pushes + s.pushes,
                time: sum.time + s.time,
            }
        })
    }

    /// Stops every lane's actor and waits until its connections are closed.
    pub(super) async fn shutdown(&self) {
        let hosts: Vec<_> = {
            let started = self.started.lock().expect("lanes lock");
            started
                .iter()
                .filter_map(|lane| lane.host.lock().expect("host lock").take())
                .collect()
        };
        for host in hosts {
            let _ = host.shutdown().await;
        }
    }
}
