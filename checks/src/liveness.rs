//! A liveness check that sees cycles.
//!
//! Stateright's `eventually` properties are judged only at terminal states,
//! so a run that loops forever (a timer firing again and again, a duplicating
//! network) escapes them. This check explores the whole reachable graph,
//! keeps every edge, and then walks backwards from the goal states
//! ("every client's every operation succeeded"). Any reachable state that
//! cannot reach a goal is *doomed*, and the check fails with the path to the
//! shallowest one.
//!
//! What it proves: from every reachable state some continuation reaches
//! success. Under a scheduler that is fair to the whole system (one that does
//! not avoid a possible way forward forever), every run therefore succeeds.
//! What it does not prove: that every infinite schedule succeeds; a cycle
//! that could be left is allowed. It is exact for the explored graph, so it
//! is only as good as the configuration's bounds (retries, grants, faults).
//!
//! Without faults this is LIVE-1. In a configuration with faults it is
//! LIVE-2 (REPL-1 where the configuration's goal also asks that every
//! chunk is back at its replication goal): the faults are bounded (the wrapper counts them), so every run
//! has a last one, and success must stay reachable after it; there the
//! network is `prompt_network` (a timeout fires only when nothing it waits
//! for can still arrive), which is what "after the last fault" means.

use leasehold_model::system::{liveness_goal, Action, LeaseholdModel, State};
use stateright::Model;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::Write;

#[derive(Clone, Debug)]
pub struct LivenessReport {
    pub states: usize,
    pub goal_states: usize,
    pub doomed_states: usize,
    /// The path (formatted actions) to the shallowest doomed state.
    pub doomed_path: Option<Vec<String>>,
    /// False when the state cap stopped exploration.
    pub complete: bool,
    /// The requirement checked: LIVE-1 without faults, LIVE-2 with them,
    /// REPL-1 with `replication_goal`.
    pub requirement: &'static str,
}

impl LivenessReport {
    pub fn holds(&self) -> bool {
        self.complete && self.doomed_states == 0 && self.goal_states > 0
    }
}

fn fingerprint(s: &State) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

pub fn check_liveness(model: &LeaseholdModel, max_states: usize) -> LivenessReport {
    explore(model, max_states).0
}

/// The path to the shallowest doomed state, each action with the state it
/// is taken in, and the requirement it breaks (`LIVE-2`), or `None` if
/// success stays reachable from every state found within `max_states`.
/// For replaying it on real nodes (`leasehold replay`), which then run on
/// past its end to see that the clients do not all succeed.
pub fn doomed_counterexample(
    model: &LeaseholdModel,
    max_states: usize,
) -> Option<(&'static str, Vec<(State, Action)>)> {
    let (report, root) = explore(model, max_states);
    let (mut state, actions) = root?;
    let mut steps = Vec::with_capacity(actions.len());
    for action in actions {
        let next = model
            .next_state(&state, action.clone())
            .expect("an explored action has a successor");
        steps.push((state, action));
        state = next;
    }
    Some((report.requirement, steps))
}

/// The check, and the shallowest doomed state's path as its initial state
/// and actions.
fn explore(
    model: &LeaseholdModel,
    max_states: usize,
) -> (LivenessReport, Option<(State, Vec<Action>)>) {
    let mut roots: HashMap<u32, State> = HashMap::new();
    let mut ids: HashMap<u64, u32> = HashMap::new();
    let mut successors: Vec<Vec<u32>> = vec![];
    let mut parent: Vec<Option<(u32, Action)>> = vec![];
    let mut goal: Vec<bool> = vec![];
    let mut queue: VecDeque<(u32, State)> = VecDeque::new();
    let mut complete = true;

    for s in model.init_states() {
        let fp = fingerprint(&s);
        if ids.contains_key(&fp) {
            continue;
        }
        let id = successors.len() as u32;
        ids.insert(fp, id);
        successors.push(vec![]);
        parent.push(None);
        goal.push(liveness_goal(model, &s));
        roots.insert(id, s.clone());
        queue.push_back((id, s));
    }
    let mut actions = Vec::new();
    while let Some((id, state)) = queue.pop_front() {
        if !model.within_boundary(&state) {
            continue;
        }
        actions.clear();
        model.actions(&state, &mut actions);
        for action in actions.drain(..) {
            let Some(next) = model.next_state(&state, action.clone()) else {
                continue;
            };
            let fp = fingerprint(&next);
            let next_id = match ids.get(&fp) {
                Some(&n) => n,
                None => {
                    if successors.len() >= max_states {
                        complete = false;
                        continue;
                    }
                    let n = successors.len() as u32;
                    ids.insert(fp, n);
                    successors.push(vec![]);
                    parent.push(Some((id, action)));
                    goal.push(liveness_goal(model, &next));
                    queue.push_back((n, next));
                    n
                }
            };
            successors[id as usize].push(next_id);
        }
    }

    // Walk backwards from the goals.
    let n = successors.len();
    let mut predecessors: Vec<Vec<u32>> = vec![vec![]; n];
    for (from, succ) in successors.iter().enumerate() {
        for &to in succ {
            predecessors[to as usize].push(from as u32);
        }
    }
    let mut can_reach = goal.clone();
    let mut work: Vec<u32> = (0..n as u32).filter(|i| goal[*i as usize]).collect();
    while let Some(i) = work.pop() {
        for &p in &predecessors[i as usize] {
            if !can_reach[p as usize] {
                can_reach[p as usize] = true;
                work.push(p);
            }
        }
    }
    // Ids are assigned in BFS order, so the first doomed id is shallowest.
    let doomed: Vec<usize> = (0..n).filter(|i| !can_reach[*i]).collect();
    let doomed_actions = doomed.first().map(|&i| {
        let mut actions = vec![];
        let mut cur = i;
        while let Some((p, a)) = &parent[cur] {
            actions.push(a.clone());
            cur = *p as usize;
        }
        actions.reverse();
        (cur as u32, actions)
    });
    let doomed_path = doomed_actions
        .as_ref()
        .map(|(_, actions)| actions.iter().map(|a| model.format_action(a)).collect());
    let root = doomed_actions.and_then(|(root, actions)| Some((roots.remove(&root)?, actions)));
    let report = LivenessReport {
        states: n,
        goal_states: goal.iter().filter(|g| **g).count(),
        doomed_states: doomed.len(),
        doomed_path,
        complete,
        requirement: if model.cfg.replication_goal {
            "REPL-1"
        } else if model.cfg.faulty() {
            "LIVE-2"
        } else {
            "LIVE-1"
        },
    };
    (report, root)
}

pub fn print_liveness(r: &LivenessReport, out: &mut impl Write) -> std::io::Result<()> {
    let verdict = if r.holds() { "holds" } else { "VIOLATED" };
    writeln!(
        out,
        "  {verdict:<11} liveness  {} from every reachable state every client's operations can still all succeed{} ({} states, {} goal, {} doomed{})",
        r.requirement,
        match r.requirement {
            "LIVE-2" => ", after the last fault",
            "REPL-1" => ", and every chunk is back at its replication goal, after the last fault",
            _ => "",
        },
        r.states,
        r.goal_states,
        r.doomed_states,
        if r.complete { "" } else { ", INCOMPLETE" }
    )?;
    if let Some(path) = &r.doomed_path {
        writeln!(out, "\npath to a state from which success is unreachable:")?;
        for (i, step) in path.iter().enumerate() {
            writeln!(out, "  {:>3}. {step}", i + 1)?;
        }
    }
    Ok(())
}
