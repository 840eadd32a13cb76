//! After a liveness counterexample's path: the nodes run on, with no more
//! faults, until the bound LIVE-2 sets has passed.
//!
//! The checker's liveness counterexample is a path to a *doomed* state:
//! one from which no continuation lets every client succeed. A real run
//! can show that only by going on past the path and seeing the clients not
//! succeed. After the last step, replay therefore plays a prompt network
//! (the model's `prompt_network`, which is what "after the last fault"
//! means for LIVE-2): every message sent is handed over, oldest first,
//! before any timer fires; when none is held or on its way, the armed
//! timer due first fires at its deadline, moving the shared virtual clock
//! there. Nothing is lost, duplicated or crashed any more. It stops when
//! the next timer is due past the bound, when nothing is left to do, or
//! after [`RELEASE_STEPS_MAX`] steps; validation then judges the clients
//! (and, for REPL-1, the master) at the bound ([`crate::validate::live`]).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::host::{Done, Order};
use crate::nodes::RealNode;

use super::Cluster;

/// Steps the release takes at most: a protocol that loops without time
/// passing would otherwise never stop.
pub const RELEASE_STEPS_MAX: usize = 20_000;

/// How long a message counted as on its way may take to arrive before the
/// release counts it as lost (loopback frames take microseconds).
const ON_ITS_WAY_MAX: Duration = Duration::from_secs(2);

/// How the release ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseEnd {
    /// The next timer is due past the bound.
    Bound,
    /// No message held or on its way, and no timer armed.
    Quiet,
    /// [`RELEASE_STEPS_MAX`] steps taken.
    StepCap,
}

/// What the release did.
#[derive(Clone, Copy, Debug)]
pub struct Released {
    /// The virtual clock when the path ended.
    pub from_ns: u64,
    pub steps: usize,
    pub end: ReleaseEnd,
}

impl Cluster {
    /// Messages sent to each running node and not yet handed to it (lost
    /// ones included: the path's, and those lost with a crashed node).
    fn undelivered(&self) -> BTreeMap<u64, i64> {
        let p = self.passages.lock().unwrap_or_else(|e| e.into_inner());
        let mut count: BTreeMap<u64, i64> = self.running.keys().map(|id| (*id, 0)).collect();
        for (_, dst, _) in &p.sent {
            if let Some(n) = count.get_mut(&(usize::from(*dst) as u64)) {
                *n += 1;
            }
        }
        for (_, dst, _) in &p.delivered {
            if let Some(n) = count.get_mut(&(usize::from(*dst) as u64)) {
                *n -= 1;
            }
        }
        count
    }

    /// Has running node `id` carry out `order`; what it did.
    async fn order_done(&self, id: u64, order: Order<RealNode>) -> Result<Done, String> {
        let (_, schedule) = self
            .running
            .get(&id)
            .ok_or_else(|| format!("node {id} is not running"))?;
        schedule
            .order(order)
            .await
            .map_err(|r| format!("node {id}: {r}"))
    }

    async fn held(&self) -> Result<BTreeMap<u64, i64>, String> {
        let mut held = BTreeMap::new();
        for id in self.running.keys() {
            let done = self.order_done(*id, Order::Held).await?;
            held.insert(*id, done.held as i64);
        }
        Ok(held)
    }

    /// Messages on their way to each node: sent, not handed over, not
    /// held, and not among those `lost`.
    fn on_its_way(
        undelivered: &BTreeMap<u64, i64>,
        held: &BTreeMap<u64, i64>,
        lost: &BTreeMap<u64, i64>,
    ) -> i64 {
        undelivered
            .iter()
            .map(|(id, n)| (n - held.get(id).unwrap_or(&0) - lost.get(id).unwrap_or(&0)).max(0))
            .sum()
    }

    /// Runs the nodes as a prompt network until `within_ns` after now on
    /// the virtual clock (see the module doc).
    pub(super) async fn release(&self, within_ns: u64) -> Result<Released, String> {
        let from_ns = self.clock.ns();
        let until_ns = from_ns.saturating_add(within_ns);
        // What the path lost stays lost: whatever is neither handed over
        // nor held once the path's last sends had time to land.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let held = self.held().await?;
        let mut lost: BTreeMap<u64, i64> = self
            .undelivered()
            .into_iter()
            .map(|(id, n)| (id, n - held.get(&id).unwrap_or(&0)))
            .collect();
        let mut steps = 0;
        let end = loop {
            if steps >= RELEASE_STEPS_MAX {
                break ReleaseEnd::StepCap;
            }
            let held = self.held().await?;
            if let Some((&id, _)) = held.iter().find(|(_, n)| **n > 0) {
                self.order_done(id, Order::DeliverOldest).await?;
                steps += 1;
                continue;
            }
            if Self::on_its_way(&self.undelivered(), &held, &lost) > 0 {
                let waited = std::time::Instant::now();
                let mut arrived = false;
                while waited.elapsed() < ON_ITS_WAY_MAX {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    if self.held().await?.values().any(|n| *n > 0) {
                        arrived = true;
                        break;
                    }
                }
                if !arrived {
                    let held = self.held().await?;
                    lost = self
                        .undelivered()
                        .into_iter()
                        .map(|(id, n)| (id, n - held.get(&id).unwrap_or(&0)))
                        .collect();
                    tracing::warn!("release: messages counted on their way never arrived");
                }
                continue;
            }
            let mut earliest: Option<(u64, u64)> = None;
            for id in self.running.keys() {
                let done = self.order_done(*id, Order::Earliest).await?;
                if let Some(ns) = done.deadline_ns {
                    if earliest.is_none_or(|(_, e)| ns < e) {
                        earliest = Some((*id, ns));
                    }
                }
            }
            match earliest {
                None => break ReleaseEnd::Quiet,
                Some((_, ns)) if ns > until_ns => break ReleaseEnd::Bound,
                Some((id, _)) => {
                    self.order_done(id, Order::FireEarliest).await?;
                    steps += 1;
                }
            }
        };
        Ok(Released {
            from_ns,
            steps,
            end,
        })
    }
}
