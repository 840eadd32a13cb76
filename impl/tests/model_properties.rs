//! The model's own always-properties judge a real run (issue #9): trace
//! validation rebuilds the run's global states and evaluates the same
//! property functions the checker evaluates on the model's states.
//!
//! A seeded bug the checker catches in the model (the primary pads its own
//! replica but does not tell the secondaries, [00105]) is switched on in
//! the TCP chunkservers; a client appends until the first chunk is full.
//! The replay shows the nodes ran that (buggy) code, so only the model's
//! APPEND-4 on the run's global states can say the run broke the
//! requirement; with the bug off the same run is clean. Bounded in time,
//! loopback only.

use leasehold::client::Client;
use leasehold::config::{ClusterConfig, Leases};
use leasehold::nodes::{self, NodeHooks};
use leasehold::validate::{validate_dir, Check, Report, ValidateOptions};
use leasehold_model::config::Bug;
use std::time::Duration;

const CHUNK_BYTES: u64 = 64 * 1024;
/// Records of a bit under a quarter chunk: the fifth does not fit.
const RECORD_BYTES: usize = 15 * 1024;
const OP_TIMEOUT: Duration = Duration::from_secs(20);
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

async fn fill_a_chunk(bug: Bug) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    let config = ClusterConfig::local_with_clients(3, 1, dir.path())
        .unwrap()
        .with_chunk_bytes(CHUNK_BYTES)
        .unwrap()
        .with_leases(Leases::Short)
        .with_trace_dir(Some(traces.clone()));
    let chunkserver = |_| NodeHooks {
        bug,
        ..NodeHooks::default()
    };
    let servers = nodes::start_servers_with(&config, NodeHooks::default(), chunkserver)
        .await
        .unwrap();
    let path = "/logs/padded";
    let client = Client::connect_with_timeout(&config, 4, OP_TIMEOUT)
        .await
        .unwrap();
    client.create(path).await.unwrap();
    let mut chunks = vec![];
    for i in 0..6u8 {
        let a = client
            .record_append_detailed(path, &vec![i; RECORD_BYTES])
            .await
            .unwrap();
        chunks.push(a.index);
    }
    assert!(
        chunks.iter().any(|i| *i > 0),
        "the first chunk filled and an append went on to the next: {chunks:?}"
    );
    client.shutdown().await;
    for s in servers {
        s.shutdown().await.unwrap();
    }
    validate_dir(&traces, &ValidateOptions::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_fills_a_chunk_satisfies_the_model_properties() {
    let r = tokio::time::timeout(TEST_TIMEOUT, fill_a_chunk(Bug::None))
        .await
        .expect("test ran past its time bound");
    eprintln!("{}", r.summary());
    assert!(r.is_clean(), "{}", r.summary());
    assert!(r.global_states_checked > 10, "{}", r.summary());
    assert_eq!(r.global_states_checked, r.global_states, "{}", r.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_does_not_pad_secondaries_breaks_the_model_append_4() {
    let r = tokio::time::timeout(
        TEST_TIMEOUT,
        fill_a_chunk(Bug::PrimaryDoesNotPadSecondaries),
    )
    .await
    .expect("test ran past its time bound");
    eprintln!("{}", r.summary());
    for f in &r.failures {
        eprintln!("{f}");
    }
    // The nodes ran the code the trace says (the bug included): replay and
    // provenance pass; the requirement does not.
    assert!(
        !r.fails(Check::Trace1) && !r.fails(Check::Trace2),
        "{}",
        r.summary()
    );
    let append_4: Vec<_> = r
        .failures
        .iter()
        .filter(|f| f.check == Check::Append4)
        .collect();
    assert!(
        append_4
            .iter()
            .any(|f| f.explanation.contains("the model's property APPEND-4")),
        "expected the model's APPEND-4 to fail on a global state: {:#?}",
        r.failures
    );
}
