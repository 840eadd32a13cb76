//! Black-box conformance (issue #11, `leasehold conform`): act as clients
//! against a running cluster over the wire protocol, run scenarios grouped
//! by requirement ID, and judge only what a client can observe: where
//! acknowledged records landed, with which lease epoch and serial, what
//! reads return, which versions the master names, what it refuses.
//!
//! The clients are Leasehold's own library, so a cluster of another
//! implementation must speak the wire protocol of docs/tcp.md; nothing
//! here looks inside a server. What a client cannot see (the order
//! secondaries apply in, a lease held past its time on a server's clock)
//! is the foreign-trace validator's to judge (specs/foreign-trace.md).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::client::{Appended, ChunkStat, Client, ClientError};
use crate::config::ClusterConfig;
use crate::record::RECORD_HEADER_BYTES;
use leasehold_model::msg::Failure;
use leasehold_model::types::LeaseEpoch;

mod crash;
mod replicas;
mod wire;
use crash::OwnChunkserver;
use replicas::{on_every_replica, padded_everywhere};

/// Records each client appends in the concurrent scenario.
const CONCURRENT_RECORDS: usize = 8;
/// Records the filling scenario appends, at most, to move past chunk 0.
const FILL_RECORDS_MAX: usize = 64;

/// One scenario's verdict.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The requirement of specs/requirements.md the scenario checks.
    pub requirement: &'static str,
    pub scenario: &'static str,
    /// What was observed: a summary when it passed, the evidence when not.
    pub passed: bool,
    pub detail: String,
}

/// The scenarios' verdicts, in the order they ran.
#[derive(Clone, Debug, Default)]
pub struct ConformReport {
    pub outcomes: Vec<Outcome>,
    /// Scenarios not run, and what they need.
    pub skipped: Vec<&'static str>,
}

impl ConformReport {
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.passed)
    }

    /// Requirement, scenarios run, passed, failed with the evidence.
    pub fn table(&self) -> String {
        let mut by_req: Vec<(&str, Vec<&Outcome>)> = vec![];
        for o in &self.outcomes {
            match by_req.iter_mut().find(|(r, _)| *r == o.requirement) {
                Some((_, list)) => list.push(o),
                None => by_req.push((o.requirement, vec![o])),
            }
        }
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{:<11} {:>3} {:>6} {:>6}",
            "requirement", "run", "passed", "failed"
        );
        for (req, list) in &by_req {
            let passed = list.iter().filter(|o| o.passed).count();
            let _ = writeln!(
                t,
                "{:<11} {:>3} {:>6} {:>6}",
                req,
                list.len(),
                passed,
                list.len() - passed
            );
            for o in list {
                let mark = if o.passed { "ok  " } else { "FAIL" };
                let _ = writeln!(t, "  {mark} {}: {}", o.scenario, o.detail);
            }
        }
        t
    }
}

/// How a run is set up: the cluster file, the client places to act at (two
/// clients that append concurrently, and a third that reads replica by
/// replica),
/// and a prefix for the files it makes.
pub struct ConformOptions<'a> {
    pub cluster: ClusterConfig,
    pub clients: [u64; 3],
    pub op_timeout: Duration,
    /// A directory of the namespace no one else uses (e.g. `/conform/<n>`).
    pub prefix: String,
    /// A chunkserver entry of the cluster file that the cluster left for
    /// conform to run (with that entry's data directory), so that it can
    /// crash it and judge the stale replica it leaves; without one that
    /// scenario is skipped.
    pub chunkserver: Option<u64>,
    /// Hears of each scenario as it starts.
    pub progress: Option<&'a (dyn Fn(&str) + Sync)>,
}

