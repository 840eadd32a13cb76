//! The anatomy of one record append (issue #13's latency rows): one client
//! appends small records one at a time to a traced cluster, and the step
//! traces say where each append's time went, leg by leg along its path.
//!
//! A record append crosses the network eight times in turn: the push down
//! the chain to three replicas ([0095]-[0098]), the chain's
//! acknowledgement, the request to the primary ([0099]), the primary's
//! `Apply` to a secondary and its `Applied` back ([00100]), and the answer
//! ([00101]). Every node's trace stamps each step with `CLOCK_MONOTONIC`
//! before its handler runs, and each of those messages is sent by the
//! step that took in the one before it, so the legs, from a send's step to
//! its receipt's step, add up to the whole append exactly. A leg includes
//! what the sender did after it handled the message (the rest of its batch,
//! its barrier for a message that waits for one) and the receiver's wait
//! before its loop took the frame, besides the wire.

use super::stats::{latency, Latency};
use super::system::{self, AppendRun, LocalCluster};
use leasehold::filestore::Durability;
use leasehold::nodes::{RealMsg, PUSH_FRAGMENT_BYTES_DEFAULT};
use leasehold::trace::{read_run, NodeTrace, TraceActor, TraceCommand, TraceInput};
use leasehold_model::msg::{ApplyOp, Msg};
use leasehold_model::types::DataId;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

pub const ANATOMY_RECORD_BYTES: u64 = 1 << 10;
/// Appends of one run at most (one at a time, well under a second each).
pub const ANATOMY_RECORDS_MAX: u64 = 3_000;

/// One leg of an append's path: a message from the step that sent it to
/// the step that took it in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Leg {
    /// `PushData` to the chain's `n`-th server (1 is the client's hop).
    Push(u8),
    DataPushed,
    Mutate,
    /// On the primary, from the step that ordered the mutation to the one
    /// that sent its `Apply` (`SendApplies`, when the host's batch of
    /// messages ends; the same instant but for the handler in between).
    BatchEnd,
    /// The primary's `Apply` to the secondary whose `Applied` came last.
    Apply,
    /// That secondary's `Applied`, sent after its write's barrier.
    Applied,
    MutationDone,
}

impl Leg {
    /// A message between two nodes (every leg but the primary's own wait).
    pub fn is_message(self) -> bool {
        self != Leg::BatchEnd
    }

    pub fn label(self) -> String {
        match self {
            Leg::Push(1) => "`PushData`, client → first server of the chain".to_string(),
            Leg::Push(n) => format!("`PushData`, forwarded to server {n} of the chain"),
            Leg::DataPushed => "`DataPushed`, chain's end → client".to_string(),
            Leg::Mutate => "`Mutate`, client → primary".to_string(),
            Leg::BatchEnd => "the primary's batch end (`SendApplies`)".to_string(),
            Leg::Apply => "`Apply`, primary → the later secondary".to_string(),
            Leg::Applied => {
                "`Applied`, that secondary → primary (its write and barrier first)".to_string()
            }
            Leg::MutationDone => "`MutationDone`, primary → client".to_string(),
        }
    }
}

/// One append's path: each leg's time, in path order.
#[derive(Clone, Debug, PartialEq)]
pub struct AppendPath {
    pub legs: Vec<(Leg, Duration)>,
}

impl AppendPath {
    pub fn total(&self) -> Duration {
        self.legs.iter().map(|(_, d)| *d).sum()
    }
}

/// Where a message was sent: trace, step, command.
type SendAt = (usize, usize, usize);
/// Where it was taken in: trace, step.
type TakenAt = (usize, usize);

