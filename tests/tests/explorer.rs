//! The Explorer in a real browser: Debian's Chromium, headless, driven over
//! the DevTools protocol by clicking links as a person would.
//!
//! 1. `tiny`: from the initial state, click the actions of a successful
//!    record append one by one (the link texts name the protocol steps),
//!    then read the page: the client's acknowledged offset and the record on
//!    every replica.
//! 2. A seeded bug: the violated property, by its requirement ID, links to
//!    its counterexample; one click shows the path.
//!
//! Each case serves the Explorer from this process on a free 127.0.0.1 port
//! through `leasehold_checks::explore::serve`, the function behind
//! `leasehold explore`. Chromium comes from Debian: when `/usr/bin/chromium`
//! is missing the test installs it with apt-get (as root), or fails saying
//! how to install it.
//!
//! With `EXPLORER_SCREENSHOTS=DIR` each case saves its final page as a PNG
//! in DIR (docs/ holds the ones README shows).

mod support;

use leasehold_model::config::Bug;
use leasehold_model::system::ModelCfg;
use stateright::{Checker, Model};
use support::{Explorer, Page};

/// Bounds every wait on the page; the whole test stays well under a minute.
const STEP_TIMEOUT_S: u64 = 20;

#[test]
fn clicks_through_a_successful_record_append() {
    let cfg = ModelCfg::named("tiny").expect("tiny exists");
    // The path to click: the checker's shortest example of an acknowledged
    // append, as the Explorer names each action.
    let checker = cfg.clone().into_model().checker().spawn_bfs().join();
    let model = checker.model();
    let reached = model
        .properties()
        .into_iter()
        .find(|p| p.name.starts_with("APPEND-1 reached"))
        .expect("tiny has the APPEND-1 companion");
    let path = checker
        .discovery(reached.name)
        .expect("tiny acknowledges an append");
    let steps: Vec<String> = path
        .into_actions()
        .iter()
        .map(|a| model.format_action(a))
        .collect();
    // The link texts read as the protocol: each act of the append appears.
    for act in [
        "act 1210 find lease",
        "act 1220 lease holder",
        "act 1230 push",
        "act 1410 append request",
        "act 1250 apply",
        "act 1260 applied",
        "act 1270 done",
    ] {
        assert!(
            steps.iter().any(|s| s.starts_with(act)),
            "no step {act:?} in {steps:#?}"
        );
    }

    // The checker runs too, so every property shows its verdict.
    let explorer = Explorer::start(cfg, true);
    let tab = explorer.open();
    let page = Page::new(&tab, STEP_TIMEOUT_S);
    // Wait for the verdicts first: the status refresh that brings them
    // redraws the property list and moves the links below it.
    let done = page.wait_for(|v| v.done, "the checker to finish");
    assert!(
        done.properties
            .iter()
            .all(|p| !p.contains("Counterexample")),
        "no property fails without a bug: {:#?}",
        done.properties
    );
    page.click_next("Init 0");
    page.wait_for_path_len(2);
    for (i, step) in steps.iter().enumerate() {
        page.click_next(step);
        page.wait_for_path_len(3 + i);
    }
    let view = page.view();
    assert_eq!(view.path.last(), steps.last(), "page shows the last step");

    // The whole state, not just the stepping actor's outcome.
    page.check_box("Complete State?");
    let state = page.wait_for_state(|s| s.contains("actor_states"));
    let nodes = support::node_blocks(&state);
    let clients: Vec<&String> = nodes.iter().filter(|n| n.starts_with("client")).collect();
    assert_eq!(clients.len(), 1, "one client in tiny: {nodes:#?}");
    assert!(
        clients[0].contains("result 0: acked at chunk 0 (#0) offset 0"),
        "the client shows the acknowledged offset: {}",
        clients[0]
    );
    let replicas: Vec<&String> = nodes
        .iter()
        .filter(|n| n.starts_with("chunkserver"))
        .collect();
    assert_eq!(replicas.len(), 3, "three replicas in tiny: {nodes:#?}");
    for r in &replicas {
        // Client 0's first record (data id d0.0) at offset 0, chunk end 1.
        assert!(
            r.contains("data: ") && r.contains("[d0.0"),
            "record at offset 0: {r}"
        );
        assert!(r.contains("chunk 0: v1, end 1"), "version and end: {r}");
    }
    explorer.screenshot(&tab, "explorer-append.png");
}

#[test]
fn seeded_bug_links_the_violated_property_to_its_counterexample() {
    // The primary acknowledges before its secondaries applied: `small`
    // catches it in a few hundred states.
    let bug = Bug::PrimaryAcksBeforeSecondaries;
    let cfg = ModelCfg::named("small")
        .expect("small exists")
        .with_bug(bug);
    let id = "APPEND-1 ";
    let explorer = Explorer::start(cfg, true);
    let tab = explorer.open();
    let page = Page::new(&tab, STEP_TIMEOUT_S);

    let found = page.wait_for_property(|p| p.contains("Counterexample found") && p.contains(id));
    assert!(found.contains("Always"), "an always property: {found}");

    page.click_property(id);
    let view = page.wait_for(|v| v.path.len() > 2, "the counterexample's path");
    assert!(
        view.path.iter().any(|s| s.starts_with("act 1270 done")),
        "the path reaches the premature acknowledgement: {:#?}",
        view.path
    );

    // Per state, the selected (last) state is where the property fails.
    page.check_box("Current state?");
    let current = page.wait_for(
        |v| {
            v.current_properties
                .iter()
                .any(|p| p.contains("Counterexample found") && p.contains(id))
        },
        "the violated property marked on the selected state",
    );
    assert!(!current.next.is_empty() || current.path.len() > 2);
    explorer.screenshot(&tab, "explorer-counterexample.png");
}
