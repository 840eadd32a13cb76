//! The requirements of specs/requirements.md stated over a whole run: the
//! replayed nodes' lease intervals, the mutations their stores applied with
//! the real bytes, the acknowledgements clients reported, and the master's
//! final metadata. Each check names its requirement; the statements are in
//! specs/trace-format.md.

use leasehold_model::config::Durations;
use leasehold_model::master::MasterDurable;
use leasehold_model::msg::Msg;
use leasehold_model::types::{ChunkHandle, ChunkStore, Stamp};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::replay::{ms, AppliedOp, Interval, Kind, NodeOutcome};
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
    order_1(&mut p, &servers);
    acked(&mut p, protocol.chunk_size, master, &servers, outcomes);
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
            by_chunk.entry(i.chunk).or_default().push((s.node, i));
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

/// ORDER-1 ([0090], [0099]): replicas that applied one stamp applied the
/// same mutation: the same bytes at the same offset, or the same padding.
fn order_1(p: &mut Props, servers: &[&NodeOutcome]) {
    let mut first: HashMap<(ChunkHandle, Stamp), (u64, &AppliedOp, Loc)> = HashMap::new();
    for s in servers {
        for a in &s.applied {
            match first.get(&(a.chunk, a.stamp)) {
                None => {
                    first.insert((a.chunk, a.stamp), (s.node, &a.op, a.at));
                }
                Some((node, op, at)) if *node != s.node && **op != a.op => {
                    let describe = |op: &AppliedOp| match op {
                        AppliedOp::WriteAt { offset, data } => {
                            format!("{} bytes at {offset} ({:?})", data.as_slice().len(), data)
                        }
                        AppliedOp::PadTo { end } => format!("padding to {end}"),
                    };
                    p.fail(
                        Check::Order1,
                        a.at,
                        &a.file,
                        format!(
                            "applies {:?} of chunk {} as {}, but node {node} applied it as {} ({at})",
                            a.stamp,
                            a.chunk,
                            describe(&a.op),
                            describe(op)
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }
}

/// APPEND-1..4 and WRITE-1 over the acknowledged mutations and the
/// replicas as the run left them.
fn acked(
    p: &mut Props,
    chunk_size: u64,
    master: Option<&NodeOutcome>,
    servers: &[&NodeOutcome],
    outcomes: &[NodeOutcome],
) {
    let Some(durable): Option<&MasterDurable> = master.and_then(|m| m.final_master.as_ref()) else {
        if let Some(a) = outcomes.iter().flat_map(|o| &o.acks).next() {
            p.note(
                Check::Append1,
                a.at,
                &a.file,
                "acknowledged mutations not checked: the master's final metadata is unknown".into(),
            );
        }
        return;
    };
    let version = |chunk: ChunkHandle| durable.chunks.get(chunk as usize).map(|c| c.version);
    let mut inexact_noted: Vec<u64> = vec![];
    let acks: Vec<_> = outcomes.iter().flat_map(|o| &o.acks).collect();
    for a in &acks {
        p.acks_checked += 1;
        let check = if a.append {
            Check::Append1
        } else {
            Check::Write1
        };
        let len = a.data.as_slice().len() as u64;
        if a.append && (len > chunk_size / 4 || a.offset + len > chunk_size) {
            p.fail(
                Check::Append3,
                a.at,
                &a.file,
                format!(
                    "append of {len} bytes acknowledged at offset {} of chunk {}: more than a quarter chunk or past its end ({chunk_size} bytes)",
                    a.offset, a.chunk
                ),
            );
        }
        let Some(v) = version(a.chunk) else {
            p.fail(
                check,
                a.at,
                &a.file,
                format!(
                    "acknowledged in chunk {}, which the master does not have",
                    a.chunk
                ),
            );
            continue;
        };
        let mut current = 0;
        for s in servers {
            let Some(store) = &s.final_store else {
                continue;
            };
            if store.meta(a.chunk).version != v {
                continue;
            }
            current += 1;
            if !s.store_exact {
                if !inexact_noted.contains(&s.node) {
                    inexact_noted.push(s.node);
                    p.note(
                        check,
                        a.at,
                        &a.file,
                        format!(
                            "replica {}'s bytes not checked: its replay did not carry them through",
                            s.node
                        ),
                    );
                }
                continue;
            }
            // A write (not an append) may be overwritten by a later one.
            let end = a.offset + len;
            let overwritten = || {
                s.applied.iter().any(|w| {
                    w.chunk == a.chunk
                        && w.stamp > a.stamp
                        && matches!(&w.op, AppliedOp::WriteAt { offset, data } if *offset < end && offset + data.as_slice().len() as u64 > a.offset)
                })
            };
            if !a.append && overwritten() {
                continue;
            }
            let got = store.bytes(a.chunk, a.offset, end).unwrap_or_default();
            if got != a.data.as_slice() {
                let why = match got.iter().zip(a.data.as_slice()).position(|(x, y)| x != y) {
                    Some(i) => format!("differs from byte {i} on"),
                    None => format!("has only {} of its {len} bytes there on", got.len()),
                };
                p.fail(
                    check,
                    a.at,
                    &a.file,
                    format!(
                        "{} of {len} bytes acknowledged at offset {} of chunk {} ({:?}, from primary {}) {why} replica {} (at the master's version {v})",
                        if a.append { "append" } else { "write" },
                        a.offset,
                        a.chunk,
                        a.stamp,
                        a.primary,
                        s.node
                    ),
                );
            }
        }
        if current == 0 {
            // As in the model, the requirement speaks of replicas at the
            // master's version; a run may end while a new version is on
            // its way to all of them.
            p.note(
                check,
                a.at,
                &a.file,
                format!(
                    "acknowledged in chunk {}, but no replica ends at the master's version {v}: nothing to check",
                    a.chunk
                ),
            );
        }
    }
    // APPEND-2 ([00107]): within a chunk, a later append (in the primary's
    // order) lands past every earlier one.
    let mut by_chunk: BTreeMap<ChunkHandle, Vec<_>> = BTreeMap::new();
    for a in acks.iter().filter(|a| a.append) {
        by_chunk.entry(a.chunk).or_default().push(*a);
    }
    for (chunk, mut list) in by_chunk {
        list.sort_by_key(|a| a.stamp);
        let mut end_so_far: Option<(u64, Stamp)> = None;
        for a in list {
            if let Some((end, stamp)) =
                end_so_far.filter(|(end, s)| a.offset < *end && *s != a.stamp)
            {
                p.fail(
                    Check::Append2,
                    a.at,
                    &a.file,
                    format!(
                        "append {:?} of chunk {chunk} acknowledged at offset {}, before the end ({end}) of the earlier append {stamp:?}",
                        a.stamp, a.offset
                    ),
                );
            }
            let end = a.offset + a.data.as_slice().len() as u64;
            if end_so_far.is_none_or(|(e, _)| end > e) {
                end_so_far = Some((end, a.stamp));
            }
        }
    }
    // APPEND-4 ([00105]): a chunk the primary reported full is padded to
    // its full size on every replica at the master's version.
    for s in servers {
        for (chunk, at, file) in &s.full {
            let Some(v) = version(*chunk) else { continue };
            for r in servers.iter().filter(|r| r.store_exact) {
                let Some(store) = &r.final_store else {
                    continue;
                };
                if store.meta(*chunk).version == v && store.chunk_len(*chunk) != chunk_size {
                    p.fail(
                        Check::Append4,
                        *at,
                        file,
                        format!(
                            "chunk {chunk} reported full, but replica {} (at the master's version {v}) ends at {} of {chunk_size} bytes",
                            r.node,
                            store.chunk_len(*chunk)
                        ),
                    );
                }
            }
        }
    }
    // APPEND-3 on the replicas: no replica's data passes its chunk's size.
    for s in servers.iter().filter(|s| s.store_exact) {
        let Some(store) = &s.final_store else {
            continue;
        };
        for (chunk, _) in store.chunks() {
            if store.chunk_len(chunk) > chunk_size {
                p.fail(
                    Check::Append3,
                    Loc {
                        node: s.node,
                        start: 0,
                        step: 0,
                    },
                    &PathBuf::new(),
                    format!(
                        "replica of chunk {chunk} holds {} bytes",
                        store.chunk_len(chunk)
                    ),
                );
            }
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
/// replica moves the version on for the others just before naming them).
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
                        | Msg::LeaseGrant { chunk, version, .. },
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
    use super::super::replay::{Applied, Grant};
    use super::*;
    use crate::payload::Bytes;

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

    fn write(node: u64, serial: u64, offset: u64, byte: u8) -> Applied {
        Applied {
            chunk: 7,
            stamp: Stamp { epoch: 2, serial },
            op: AppliedOp::WriteAt {
                offset,
                data: Bytes::from(vec![byte; 10]),
            },
            at: at(node, serial),
            file: PathBuf::from(format!("node-{node}.0.trace")),
        }
    }

    #[test]
    fn order_1_fails_one_stamp_applied_as_two_mutations() {
        let (mut a, mut b) = (outcome(1, Kind::Chunkserver), outcome(2, Kind::Chunkserver));
        a.applied = vec![write(1, 1, 0, 1), write(1, 2, 10, 2)];
        b.applied = vec![write(2, 1, 0, 1), write(2, 2, 10, 2)];
        let mut p = Props::default();
        order_1(&mut p, &[&a, &b]);
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        // Replica 2 put serial 2 at its own end instead of the primary's
        // offset (the model's SecondaryAppendsAtOwnEnd).
        b.applied[1] = write(2, 2, 12, 2);
        order_1(&mut p, &[&a, &b]);
        assert_eq!(p.findings.len(), 1);
        assert_eq!(p.findings[0].check, Check::Order1);
        assert_eq!(p.findings[0].at.node, 2);
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
            file: PathBuf::from("node-0.0.trace"),
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
}
