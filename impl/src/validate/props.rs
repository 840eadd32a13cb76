//! The requirements that speak of real time or of the master's messages,
//! stated over a whole run: LEASE-1 as lease *intervals* on the nodes'
//! clocks (beside the model's instantaneous LEASE-1, which [`super::global`]
//! evaluates), VERSION-1's new version with every new lease, and VERSION-2's
//! named replica holding the named version. Everything else is judged by
//! the model's own properties on the run's global states
//! ([`super::global`]). The statements are in specs/trace-format.md.

use leasehold_model::config::Durations;
use leasehold_model::msg::Msg;
use leasehold_model::types::ChunkHandle;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::replay::{ms, Interval, Kind, NodeOutcome};
use super::{Check, Finding, Loc};
use crate::trace::{NodeTrace, TraceCommand};

#[derive(Default)]
pub struct Props {
    pub acks_checked: u64,
    pub leases_checked: u64,
    pub findings: Vec<Finding>,
    pub notes: Vec<Finding>,
}

impl Props {
    fn fail(&mut self, check: Check, at: Loc, file: &Path, explanation: String) {
        self.findings.push(Finding {
            check,
            at,
            file: file.to_path_buf(),
            explanation,
        });
    }

    fn note(&mut self, check: Check, at: Loc, file: &Path, explanation: String) {
        self.notes.push(Finding {
            check,
            at,
            file: file.to_path_buf(),
            explanation,
        });
    }
}

/// How far a primary's lease may reach past the master's view of it in
/// LEASE-1. The clock assumption ([`Durations::satisfy_clock_bound`]) lets
/// each clock's rate be off by [`Durations::CLOCK_RATE_ERROR_PER_MILLE_MAX`]
/// per mille, so a lease of `L` on a chunkserver's clock may last up to
/// `L / (1 - ρ)` of real time, `L ρ / (1 - ρ)` longer than it says (105 ms
/// for a 2 s lease); the master's longer period covers that. Traces of one
/// machine share one clock, so this is slack the protocol claims, not
/// noise: a primary past it is a fault.
pub fn lease_tolerance_ns(d: &Durations) -> u64 {
    let rho = Durations::CLOCK_RATE_ERROR_PER_MILLE_MAX;
    d.lease_ms * 1_000_000 * rho / (1000 - rho)
}

pub fn check(by_node: &BTreeMap<u64, Vec<NodeTrace>>, outcomes: &[NodeOutcome]) -> Props {
    let mut p = Props::default();
    let Some(any) = by_node.values().next() else {
        return p;
    };
    let protocol = &any[0].header.protocol;
    let base = by_node
        .values()
        .flatten()
        .map(|t| t.header.clock_ns)
        .min()
        .unwrap_or(0);
    let at_s = |ns: u64| format!("+{:.3} s", ns.saturating_sub(base) as f64 / 1e9);
    let master = outcomes.iter().find(|o| o.kind == Kind::Master);
    let servers: Vec<&NodeOutcome> = outcomes
        .iter()
        .filter(|o| o.kind == Kind::Chunkserver)
        .collect();

    lease_1(&mut p, protocol, master, &servers, &at_s);
    p.acks_checked = outcomes.iter().map(|o| o.acks.len() as u64).sum();
    version_1(&mut p, master);
    version_2(&mut p, by_node, master, &servers);
    p
}

