//! The foreign-trace example in specs/ (specs/foreign-trace.md) is a real
//! run: one client appending two records to three replicas, exported from
//! Leasehold's own traces. It must stay valid as the protocol changes, and
//! a change to what a node sent must show.

use leasehold::trace::{read_foreign_run, TraceCommand};
use leasehold::validate::{validate_foreign, validate_foreign_dir, Check, ValidateOptions};
use leasehold_model::msg::{Msg, OpResult};
use std::path::PathBuf;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/examples/foreign-append")
}

#[test]
fn the_specs_foreign_example_validates_clean() {
    let r = validate_foreign_dir(&example(), &ValidateOptions::default()).unwrap();
    assert!(r.is_clean(), "{}: {:?}", r.summary(), r.failures);
    assert_eq!(r.nodes, 5);
    assert_eq!(r.steps_replayed, r.steps_recorded);
    assert_eq!(r.messages_matched, r.messages_received);
    assert_eq!(r.acks_checked, 2, "{}", r.summary());
    assert_eq!(r.leases_checked, 1, "{}", r.summary());
}

/// The example's client acknowledged to its application an offset the
/// primary never sent: TRACE-1 at the client's step, since the model's
/// client reports what the primary told it.
#[test]
fn the_specs_foreign_example_with_a_changed_acknowledgement_fails() {
    let mut traces = read_foreign_run(&example()).unwrap();
    let mut changed = false;
    for t in &mut traces {
        for s in &mut t.trace.steps {
            for c in &mut s.commands {
                if let TraceCommand::Send {
                    msg:
                        Msg::Done {
                            result: OpResult::Mutated { offset, .. },
                            ..
                        },
                    ..
                } = c
                {
                    if !changed {
                        *offset += 7;
                        changed = true;
                    }
                }
            }
        }
    }
    assert!(changed);
    let r = validate_foreign(traces, &ValidateOptions::default()).unwrap();
    assert!(!r.is_clean());
    assert!(
        r.failures.iter().any(|f| f.check == Check::Trace1),
        "{:?}",
        r.failures
    );
}

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/foreign-trace.schema.json")
}

/// The schema in specs/ is the one made from the types the reader decodes
/// (`LEASEHOLD_BLESS=1` rewrites it after a change to them).
#[test]
fn the_specs_schema_is_made_from_the_reader_s_types() {
    let made = leasehold::trace::foreign_schema();
    if std::env::var_os("LEASEHOLD_BLESS").is_some() {
        std::fs::write(schema_path(), &made).unwrap();
    }
    let committed = std::fs::read_to_string(schema_path()).unwrap();
    assert!(
        committed == made,
        "specs/foreign-trace.schema.json is stale; rewrite it with \
         LEASEHOLD_BLESS=1 cargo test --release -p leasehold --test foreign_examples"
    );
}

/// Every line of the example is valid under the schema, by an
/// independent validator (Python's `jsonschema`, which .ci/run installs),
/// and a line the reader refuses is refused by the schema too.
#[test]
fn the_specs_example_lines_are_valid_under_the_schema() {
    let script = r#"
import json, sys, pathlib
from jsonschema import Draft202012Validator
schema = json.loads(pathlib.Path(sys.argv[1]).read_text())
v = Draft202012Validator(schema)
lines = 0
for f in sorted(pathlib.Path(sys.argv[2]).glob("*.jsonl")):
    for n, line in enumerate(f.read_text().splitlines()):
        errors = list(v.iter_errors(json.loads(line)))
        if errors:
            print(f"{f.name}:{n + 1}: {errors[0].message[:300]}")
            sys.exit(1)
        lines += 1
bad = {"step": {"n": 0, "clock_ns": 1, "input": {"Timer": "NoSuchTimer"}, "commands": []}}
if v.is_valid(bad):
    print("the schema takes a timer that does not exist")
    sys.exit(1)
print(lines)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(schema_path())
        .arg(example())
        .output()
        .expect("python3 runs (see .ci/run)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{stdout}{stderr}\n(needs Python's jsonschema: pip install jsonschema)"
    );
    let lines: usize = stdout.trim().parse().unwrap();
    assert!(lines > 100, "{stdout}");
    // The reader refuses that line as well.
    let dir = tempfile::tempdir().unwrap();
    let header = std::fs::read_to_string(example().join("node-1.0.jsonl")).unwrap();
    let header = header.lines().next().unwrap();
    std::fs::write(
        dir.path().join("node-1.0.jsonl"),
        format!(
            "{header}\n{}\n",
            r#"{"step": {"n": 0, "clock_ns": 1, "input": {"Timer": "NoSuchTimer"}, "commands": []}}"#
        ),
    )
    .unwrap();
    let e = read_foreign_run(dir.path()).unwrap_err().to_string();
    assert!(e.contains("NoSuchTimer"), "{e}");
}
