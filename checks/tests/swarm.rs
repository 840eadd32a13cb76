//! Swarm random walks (checks/src/swarm.rs) over the duplicating network,
//! which the checker does not close: they must find seeded bugs there, and
//! find nothing wrong with the protocol as written. A supplement to the
//! exhaustive configurations, never instead of them.

use leasehold_checks::swarm::{swarm, SwarmOptions};
use leasehold_model::config::Bug;
use leasehold_model::system::ModelCfg;

fn duplicating(bug: Bug) -> ModelCfg {
    let mut cfg = ModelCfg::named("default").unwrap();
    cfg.duplicating = true;
    cfg.bug = bug;
    cfg
}

const WALKS: SwarmOptions = SwarmOptions {
    seeds: 200,
    first_seed: 0,
    depth: 150,
};

#[test]
fn swarm_walks_find_seeded_bugs_on_the_duplicating_network() {
    for (bug, property) in [
        (Bug::SecondaryAppliesOutOfOrder, "ORDER-2"),
        (Bug::PrimaryReusesSerial, "ORDER-1"),
        (Bug::PrimaryAcksBeforeSecondaries, "APPEND-1"),
    ] {
        let r = swarm(duplicating(bug), &WALKS);
        assert!(
            r.violations
                .iter()
                .any(|f| f.property.starts_with(property)),
            "{bug:?}: expected {property} broken on some walk, got {:?}",
            r.violations.iter().map(|f| f.property).collect::<Vec<_>>()
        );
        let found = r
            .violations
            .iter()
            .find(|f| f.property.starts_with(property))
            .unwrap();
        assert!(!found.path.is_empty(), "a counterexample has steps");
    }
}

#[test]
fn swarm_walks_break_nothing_on_the_duplicating_network() {
    let r = swarm(duplicating(Bug::None), &WALKS);
    assert!(
        r.violations.is_empty(),
        "{:?}",
        r.violations
            .iter()
            .map(|f| (f.property, f.seed))
            .collect::<Vec<_>>()
    );
    // The walks go deep (a duplicating network always has a step left) and
    // spread: thousands of distinct states, and the companions reached.
    assert_eq!(r.steps, WALKS.seeds * WALKS.depth as u64);
    assert!(r.distinct_states > 5_000, "{}", r.distinct_states);
    assert!(r.reached.len() >= 6, "{:?}", r.reached);
}

/// The large run: `faults` (crash-restart, delays, an expiry, retries) on
/// a duplicating network. Run with
/// `cargo test --release -p leasehold-checks --test swarm -- --ignored --nocapture`.

#[test]
#[ignore]
fn swarm_of_faults_on_the_duplicating_network() {
    let mut cfg = ModelCfg::named("faults").unwrap();
    cfg.duplicating = true;
    let r = swarm(
        cfg,
        &SwarmOptions {
            seeds: 20_000,
            first_seed: 0,
            depth: 300,
        },
    );
    leasehold_checks::swarm::print_swarm(&r, &mut std::io::stdout()).unwrap();
    assert!(r.violations.is_empty());
}