/// Runs every scenario; `Err` only when the clients cannot connect.
pub async fn run(opts: &ConformOptions<'_>) -> Result<ConformReport, ClientError> {
    // Up before any file is made, so that it holds replicas like any other
    // chunkserver.
    let mut own = match opts.chunkserver {
        Some(id) => Some(OwnChunkserver::start(&opts.cluster, id).await),
        None => None,
    };
    let a = Client::connect_with_timeout(&opts.cluster, opts.clients[0], opts.op_timeout).await?;
    let b = Client::connect_with_timeout(&opts.cluster, opts.clients[1], opts.op_timeout).await?;
    let chunk_bytes = a.chunk_bytes();
    let mut report = ConformReport::default();
    let mut record = |requirement, scenario, result: Result<String, String>| {
        let (passed, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        report.outcomes.push(Outcome {
            requirement,
            scenario,
            passed,
            detail,
        });
    };
    let tell = |s: &str| {
        if let Some(p) = opts.progress {
            p(s)
        }
    };
    let path = |name: &str| format!("{}/{name}", opts.prefix);

    // Two clients append to one new file at once ([00106]).
    tell("concurrent record appends to one chunk");
    let concurrent = path("concurrent");
    let acks = concurrent_appends(&a, &b, &concurrent).await;
    match acks {
        Err(e) => {
            for (req, scenario) in [
                ("APPEND-2", "concurrent appends land apart"),
                ("ORDER-1", "each acknowledged mutation has its own serial"),
                ("APPEND-1", "acknowledged records read back whole"),
                ("APPEND-1", "every replica holds each acknowledged record"),
            ] {
                record(req, scenario, Err(format!("the appends failed: {e}")));
            }
        }
        Ok(acks) => {
            record("APPEND-2", "concurrent appends land apart", disjoint(&acks));
            record(
                "ORDER-1",
                "each acknowledged mutation has its own serial",
                own_serials(&acks),
            );
            tell("reading the acknowledged records back");
            record(
                "APPEND-1",
                "acknowledged records read back whole",
                read_back(&a, &concurrent, &acks).await,
            );
            tell("reading them from every replica");
            record(
                "APPEND-1",
                "every replica holds each acknowledged record",
                on_every_replica(opts, &a, &concurrent, &acks).await,
            );
        }
    }

    // One client fills a chunk ([00104], [00105]).
    tell("a chunk filled until a record does not fit");
    let fill = path("fill");
    match fill_chunk(&a, &fill, chunk_bytes).await {
        Err(e) => {
            record(
                "APPEND-3",
                "no record crosses a chunk boundary",
                Err(e.clone()),
            );
            record(
                "APPEND-4",
                "a record goes on only when it does not fit",
                Err(e),
            );
        }
        Ok(acks) => {
            record(
                "APPEND-3",
                "no record crosses a chunk boundary",
                within_chunks(&acks, chunk_bytes),
            );
            record(
                "APPEND-4",
                "a record goes on only when it does not fit",
                moved_only_when_full(&acks, chunk_bytes),
            );
            tell("reading the padded chunk from every replica");
            record(
                "APPEND-4",
                "every replica of the full chunk is padded to its end",
                padded_everywhere(opts, &a, &fill, &acks, chunk_bytes).await,
            );
        }
    }

    tell("a record over a quarter chunk");
    record(
        "APPEND-3",
        "a record over a quarter chunk is refused",
        oversized(&a, &path("oversized"), chunk_bytes).await,
    );

    tell("a write across a chunk boundary");
    record(
        "WRITE-1",
        "a write across a chunk boundary reads back",
        write_across(&a, &path("write"), chunk_bytes).await,
    );

    tell("paths the master must refuse");
    record("PATH-1", "bad paths are refused", bad_paths(&a).await);

    let wait = Duration::from_millis(
        opts.cluster.leases.durations().master_lease_ms
            + opts.cluster.leases.durations().grant_timeout_ms,
    );
    tell(&format!(
        "waiting out a lease ({} ms) for a new one",
        wait.as_millis()
    ));
    let (version, leases) = version_after_expiry(&a, &path("version"), wait)
        .await
        .unwrap_or_else(|e| (Err(e), None));
    record(
        "VERSION-1",
        "a new lease has a higher chunk version",
        version,
    );

    a.shutdown().await;
    b.shutdown().await;
    // As client 0 again, speaking the wire itself: its library client is
    // closed, so no answer can go astray to it.
    if let Some((now, Some(old_epoch))) = &leases {
        tell("a record append under the lease that ended");
        record(
            "SNAP-1",
            "a primary refuses a mutation under an earlier lease",
            wire::late_mutation(
                &opts.cluster,
                opts.clients[0],
                now,
                *old_epoch,
                opts.op_timeout,
            )
            .await,
        );
    }
    if let Some((now, _)) = &leases {
        tell("one record append delivered twice");
        record(
            "PUSH-2",
            "a record append delivered twice is applied once",
            wire::duplicated_mutation(&opts.cluster, opts.clients[0], now, opts.op_timeout).await,
        );
    }
    match own.take() {
        None => {}
        Some(Err(e)) => {
            for (req, scenario) in crash::SCENARIOS {
                record(req, scenario, Err(e.clone()));
            }
        }
        Some(Ok(mut own)) => {
            tell(&format!(
                "crashing chunkserver {}, appending without it, restarting it stale",
                own.id
            ));
            let c = Client::connect_with_timeout(&opts.cluster, opts.clients[1], opts.op_timeout)
                .await?;
            for (req, scenario, verdict) in crash::stale_after_crash(
                &opts.cluster,
                &mut own,
                &c,
                opts.clients[0],
                &path("crash"),
                wait,
                opts.op_timeout,
            )
            .await
            {
                record(req, scenario, verdict);
            }
            c.shutdown().await;
            own.stop().await;
        }
    }
    if opts.chunkserver.is_none() {
        report
            .skipped
            .push("a stale replica after a crash (needs --as-chunkserver ID)");
    }
    Ok(report)
}

fn framed(data_len: usize) -> u64 {
    RECORD_HEADER_BYTES + data_len as u64
}

/// Record `k` of client `c`: its bytes name it.
fn data(c: usize, k: usize, len: usize) -> Vec<u8> {
    let mut d = format!("c{c}-r{k}:").into_bytes();
    d.resize(len, b'a' + (k % 26) as u8);
    d
}

async fn concurrent_appends(
    a: &Client,
    b: &Client,
    path: &str,
) -> Result<Vec<(Appended, Vec<u8>)>, String> {
    a.create(path).await.map_err(|e| e.to_string())?;
    let run = |c: Client, n: usize| {
        let path = path.to_string();
        tokio::spawn(async move {
            let mut acks = vec![];
            for k in 0..CONCURRENT_RECORDS {
                let d = data(n, k, 100);
                let ack = c
                    .record_append_detailed(&path, &d)
                    .await
                    .map_err(|e| e.to_string())?;
                acks.push((ack, d));
            }
            Ok::<_, String>(acks)
        })
    };
    let ta = run(a.clone(), 0);
    let tb = run(b.clone(), 1);
    let mut acks = ta.await.map_err(|e| e.to_string())??;
    acks.extend(tb.await.map_err(|e| e.to_string())??);
    Ok(acks)
}

/// APPEND-2: no two acknowledged records of one chunk overlap.
fn disjoint(acks: &[(Appended, Vec<u8>)]) -> Result<String, String> {
    for (i, (x, dx)) in acks.iter().enumerate() {
        for (y, dy) in &acks[i + 1..] {
            let overlap = x.chunk == y.chunk
                && x.offset < y.offset + framed(dy.len())
                && y.offset < x.offset + framed(dx.len());
            if overlap {
                return Err(format!(
                    "records acknowledged at chunk {} offsets {} and {} overlap",
                    x.chunk, x.offset, y.offset
                ));
            }
        }
    }
    Ok(format!("{} records, no two overlap", acks.len()))
}

/// ORDER-1: the primary gives each mutation of its lease its own serial.
fn own_serials(acks: &[(Appended, Vec<u8>)]) -> Result<String, String> {
    for (i, (x, _)) in acks.iter().enumerate() {
        if let Some((y, _)) = acks[i + 1..]
            .iter()
            .find(|(y, _)| y.chunk == x.chunk && y.stamp == x.stamp)
        {
            return Err(format!(
                "two records of chunk {} acknowledged under the same {:?} (offsets {} and {})",
                x.chunk, x.stamp, x.offset, y.offset
            ));
        }
    }
    Ok(format!("{} distinct (epoch, serial)", acks.len()))
}

/// APPEND-1: each acknowledged record is at its offset, whole, and the
/// record reader finds it.
async fn read_back(c: &Client, path: &str, acks: &[(Appended, Vec<u8>)]) -> Result<String, String> {
    for (ack, d) in acks {
        let bytes = c
            .read_chunk(path, ack.index, ack.offset, framed(d.len()))
            .await
            .map_err(|e| format!("reading chunk {} at {}: {e}", ack.index, ack.offset))?;
        let found = crate::record::scan(bytes.as_ref(), u64::MAX);
        match found.first() {
            Some(r) if r.at == 0 && r.id == ack.record_id && r.data == d.as_slice() => {}
            _ => {
                return Err(format!(
                    "chunk {} at {} does not hold the record acknowledged there",
                    ack.index, ack.offset
                ))
            }
        }
    }
    let found = c.read_records(path).await.map_err(|e| e.to_string())?;
    let missing = acks
        .iter()
        .filter(|(a, _)| !found.iter().any(|r| r.id == a.record_id))
        .count();
    if missing > 0 {
        return Err(format!(
            "{missing} acknowledged records missing from the file"
        ));
    }
    Ok(format!("{} records at their offsets", acks.len()))
}

/// Appends records of two ninths of a chunk until one lands in chunk 1:
/// four fit, the fifth leaves a ninth of the chunk to padding.
async fn fill_chunk(
    c: &Client,
    path: &str,
    chunk_bytes: u64,
) -> Result<Vec<(Appended, Vec<u8>)>, String> {
    c.create(path).await.map_err(|e| e.to_string())?;
    let len = (chunk_bytes * 2 / 9)
        .saturating_sub(RECORD_HEADER_BYTES)
        .max(1) as usize;
    let mut acks = vec![];
    for k in 0..FILL_RECORDS_MAX {
        let d = data(0, k, len);
        let ack = c
            .record_append_detailed(path, &d)
            .await
            .map_err(|e| format!("append {k}: {e}"))?;
        let moved_on = ack.index > 0;
        acks.push((ack, d));
        if moved_on {
            return Ok(acks);
        }
    }
    Err(format!(
        "{FILL_RECORDS_MAX} records of {len} bytes never left chunk 0 of a {chunk_bytes}-byte chunk"
    ))
}

/// APPEND-3: every acknowledged record ends inside its chunk.
fn within_chunks(acks: &[(Appended, Vec<u8>)], chunk_bytes: u64) -> Result<String, String> {
    match acks
        .iter()
        .find(|(a, d)| a.offset + framed(d.len()) > chunk_bytes)
    {
        Some((a, d)) => Err(format!(
            "a {}-byte record acknowledged at chunk {} offset {} ends past the chunk's {} bytes",
            framed(d.len()),
            a.index,
            a.offset,
            chunk_bytes
        )),
        None => Ok(format!("{} records inside their chunks", acks.len())),
    }
}

/// APPEND-4: one client's records follow each other; a record goes to the
/// next chunk (at offset 0) only when it would not have fit after the last.
fn moved_only_when_full(acks: &[(Appended, Vec<u8>)], chunk_bytes: u64) -> Result<String, String> {
    let mut end = 0;
    let mut index = 0;
    for (a, d) in acks {
        let size = framed(d.len());
        if a.index == index {
            if a.offset != end {
                return Err(format!(
                    "a record acknowledged at chunk {index} offset {} after one ending at {end}",
                    a.offset
                ));
            }
        } else {
            if end + size <= chunk_bytes {
                return Err(format!(
                    "a {size}-byte record went to chunk {} although chunk {index} had room ({end} of {chunk_bytes} bytes used)",
                    a.index
                ));
            }
            if a.index != index + 1 || a.offset != 0 {
                return Err(format!(
                    "the record that did not fit went to chunk {} offset {}, not chunk {} offset 0",
                    a.index,
                    a.offset,
                    index + 1
                ));
            }
            index = a.index;
        }
        end = a.offset + size;
    }
    Ok(format!(
        "{} records; the first that did not fit opened chunk {index}",
        acks.len()
    ))
}

/// APPEND-3: the primary itself refuses a record over a quarter chunk
/// ([00104]), sent without the library's own check.
async fn oversized(c: &Client, path: &str, chunk_bytes: u64) -> Result<String, String> {
    c.create(path).await.map_err(|e| e.to_string())?;
    let len = (chunk_bytes / 4 + 1 - RECORD_HEADER_BYTES) as usize;
    match c.record_append_unchecked(path, &data(0, 0, len)).await {
        Err(ClientError::Failed {
            reason: Failure::TooLarge,
            ..
        }) => Ok(format!("a {}-byte record refused", framed(len))),
        Err(e) => Err(format!(
            "a {}-byte record failed otherwise: {e}",
            framed(len)
        )),
        Ok(a) => Err(format!(
            "a {}-byte record, over a quarter of {chunk_bytes}, acknowledged at chunk {} offset {}",
            framed(len),
            a.index,
            a.offset
        )),
    }
}

/// WRITE-1: a serial write across a chunk boundary reads back as written.
async fn write_across(c: &Client, path: &str, chunk_bytes: u64) -> Result<String, String> {
    c.create(path).await.map_err(|e| e.to_string())?;
    let offset = chunk_bytes - 100;
    let written: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    c.write(path, offset, &written)
        .await
        .map_err(|e| format!("the write failed: {e}"))?;
    let read = c
        .read(path, offset, written.len() as u64)
        .await
        .map_err(|e| format!("reading it back: {e}"))?;
    if read != written {
        return Err(format!(
            "wrote 300 bytes at {offset}, read back {} bytes that differ",
            read.len()
        ));
    }
    Ok(format!("300 bytes across the boundary at {chunk_bytes}"))
}

/// PATH-1: relative, empty and dot-component paths are refused.
async fn bad_paths(c: &Client) -> Result<String, String> {
    let bad = ["relative/name", "", "/a/../b", "/a//b", "/a/./b"];
    for p in bad {
        match c.create(p).await {
            Err(ClientError::BadPath { .. }) => {}
            Err(e) => return Err(format!("{p:?} refused, but as {e}")),
            Ok(_) => return Err(format!("{p:?} was created")),
        }
    }
    Ok(format!("{} refused as bad paths", bad.len()))
}

/// VERSION-1: after the lease of a chunk runs out, the next mutation's
/// lease comes with a higher chunk version. The verdict, and the chunk's
/// stat just after the second append (for [`wire::duplicated_mutation`])
/// with, when a second lease was granted, the first lease's epoch (for
/// [`wire::late_mutation`]); `Err` when the scenario could not run.
async fn version_after_expiry(
    c: &Client,
    path: &str,
    wait: Duration,
) -> Result<
    (
        Result<String, String>,
        Option<(ChunkStat, Option<LeaseEpoch>)>,
    ),
    String,
> {
    c.create(path).await.map_err(|e| e.to_string())?;
    let first = c
        .record_append_detailed(path, b"before")
        .await
        .map_err(|e| e.to_string())?;
    let v1 = c
        .stat_chunk(path, first.index)
        .await
        .map_err(|e| e.to_string())?
        .version;
    let started = Instant::now();
    tokio::time::sleep(wait).await;
    let second = c
        .record_append_detailed(path, b"after")
        .await
        .map_err(|e| e.to_string())?;
    let s = c
        .stat_chunk(path, second.index)
        .await
        .map_err(|e| e.to_string())?;
    if second.stamp.epoch == first.stamp.epoch {
        let verdict = Ok(format!(
            "the lease was still held after {} ms (extended), nothing to judge",
            started.elapsed().as_millis()
        ));
        return Ok((verdict, Some((s, None))));
    }
    let verdict = if s.version <= v1 {
        Err(format!(
            "lease epoch {} came with version {}, the same as epoch {}'s",
            second.stamp.epoch, s.version, first.stamp.epoch
        ))
    } else {
        Ok(format!(
            "epoch {} at version {v1}, epoch {} at version {}",
            first.stamp.epoch, second.stamp.epoch, s.version
        ))
    };
    Ok((verdict, Some((s, Some(first.stamp.epoch)))))
}
