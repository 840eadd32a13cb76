//! Which parts of a state multiply a configuration's state space.
//!
//! Explores a configuration breadth-first (no symmetry), keeps every state,
//! then counts the distinct states left when one part is forgotten: the
//! history, the network, one node's state, the messages to one node, or
//! the messages of one kind. A part whose removal divides the count by a
//! lot is where a reduction would pay (docs/performance.md). It keeps
//! every state in memory (about 5 KB each), so run it on configurations of
//! a million states or so:
//!
//! ```text
//! cargo run --release -p leasehold-model --example projections -- crash
//! cargo run --release -p leasehold-model --example projections -- default delays=true
//! ```
use leasehold_model::system::*;
use stateright::Model;
use std::collections::{HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

fn fp<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(mut cfg) = args.get(1).and_then(|n| ModelCfg::named(n)) else {
        eprintln!("usage: projections <named configuration> [key=value ...]");
        std::process::exit(2);
    };
    for kv in &args[2..] {
        if let Err(e) = cfg.set(kv) {
            eprintln!("{kv}: {e}");
            std::process::exit(2);
        }
    }
    let m = cfg.into_model();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut queue: VecDeque<State> = m.init_states().into_iter().collect();
    let mut states = vec![];
    for s in &queue {
        seen.insert(fp(s));
    }
    let mut acts = vec![];
    while let Some(s) = queue.pop_front() {
        acts.clear();
        if m.within_boundary(&s) {
            m.actions(&s, &mut acts);
        }
        for a in acts.drain(..) {
            if let Some(n) = m.next_state(&s, a) {
                if seen.insert(fp(&n)) {
                    queue.push_back(n);
                }
            }
        }
        states.push(s);
        if states.len() % 200_000 == 0 {
            eprintln!("{} states, {} queued", states.len(), queue.len());
        }
    }
    let n = states.len();
    println!("states {n}");
    let nodes = states[0].actor_states.len();
    let count = |name: &str, f: &dyn Fn(&State) -> u64| {
        let set: HashSet<u64> = states.iter().map(f).collect();
        println!(
            "{name:40} {:>10} ({:.2}x)",
            set.len(),
            n as f64 / set.len() as f64
        );
    };
    count("without history", &|s| {
        fp(&(&s.actor_states, &s.network, &s.timers_set, &s.crashed))
    });
    count("without network", &|s| {
        fp(&(&s.actor_states, &s.history, &s.timers_set, &s.crashed))
    });
    count("without timers", &|s| {
        fp(&(&s.actor_states, &s.history, &s.network, &s.crashed))
    });
    for i in 0..nodes {
        count(&format!("without {} state", m.node_name(i.into())), &|s| {
            let mut v: Vec<u64> = s.actor_states.iter().map(fp).collect();
            v[i] = 0;
            fp(&(v, &s.history, &s.network, &s.timers_set, &s.crashed))
        });
    }
    for i in 0..nodes {
        count(
            &format!("without messages to {}", m.node_name(i.into())),
            &|s| {
                let msgs: Vec<u64> = {
                    let mut v: Vec<u64> = s
                        .network
                        .iter_all()
                        .filter(|e| usize::from(e.dst) != i)
                        .map(|e| fp(&(e.src, e.dst, e.msg)))
                        .collect();
                    v.sort();
                    v
                };
                fp(&(&s.actor_states, &s.history, msgs, &s.timers_set, &s.crashed))
            },
        );
    }
    let mut kinds: Vec<String> = states
        .iter()
        .flat_map(|s| s.network.iter_all().map(|e| kind(e.msg)))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    kinds.sort();
    for k in &kinds {
        count(&format!("without {k} in flight"), &|s| {
            let mut v: Vec<u64> = s
                .network
                .iter_all()
                .filter(|e| kind(e.msg) != *k)
                .map(|e| fp(&(e.src, e.dst, e.msg)))
                .collect();
            v.sort();
            fp(&(&s.actor_states, &s.history, v, &s.timers_set, &s.crashed))
        });
    }
}

/// The message's variant name, from its `Debug` form (`[act] Name {..}`).
fn kind<T: std::fmt::Debug>(m: &T) -> String {
    let d = format!("{m:?}");
    let rest = d.split_once("] ").map(|x| x.1).unwrap_or(&d);
    rest.split([' ', '{', '(']).next().unwrap().to_string()
}
