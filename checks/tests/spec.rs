//! Spec traceability: every requirement in specs/requirements.md names a
//! model property that exists (or `n/a` for implementation-only ones) and
//! tests that exist. A requirement with nothing linked fails the build.

use leasehold_model::system::ModelCfg;
use stateright::Model;
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

fn rows() -> Vec<Row> {
    let text = std::fs::read_to_string(workspace().join("specs/requirements.md"))
        .expect("specs/requirements.md");
    let list = |cell: &str| -> Vec<String> {
        cell.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s != "—" && s != "n/a")
            .collect()
    };
    text.lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| ID") && !l.starts_with("|--"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 6, "a requirement row has six cells: {l}");
            let mut tests = list(cells[4]);
            tests.extend(list(cells[5]));
            Row {
                id: cells[0].to_string(),
                properties: list(cells[3]),
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

#[test]
fn every_requirement_is_linked_to_a_property_and_tests_that_exist() {
    let rows = rows();
    assert!(
        rows.len() >= 15,
        "the spec lists the protocol's requirements"
    );
    let mut property_names: Vec<String> = vec!["LIVE-1".to_string()];
    for name in ModelCfg::NAMES {
        for p in ModelCfg::named(name).unwrap().into_model().properties() {
            property_names.push(p.name.to_string());
        }
    }
    let sources = sources();
    let mut problems = vec![];
    for row in &rows {
        let implementation_only = row.properties.is_empty();
        if implementation_only && !row.tests.iter().any(|t| !t.is_empty()) {
            problems.push(format!("{}: no property and no test", row.id));
        }
        for p in &row.properties {
            if !property_names
                .iter()
                .any(|n| n == p || n.starts_with(&format!("{p} ")))
            {
                problems.push(format!("{}: no model property named {p}", row.id));
            }
        }
        if row.tests.is_empty() {
            problems.push(format!("{}: no test", row.id));
        }
        for t in &row.tests {
            let defined = sources.iter().any(|s| s.contains(&format!("fn {t}(")));
            if !defined {
                problems.push(format!("{}: no test function {t}", row.id));
            }
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
