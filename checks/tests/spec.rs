//! Spec traceability: every requirement in specs/requirements.md names
//! model properties that exist (or `n/a` for implementation-only ones) and
//! tests that exist. A property is cited exactly: by its full name, or by
//! its bare requirement ID meaning the one `always` property whose name
//! starts with the ID and a space; an ID that matches none or several
//! fails. Every requirement cites at least one test `cargo test` runs (not
//! `#[ignore]`d). A requirement with nothing linked fails the build.

use leasehold_model::system::ModelCfg;
use stateright::{Expectation, Model};
use std::path::{Path, PathBuf};

struct Row {
    id: String,
    properties: Vec<String>,
    tests: Vec<String>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Splits a cell's list at commas, except inside backticks: a property
/// cited by its full name is quoted (`APPEND-2 a later acked append (…, …) …`)
/// because names may hold commas.
fn split_list(cell: &str) -> Vec<String> {
    let mut out = vec![];
    let mut item = String::new();
    let mut quoted = false;
    for ch in cell.chars() {
        match ch {
            '`' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut item)),
            c => item.push(c),
        }
    }
    out.push(item);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s != "—" && s != "n/a")
        .collect()
}

fn rows() -> Vec<Row> {
    let text = std::fs::read_to_string(workspace().join("specs/requirements.md"))
        .expect("specs/requirements.md");
    text.lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| ID") && !l.starts_with("|--"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 6, "a requirement row has six cells: {l}");
            let mut tests = split_list(cells[4]);
            tests.extend(split_list(cells[5]));
            Row {
                id: cells[0].to_string(),
                properties: split_list(cells[3]),
                tests,
            }
        })
        .collect()
}

/// Every source file that may hold a test, as one text per file.
fn sources() -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![
        workspace().join("checks"),
        workspace().join("impl"),
        workspace().join("model"),
        workspace().join("tests"),
    ];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.ends_with("target") && !p.ends_with("node_modules") {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    out
}

/// A test function's definition in `sources`: whether it is a test at all
/// and whether `cargo test` runs it (not `#[ignore]`d). `None` when no
/// source defines it.
fn test_attributes(sources: &[String], name: &str) -> Option<(bool, bool)> {
    for text in sources {
        let lines: Vec<&str> = text.lines().collect();
        let Some(at) = lines.iter().position(|l| {
            let l = l.trim_start();
            l.starts_with(&format!("fn {name}(")) || l.starts_with(&format!("async fn {name}("))
        }) else {
            continue;
        };
        // The attributes and doc comments right above the function.
        let above = lines[..at]
            .iter()
            .rev()
            .map(|l| l.trim())
            .take_while(|l| l.starts_with("#[") || l.starts_with("//") || l.ends_with(")]"));
        let (mut test, mut ignored) = (false, false);
        for l in above {
            test |= l.starts_with("#[test]") || l.contains("::test");
            ignored |= l.starts_with("#[ignore");
        }
        return Some((test, !ignored));
    }
    None
}

/// Every property name any named configuration checks, with whether it is
/// an `always` property.
fn property_names() -> Vec<(String, bool)> {
    let mut names: Vec<(String, bool)> = vec![];
    for name in ModelCfg::NAMES {
        for p in ModelCfg::named(name).unwrap().into_model().properties() {
            let always = p.expectation == Expectation::Always;
            if !names.iter().any(|(n, _)| n == p.name) {
                names.push((p.name.to_string(), always));
            }
        }
    }
    names
}

#[test]
fn every_requirement_is_linked_to_a_property_and_tests_that_exist() {
    let rows = rows();
    assert!(
        rows.len() >= 15,
        "the spec lists the protocol's requirements"
    );
    let names = property_names();
    let sources = sources();
    let mut problems = vec![];
    for row in &rows {
        let implementation_only = row.properties.is_empty();
        if implementation_only && !row.tests.iter().any(|t| !t.is_empty()) {
            problems.push(format!("{}: no property and no test", row.id));
        }
        for p in &row.properties {
            // LIVE-1, LIVE-2 and REPL-1 are checked by checks/src/liveness.rs
            // (without faults, with them, and with the replication goal),
            // not by a property.
            if p == "LIVE-1" || p == "LIVE-2" || p == "REPL-1" {
                continue;
            }
            let exact = names.iter().any(|(n, _)| n == p);
            // A bare ID names the one always-property whose name starts
            // with it (and a space).
            let by_id: Vec<&String> = names
                .iter()
                .filter(|(n, always)| *always && n.starts_with(&format!("{p} ")))
                .map(|(n, _)| n)
                .collect();
            let bare = !p.contains(' ');
            match (exact, bare, by_id.len()) {
                (true, _, _) | (false, true, 1) => {}
                (false, true, 0) => {
                    problems.push(format!("{}: no always-property named {p} …", row.id))
                }
                (false, true, _) => problems.push(format!(
                    "{}: {p} is ambiguous, cite one of {by_id:?}",
                    row.id
                )),
                (false, false, _) => {
                    problems.push(format!("{}: no model property named {p:?}", row.id))
                }
            }
        }
        if row.tests.is_empty() {
            problems.push(format!("{}: no test", row.id));
        }
        let mut run = false;
        for t in &row.tests {
            match test_attributes(&sources, t) {
                None => problems.push(format!("{}: no test function {t}", row.id)),
                Some((false, _)) => problems.push(format!("{}: {t} is not a test", row.id)),
                Some((true, runs)) => run |= runs,
            }
        }
        if !row.tests.is_empty() && !run {
            problems.push(format!(
                "{}: every cited test is #[ignore]d; cite one that cargo test runs",
                row.id
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "spec traceability:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_always_property_names_a_requirement_of_the_spec() {
    let ids: Vec<String> = rows().into_iter().map(|r| r.id).collect();
    for name in ModelCfg::NAMES {
        for p in ModelCfg::named(name).unwrap().into_model().properties() {
            let id = p.name.split_whitespace().next().unwrap();
            assert!(
                ids.iter().any(|i| i == id),
                "property {:?} names no requirement in specs/",
                p.name
            );
        }
    }
}
