//! How far a partial-order reduction could shrink a configuration.
//!
//! Explores a configuration breadth-first (no symmetry, nothing dropped
//! beyond what the configuration itself drops), keeps the whole state
//! graph, and then computes, with exact knowledge of that graph, which
//! single steps are persistent: a step `t` enabled at `s` is persistent
//! there when along every path from `s` that does not take `t`, each step
//! taken commutes with `t` (both orders reach the same state, and neither
//! disables the other). A search that takes only such a step wherever one
//! exists (the first found), and every step elsewhere (with the cycle
//! proviso), visits what a static partial-order reduction of single-step
//! persistent sets with a perfect independence oracle would visit. A
//! second search also tries, where no single step is persistent, all the
//! steps of one node at once (deliveries to it, its timers, its crash).
//!
//! Both ignore the visibility condition (the properties read whole
//! states), so they bound what such reductions could give from above. As
//! checks on themselves they confirm that every terminal state of the
//! whole graph is still reached, and they list the properties the whole
//! graph decides (an always-property broken, a sometimes-property
//! reached) that the reduced search misses: run with `bug=<seeded bug>`
//! to see whether a violation survives the reduction.
//!
//! Independence is computed on whole states and on states without the
//! history (the properties' auxiliary variable: were the order of its
//! entries to matter, any two recorded steps would be dependent).
//!
//! ```text
//! cargo run --release -p leasehold-model --example por_bound -- small
//! cargo run --release -p leasehold-model --example por_bound -- crash bug=version-not-incremented
//! ```
use leasehold_model::system::*;
use stateright::Model;
use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

fn fp<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

struct Graph {
    /// Per state: (action id, successor id).
    succ: Vec<Vec<(u32, u32)>>,
    /// Per state: fingerprint without the history.
    bare: Vec<u64>,
    /// Per state: which always-properties fail there and which
    /// sometimes-properties hold, one bit each, `words` words per state.
    seen_props: Vec<u64>,
    words: usize,
    actions: usize,
    /// Per action id: the node whose step it is.
    action_nodes: Vec<usize>,
}

impl Graph {
    fn step(&self, s: u32, a: u32) -> Option<u32> {
        self.succ[s as usize]
            .iter()
            .find(|(x, _)| *x == a)
            .map(|(_, n)| *n)
    }