fn lease_1(
    p: &mut Props,
    protocol: &leasehold_model::config::ProtocolCfg,
    master: Option<&NodeOutcome>,
    servers: &[&NodeOutcome],
    at_s: &dyn Fn(u64) -> String,
) {
    let tol = lease_tolerance_ns(&protocol.durations);
    let granted: HashMap<(ChunkHandle, u64), &Interval> = master
        .map(|m| {
            m.master_leases
                .iter()
                .map(|i| ((i.chunk, i.epoch), i))
                .collect()
        })
        .unwrap_or_default();
    let master_whole = master.is_some_and(|m| m.replayed_whole);
    let mut by_chunk: BTreeMap<ChunkHandle, Vec<(u64, &Interval)>> = BTreeMap::new();
    for s in servers {
        for i in &s.primary {
            p.leases_checked += 1;
            // A lease taken after its clock ran out (a scheduled replay
            // may deliver a grant past the deadline of an unfired timer)
            // is held for no instant; acting on it is the Apply rule's.
            if i.to_ns.is_none_or(|t| t > i.from_ns) {
                by_chunk.entry(i.chunk).or_default().push((s.node, i));
            }
            let to = i.to_ns.unwrap_or(u64::MAX);
            match granted.get(&(i.chunk, i.epoch)) {
                None if master_whole => p.fail(
                    Check::Lease1,
                    i.from,
                    &i.file,
                    format!(
                        "holds lease {} of chunk {} from {}, which the master never granted",
                        i.epoch,
                        i.chunk,
                        at_s(i.from_ns)
                    ),
                ),
                None => p.note(
                    Check::Lease1,
                    i.from,
                    &i.file,
                    format!(
                        "lease {} of chunk {} not checked against the master (its replay did not finish)",
                        i.epoch, i.chunk
                    ),
                ),
                Some(m) => {
                    if i.from_ns + tol < m.from_ns {
                        p.fail(
                            Check::Lease1,
                            i.from,
                            &i.file,
                            format!(
                                "primary of chunk {} under lease {} from {}, {} ms before the master granted it",
                                i.chunk,
                                i.epoch,
                                at_s(i.from_ns),
                                ms(m.from_ns - i.from_ns)
                            ),
                        );
                    }
                    if let Some(mt) = m.to_ns {
                        // A lease that ran out on the primary's clock may
                        // last `tol` longer in real time than the clock
                        // says (a slow clock), so the master's view, on
                        // its own clock, must outlast it by that much: the
                        // clock bound's margin. The traces share one clock,
                        // so the master's wait is measured, not assumed.
                        if to > mt.saturating_add(tol) {
                            p.fail(
                                Check::Lease1,
                                i.from,
                                &i.file,
                                format!(
                                    "holds lease {} of chunk {} until {}, {} past the master's view of it ({}, at {}) and the {} ms drift allowance",
                                    i.epoch,
                                    i.chunk,
                                    if to == u64::MAX { "the end of the run".into() } else { at_s(to) },
                                    if to == u64::MAX { "beyond".into() } else { format!("{} ms", ms(to - mt)) },
                                    at_s(mt),
                                    m.from,
                                    ms(tol)
                                ),
                            );
                        } else if i.ran_out && m.ran_out && to.saturating_add(tol) > mt {
                            // Only a view that ended on the master's own
                            // clock must wait out the drift: one ended by
                            // the primary's answer (a revocation's, after
                            // its lease ran out) follows that end causally
                            // (nemesis seed 12, 2026-12-07: a revocation
                            // answered 26.8 ms after the lease ran out).
                            p.fail(
                                Check::Lease1,
                                i.from,
                                &i.file,
                                format!(
                                    "holds lease {} of chunk {} until it runs out at {}, and the master's view of it ends {} ms after (at {}, {}), within the {} ms a clock slow by the bound's rate would add: the master did not wait out the drift",
                                    i.epoch,
                                    i.chunk,
                                    at_s(to),
                                    ms(mt.saturating_sub(to)),
                                    at_s(mt),
                                    m.from,
                                    ms(tol)
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
    // At most one primary per chunk at any instant ([0090]).
    for (chunk, mut list) in by_chunk {
        list.sort_by_key(|(_, i)| i.from_ns);
        let mut active: Vec<(u64, &Interval)> = vec![];
        for (node, i) in list {
            active.retain(|(_, a)| a.to_ns.is_none_or(|t| t > i.from_ns));
            for (other, a) in &active {
                if *other != node || a.epoch != i.epoch {
                    p.fail(
                        Check::Lease1,
                        i.from,
                        &i.file,
                        format!(
                            "primary of chunk {chunk} under lease {} from {} while node {other} still holds lease {} (from {} to {})",
                            i.epoch,
                            at_s(i.from_ns),
                            a.epoch,
                            at_s(a.from_ns),
                            a.to_ns.map_or("the end".into(), at_s)
                        ),
                    );
                }
            }
            active.push((node, i));
        }
    }
}

/// VERSION-1 (GFS §4.5): every new lease of a chunk comes with a higher
/// version than the one before.
fn version_1(p: &mut Props, master: Option<&NodeOutcome>) {
    let Some(m) = master else { return };
    let mut grants: Vec<_> = m.grants.iter().collect();
    grants.sort_by_key(|g| (g.chunk, g.epoch));
    for w in grants.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.chunk == b.chunk && b.version <= a.version {
            p.fail(
                Check::Version1,
                b.at,
                &b.file,
                format!(
                    "grants lease {} of chunk {} at version {}, not above lease {}'s version {}",
                    b.epoch, b.chunk, b.version, a.epoch, a.version
                ),
            );
        }
    }
}

/// VERSION-2 (GFS §4.5): a replica the master names to a client is not
/// stale: when named, it holds the named version, or the master has
/// already sent it that version (a grant that timed out on a silent
/// replica moves the version on for the others just before naming them;
/// a clone's target is sent the version it is to copy).
fn version_2(
    p: &mut Props,
    by_node: &BTreeMap<u64, Vec<NodeTrace>>,
    master: Option<&NodeOutcome>,
    servers: &[&NodeOutcome],
) {
    let Some(m) = master else { return };
    let mut announced: HashMap<(u64, ChunkHandle, u64), u64> = HashMap::new();
    if let Some(files) = by_node.get(&m.node) {
        for s in files.iter().flat_map(|f| &f.steps) {
            for c in &s.commands {
                if let TraceCommand::Send {
                    dst,
                    msg:
                        Msg::NewVersion { chunk, version, .. }
                        | Msg::LeaseOffer { chunk, version, .. }
                        | Msg::LeaseGrant { chunk, version, .. }
                        | Msg::CloneChunk { chunk, version, .. },
                } = c
                {
                    announced
                        .entry((*dst, *chunk, *version))
                        .or_insert(s.clock_ns);
                }
            }
        }
    }
    for n in &m.named {
        for r in n.info.replicas() {
            let r = usize::from(r) as u64;
            // A replica whose replay stopped has no versions past that.
            let Some(s) = servers.iter().find(|s| s.node == r && s.replayed_whole) else {
                continue;
            };
            let held = s
                .versions
                .iter()
                .filter(|(c, clock, _)| *c == n.info.chunk && *clock <= n.clock_ns)
                .map(|(_, _, v)| *v)
                .next_back()
                .unwrap_or(0);
            let told = announced
                .get(&(r, n.info.chunk, n.info.version))
                .is_some_and(|t| *t <= n.clock_ns);
            if held < n.info.version && !told {
                p.fail(
                    Check::Version2,
                    n.at,
                    &n.file,
                    format!(
                        "names replica {r} of chunk {} at version {}, but it holds version {held} and was never sent version {}",
                        n.info.chunk, n.info.version, n.info.version
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::replay::Grant;
    use super::*;

    fn outcome(node: u64, kind: Kind) -> NodeOutcome {
        NodeOutcome::new(node, kind)
    }

    fn at(node: u64, step: u64) -> Loc {
        Loc {
            node,
            start: 0,
            step,
        }
    }

    #[test]
    fn version_1_fails_a_new_lease_without_a_new_version() {
        let mut m = outcome(0, Kind::Master);
        let grant = |epoch, version| Grant {
            chunk: 3,
            epoch,
            version,
            clock_ns: epoch,
            at: at(0, epoch),
            file: std::path::PathBuf::from("node-0.0.trace"),
        };
        m.grants = vec![grant(1, 1), grant(2, 2)];
        let mut p = Props::default();
        version_1(&mut p, Some(&m));
        assert!(p.findings.is_empty());
        m.grants.push(grant(3, 2));
        version_1(&mut p, Some(&m));
        assert_eq!(p.findings.len(), 1);
        assert_eq!(p.findings[0].check, Check::Version1);
    }

    /// A lease that ran out on the primary's clock must be outlasted by
    /// the master's view of it by the drift allowance; one given up at a
    /// step (a revocation answered) need not be, and a master that waits
    /// the margin passes.
    #[test]
    fn lease_1_fails_a_master_that_does_not_wait_out_the_drift() {
        let protocol = leasehold_model::system::ModelCfg::named("default")
            .expect("a configuration")
            .protocol();
        let tol = lease_tolerance_ns(&protocol.durations);
        assert!(tol > 0);
        let interval = |to_ns: u64, ran_out: bool| Interval {
            chunk: 0,
            epoch: 1,
            from_ns: 1_000,
            to_ns: Some(to_ns),
            ran_out,
            from: at(1, 1),
            file: std::path::PathBuf::from("node-1.0.trace"),
        };
        let findings_ended = |primary_to: u64, ran_out: bool, master_to: u64, on_clock: bool| {
            let mut m = outcome(0, Kind::Master);
            m.master_leases = vec![interval(master_to, on_clock)];
            let mut cs = outcome(1, Kind::Chunkserver);
            cs.primary = vec![interval(primary_to, ran_out)];
            let mut p = Props::default();
            lease_1(&mut p, &protocol, Some(&m), &[&cs], &|ns| ns.to_string());
            p.findings
        };
        let findings =
            |primary_to, ran_out, master_to| findings_ended(primary_to, ran_out, master_to, true);
        let end = 60_000_000_000;
        assert!(
            findings(end, true, end + tol).is_empty(),
            "waited the margin"
        );
        let early = findings(end, true, end + tol - 1);
        assert_eq!(early.len(), 1, "{early:?}");
        assert_eq!(early[0].check, Check::Lease1);
        assert!(early[0].explanation.contains("did not wait out the drift"));
        assert!(
            findings(end, false, end + 1).is_empty(),
            "given up at a step"
        );
        // The master's view ended by the primary's answer to a revocation,
        // sent after its lease ran out: no drift to wait out. Past the
        // allowance it still fails.
        assert!(
            findings_ended(end, true, end + 1, false).is_empty(),
            "ended by the primary's answer"
        );
        assert_eq!(findings_ended(end + tol + 1, true, end, false).len(), 1);
    }
}
