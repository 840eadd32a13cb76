//! Time as the host reads it: one [`StepClock`] reading per step, taken
//! before the step's handler runs, from which the step's timer deadlines are
//! counted (see "Time" in the [module doc](super), [0091]).

use std::time::Duration;
use tokio::time::Instant;

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

    pub(super) fn after(&self, d: Duration) -> StepClock {
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

/// The node loop's one timer: a single tokio `Sleep`, moved only when the
/// earliest deadline changes. A fresh `sleep_until` in every turn of the
/// loop registered anew with the time driver, and each registration woke
/// the runtime through its eventfd: a `write` and a turn of `epoll_wait`
/// per message handled (7 of each per append in a server, issue #13).
pub(super) struct Wakeup {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    armed: Option<Instant>,
}

impl Wakeup {
    pub(super) fn new() -> Wakeup {
        Wakeup {
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
            armed: None,
        }
    }

    /// Waits until `deadline`; never with none.
    pub(super) async fn until(&mut self, deadline: Option<Instant>) {
        let Some(at) = deadline else {
            return std::future::pending().await;
        };
        if self.armed != Some(at) {
            self.sleep.as_mut().reset(at);
            self.armed = Some(at);
        }
        (&mut self.sleep).await
    }
}