/// Every message of the run that was sent and taken in, paired: the k-th
/// send of a message from one node to another with the k-th receipt of the
/// same message there.
fn deliveries(traces: &[NodeTrace]) -> HashMap<SendAt, TakenAt> {
    type Key<'a> = (u64, u64, &'a RealMsg);
    let mut sent: HashMap<Key, Vec<SendAt>> = HashMap::new();
    let mut taken: HashMap<Key, Vec<TakenAt>> = HashMap::new();
    for (t, trace) in traces.iter().enumerate() {
        let node = trace.header.node;
        for (s, step) in trace.steps.iter().enumerate() {
            if let TraceInput::Msg { src, msg } = &step.input {
                taken.entry((*src, node, msg)).or_default().push((t, s));
            }
            for (c, command) in step.commands.iter().enumerate() {
                if let TraceCommand::Send { dst, msg } = command {
                    sent.entry((node, *dst, msg)).or_default().push((t, s, c));
                }
            }
        }
    }
    let mut paired = HashMap::new();
    for (key, sends) in sent {
        if let Some(receipts) = taken.get(&key) {
            paired.extend(sends.into_iter().zip(receipts.iter().copied()));
        }
    }
    paired
}

/// A run's traces with their messages paired.
struct Run<'a> {
    traces: &'a [NodeTrace],
    delivered: HashMap<SendAt, TakenAt>,
}

impl Run<'_> {
    fn clock(&self, (t, s): TakenAt) -> u64 {
        self.traces[t].steps[s].clock_ns
    }

    /// From the step that sent a message to the step that took it in.
    fn leg(&self, from: TakenAt, to: TakenAt) -> Duration {
        Duration::from_nanos(self.clock(to).saturating_sub(self.clock(from)))
    }

    /// Where the messages step `at` sent that `wanted` picks were taken in.
    fn next(&self, at: TakenAt, wanted: impl Fn(&RealMsg) -> bool) -> Vec<TakenAt> {
        self.traces[at.0].steps[at.1]
            .commands
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c, TraceCommand::Send { msg, .. } if wanted(msg)))
            .filter_map(|(c, _)| self.delivered.get(&(at.0, at.1, c)).copied())
            .collect()
    }

    /// One append's legs from the client's step that pushed its data.
    fn follow(&self, data: DataId, start: TakenAt) -> Option<AppendPath> {
        let mut legs = Vec::new();
        let mut at = start;
        let mut hop = 0u8;
        // Down the chain until its end answers the client.
        loop {
            let push = self.next(
                at,
                |m| matches!(m, Msg::PushData { data: d, .. } if *d == data),
            );
            if let [to] = push[..] {
                hop += 1;
                legs.push((Leg::Push(hop), self.leg(at, to)));
                at = to;
                continue;
            }
            let pushed = self.next(
                at,
                |m| matches!(m, Msg::DataPushed { data: d } if *d == data),
            );
            let [to] = pushed[..] else { return None };
            legs.push((Leg::DataPushed, self.leg(at, to)));
            at = to;
            break;
        }
        let mutate = self.next(
            at,
            |m| matches!(m, Msg::Mutate { data: d, .. } if *d == data),
        );
        let [ordered] = mutate[..] else { return None };
        legs.push((Leg::Mutate, self.leg(at, ordered)));
        // The step that sent the mutation's `Apply`: the one that ordered
        // it, or a later one of the primary's (`SendApplies`).
        let carries = |m: &RealMsg| match m {
            Msg::Apply {
                op: ApplyOp::WriteAt { data: d, .. },
                ..
            } => *d == data,
            Msg::ApplyBatch { applies, .. } => applies
                .iter()
                .any(|(_, op)| matches!(op, ApplyOp::WriteAt { data: d, .. } if *d == data)),
            _ => false,
        };
        let primary = (ordered.1..self.traces[ordered.0].steps.len())
            .map(|s| (ordered.0, s))
            .find(|&(t, s)| {
                self.traces[t].steps[s]
                    .commands
                    .iter()
                    .any(|c| matches!(c, TraceCommand::Send { msg, .. } if carries(msg)))
            })?;
        if primary != ordered {
            legs.push((Leg::BatchEnd, self.leg(ordered, primary)));
        }
        let applies = self.next(primary, carries);
        // The secondary whose `Applied` was taken in by the step that
        // answered the client is the one the append waited for.
        for secondary in applies {
            for back in self.next(secondary, |m| {
                matches!(m, Msg::Applied { result: Ok(()), .. })
            }) {
                let done = self.next(
                    back,
                    |m| matches!(m, Msg::MutationDone { data: d, .. } if *d == data),
                );
                if let [client] = done[..] {
                    legs.push((Leg::Apply, self.leg(primary, secondary)));
                    legs.push((Leg::Applied, self.leg(secondary, back)));
                    legs.push((Leg::MutationDone, self.leg(back, client)));
                    return Some(AppendPath { legs });
                }
            }
        }
        None
    }
}

