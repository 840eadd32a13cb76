//! One seeded bug's counterexample, asserted step by step, so that a change
//! to the protocol's message flow shows in this file's diff.
//!
//! The bug is `PrimaryAcksBeforeSecondaries` in `tiny` (one client, one
//! record append, three replicas): the primary answers `MutationDone`
//! without waiting for its secondaries' `Applied` ([00101]), and APPEND-1
//! breaks because the acknowledged record is missing from a secondary. Its
//! shortest counterexample is the whole happy path of a record append up to
//! the premature answer: the lease lookup and grant ([0093], [0094],
//! [0090], [0091]), the push along the chain ([0096]–[0098]), the append
//! request ([00103]) and one `Apply` ([00100]). `checks/tests/model.rs`
//! shows the bug caught; this test pins how.
//!
//! Each step is written as `leasehold check` and the Explorer print it
//! (`Model::format_action`): the protocol act, sender → receiver, and the
//! message.

use leasehold_model::config::Bug;
use leasehold_model::system::{Action, LeaseholdModel, ModelCfg};
use stateright::{Checker, Model};

/// The counterexample, one delivered message per line. `cs1` is the
/// primary, `cs3` the replica closest to the client.
const COUNTEREXAMPLE: [&str; 16] = [
    // Acts 1210-1220 ([0093], [0094]): no lease is held, so the master
    // offers one to cs1 with a new chunk version, announces the version to
    // the other replicas, grants the lease once asked, and names the
    // holder.
    "act 1210 find lease client0 → master: FindLease { file: 0, index: Last }",
    "lease offer master → cs1: LeaseOffer { chunk: 0, epoch: 1, version: 1, incarnation: 0 }",
    "new version master → cs2: NewVersion { chunk: 0, version: 1, incarnation: 0 }",
    "new version master → cs3: NewVersion { chunk: 0, version: 1, incarnation: 0 }",
    "lease request cs1 → master: LeaseRequest { chunk: 0, epoch: 1 }",
    "new version cs2 → master: VersionAck { chunk: 0, version: 1 }",
    "new version cs3 → master: VersionAck { chunk: 0, version: 1 }",
    "lease grant master → cs1: LeaseGrant { chunk: 0, epoch: 1, extension: 0, version: 1, secondaries: [Id(2), Id(3)] }",
    "act 1220 lease holder master → client0: LeaseHolder { info: LeaseInfo { file: 0, index: 0, chunk: 0, version: 1, epoch: 1, primary: Some(Id(1)), secondaries: [Id(2), Id(3)] }, chunks: 1 }",
    // Act 1230 ([0096]-[0098]): to the closest replica, which forwards
    // along the rest of the chain; the end of the chain acknowledges.
    "act 1230 push client0 → cs3: PushData { data: d0.0, chunk: 0, fragment: 0, last: true, bytes: r0.0x1, chain: [Id(1), Id(2)], client: Id(4) }",
    "act 1230 push cs3 → cs2: PushData { data: d0.0, chunk: 0, fragment: 0, last: true, bytes: r0.0x1, chain: [Id(1)], client: Id(4) }",
    "act 1230 push cs2 → cs1: PushData { data: d0.0, chunk: 0, fragment: 0, last: true, bytes: r0.0x1, chain: [], client: Id(4) }",
    "act 1230 push cs1 → client0: DataPushed { data: d0.0 }",
    // Act 1410 ([00103]): the append request to the primary, which assigns
    // serial 1 and offset 0 and sends Apply to its secondaries (act 1250,
    // [00100]); one arrives.
    "act 1410 append request client0 → cs1: Mutate { chunk: 0, epoch: 1, kind: Append, data: d0.0 }",
    "act 1250 apply cs1 → cs3: Apply { chunk: 0, version: 1, stamp: e1#1, op: WriteAt { offset: 0, data: d0.0 } }",
    // The bug: act 1270 with no `Applied` received. cs2 never applied the
    // record, yet the client holds its acknowledgement.
    "act 1270 done cs1 → client0: MutationDone { chunk: 0, data: d0.0, offset: 0, stamp: e1#1 }",
];

fn model() -> LeaseholdModel {
    ModelCfg::named("tiny")
        .unwrap()
        .with_bug(Bug::PrimaryAcksBeforeSecondaries)
        .into_model()
}

/// The full name of the one `always` property whose name starts with `id`.
fn property(model: &LeaseholdModel, id: &str) -> &'static str {
    let names: Vec<&'static str> = model
        .properties()
        .into_iter()
        .filter(|p| p.expectation == stateright::Expectation::Always)
        .map(|p| p.name)
        .filter(|n| n.starts_with(&format!("{id} ")))
        .collect();
    assert_eq!(names.len(), 1, "one always property named {id}: {names:?}");
    names[0]
}

/// The actions `steps` name, taken one by one from the initial state. At
/// the first step that is not enabled, fails with the steps that were: the
/// message flow changed there.
fn actions(model: &LeaseholdModel, steps: &[&str]) -> Vec<Action> {
    let inits = model.init_states();
    assert_eq!(inits.len(), 1, "one initial state");
    let mut state = inits.into_iter().next().unwrap();
    let mut out = vec![];
    for (i, step) in steps.iter().enumerate() {
        let next = model.next_steps(&state);
        let Some((action, after)) = next
            .iter()
            .find(|(a, _)| model.format_action(a) == *step)
            .cloned()
        else {
            let enabled: Vec<String> = next
                .iter()
                .map(|(a, _)| format!("    {}", model.format_action(a)))
                .collect();
            panic!(
                "step {} is not enabled: {step}\nenabled instead:\n{}",
                i + 1,
                enabled.join("\n")
            );
        };
        out.push(action);
        state = after;
    }
    out
}

/// The steps above lead to an APPEND-1 violation (stateright's
/// `assert_discovery` replays them and evaluates the property), and they
/// are exactly the counterexample breadth-first search finds: the shortest,
/// first in the model's order of actions (one thread, so that order decides).
#[test]
fn primary_acks_before_secondaries_counterexample_step_by_step() {
    let model = model();
    let name = property(&model, "APPEND-1");
    let expected = actions(&model, &COUNTEREXAMPLE);
    let checker = model.checker().threads(1).spawn_bfs().join();
    assert!(checker.is_done(), "tiny is checked to the end");
    checker.assert_discovery(name, expected.clone());
    let found = checker
        .discovery(name)
        .expect("APPEND-1 violated")
        .into_actions();
    let found: Vec<String> = found
        .iter()
        .map(|a| checker.model().format_action(a))
        .collect();
    assert_eq!(found, COUNTEREXAMPLE, "the counterexample BFS finds");
}
