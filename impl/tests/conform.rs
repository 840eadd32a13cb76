//! `leasehold conform` (issue #11): black-box scenarios by requirement,
//! run as clients against a real cluster. A correct cluster passes every
//! one; a cluster running a seeded bug fails the scenario of the
//! requirement that bug breaks.

use leasehold::config::{ClusterConfig, Leases, Role};
use leasehold::conform::{run, ConformOptions, ConformReport};
use leasehold::nodes::{self, NodeHooks};
use leasehold_model::config::Bug;
use std::path::Path;
use std::time::Duration;

const CHUNK_BYTES: u64 = 64 * 1024;
/// Short: a bug that stalls appends fails its scenarios by timing out.
const OP_TIMEOUT: Duration = Duration::from_secs(3);

fn cluster(dir: &Path) -> ClusterConfig {
    ClusterConfig::local_with_clients(3, 3, dir)
        .unwrap()
        .with_chunk_bytes(CHUNK_BYTES)
        .unwrap()
        .with_leases(Leases::Short)
}

/// Runs every scenario against a fresh local cluster whose servers all
/// run `bug`.
fn conform_with(bug: Bug) -> ConformReport {
    let dir = tempfile::tempdir().unwrap();
    conform_on(cluster(dir.path()), bug, false)
}

/// [`conform_with`] where conform runs the last chunkserver itself (its
/// own, without the bug), to crash it and judge the stale replica.
fn conform_as_chunkserver_with(bug: Bug) -> ConformReport {
    let dir = tempfile::tempdir().unwrap();
    conform_on(cluster(dir.path()), bug, true)
}

fn conform_on(cluster: ClusterConfig, bug: Bug, own_chunkserver: bool) -> ConformReport {
    let hooks = || NodeHooks {
        bug,
        ..NodeHooks::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let own = own_chunkserver.then(|| {
            let ids = cluster.ids_with_role(Role::Chunkserver);
            usize::from(*ids.last().unwrap()) as u64
        });
        let mut servers = vec![];
        for id in cluster.ids_with_role(Role::Master) {
            let id = usize::from(id) as u64;
            servers.push(
                nodes::start_master_with(&cluster, id, hooks())
                    .await
                    .unwrap(),
            );
        }
        for id in cluster.ids_with_role(Role::Chunkserver) {
            let id = usize::from(id) as u64;
            if Some(id) != own {
                servers.push(
                    nodes::start_chunkserver_with(&cluster, id, hooks())
                        .await
                        .unwrap(),
                );
            }
        }
        let clients: Vec<u64> = cluster
            .ids_with_role(Role::Client)
            .into_iter()
            .map(|i| usize::from(i) as u64)
            .collect();
        let report = run(&ConformOptions {
            cluster: cluster.clone(),
            clients: [clients[0], clients[1], clients[2]],
            op_timeout: OP_TIMEOUT,
            prefix: "/conform/test".into(),
            progress: None,
            chunkserver: own,
        })
        .await
        .unwrap();
        for s in servers {
            s.shutdown().await.unwrap();
        }
        eprintln!("{bug:?}:\n{}", report.table());
        report
    })
}

fn failed(r: &ConformReport) -> Vec<&'static str> {
    r.outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.requirement)
        .collect()
}

#[test]
fn a_correct_cluster_passes_every_scenario() {
    let r = conform_as_chunkserver_with(Bug::None);
    assert!(r.passed(), "{}", r.table());
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    let reqs: Vec<&str> = r.outcomes.iter().map(|o| o.requirement).collect();
    for req in [
        "APPEND-1",
        "APPEND-2",
        "APPEND-3",
        "APPEND-4",
        "ORDER-1",
        "WRITE-1",
        "PATH-1",
        "VERSION-1",
        "SNAP-1",
        "PUSH-2",
        "VERSION-2",
        "REPL-1",
    ] {
        assert!(reqs.contains(&req), "{req} has no scenario");
    }
    // The injected scenarios judged something: a lease was held to send
    // the duplicate under.
    let push_2 = r
        .outcomes
        .iter()
        .find(|o| o.requirement == "PUSH-2")
        .unwrap();
    assert!(push_2.detail.contains("applied once"), "{}", r.table());
}

#[test]
fn eight_seeded_bugs_fail_the_scenario_of_the_requirement_they_break() {
    for (bug, requirement) in [
        (Bug::PrimarySkipsFitCheck, "APPEND-3"),
        (Bug::PrimarySkipsSizeCheck, "APPEND-3"),
        (Bug::PrimaryPadsAlthoughRecordFits, "APPEND-4"),
        (Bug::VersionNotIncremented, "VERSION-1"),
        (Bug::PrimaryReusesSerial, "ORDER-1"),
        (Bug::PrimaryDoesNotPadSecondaries, "APPEND-4"),
        (Bug::PrimaryTakesAnyEpoch, "SNAP-1"),
        (Bug::PrimaryKeepsUsedData, "PUSH-2"),
    ] {
        let r = conform_with(bug);
        assert!(
            failed(&r).contains(&requirement),
            "{bug:?} should fail {requirement}:\n{}",
            r.table()
        );
    }
}

/// The crash scenario judges the cluster's master: conform's own
/// chunkserver, crashed and restarted stale, must not be named until it is
/// cloned back, and must be cloned back.
#[test]
fn masters_that_mishandle_a_stale_replica_fail_the_crash_scenario() {
    for (bug, requirement) in [
        (Bug::StaleReplicaHandedToClient, "VERSION-2"),
        (Bug::StaleReplicaNeverCloned, "REPL-1"),
    ] {
        let r = conform_as_chunkserver_with(bug);
        assert!(
            failed(&r).contains(&requirement),
            "{bug:?} should fail {requirement}:\n{}",
            r.table()
        );
    }
}

#[test]
fn the_cli_prints_the_table_and_exits_by_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path());
    let config = dir.path().join("cluster.toml");
    cluster.write(&config).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let servers = rt.block_on(nodes::start_servers_with(
        &cluster,
        NodeHooks::default(),
        |_| NodeHooks::default(),
    ));
    let servers = servers.unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["conform", "--timeout-ms", "5000", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("requirement run passed failed"), "{stdout}");
    assert!(stdout.contains("all 13 scenarios passed"), "{stdout}");
    assert!(
        stdout.contains("skipped: a stale replica after a crash (needs --as-chunkserver ID)"),
        "{stdout}"
    );
    rt.block_on(async {
        for s in servers {
            s.shutdown().await.unwrap();
        }
    });
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["conform", "--config"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Without configured positions every node of a one-host cluster is as
/// close as any other: a reader cannot be placed beside one replica, and
/// conform says so instead of judging whichever replica answers.
#[test]
fn replicas_that_cannot_be_told_apart_by_position_fail_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster(dir.path());
    for n in &mut cluster.nodes {
        n.position = None;
    }
    let r = conform_on(cluster, Bug::None, false);
    let per_replica = r
        .outcomes
        .iter()
        .find(|o| o.scenario == "every replica holds each acknowledged record")
        .unwrap();
    assert!(!per_replica.passed);
    assert!(
        per_replica.detail.contains("positions tie"),
        "{}",
        per_replica.detail
    );
}