/// The paths of the run's record appends that took the whole protocol
/// path in one fragment, failure free (a retried one is left out), in the
/// client's order.
pub fn append_paths(traces: &[NodeTrace]) -> Vec<AppendPath> {
    let run = Run {
        traces,
        delivered: deliveries(traces),
    };
    let mut paths = Vec::new();
    for (t, trace) in traces.iter().enumerate() {
        if !matches!(trace.header.actor, TraceActor::Client { .. }) {
            continue;
        }
        for (s, step) in trace.steps.iter().enumerate() {
            let start = step.commands.iter().find_map(|c| match c {
                TraceCommand::Send {
                    msg:
                        Msg::PushData {
                            data,
                            fragment: 0,
                            last: true,
                            ..
                        },
                    ..
                } => Some(*data),
                _ => None,
            });
            if let Some(path) = start.and_then(|data| run.follow(data, (t, s))) {
                paths.push(path);
            }
        }
    }
    paths
}

/// One durability mode's anatomy.
#[derive(Clone, Debug)]
pub struct Anatomy {
    pub durability: Durability,
    /// The same load without traces, just before.
    pub untraced: AppendRun,
    /// The traced run, as the application saw it.
    pub run: AppendRun,
    /// Appends whose whole path the traces gave.
    pub paths: usize,
    /// Each leg's latency over those paths, in path order.
    pub legs: Vec<(Leg, Latency)>,
    /// The paths' sums.
    pub total: Latency,
}

/// Summarises paths: each leg's latency, in the order of the commonest
/// path's legs.
pub fn summarise(paths: &[AppendPath]) -> (Vec<(Leg, Latency)>, Latency) {
    let mut by_leg: HashMap<Leg, Vec<Duration>> = HashMap::new();
    for p in paths {
        for (l, d) in &p.legs {
            by_leg.entry(*l).or_default().push(*d);
        }
    }
    let mut legs: Vec<Leg> = by_leg.keys().copied().collect();
    legs.sort();
    let summary = legs
        .into_iter()
        .map(|l| (l, latency(by_leg.remove(&l).unwrap_or_default())))
        .collect();
    (
        summary,
        latency(paths.iter().map(AppendPath::total).collect()),
    )
}

#[derive(Clone, Debug, Default)]
pub struct AnatomyResults {
    pub runs: Vec<Anatomy>,
    /// One-byte round trip over loopback, same run: two one-way hops.
    pub rtt: Option<Latency>,
}

/// One client, one append at a time, on a three-replica cluster in each
/// durability mode: untraced, for the latency the application sees, then
/// traced, for the legs.
pub fn run_anatomy_part(work: &Path, load_time: Duration) -> Result<AnatomyResults, String> {
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let mut results = AnatomyResults {
        rtt: super::raw::round_trip(load_time.min(Duration::from_secs(2)), 100_000, None).ok(),
        ..AnatomyResults::default()
    };
    for durability in super::DURABILITY_MODES {
        eprintln!(
            "\n== anatomy of a {} append, {}, one client ==",
            super::stats::size_label(ANATOMY_RECORD_BYTES),
            super::durability_label(durability)
        );
        let dir = work.join(format!("cluster3-anatomy-{durability:?}"));
        let (untraced, _) = one_run(&runtime, &dir, durability, load_time, false)?;
        let (run, traces) = one_run(&runtime, &dir, durability, load_time, true)?;
        let paths = append_paths(&traces);
        if paths.is_empty() {
            return Err("the traces held no whole append path".to_string());
        }
        let (legs, total) = summarise(&paths);
        eprintln!(
            "p50 {:.0} µs untraced, {:.0} µs traced ({} appends), {:.0} µs along the {} paths traced",
            untraced.latency.p50_us,
            run.latency.p50_us,
            run.records,
            total.p50_us,
            paths.len()
        );
        results.runs.push(Anatomy {
            durability,
            untraced,
            run,
            paths: paths.len(),
            legs,
            total,
        });
    }
    Ok(results)
}

