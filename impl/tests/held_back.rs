//! LIVE-2 over TCP with the seeded bug that brings the stall back (issues
//! #10, #15): the same run twice, in-process nodes on loopback, one Apply
//! to a secondary lost (held by the host's send hook past the run) while a
//! client appends. With `Bug::SecondaryWaitsForLostSerial` (a secondary
//! never reports a serial it lacks) the client's retry is held back behind
//! the lost serial and appends stall past two lease periods; without it
//! the secondary reports the gap, the primary sends the lost Apply again,
//! and appends go on well inside them. Both runs record traces and must
//! validate (the bug is one of liveness: the nodes that ran it break no
//! safety property). `impl/tests/cluster.rs` has a secondary killed and
//! restarted.

use leasehold::client::Client;
use leasehold::config::{ClusterConfig, Leases};
use leasehold::nodes::{self, NodeHooks};
use leasehold::validate::{validate_dir, Report, ValidateOptions};
use leasehold_model::config::Bug;
use leasehold_model::msg::Msg;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHUNK_BYTES: u64 = 256 * 1024;
const OP_TIMEOUT: Duration = Duration::from_secs(8);
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the test watches after the loss.
const WATCH: Duration = Duration::from_secs(6);
/// Long enough to be lost for the run.
const LOST: Duration = Duration::from_secs(30);

/// The first acknowledgement after an Apply to a secondary is lost,
/// measured from the loss (`None`: none within `WATCH`), and the run's
/// trace validation.
async fn recovery_after_a_lost_apply(bug: Bug) -> (Option<Duration>, Report) {
    let dir = tempfile::tempdir().unwrap();
    let config = ClusterConfig::local_with_clients(3, 2, dir.path())
        .unwrap()
        .with_chunk_bytes(CHUNK_BYTES)
        .unwrap()
        .with_leases(Leases::Short)
        .with_trace_dir(Some(dir.path().join("traces")));
    // The secondary (id + 1) whose next Apply is lost (0: none), and when
    // it was.
    let victim = Arc::new(AtomicU64::new(0));
    let lost_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let hooks = |_| {
        let (victim, lost_at) = (victim.clone(), lost_at.clone());
        NodeHooks {
            bug,
            send_delay: Some(Box::new(move |dst, msg| {
                let to_victim = usize::from(dst) as u64 + 1 == victim.load(Ordering::SeqCst);
                let lose = matches!(msg, Msg::Apply { .. })
                    && to_victim
                    && victim.swap(0, Ordering::SeqCst) != 0;
                if lose {
                    *lost_at.lock().unwrap() = Some(Instant::now());
                }
                lose.then_some(LOST)
            })),
        }
    };
    let servers = nodes::start_servers_with(&config, NodeHooks::default(), hooks)
        .await
        .unwrap();
    let path = "/logs/held-back";
    let client = Client::connect_with_timeout(&config, 4, OP_TIMEOUT)
        .await
        .unwrap();
    client.create(path).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut acked, mut seq) = (Vec::new(), 0u32);
            while !stop.load(Ordering::Relaxed) {
                let data = format!("r{seq}:{}", "x".repeat(200)).into_bytes();
                seq += 1;
                if client.record_append(path, &data).await.is_ok() {
                    acked.push(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            client.shutdown().await;
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reader = Client::connect_with_timeout(&config, 5, OP_TIMEOUT)
        .await
        .unwrap();
    let stat = reader.stat(path).await.unwrap();
    let chunk = stat.chunks.last().unwrap().clone();
    let primary = chunk.primary.expect("a lease is held");
    let secondary = *chunk.replicas.iter().find(|r| **r != primary).unwrap();
    reader.shutdown().await;
    victim.store(secondary + 1, Ordering::SeqCst);
    tokio::time::sleep(WATCH).await;
    stop.store(true, Ordering::Relaxed);
    let acked = appender.await.unwrap();
    for s in servers {
        s.shutdown().await.unwrap();
    }
    let traces = config.trace_dir.clone().expect("traced");
    let report = validate_dir(&traces, &ValidateOptions::default()).unwrap();
    // One client appends one record at a time: the append whose Apply was
    // lost is acknowledged first of all after the loss, or none is.
    let lost = lost_at
        .lock()
        .unwrap()
        .expect("an Apply to the secondary was lost");
    let first = acked
        .iter()
        .filter(|t| **t > lost && **t < lost + WATCH)
        .map(|t| *t - lost)
        .min();
    (first, report)
}

fn assert_validated(r: &Report) {
    if let Err(e) = r.unforeseen(|_| false) {
        panic!("trace validation failed: {e}");
    }
    assert!(r.steps_replayed > 0, "{}", r.summary());
}

fn two_lease_periods() -> Duration {
    Duration::from_millis(2 * Leases::Short.durations().lease_ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_that_lost_an_apply_reports_the_gap_and_appends_go_on() {
    let (r, report) = tokio::time::timeout(TEST_TIMEOUT, recovery_after_a_lost_apply(Bug::None))
        .await
        .expect("test ran past its time bound");
    assert_validated(&report);
    eprintln!("first ack after the loss: {r:?}");
    let r = r.expect("an append acknowledged after the loss");
    assert!(r <= two_lease_periods(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_that_waits_for_lost_serials_stalls_appends() {
    let bug = Bug::SecondaryWaitsForLostSerial;
    let (r, report) = tokio::time::timeout(TEST_TIMEOUT, recovery_after_a_lost_apply(bug))
        .await
        .expect("test ran past its time bound");
    assert_validated(&report);
    eprintln!("first ack after the loss, with the bug: {r:?}");
    assert!(
        r.is_none_or(|r| r > two_lease_periods()),
        "the bug should stall appends past two lease periods: {r:?}"
    );
}
