//! TRACE-2: every message a node received was sent to it by the node it
//! names as sender, at an earlier clock reading, with the same value; and
//! each send is received at most once.
//!
//! TCP delivers a send at most once, but the host may hold frames (test
//! hooks) and reconnects, so sends between two nodes need not arrive in
//! order, and some never arrive (which the protocol tolerates). Receives
//! are therefore matched by value, not by position: in the order of their
//! clock readings, each takes the earliest unmatched send of the same
//! value from the same sender to the same receiver. Taking the earliest is
//! never worse than any other choice: every send available to one receive
//! is available to every later one.
//!
//! Messages from a client's application (its `report_to`) are not network
//! messages and are exempt. A receive from a node whose trace was cut
//! short by its budget is only noted when it comes after the cut.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::replay::{ms, short};
use super::{Check, Finding, Loc};
use crate::trace::{NodeTrace, TraceActor, TraceCommand, TraceInput};

/// How much earlier than its send a receive's clock reading may be. The
/// host reads the clock of a batched step (every message of a batch after
/// the first) before it takes the message from its inbox, so a message
/// that arrives in between gets a reading from before it arrived, and
/// perhaps from before its sender's step began, when the receiving thread
/// is preempted there. Such receives match their sends and are counted in
/// a note; 10 ms covers a scheduler time slice on a loaded machine.
pub const RECEIVE_CLOCK_SLACK_NS: u64 = 10_000_000;

#[derive(Default)]
pub struct Provenance {
    pub received: u64,
    pub matched: u64,
    pub from_application: u64,
    pub unreceived: u64,
    pub findings: Vec<Finding>,
    pub notes: Vec<Finding>,
}

/// A send: where it is in the sender's trace.
#[derive(Clone, Copy)]
struct SendAt {
    clock_ns: u64,
    file: usize,
    step: usize,
    command: usize,
}

struct Receive {
    clock_ns: u64,
    node: u64,
    file: usize,
    step: usize,
    src: u64,
}