    /// `t` and `w`, both enabled at `u`, commute there.
    fn commute(&self, u: u32, t: u32, w: u32, bare: bool) -> bool {
        let (Some(v), Some(y)) = (self.step(u, w), self.step(u, t)) else {
            return false;
        };
        let (Some(x), Some(z)) = (self.step(v, t), self.step(y, w)) else {
            return false;
        };
        if bare {
            self.bare[x as usize] == self.bare[z as usize]
        } else {
            x == z
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(mut cfg) = args.get(1).and_then(|n| ModelCfg::named(n)) else {
        eprintln!("usage: por_bound <named configuration> [key=value ...]");
        std::process::exit(2);
    };
    for kv in &args[2..] {
        if let Some(b) = kv.strip_prefix("bug=") {
            let Some(bug) = leasehold_model::config::Bug::parse(b) else {
                eprintln!("{b}: no such seeded bug");
                std::process::exit(2);
            };
            cfg.bug = bug;
            continue;
        }
        if let Err(e) = cfg.set(kv) {
            eprintln!("{kv}: {e}");
            std::process::exit(2);
        }
    }
    let m = cfg.into_model();
    let started = std::time::Instant::now();
    let mut ids: HashMap<u64, u32> = HashMap::new();
    let mut action_ids: HashMap<u64, u32> = HashMap::new();
    let mut queue: VecDeque<(u32, State)> = VecDeque::new();
    let props = m.properties();
    let words = props.len().div_ceil(64);
    let mut g = Graph {
        succ: vec![],
        bare: vec![],
        seen_props: vec![],
        words,
        actions: 0,
        action_nodes: vec![],
    };
    let mut intern = |s: &State, g: &mut Graph, queue: &mut VecDeque<(u32, State)>| -> u32 {
        let f = fp(s);
        if let Some(i) = ids.get(&f) {
            return *i;
        }
        let i = g.succ.len() as u32;
        ids.insert(f, i);
        g.succ.push(vec![]);
        g.bare.push(fp(&(
            &s.actor_states,
            &s.network,
            &s.timers_set,
            &s.crashed,
        )));
        let mut mask = vec![0u64; g.words];
        for (k, p) in props.iter().enumerate() {
            let hit = match p.expectation {
                stateright::Expectation::Always => !(p.condition)(&m, s),
                stateright::Expectation::Sometimes => (p.condition)(&m, s),
                stateright::Expectation::Eventually => false,
            };
            if hit {
                mask[k / 64] |= 1 << (k % 64);
            }
        }
        g.seen_props.extend(mask);
        queue.push_back((i, s.clone()));
        i
    };
    for s in m.init_states() {
        intern(&s, &mut g, &mut queue);
    }
    let mut acts = vec![];
    while let Some((i, s)) = queue.pop_front() {
        acts.clear();
        if m.within_boundary(&s) {
            m.actions(&s, &mut acts);
        }
        for a in acts.drain(..) {
            let af = fp(&a);
            let next_action = action_ids.len() as u32;
            let aid = *action_ids.entry(af).or_insert(next_action);
            if aid == next_action {
                g.action_nodes.push(node_of(&a));
            }
            if let Some(n) = m.next_state(&s, a) {
                let nid = intern(&n, &mut g, &mut queue);
                if !g.succ[i as usize].iter().any(|(x, _)| *x == aid) {
                    g.succ[i as usize].push((aid, nid));
                }
            }
        }
        if g.succ.len().is_multiple_of(200_000) {
            eprintln!("{} states, {} queued", g.succ.len(), queue.len());
        }
    }
    g.actions = action_ids.len();
    let n = g.succ.len();
    let edges: usize = g.succ.iter().map(Vec::len).sum();
    let terminal: Vec<u32> = (0..n as u32)
        .filter(|s| g.succ[*s as usize].is_empty())
        .collect();
    println!(
        "states {n}, steps {edges}, distinct actions {}, terminal {} ({:.1} s)",
        g.actions,
        terminal.len(),
        started.elapsed().as_secs_f64()
    );
    // Predecessors, for the backward propagation of "not persistent".
    let mut pred: Vec<Vec<(u32, u32)>> = vec![vec![]; n];
    for (u, out) in g.succ.iter().enumerate() {
        for (a, v) in out {
            pred[*v as usize].push((*a, u as u32));
        }
    }
    for bare in [false, true] {
        // bad[(u, t)]: some path from u not taking t takes a step that
        // does not commute with t.
        let mut bad: std::collections::HashSet<(u32, u32)> = Default::default();
        let mut work: Vec<(u32, u32)> = vec![];
        for u in 0..n as u32 {
            let out = &g.succ[u as usize];
            for (t, _) in out {
                if out
                    .iter()
                    .any(|(w, _)| w != t && !g.commute(u, *t, *w, bare))
                    && bad.insert((u, *t))
                {
                    work.push((u, *t));
                }
            }
        }
        while let Some((v, t)) = work.pop() {
            for (w, u) in &pred[v as usize] {
                // u --w--> v with w != t and t enabled at u: the path from
                // u through v avoids t and meets a dependent step.
                if *w != t && g.step(*u, t).is_some() && bad.insert((*u, t)) {
                    work.push((*u, t));
                }
            }
        }
        // The reduced search: depth first, one persistent step where there
        // is one, every step where there is none or where the one would
        // close a cycle on the stack.
        let mut single = 0usize;
        let seen = reduced_search(n, |u, on_stack| {
            let out = &g.succ[u as usize];
            for (t, v) in out {
                if !bad.contains(&(u, *t)) && !on_stack[*v as usize] {
                    if out.len() > 1 {
                        single += 1;
                    }
                    return vec![*v];
                }
            }
            out.iter().map(|(_, v)| *v).collect()
        });
        let reduced_states = seen.iter().filter(|x| **x).count();
        let missed = terminal.iter().filter(|t| !seen[**t as usize]).count();
        println!(
            "{}: persistent (state, step) pairs {} of {edges}; reduced search {} states ({:.2}x), \
             {} of them took one step of several; terminal states missed: {missed}",
            if bare {
                "without history"
            } else {
                "whole states"
            },
            edges - bad.len(),
            reduced_states,
            n as f64 / reduced_states as f64,
            single,
        );
        println!("  {}", compare(&g, &m, &seen));
        if bare {
            groups(&g, &m, &terminal, &bad);
        }
    }
}

/// The steps of one node: deliveries to it, its timers, its crash and
/// recovery, the environment's choices about it.
fn node_of(a: &Action) -> usize {
    use stateright::actor::ActorModelAction as A;
    usize::from(match a {
        A::Deliver { dst, .. } => *dst,
        A::Drop(e) => e.dst,
        A::Timeout(id, _) | A::Crash(id) | A::Recover(id) => *id,
        A::SelectRandom { actor, .. } => *actor,
    })
}

/// Persistent sets of several steps: all the steps of one node enabled at
/// `s`, persistent when along every path from `s` that takes none of
/// them, each step taken commutes with each of them (which stay enabled).
/// Decided by a search forward from `s`, given up (counted as not
/// persistent) past 4,000 states (`POR_CAP`), so the count is a lower bound on what
/// such sets give.
fn groups(
    g: &Graph,
    m: &LeaseholdModel,
    terminal: &[u32],
    bad: &std::collections::HashSet<(u32, u32)>,
) {
    // POR_CAP raises it, at a cost in time.
    let cap: usize = std::env::var("POR_CAP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000);
    let n = g.succ.len();
    let mut mark = vec![0u32; n];
    let mut epoch = 0u32;
    let mut persistent_group = |s: u32, t: &[u32]| -> bool {
        epoch += 1;
        let mut stack = vec![s];
        mark[s as usize] = epoch;
        let mut visited = 0usize;
        while let Some(u) = stack.pop() {
            visited += 1;
            if visited > cap {
                return false;
            }
            for tt in t {
                if g.step(u, *tt).is_none() {
                    return false;
                }
            }
            for (w, v) in &g.succ[u as usize] {
                if t.contains(w) {
                    continue;
                }
                if t.iter().any(|tt| !g.commute(u, *tt, *w, true)) {
                    return false;
                }
                if mark[*v as usize] != epoch {
                    mark[*v as usize] = epoch;
                    stack.push(*v);
                }
            }
        }
        true
    };
    let mut narrowed = 0usize;
    let mut expand = |u: u32, on_stack: &[bool], narrowed: &mut usize| -> Vec<u32> {
        let out = &g.succ[u as usize];
        for (t, v) in out {
            if !bad.contains(&(u, *t)) && !on_stack[*v as usize] {
                *narrowed += 1;
                return vec![*v];
            }
        }
        let mut by_node: std::collections::BTreeMap<usize, Vec<u32>> = Default::default();
        for (a, _) in out {
            by_node
                .entry(g.action_nodes[*a as usize])
                .or_default()
                .push(*a);
        }
        let mut options: Vec<Vec<u32>> = by_node.into_values().collect();
        options.sort_by_key(Vec::len);
        for t in options {
            if t.len() == out.len() {
                break;
            }
            let succs: Vec<u32> = t.iter().filter_map(|a| g.step(u, *a)).collect();
            if succs.iter().any(|v| on_stack[*v as usize]) {
                continue;
            }
            if persistent_group(u, &t) {
                *narrowed += 1;
                return succs;
            }
        }
        out.iter().map(|(_, v)| *v).collect()
    };
    let seen = reduced_search(n, |u, on_stack| expand(u, on_stack, &mut narrowed));
    let reduced = seen.iter().filter(|x| **x).count();
    let missed = terminal.iter().filter(|t| !seen[**t as usize]).count();
    println!(
        "one step, else one node's steps (without history): reduced search {reduced} states ({:.2}x), \
         {narrowed} of them narrowed; terminal states missed: {missed}",
        n as f64 / reduced as f64
    );
    println!("  {}", compare(g, m, &seen));
}

/// The properties a search that saw `seen` decided (an always-property
/// broken, a sometimes-property reached), against the whole graph's.
fn compare(g: &Graph, m: &LeaseholdModel, seen: &[bool]) -> String {
    let union = |pick: &dyn Fn(usize) -> bool| -> Vec<u64> {
        let mut u = vec![0u64; g.words];
        for s in 0..seen.len() {
            if pick(s) {
                let mask = &g.seen_props[s * g.words..(s + 1) * g.words];
                for (word, bits) in u.iter_mut().zip(mask) {
                    *word |= bits;
                }
            }
        }
        u
    };
    let full = union(&|_| true);
    let reduced = union(&|s| seen[s]);
    let props = m.properties();
    let mut missed = vec![];
    let mut decided = 0;
    for (k, p) in props.iter().enumerate() {
        let bit = 1 << (k % 64);
        if full[k / 64] & bit != 0 {
            decided += 1;
            if reduced[k / 64] & bit == 0 {
                missed.push(format!("{:?} {}", p.expectation, p.name));
            }
        }
    }
    format!(
        "properties decided in the whole graph {decided}, missed by the reduced search {}{}",
        missed.len(),
        missed
            .iter()
            .map(|x| format!("\n    missed: {x}"))
            .collect::<String>()
    )
}

/// Depth first from state 0, taking at each state the successors `expand`
/// picks (given which states are on the stack, for the cycle proviso);
/// returns which states it visited.
fn reduced_search(n: usize, mut expand: impl FnMut(u32, &[bool]) -> Vec<u32>) -> Vec<bool> {
    let mut seen = vec![false; n];
    let mut on_stack = vec![false; n];
    seen[0] = true;
    on_stack[0] = true;
    let first = expand(0, &on_stack);
    let mut stack: Vec<(u32, Vec<u32>)> = vec![(0, first)];
    while let Some((u, next)) = stack.last_mut() {
        let u = *u;
        if let Some(v) = next.pop() {
            if !seen[v as usize] {
                seen[v as usize] = true;
                on_stack[v as usize] = true;
                let nv = expand(v, &on_stack);
                stack.push((v, nv));
            }
        } else {
            on_stack[u as usize] = false;
            stack.pop();
        }
    }
    seen
}
