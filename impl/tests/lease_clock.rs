//! LEASE-1 and LEASE-2 in real time over TCP (issue #9): a grant delayed at
//! the master's host must never leave the old primary acting after the
//! master's lease has ended.
//!
//! The master holds every `LeaseGrant` to chunkserver 1 (the first primary
//! of the file's first chunk) for 1.6 s, well inside the 2 s request clock
//! of the short leases, so each grant is accepted. A grant that restarted
//! the lease clock on arrival (the seeded bug `GrantRestartsLeaseClock`, the
//! code before issue #9) then makes chunkserver 1's lease end 1.6 s after
//! its request plus 2 s, past the master's 2.3 s after receiving it; a
//! second client that asks the master after that gets a lease on another
//! replica: two primaries. With the protocol as written the lease ends 2 s
//! after the request, before the master's. Trace validation of the run
//! (LEASE-1 in real time) is the judge in both cases.
//!
//! The nodes run in this process, so that the test can give the master's
//! host its hook; the clients are the library's. Bounded in time.

use leasehold::client::Client;
use leasehold::config::{ClusterConfig, Leases};
use leasehold::nodes::{self, NodeHooks, RealMsg};
use leasehold::validate::{validate_dir, ValidateOptions};
use leasehold_model::config::Bug;
use leasehold_model::msg::Msg;
use stateright::actor::Id;
use std::time::Duration;

const CHUNK_BYTES: u64 = 256 * 1024;
const GRANT_HOLD: Duration = Duration::from_millis(1_600);
/// From the first append's acknowledgement (which follows the primary's
/// extension request within milliseconds) to the second client's append:
/// past the master's expiry of that extension (2.3 s), before the buggy
/// lease's end (1.6 s + 2 s).
const IDLE: Duration = Duration::from_millis(2_700);
const OP_TIMEOUT: Duration = Duration::from_secs(20);
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs the scenario with `bug` on every chunkserver; returns the
/// validation failures' requirement IDs and their lines.
async fn delayed_grant_run(bug: Bug) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    let config = ClusterConfig::local_with_clients(3, 2, dir.path())
        .unwrap()
        .with_chunk_bytes(CHUNK_BYTES)
        .unwrap()
        .with_leases(Leases::Short)
        .with_trace_dir(Some(traces.clone()));
    let first_primary = Id::from(1);
    let hold_grants = NodeHooks {
        send_delay: Some(Box::new(move |dst, msg: &RealMsg| {
            (dst == first_primary && matches!(msg, Msg::LeaseGrant { .. })).then_some(GRANT_HOLD)
        })),
        ..NodeHooks::default()
    };
    let chunkserver = |_| NodeHooks {
        bug,
        ..NodeHooks::default()
    };
    let servers = nodes::start_servers_with(&config, hold_grants, chunkserver)
        .await
        .unwrap();
    let path = "/logs/lease-clock";
    let a = Client::connect_with_timeout(&config, 4, OP_TIMEOUT)
        .await
        .unwrap();
    a.create(path).await.unwrap();
    let first = a.record_append_detailed(path, b"first").await.unwrap();
    assert_eq!(first.chunk, 0);
    tokio::time::sleep(IDLE).await;
    // A client with no cached lease holder asks the master, whose lease of
    // chunkserver 1 has ended: it grants another replica. The first client
    // still has chunkserver 1 cached and goes there.
    let b = Client::connect_with_timeout(&config, 5, OP_TIMEOUT)
        .await
        .unwrap();
    let (from_a, from_b) = tokio::join!(
        a.record_append_detailed(path, b"second, from a"),
        b.record_append_detailed(path, b"third, from b"),
    );
    // At-least-once append: both succeed either way, possibly after retries.
    from_a.unwrap();
    from_b.unwrap();
    a.shutdown().await;
    b.shutdown().await;
    for s in servers {
        s.shutdown().await.unwrap();
    }
    let report = validate_dir(&traces, &ValidateOptions::default()).unwrap();
    assert!(report.steps_replayed > 0, "the run was traced");
    assert!(report.leases_checked > 0, "{}", report.summary());
    report
        .failures
        .iter()
        .map(|f| (f.check.id().to_string(), f.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_grant_never_makes_two_primaries() {
    let failures = tokio::time::timeout(TEST_TIMEOUT, delayed_grant_run(Bug::None))
        .await
        .expect("test ran past its time bound");
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The revert test: the lease clock before issue #9 gives two primaries in
/// real time, and trace validation says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_that_restarts_the_lease_clock_is_caught_by_trace_validation() {
    let failures = tokio::time::timeout(
        TEST_TIMEOUT,
        delayed_grant_run(Bug::GrantRestartsLeaseClock),
    )
    .await
    .expect("test ran past its time bound");
    assert!(
        failures.iter().any(|(id, _)| id == "LEASE-1"),
        "expected a LEASE-1 failure, got {failures:#?}"
    );
}
