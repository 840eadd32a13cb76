//! `--bug NAME` on the server commands (issue #11): a seeded bug runs only
//! with `--testing`, an unknown name is refused with the known ones, and a
//! cluster started with one says so.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn leasehold() -> Command {
    Command::new(env!("CARGO_BIN_EXE_leasehold"))
}

#[test]
fn a_seeded_bug_needs_testing_and_a_known_name() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = leasehold()
            .args(["cluster", "--dir"])
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["--bug", "primary-reuses-serial"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("without --testing"), "{stderr}");
    let (code, stderr) = run(&["--bug", "no-such-bug", "--testing"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("unknown seeded bug"), "{stderr}");
    assert!(stderr.contains("primary-reuses-serial"), "{stderr}");
    // Refused before anything was made.
    assert!(!dir.path().join("cluster.toml").exists());
    let (code, stderr) = {
        let out = leasehold()
            .args(["master", "--config", "/nonexistent.toml", "--id", "0"])
            .args(["--bug", "primary-reuses-serial"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_ne!(code, Some(0));
    assert!(stderr.contains("without --testing"), "{stderr}");
}

#[test]
fn a_cluster_with_a_seeded_bug_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = leasehold()
        .args(["cluster", "--short-leases", "--clients", "1", "--dir"])
        .arg(dir.path())
        .args(["--bug", "primary-reuses-serial", "--testing"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let started = Instant::now();
    let mut seen = String::new();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        let mut text = String::new();
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if text.contains("SEEDED BUG") {
                break;
            }
        }
        text
    });
    while !reader.is_finished() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    if reader.is_finished() {
        seen = reader.join().unwrap();
    }
    assert!(seen.contains("SEEDED BUG primary-reuses-serial"), "{seen}");
}
