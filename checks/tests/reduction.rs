//! The checker's reduction `drop_ignored` (docs/model.md, "Messages
//! ignored for ever"): its proof obligation holds on unreduced
//! configurations, an unsound variant of it is rejected, and where it is
//! on it changes no verdict.

use leasehold_checks::reduction::{obligation, obligation_on_walks};
use leasehold_model::system::ModelCfg;

fn named(name: &str) -> ModelCfg {
    ModelCfg::named(name).unwrap()
}

/// Exhaustively, every message the reduction marks stays marked through
/// every step of the unreduced configuration (of `states` states, the
/// same count its own check pins without the reduction), and it has
/// something to mark.
fn holds(cfg: ModelCfg, symmetry: bool, states: usize) {
    let name = cfg.name;
    let o = obligation(cfg, false, symmetry, usize::MAX);
    assert_eq!(
        o.states, states,
        "{name}: the search explored another space"
    );
    assert_eq!(o.broken, None, "{name}: the obligation fails");
    assert!(
        o.states_with_marked > 0,
        "{name}: nothing marked in {} states: the check checked nothing",
        o.states
    );
    eprintln!(
        "{name}: {} states, {} steps, {} with a message marked",
        o.states, o.steps, o.states_with_marked
    );
}

#[test]
fn the_reduction_keeps_every_run_of_concurrent_crash_delays() {
    holds(named("concurrent-crash-delays"), true, 1_253_158);
}

/// `faults`, which `cargo test` checks with the reduction on: a
/// chunkserver crash-restart, delays past timeouts, a lease expiry and a
/// retry (about a minute).
#[test]
fn the_reduction_keeps_every_run_of_faults() {
    holds(named("faults"), false, 4_568_688);
}

#[test]
fn the_reduction_keeps_every_run_of_crash() {
    holds(named("crash"), false, 1_079_363);
}

#[test]
fn the_reduction_keeps_every_run_of_master_crash_with_two_chunkservers() {
    let mut cfg = named("master-crash");
    cfg.set("chunkservers=2").unwrap();
    holds(cfg, false, 287_813);
}

#[test]
fn the_reduction_keeps_every_run_of_concurrent_lossy() {
    holds(named("concurrent-lossy"), true, 65_188);
}

/// The seeded bug of the reduction: dropping whatever its receiver
/// ignores now (the measured upper bound, docs/performance.md) loses runs
/// in which a later state acts on it, and the search says which.
#[test]
fn dropping_what_is_ignored_only_now_fails_the_obligation() {
    let o = obligation(named("crash"), true, false, usize::MAX);
    let broken = o
        .broken
        .expect("the unsound reduction must fail its obligation");
    assert!(broken.contains("marked ignored for ever"), "{broken}");
    eprintln!("crash, dropping what is ignored now: {broken}");
}

/// Issue #10's `concurrent-faults`, which the reduction is for and which
/// no search closes: the obligation along random walks of its unreduced
/// form, where marked messages are common.
#[test]
fn the_reduction_keeps_every_step_of_walks_of_concurrent_faults() {
    let o = obligation_on_walks(named("concurrent-faults"), 30_000, 300);
    assert_eq!(o.broken, None, "concurrent-faults: the obligation fails");
    assert!(
        o.states_with_marked > o.steps / 10,
        "{} of {} steps reached a message to drop",
        o.states_with_marked,
        o.steps
    );
    eprintln!(
        "concurrent-faults walks: {} steps, {} distinct states, {} with a message marked",
        o.steps, o.states, o.states_with_marked
    );
}

/// `leasehold check --obligation` runs the same search on any
/// configuration: it succeeds where the obligation holds.
#[test]
fn check_obligation_searches_a_named_configuration() {
    use leasehold_checks::check::{CheckArgs, Strategy};
    use leasehold_checks::run_check;
    let args = |config: &str, sets: &[&str]| CheckArgs {
        config: config.into(),
        bug: None,
        threads: 1,
        strategy: Strategy::Dfs,
        sets: sets.iter().map(|s| s.to_string()).collect(),
        max_states: 10_000_000,
        symmetry: true,
        liveness: false,
        swarm: None,
        seed: 0,
        depth: 200,
        obligation: true,
        list: false,
    };
    assert_eq!(
        run_check(args("concurrent-lossy", &[])),
        std::process::ExitCode::SUCCESS
    );
    // Stopped short of the whole configuration: not a success.
    let mut capped = args("concurrent-lossy", &[]);
    capped.max_states = 100;
    assert_eq!(run_check(capped), std::process::ExitCode::FAILURE);
}