/// One append load on a fresh cluster in `dir` (removed after), and its
/// traces if `traced`.
fn one_run(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    durability: Durability,
    load_time: Duration,
    traced: bool,
) -> Result<(AppendRun, Vec<NodeTrace>), String> {
    let traces = dir.join("traces");
    let run = runtime.block_on(async {
        let cluster = LocalCluster::start_traced(
            dir,
            3,
            1,
            durability,
            PUSH_FRAGMENT_BYTES_DEFAULT,
            traced.then(|| traces.clone()),
        )
        .await?;
        let r = system::append_load(
            &cluster,
            "/bench/anatomy",
            ANATOMY_RECORD_BYTES,
            1,
            load_time,
            ANATOMY_RECORDS_MAX,
        )
        .await;
        cluster.stop_keeping_files().await;
        r
    });
    let read = run.and_then(|run| match traced {
        true => Ok((run, read_run(&traces).map_err(|e| e.to_string())?)),
        false => Ok((run, Vec::new())),
    });
    let _ = std::fs::remove_dir_all(dir);
    read
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasehold::payload::Bytes;
    use leasehold::trace::{TraceHeader, TraceInitial, TraceStep};
    use leasehold_model::types::Stamp;

    /// A step: its clock, its input and what it sent to whom.
    type HandStep = (u64, TraceInput, Vec<(u64, RealMsg)>);

    fn node(node: u64, actor: TraceActor, steps: Vec<HandStep>) -> NodeTrace {
        NodeTrace {
            path: format!("node-{node}").into(),
            header: TraceHeader {
                node,
                start: 0,
                actor,
                protocol: leasehold_model::system::ModelCfg::named("tiny")
                    .expect("tiny is named")
                    .protocol(),
                clock_ns: 0,
                initial: TraceInitial::Empty,
            },
            steps: steps
                .into_iter()
                .enumerate()
                .map(|(n, (clock_ns, input, sends))| TraceStep {
                    n: n as u64,
                    clock_ns,
                    input,
                    commands: sends
                        .into_iter()
                        .map(|(dst, msg)| TraceCommand::Send { dst, msg })
                        .collect(),
                    digest: 0,
                })
                .collect(),
            truncated: false,
            torn_tail: false,
            committed: usize::MAX,
        }
    }

    /// A hand-made run of one append: client 9, chain 1 → 2 → 3, primary
    /// 1; secondary 3 answers after secondary 2, so the path goes through
    /// it, and the legs add up to the client's wait.
    #[test]
    fn the_legs_of_an_append_add_up_along_the_later_secondary() {
        let data = DataId { client: 9, seq: 1 };
        let stamp = Stamp {
            epoch: 1,
            serial: 0,
        };
        let push = |chain: Vec<u64>| Msg::PushData {
            data,
            chunk: 0,
            fragment: 0,
            last: true,
            bytes: Bytes::from(vec![7u8; 4]),
            chain: chain.into_iter().map(|i| (i as usize).into()).collect(),
            client: 9usize.into(),
        };
        let mutate = Msg::Mutate {
            chunk: 0,
            epoch: 1,
            kind: leasehold_model::msg::MutationKind::Append,
            data,
        };
        let apply = Msg::Apply {
            chunk: 0,
            version: 1,
            stamp,
            op: ApplyOp::WriteAt { offset: 0, data },
        };
        let applied = Msg::Applied {
            chunk: 0,
            stamp,
            result: Ok(()),
        };
        let done = Msg::MutationDone {
            chunk: 0,
            data,
            offset: 0,
            stamp,
        };
        let client = TraceActor::Client {
            number: 0,
            report_to: None,
            fragment_max: 1 << 16,
        };
        let server = TraceActor::Chunkserver {
            chunk_bytes: 1 << 20,
        };
        let timer = || TraceInput::Timer(leasehold_model::msg::Timer::HeartBeat);
        let msg = |src: u64, msg: RealMsg| TraceInput::Msg { src, msg };
        let traces = vec![
            node(
                9,
                client,
                vec![
                    (1_000, timer(), vec![(1, push(vec![2, 3]))]),
                    (
                        5_000,
                        msg(3, Msg::DataPushed { data }),
                        vec![(1, mutate.clone())],
                    ),
                    (20_000, msg(1, done.clone()), vec![]),
                ],
            ),
            node(
                1,
                server.clone(),
                vec![
                    (2_000, msg(9, push(vec![2, 3])), vec![(2, push(vec![3]))]),
                    (
                        6_000,
                        msg(9, mutate),
                        vec![(2, apply.clone()), (3, apply.clone())],
                    ),
                    (10_000, msg(2, applied.clone()), vec![]),
                    (16_000, msg(3, applied.clone()), vec![(9, done)]),
                ],
            ),
            node(
                2,
                server.clone(),
                vec![
                    (3_000, msg(1, push(vec![3])), vec![(3, push(vec![]))]),
                    (7_000, msg(1, apply.clone()), vec![(1, applied.clone())]),
                ],
            ),
            node(
                3,
                server,
                vec![
                    (
                        4_000,
                        msg(2, push(vec![])),
                        vec![(9, Msg::DataPushed { data })],
                    ),
                    (8_000, msg(1, apply), vec![(1, applied)]),
                ],
            ),
        ];
        let paths = append_paths(&traces);
        let us = |n: u64| Duration::from_micros(n);
        assert_eq!(
            paths,
            [AppendPath {
                legs: vec![
                    (Leg::Push(1), us(1)),
                    (Leg::Push(2), us(1)),
                    (Leg::Push(3), us(1)),
                    (Leg::DataPushed, us(1)),
                    (Leg::Mutate, us(1)),
                    (Leg::Apply, us(2)),
                    (Leg::Applied, us(8)),
                    (Leg::MutationDone, us(4)),
                ]
            }]
        );
        assert_eq!(paths[0].total(), us(19), "the client's wait, from its push");

        // The same append with batched serials: the primary orders it at
        // 6 µs and its `SendApplies` step sends the batch at 6.5 µs.
        let batch = Msg::ApplyBatch {
            chunk: 0,
            version: 1,
            applies: vec![(stamp, ApplyOp::WriteAt { offset: 0, data })],
        };
        let mut batched = traces;
        let primary = &mut batched[1].steps;
        primary[1].commands.clear();
        let mut send_applies = primary[1].clone();
        send_applies.clock_ns = 6_500;
        send_applies.input = TraceInput::Timer(leasehold_model::msg::Timer::SendApplies(0));
        send_applies.commands = [2, 3]
            .map(|dst| TraceCommand::Send {
                dst,
                msg: batch.clone(),
            })
            .into();
        primary.insert(2, send_applies);
        for t in &mut batched[2..] {
            for step in &mut t.steps {
                if let TraceInput::Msg { msg, .. } = &mut step.input {
                    if matches!(msg, Msg::Apply { .. }) {
                        *msg = batch.clone();
                    }
                }
            }
        }
        let paths = append_paths(&batched);
        let ns = |n: u64| Duration::from_nanos(n);
        let legs: Vec<(Leg, Duration)> = paths[0].legs[4..7].to_vec();
        assert_eq!(
            legs,
            [
                (Leg::Mutate, us(1)),
                (Leg::BatchEnd, ns(500)),
                (Leg::Apply, ns(1_500)),
            ]
        );
        assert_eq!(paths[0].total(), us(19), "the legs still add up");
    }
}
