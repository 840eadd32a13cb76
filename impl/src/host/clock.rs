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

pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