/// With `network_duplicates` (a run whose network duplicates on purpose,
/// as a replay of a duplicating configuration's path does), a second copy
/// of a message already received is a note, not a finding.
pub fn check(by_node: &BTreeMap<u64, Vec<NodeTrace>>, network_duplicates: bool) -> Provenance {
    let mut p = Provenance::default();
    let app_of = |files: &Vec<NodeTrace>| match files[0].header.actor {
        TraceActor::Client { report_to, .. } => report_to,
        _ => None,
    };
    // Keyed by sender and receiver only: between two nodes, messages
    // mostly arrive in the order sent, so the match is almost always at
    // the front of its queue.
    let mut sends: HashMap<(u64, u64), VecDeque<SendAt>> = HashMap::new();
    let mut total_sends = 0u64;
    for (&src, files) in by_node {
        let app = app_of(files);
        for (fi, f) in files.iter().enumerate() {
            // Steps never carried out sent nothing but what may leave
            // before the barrier: a receive of any other of their messages
            // has no send to match.
            for (si, s) in f.steps.iter().enumerate() {
                for (ci, c) in s.commands.iter().enumerate() {
                    let TraceCommand::Send { dst, .. } = c else {
                        continue;
                    };
                    if !f.may_have_sent(si, c) {
                        continue;
                    }
                    if Some(*dst) == app {
                        continue;
                    }
                    total_sends += 1;
                    sends.entry((src, *dst)).or_default().push_back(SendAt {
                        clock_ns: s.clock_ns,
                        file: fi,
                        step: si,
                        command: ci,
                    });
                }
            }
        }
    }
    let mut receives = Vec::new();
    let mut untraced: BTreeMap<u64, (u64, Loc, std::path::PathBuf)> = BTreeMap::new();
    for (&node, files) in by_node {
        let app = app_of(files);
        for (fi, f) in files.iter().enumerate() {
            for (si, s) in f.steps.iter().enumerate() {
                let TraceInput::Msg { src, .. } = &s.input else {
                    continue;
                };
                if Some(*src) == app {
                    p.from_application += 1;
                    continue;
                }
                p.received += 1;
                if !by_node.contains_key(src) {
                    let at = Loc {
                        node,
                        start: f.header.start,
                        step: s.n,
                    };
                    untraced.entry(*src).or_insert((0, at, f.path.clone())).0 += 1;
                    continue;
                }
                receives.push(Receive {
                    clock_ns: s.clock_ns,
                    node,
                    file: fi,
                    step: si,
                    src: *src,
                });
            }
        }
    }
    for (src, (count, at, file)) in untraced {
        p.findings.push(Finding {
            check: Check::Trace2,
            at,
            file,
            explanation: format!(
                "{count} messages from node {src}, which left no trace (first here)"
            ),
        });
    }
    receives.sort_by_key(|r| r.clock_ns);
    // Sends already matched, for telling a duplicate's second copy: kept
    // only when the run duplicates on purpose (a TCP run's traces hold
    // millions of sends, and nothing else reads them).
    let mut received: HashMap<(u64, u64), Vec<SendAt>> = HashMap::new();
    let mut early: Option<(u64, u64, Loc, std::path::PathBuf)> = None;
    for r in receives {
        let rf = &by_node[&r.node][r.file];
        let rs = &rf.steps[r.step];
        let TraceInput::Msg { msg, .. } = &rs.input else {
            unreachable!("receives are message steps")
        };
        let sender = &by_node[&r.src];
        let value_at = |s: &SendAt| match &sender[s.file].steps[s.step].commands[s.command] {
            TraceCommand::Send { msg, .. } => msg,
            _ => unreachable!("sends are send commands"),
        };
        let queue = sends.get_mut(&(r.src, r.node));
        let found = queue
            .as_ref()
            .and_then(|q| q.iter().position(|s| value_at(s) == msg));
        let at = Loc {
            node: r.node,
            start: rf.header.start,
            step: rs.n,
        };
        match (queue, found) {
            (Some(q), Some(i)) if q[i].clock_ns <= r.clock_ns + RECEIVE_CLOCK_SLACK_NS => {
                let s = q.remove(i).expect("found above");
                if network_duplicates {
                    received.entry((r.src, r.node)).or_default().push(s);
                }
                p.matched += 1;
                if s.clock_ns > r.clock_ns {
                    let e = early.get_or_insert((0, 0, at, rf.path.clone()));
                    e.0 += 1;
                    e.1 = e.1.max(s.clock_ns - r.clock_ns);
                }
            }
            // A copy of a send already received, on a network that
            // duplicates on purpose (an equal send later is another one).
            _ if network_duplicates
                && received
                    .get(&(r.src, r.node))
                    .is_some_and(|done| done.iter().any(|s| value_at(s) == msg)) =>
            {
                p.notes.push(Finding {
                    check: Check::Trace2,
                    at,
                    file: rf.path.clone(),
                    explanation: format!(
                        "received {} from {} again: a copy the network duplicated (the run \
                         duplicates on purpose)",
                        short(msg),
                        r.src
                    ),
                });
            }
            (Some(q), Some(i)) => {
                let s = q[i];
                let sf = &sender[s.file];
                p.findings.push(Finding {
                    check: Check::Trace2,
                    at,
                    file: rf.path.clone(),
                    explanation: format!(
                        "received {} from {} {} ms before the sender sent it (its start {} step {})",
                        short(msg),
                        r.src,
                        ms(s.clock_ns - r.clock_ns),
                        sf.header.start,
                        sf.steps[s.step].n
                    ),
                });
            }
            _ => {
                let last = sender.last().expect("a node has a file");
                let cut =
                    last.truncated && last.steps.last().is_none_or(|s| s.clock_ns < r.clock_ns);
                let finding = Finding {
                    check: Check::Trace2,
                    at,
                    file: rf.path.clone(),
                    explanation: format!(
                        "received {} from {}, which never sent it to {} (no unmatched send of that value)",
                        short(msg),
                        r.src,
                        r.node
                    ),
                };
                if cut {
                    p.notes.push(Finding {
                        explanation: format!(
                            "{} after the sender's trace ran out of budget",
                            finding.explanation
                        ),
                        ..finding
                    });
                } else {
                    p.findings.push(finding);
                }
            }
        }
    }
    if let Some((count, most, at, file)) = early {
        p.notes.push(Finding {
            check: Check::Trace2,
            at,
            file,
            explanation: format!(
                "{count} messages were received with a clock reading up to {} µs before their send's (first here): the host reads a batched step's clock before taking its message",
                most / 1000
            ),
        });
    }
    p.unreceived = total_sends - p.matched;
    p
}
