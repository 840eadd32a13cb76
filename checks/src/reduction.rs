//! The proof obligation of the checker's reduction `drop_ignored`
//! (docs/model.md, "Messages ignored for ever"): explored without the
//! reduction, every step keeps each message it marks marked, so a marked
//! message is never acted on in any run from where it was marked, and
//! taking it out of the network loses no behaviour. An exhaustive search
//! of its own, depth-first over fingerprints (as `check --strategy dfs`),
//! because the obligation is about steps, which stateright's properties
//! (of states) cannot see.

use crate::swarm::Rng;
use leasehold_model::memstore::RecordToken;
use leasehold_model::msg::Msg;
use leasehold_model::symmetry::representative;
use leasehold_model::system::{Action, LeaseholdModel, ModelCfg, State};
use leasehold_model::types::digest;
use stateright::actor::Envelope;
use stateright::Model;
use std::collections::HashSet;

/// What one search found.
#[derive(Debug, Default)]
pub struct Obligation {
    /// Distinct states explored (of the unreduced configuration, by client
    /// symmetry if asked).
    pub states: usize,
    /// Steps taken, each checked.
    pub steps: usize,
    /// States in which at least one message in flight was marked: the
    /// reduction has something to drop (its reachability companion).
    pub states_with_marked: usize,
    /// The first step after which a marked message was no longer marked:
    /// its message and the step, readably.
    pub broken: Option<String>,
}

/// Searches `cfg` (with `drop_ignored` off) for a step that breaks the
/// obligation. `now_only` marks every message its receiver ignores now,
/// the unsound variant the search must reject; `symmetry` folds states
/// by client permutation (sound for interchangeable clients, as in
/// `check --symmetry`). Gives up after `states_max` states with
/// `broken` unset and `states` at the cap.
pub fn obligation(
    mut cfg: ModelCfg,
    now_only: bool,
    symmetry: bool,
    states_max: usize,
) -> Obligation {
    cfg.drop_ignored = false;
    assert!(
        !symmetry || cfg.clients_interchangeable(),
        "symmetry needs clients with the same script"
    );
    let model: LeaseholdModel = cfg.into_model();
    let key = |s: &State| {
        if symmetry {
            digest(&representative(s))
        } else {
            digest(s)
        }
    };
    let mut found = Obligation::default();
    let mut seen = HashSet::new();
    let mut stack = vec![];
    for s in model.init_states() {
        if seen.insert(key(&s)) {
            stack.push(s);
        }
    }
    let mut actions = vec![];
    while let Some(s) = stack.pop() {
        found.states += 1;
        if found.states >= states_max {
            break;
        }
        let marked = model.ignored_in(&s, now_only);
        found.states_with_marked += usize::from(!marked.is_empty());
        actions.clear();
        model.actions(&s, &mut actions);
        for action in actions.drain(..) {
            let Some(next) = model.next_state(&s, action.clone()) else {
                continue;
            };
            found.steps += 1;
            found.broken = unmarked_by(&model, &marked, &action, &next, now_only);
            if found.broken.is_some() {
                return found;
            }
            if seen.insert(key(&next)) {
                stack.push(next);
            }
        }
    }
    found
}

/// The same obligation along `walks` seeded random walks of up to `depth`
/// steps each, for a configuration too large to search (issue #10's
/// `concurrent-faults`): evidence there, not proof. `states_with_marked`
/// counts the walks' steps into a state with a message marked, `states`
/// the distinct states the walks reached.
pub fn obligation_on_walks(mut cfg: ModelCfg, walks: u64, depth: usize) -> Obligation {
    cfg.drop_ignored = false;
    let model: LeaseholdModel = cfg.into_model();
    let mut found = Obligation::default();
    let mut seen = HashSet::new();
    let mut actions = vec![];
    for seed in 0..walks {
        let mut rng = Rng::new(seed);
        let mut s = model.init_states().remove(0);
        for _ in 0..depth {
            let marked = model.ignored_in(&s, false);
            found.states_with_marked += usize::from(!marked.is_empty());
            actions.clear();
            model.actions(&s, &mut actions);
            // A delivery that changes nothing has no next state: draw
            // again among the rest.
            let mut next = None;
            while next.is_none() && !actions.is_empty() {
                let action = actions.swap_remove(rng.below(actions.len() as u64) as usize);
                next = model.next_state(&s, action.clone()).map(|n| (action, n));
            }
            let Some((action, n)) = next else { break };
            found.steps += 1;
            if let Some(m) = marked.iter().find(|m| !model.stays_ignored(&n, m, false)) {
                found.broken = Some(format!(
                    "walk {seed}: {:?} to {} was marked ignored for ever, and after the step {} it is not",
                    m.msg,
                    model.node_name(m.dst),
                    model.format_action(&action),
                ));
                return found;
            }
            seen.insert(digest(&n));
            s = n;
        }
    }
    found.states = seen.len();
    found
}

/// The first of `marked` that the step `action` into `next` leaves
/// unmarked, readably.
fn unmarked_by(
    model: &LeaseholdModel,
    marked: &[Envelope<Msg<RecordToken>>],
    action: &Action,
    next: &State,
    now_only: bool,
) -> Option<String> {
    let m = marked
        .iter()
        .find(|m| !model.stays_ignored(next, m, now_only))?;
    Some(format!(
        "{:?} to {} was marked ignored for ever, and after the step {} it is not",
        m.msg,
        model.node_name(m.dst),
        model.format_action(action),
    ))
}
