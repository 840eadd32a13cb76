//! LIVE-1, LIVE-2 and REPL-1 over a real run, judged by a time bound.
//!
//! The checker proves these from the model's graph: from every reachable
//! state, success stays reachable (checks/src/liveness.rs). A real run is
//! one path, so validation judges it the way the requirement's real-time
//! half says: once the faults are over (`from_ns`), within `within_ns`
//! every client has no operation under way or waiting, and none was
//! reported failed; for REPL-1, the master's state at that time also
//! counts every placed replica of every chunk up to date, by the model's
//! own goal ([`master_counts_every_replica`]).
//!
//! Only a run that knows when its faults ended asks for this: `leasehold
//! replay` of a liveness counterexample ends the checker's path there and
//! lets the nodes run on (docs/replay.md).

use leasehold_model::system::master_counts_every_replica;
use stateright::actor::Id;

use super::replay::{Kind, NodeOutcome, Progress};
use super::{Check, Finding};

/// When the run's faults ended and how long success may take after.
#[derive(Clone, Debug)]
pub struct Window {
    /// `Live1`, `Live2` or `Repl1`: the requirement judged.
    pub requirement: Check,
    /// The clock reading when the last fault was over.
    pub from_ns: u64,
    /// The bound (docs/replay.md: two master lease periods, the bound
    /// over TCP in specs/requirements.md).
    pub within_ns: u64,
    /// Chunkservers down for good: REPL-1 does not count their replicas
    /// (the model's `crashes_permanent`).
    pub gone: Vec<u64>,
}

/// The findings of `window`'s requirement over the replayed nodes.
pub fn check(outcomes: &[NodeOutcome], window: &Window) -> Vec<Finding> {
    let deadline = window.from_ns.saturating_add(window.within_ns);
    let secs = |ns: u64| ns as f64 / 1e9;
    let mut findings = vec![];
    for o in outcomes.iter().filter(|o| o.kind == Kind::Client) {
        let marks = by_then(o, deadline);
        let Some(last) = marks.last() else {
            continue;
        };
        if let Some(failed) = marks.iter().find(|p| p.failed) {
            findings.push(Finding {
                check: window.requirement,
                at: failed.at,
                file: failed.file.clone(),
                explanation: "tells its application an operation failed: the operations \
                              must all succeed"
                    .into(),
            });
        } else if !last.idle {
            findings.push(Finding {
                check: window.requirement,
                at: last.at,
                file: last.file.clone(),
                explanation: format!(
                    "still has an operation under way or waiting {:.1} s after the last fault, \
                     the bound (under way or waiting since this step)",
                    secs(window.within_ns),
                ),
            });
        }
    }
    if window.requirement == Check::Repl1 {
        let gone = |r: &Id| window.gone.contains(&(usize::from(*r) as u64));
        for o in outcomes.iter().filter(|o| o.kind == Kind::Master) {
            let marks = by_then(o, deadline);
            let Some((p, m)) = marks
                .iter()
                .rev()
                .find_map(|p| p.master.as_ref().map(|m| (p, m)))
            else {
                continue;
            };
            if !master_counts_every_replica(m, gone) {
                findings.push(Finding {
                    check: Check::Repl1,
                    at: p.at,
                    file: p.file.clone(),
                    explanation: format!(
                        "{:.1} s after the last fault (bound {:.1} s) the master does not count \
                         every placed replica up to date (quiet: {}; chunks {:?}; counted {:?})",
                        secs(deadline - window.from_ns),
                        secs(window.within_ns),
                        m.quiet,
                        m.durable
                            .chunks
                            .iter()
                            .map(|c| c.replicas.clone())
                            .collect::<Vec<_>>(),
                        m.views
                            .iter()
                            .map(|v| v.up_to_date.clone())
                            .collect::<Vec<_>>(),
                    ),
                });
            }
        }
    }
    findings
}

/// A node's progress marks up to `deadline`, in order.
fn by_then(o: &NodeOutcome, deadline: u64) -> Vec<&Progress> {
    o.progress
        .iter()
        .filter(|p| p.clock_ns <= deadline)
        .collect()
}
