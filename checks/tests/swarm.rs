//! Swarm random walks (checks/src/swarm.rs) over the duplicating network,
//! which the checker does not close: they must find seeded bugs there, and
//! find nothing wrong with the protocol as written. A supplement to the
//! exhaustive configurations, never instead of them.

use leasehold_checks::swarm::{swarm, SwarmOptions, SwarmReport};
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
    keep_steps: false,
};

/// Some walk of `cfg` with `bug` breaks the property of ID `property`,
/// with a path to it.
fn found_by_walks(cfg: impl Fn(Bug) -> ModelCfg, bug: Bug, property: &str, walks: &SwarmOptions) {
    let r = swarm(cfg(bug), walks);
    let found = r
        .violations
        .iter()
        .find(|f| f.property.starts_with(property));
    assert!(
        found.is_some_and(|f| !f.path.is_empty()),
        "{bug:?}: expected {property} broken on some walk, with its steps, got {:?}",
        r.violations.iter().map(|f| f.property).collect::<Vec<_>>()
    );
}

/// No walk broke an always-property.
fn clean(r: &SwarmReport) {
    assert!(
        r.violations.is_empty(),
        "{:?}",
        r.violations
            .iter()
            .map(|f| (f.property, f.seed))
            .collect::<Vec<_>>()
    );
}

#[test]
fn swarm_walks_find_seeded_bugs_on_the_duplicating_network() {
    for (bug, property) in [
        (Bug::SecondaryAppliesOutOfOrder, "ORDER-2"),
        (Bug::PrimaryReusesSerial, "ORDER-1"),
        (Bug::PrimaryAcksBeforeSecondaries, "APPEND-1"),
    ] {
        found_by_walks(duplicating, bug, property, &WALKS);
    }
}

#[test]
fn swarm_walks_break_nothing_on_the_duplicating_network() {
    let r = swarm(duplicating(Bug::None), &WALKS);
    clean(&r);
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
            keep_steps: false,
        },
    );
    leasehold_checks::swarm::print_swarm(&r, &mut std::io::stdout()).unwrap();
    clean(&r);
}

/// Issue #10's target configuration, `concurrent-faults`: two clients
/// appending at once to three replicas, a chunkserver crash-restart at any
/// point, replies delayed past timeouts, a lease expiry re-granted to
/// another replica, a retry each. The checker does not close it (over 16
/// million states, docs/performance.md), so walks sample it here; a
/// sample proves nothing about the rest, and the exhaustive
/// configurations around it (`default`, `concurrent-crash`, `faults`)
/// stay the proof.
fn concurrent_faults(bug: Bug) -> ModelCfg {
    ModelCfg::named("concurrent-faults").unwrap().with_bug(bug)
}

const TARGET_WALKS: SwarmOptions = SwarmOptions {
    seeds: 3_000,
    first_seed: 0,
    depth: 200,
    keep_steps: false,
};

#[test]
fn swarm_walks_break_nothing_on_concurrent_faults_and_reach_its_faults() {
    let r = swarm(concurrent_faults(Bug::None), &TARGET_WALKS);
    clean(&r);
    // The situations the configuration exists for occur on some walk.
    for situation in [
        "APPEND-1 reached: two clients' appends acked in one chunk in a run where a node crashed",
        "LEASE-1 reached: a lease granted to a second server after expiry",
        "LEASE-2 reached: a lease expired and a new epoch was granted",
        "VERSION-1 reached: a stale replica detected",
    ] {
        assert!(
            r.reached.contains_key(situation),
            "{situation}: {:?}",
            r.reached
        );
    }
    assert!(r.distinct_states > 10_000, "{}", r.distinct_states);
}

/// Every seeded bug of the safety properties these faults touch is found
/// by some walk, with a path, as the property it breaks.
#[test]
fn swarm_walks_find_seeded_bugs_on_concurrent_faults() {
    for (bug, property) in [
        (Bug::SecondaryAppliesOutOfOrder, "ORDER-2"),
        (Bug::PrimaryReusesSerial, "ORDER-1"),
        (Bug::PrimaryAcksBeforeSecondaries, "APPEND-1"),
        (Bug::VersionNotIncremented, "APPEND-1"),
        (Bug::PrimaryIgnoresSecondaryError, "APPEND-1"),
        (Bug::AcceptsLateGrant, "LEASE-2"),
        (Bug::GrantRestartsLeaseClock, "LEASE-2"),
        (Bug::MasterIgnoresClockBound, "LEASE-1"),
        (Bug::MasterKeepsSilentReplicas, "VERSION-1"),
        (Bug::StaleReplicaHandedToClient, "VERSION-2"),
        (Bug::ClientMutatesBeforeDataPushed, "PUSH-1"),
        (Bug::PushSkipsClosest, "PUSH-1"),
        (Bug::PrimaryPadsAlthoughRecordFits, "APPEND-4"),
    ] {
        found_by_walks(concurrent_faults, bug, property, &TARGET_WALKS);
    }
}

/// The large sample of `concurrent-faults`: a million walks, about four
/// minutes. Run with
/// `cargo test --release -p leasehold-checks --test swarm -- --ignored --nocapture swarm_of_concurrent_faults`.
#[test]
#[ignore]
fn swarm_of_concurrent_faults() {
    let r = swarm(
        concurrent_faults(Bug::None),
        &SwarmOptions {
            seeds: 1_000_000,
            first_seed: 0,
            depth: 300,
            keep_steps: false,
        },
    );
    leasehold_checks::swarm::print_swarm(&r, &mut std::io::stdout()).unwrap();
    clean(&r);
}
