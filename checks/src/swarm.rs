//! Swarm random walks: for configurations the checker cannot close (a
//! duplicating network, larger clusters), many seeded random runs through
//! the same model, each evaluating every property on every state it visits.
//! Never instead of an exhaustive check: a walk proves nothing about the
//! states it missed, so the report says how many distinct states the walks
//! reached, beside the counterexamples they found.
//!
//! Swarm testing (Groce et al., ISSTA 2012): each seed also draws which
//! kinds of action it favours (deliveries, timeouts, crashes and restarts,
//! losses), because a walk that weighs every action alike rarely strings
//! together the few fault steps a deep bug needs, while one that mostly
//! crashes, or never does, reaches different corners.

use leasehold_model::system::{Action, ModelCfg, State};
use stateright::actor::ActorModelAction;
use stateright::{Expectation, Model};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};

/// A small seeded generator (xorshift64*): reruns of one seed take the
/// same walk on every machine and build.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // Spread nearby seeds apart; 0 is not a valid xorshift state.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The kinds of action a seed weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Deliver,
    Timeout,
    Crash,
    Drop,
}

fn kind(a: &Action) -> Kind {
    match a {
        ActorModelAction::Deliver { .. } => Kind::Deliver,
        ActorModelAction::Timeout(..) => Kind::Timeout,
        ActorModelAction::Crash(_) | ActorModelAction::Recover(_) => Kind::Crash,
        _ => Kind::Drop,
    }
}

#[derive(Clone, Debug)]
pub struct SwarmOptions {
    pub seeds: u64,
    pub first_seed: u64,
    /// Steps per walk at most (a walk also ends where no action is left).
    pub depth: usize,
    /// Keep each counterexample's states and actions ([`Found::steps`]),
    /// for replaying it on real nodes; off, a walk clones no state.
    pub keep_steps: bool,
}

impl Default for SwarmOptions {
    fn default() -> Self {
        SwarmOptions {
            seeds: 1_000,
            first_seed: 0,
            depth: 200,
            keep_steps: false,
        }
    }
}

/// A property broken on some walk: the seed and the steps to it.
#[derive(Clone, Debug)]
pub struct Found {
    pub property: &'static str,
    pub seed: u64,
    pub path: Vec<String>,
    /// The walk's states and the action taken from each, if
    /// [`SwarmOptions::keep_steps`].
    pub steps: Vec<(State, Action)>,
}

#[derive(Clone, Debug, Default)]
pub struct SwarmReport {
    pub walks: u64,
    pub steps: u64,
    pub distinct_states: usize,
    /// The first counterexample of each `always` property broken.
    pub violations: Vec<Found>,
    /// `sometimes` properties reached, and on how many walks.
    pub reached: BTreeMap<&'static str, u64>,
    /// `sometimes` properties no walk reached.
    pub unreached: Vec<&'static str>,
}

fn fingerprint(s: &State) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// An index into `actions`, drawn by the seed's weights (uniformly when
/// every action's kind weighs 0).
fn draw(rng: &mut Rng, actions: &[Action], weights: &BTreeMap<Kind, u64>) -> usize {
    let total: u64 = actions.iter().map(|a| weights[&kind(a)]).sum();
    if total == 0 {
        return rng.below(actions.len() as u64) as usize;
    }
    let mut pick = rng.below(total);
    actions
        .iter()
        .position(|a| {
            let w = weights[&kind(a)];
            if pick < w {
                true
            } else {
                pick -= w;
                false
            }
        })
        .expect("a pick below the total weight")
}

pub fn swarm(cfg: ModelCfg, opts: &SwarmOptions) -> SwarmReport {
    let model = cfg.into_model();
    let properties = model.properties();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut report = SwarmReport::default();
    let mut actions: Vec<Action> = vec![];
    for seed in opts.first_seed..opts.first_seed + opts.seeds {
        let mut rng = Rng::new(seed);
        // This seed's weight for each kind: 0 (never, unless nothing else
        // is possible) to 3.
        let weights: BTreeMap<Kind, u64> = [Kind::Deliver, Kind::Timeout, Kind::Crash, Kind::Drop]
            .into_iter()
            .map(|k| {
                (
                    k,
                    if k == Kind::Deliver {
                        2 + rng.below(2)
                    } else {
                        rng.below(4)
                    },
                )
            })
            .collect();
        let inits = model.init_states();
        let mut state = inits[rng.below(inits.len() as u64) as usize].clone();
        let mut path: Vec<String> = vec![];
        let mut steps: Vec<(State, Action)> = vec![];
        let mut reached_here: HashSet<&'static str> = HashSet::new();
        report.walks += 1;
        for depth in 0..=opts.depth {
            seen.insert(fingerprint(&state));
            for p in &properties {
                let holds = (p.condition)(&model, &state);
                match p.expectation {
                    Expectation::Always
                        if !holds && !report.violations.iter().any(|f| f.property == p.name) =>
                    {
                        report.violations.push(Found {
                            property: p.name,
                            seed,
                            path: path.clone(),
                            steps: steps.clone(),
                        });
                    }
                    Expectation::Sometimes if holds => {
                        reached_here.insert(p.name);
                    }
                    _ => {}
                }
            }
            if depth == opts.depth || !model.within_boundary(&state) {
                break;
            }
            actions.clear();
            model.actions(&state, &mut actions);
            // The network's own order may differ from run to run; a seed
            // must take the same walk every time.
            actions.sort_by_cached_key(|a| format!("{a:?}"));
            if actions.is_empty() {
                break;
            }
            // Actions that change nothing (stateright's `None`) are no step:
            // draw again among the rest.
            let mut next = None;
            while next.is_none() && !actions.is_empty() {
                let i = draw(&mut rng, &actions, &weights);
                let action = actions.swap_remove(i);
                let label = model.format_action(&action);
                let kept = opts.keep_steps.then(|| action.clone());
                if let Some(s) = model.next_state(&state, action) {
                    path.push(label);
                    if let Some(action) = kept {
                        steps.push((state.clone(), action));
                    }
                    next = Some(s);
                }
            }
            match next {
                Some(s) => {
                    state = s;
                    report.steps += 1;
                }
                None => break,
            }
        }
        for name in reached_here {
            *report.reached.entry(name).or_default() += 1;
        }
    }
    report.distinct_states = seen.len();
    report.unreached = properties
        .iter()
        .filter(|p| matches!(p.expectation, Expectation::Sometimes))
        .map(|p| p.name)
        .filter(|n| !report.reached.contains_key(n))
        .collect();
    report
}

pub fn print_swarm(r: &SwarmReport, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "swarm: {} walks, {} steps, {} distinct states reached (a sample, not a proof)",
        r.walks, r.steps, r.distinct_states
    )?;
    for (name, walks) in &r.reached {
        writeln!(out, "  reached     {name} (on {walks} walks)")?;
    }
    for name in &r.unreached {
        writeln!(out, "  NOT REACHED {name}")?;
    }
    for f in &r.violations {
        writeln!(out, "  VIOLATED    {} (seed {})", f.property, f.seed)?;
        for (i, step) in f.path.iter().enumerate() {
            writeln!(out, "    {:>3}. {step}", i + 1)?;
        }
    }
    if r.violations.is_empty() {
        writeln!(out, "  no always-property broken on any walk")?;
    }
    Ok(())
}
