//! READ-1 on real runs (issues #10, #11): `validate` checks both halves of
//! READ-1 on the traces of in-process nodes on loopback, and each half is
//! shown to fail where a seeded bug breaks it:
//! - a client that reads from the farthest replica (`client-reads-farthest`,
//!   in the client's own actor) breaks the step rule at its step;
//! - a primary that acknowledges before its secondaries applied
//!   (`primary-acks-before-secondaries`), with the Apply to the replica the
//!   client reads from held back by the host's send hook, lets a read that
//!   started after the acknowledgement come back without the record.
//!
//! The same runs without the bugs validate clean.

use leasehold::client::Client;
use leasehold::config::{ClusterConfig, Leases};
use leasehold::nodes::{self, NodeHooks};
use leasehold::record::RECORD_HEADER_BYTES;
use leasehold::validate::{validate_dir, Check, Report, ValidateOptions};
use leasehold_model::config::Bug;
use leasehold_model::msg::Msg;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CHUNK_BYTES: u64 = 256 * 1024;
const OP_TIMEOUT: Duration = Duration::from_secs(8);
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Long enough that a held Apply arrives after the read.
const HELD: Duration = Duration::from_secs(3);
/// The client place whose reads these tests look at; its closest
/// chunkserver is 3 (`ClusterConfig::local_with_clients` places clients
/// beside the last chunkserver).
const READER: u64 = 4;
const CLOSEST: u64 = 3;

fn config(dir: &std::path::Path) -> ClusterConfig {
    ClusterConfig::local_with_clients(3, 2, dir)
        .unwrap()
        .with_chunk_bytes(CHUNK_BYTES)
        .unwrap()
        .with_leases(Leases::Short)
        .with_trace_dir(Some(dir.join("traces")))
}

/// Reads back the framed `record` at `offset` of the file's first chunk;
/// what came after its header (nothing if it came back short).
async fn read_record(client: &Client, path: &str, offset: u64, record: &[u8]) -> Vec<u8> {
    let len = RECORD_HEADER_BYTES + record.len() as u64;
    let got = client.read_chunk(path, 0, offset, len).await.unwrap();
    got.as_slice()
        .get(RECORD_HEADER_BYTES as usize..)
        .unwrap_or_default()
        .to_vec()
}

fn assert_clean(report: &Report) {
    if let Err(e) = report.unforeseen(|_| false) {
        panic!("trace validation failed: {e}");
    }
}

fn validated(config: &ClusterConfig) -> Report {
    let traces = config.trace_dir.clone().expect("traced");
    let report = validate_dir(&traces, &ValidateOptions::default()).unwrap();
    assert!(report.steps_replayed > 0, "{}", report.summary());
    report
}

/// Appends a record with a client of its own, then reads it back with a
/// client at `READER` carrying `client_bug`; the record and what came back
/// after its framing.
async fn read_back(client_bug: Bug) -> (Vec<u8>, Vec<u8>, Report) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let servers =
        nodes::start_servers_with(&config, NodeHooks::default(), |_| NodeHooks::default())
            .await
            .unwrap();
    let path = "/logs/read-back";
    let writer = Client::connect_with_timeout(&config, 5, OP_TIMEOUT)
        .await
        .unwrap();
    writer.create(path).await.unwrap();
    let record = b"read me back".repeat(20);
    let at = writer.record_append_detailed(path, &record).await.unwrap();
    writer.shutdown().await;
    let reader = Client::connect_with_bug(&config, READER, OP_TIMEOUT, client_bug)
        .await
        .unwrap();
    let got = read_record(&reader, path, at.offset, &record).await;
    reader.shutdown().await;
    for s in servers {
        s.shutdown().await.unwrap();
    }
    (record, got, validated(&config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_a_real_run_validate_and_go_to_the_closest_replica() {
    let (record, got, report) = tokio::time::timeout(TEST_TIMEOUT, read_back(Bug::None))
        .await
        .expect("test ran past its time bound");
    assert_eq!(got, record);
    assert_clean(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_catches_a_read_from_a_farther_replica_on_a_real_run() {
    let (record, got, report) =
        tokio::time::timeout(TEST_TIMEOUT, read_back(Bug::ClientReadsFarthest))
            .await
            .expect("test ran past its time bound");
    // Every replica holds the record: only where it was read from is wrong.
    assert_eq!(got, record);
    assert!(
        !report.failures.is_empty()
            && report.failures.iter().all(|f| f.check == Check::Read1
                && f.explanation
                    .contains(&format!("replica {CLOSEST} is closer"))),
        "{:#?}",
        report.failures
    );
}

/// A first record, then a second one whose Apply to the secondaries the
/// host holds back for `HELD`, then a read of the second at once from the
/// closest replica; with `bug` on the chunkservers. The record, what the
/// read returned after its framing, and the report.
async fn read_before_apply(bug: Bug) -> (Vec<u8>, Vec<u8>, Report) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    // Chunkserver id + 1 whose Applies are held (0: none yet).
    let held_to = Arc::new(AtomicU64::new(0));
    let hooks = |_| {
        let held_to = held_to.clone();
        NodeHooks {
            bug,
            send_delay: Some(Box::new(move |dst, msg| {
                let to = usize::from(dst) as u64 + 1;
                (matches!(msg, Msg::Apply { .. }) && to == held_to.load(Ordering::SeqCst))
                    .then_some(HELD)
            })),
        }
    };
    let servers = nodes::start_servers_with(&config, NodeHooks::default(), hooks)
        .await
        .unwrap();
    let path = "/logs/read-before-apply";
    let client = Client::connect_with_timeout(&config, READER, OP_TIMEOUT)
        .await
        .unwrap();
    client.create(path).await.unwrap();
    client.record_append(path, b"first").await.unwrap();
    let stat = client.stat(path).await.unwrap();
    let primary = stat.chunks[0].primary.expect("a lease is held");
    assert_ne!(
        primary, CLOSEST,
        "the test needs the reader's closest replica to be a secondary"
    );
    held_to.store(CLOSEST + 1, Ordering::SeqCst);
    let record = b"second, held back".repeat(10);
    let at = client.record_append_detailed(path, &record).await.unwrap();
    let got = read_record(&client, path, at.offset, &record).await;
    // Let the held Apply land before the nodes stop.
    tokio::time::sleep(HELD).await;
    client.shutdown().await;
    for s in servers {
        s.shutdown().await.unwrap();
    }
    (record, got, validated(&config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_an_acknowledgement_returns_the_record_on_a_real_run() {
    let (record, got, report) = tokio::time::timeout(TEST_TIMEOUT, read_before_apply(Bug::None))
        .await
        .expect("test ran past its time bound");
    assert_eq!(got, record, "the acknowledgement waited for every replica");
    assert_clean(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_catches_a_read_missing_an_acknowledged_record_on_a_real_run() {
    let bug = Bug::PrimaryAcksBeforeSecondaries;
    let (record, got, report) = tokio::time::timeout(TEST_TIMEOUT, read_before_apply(bug))
        .await
        .expect("test ran past its time bound");
    assert_ne!(got, record, "the closest replica had not applied it yet");
    // An early acknowledgement itself breaks APPEND-1 and VERSION-1/2
    // (the record is not on every replica counted up to date); the read
    // that missed it breaks READ-1.
    let checks: Vec<Check> = report.failures.iter().map(|f| f.check).collect();
    assert!(checks.contains(&Check::Read1), "{:#?}", report.failures);
    assert!(
        checks.iter().all(|c| matches!(
            c,
            Check::Read1 | Check::Append1 | Check::Version1 | Check::Version2
        )),
        "{:#?}",
        report.failures
    );
}
