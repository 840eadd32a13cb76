//! What the library learns by watching the messages its actor sends and
//! receives rather than from the actor's answers: how long pushes took, and
//! what each replica answered a failed read with. Apart from the operations
//! because the host calls this for every message, outside any operation,
//! so it stays cheap and its memory bounded.

use leasehold_model::msg::{Failure, Msg};
use leasehold_model::types::DataId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Client;
use crate::host::{MsgObserver, Passage};
use crate::nodes::RealMsg;

/// Time the client actor spent pushing data ([0095]–[0098]): from sending
/// the first fragment of a push to the chain's acknowledgement that every
/// replica has all of it (`DataPushed`), summed over completed pushes.
/// Commits are not included, so this is the data flow alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushStats {
    pub pushes: u64,
    pub time: Duration,
}

/// Pushes started and not yet acknowledged, and the finished ones' sum.
#[derive(Default)]
pub(super) struct PushClock {
    started: HashMap<DataId, std::time::Instant>,
    pub(super) stats: PushStats,
}

/// Replica failures remembered for one read's error message.
const READ_FAILURES_KEPT_MAX: usize = 16;

/// Pushes that never complete (their operation failed) are forgotten when
/// this many are pending, so the clock's memory stays bounded.
const PUSHES_PENDING_MAX: usize = 4096;

impl PushClock {
    fn observer(clock: Arc<Mutex<PushClock>>) -> MsgObserver<RealMsg> {
        Box::new(move |passage, _src, _dst, msg| {
            // Every message passes here; only two kinds are timed.
            if !matches!(
                msg,
                Msg::PushData { fragment: 0, .. } | Msg::DataPushed { .. }
            ) {
                return;
            }
            let now = std::time::Instant::now();
            let mut c = clock.lock().expect("push clock lock");
            match (passage, msg) {
                (
                    Passage::Sent,
                    Msg::PushData {
                        data, fragment: 0, ..
                    },
                ) => {
                    if c.started.len() >= PUSHES_PENDING_MAX {
                        c.started.clear();
                    }
                    // A retry pushes again from fragment 0: the time counts
                    // from the first attempt.
                    c.started.entry(*data).or_insert(now);
                }
                (Passage::Delivered, Msg::DataPushed { data }) => {
                    if let Some(start) = c.started.remove(data) {
                        c.stats.pushes += 1;
                        c.stats.time += now - start;
                    }
                }
                _ => {}
            }
        })
    }
}

/// The observer of a client's host: times pushes into `push_clock` and
/// keeps the failures replicas answered reads with in `read_failures`.
pub(super) fn observer(
    push_clock: Arc<Mutex<PushClock>>,
    read_failures: Arc<Mutex<Vec<(u64, Failure)>>>,
) -> MsgObserver<RealMsg> {
    let mut timing = PushClock::observer(push_clock);
    Box::new(move |passage, src, dst, msg| {
        if let (
            Passage::Delivered,
            Msg::ReadReply {
                result: Err(reason),
                ..
            },
        ) = (passage, msg)
        {
            let mut f = read_failures.lock().expect("read failures lock");
            // Bounded: a read asks each replica a few times at most.
            if f.len() < READ_FAILURES_KEPT_MAX {
                f.push((usize::from(src) as u64, reason.clone()));
            }
        }
        timing(passage, src, dst, msg)
    })
}

impl Client {
    /// Pushes completed so far and the time they took (see [`PushStats`]).
    pub fn push_stats(&self) -> PushStats {
        self.inner.lanes.push_stats()
    }
}
