//! The scenario where conform is one of the cluster's chunkservers: it runs
//! Leasehold's own chunkserver for an entry of the cluster file that the
//! cluster left to it (`--as-chunkserver ID`, with that entry's data
//! directory), crashes it by stopping it (its connections close, its
//! memory is gone, its chunk files stay), appends while it is down, and
//! starts it again on the same files: a stale replica. Then it judges the
//! cluster's handling of it, as clients see it: the master never names it
//! while stale (VERSION-2), and clones it back from the cluster's own
//! replicas, with the record it missed (REPL-1). How the stale replica
//! itself answers is not judged: it is Leasehold's, not the cluster's.

use std::time::{Duration, Instant};

use super::wire::Wire;
use crate::client::{ChunkStat, Client};
use crate::config::ClusterConfig;
use crate::host::RunningHost;
use crate::nodes::{self, RealMsg};
use leasehold_model::msg::{Failure, Msg};

/// Files tried, at most, for one whose chunk the master places on the
/// chunkserver conform runs (a cluster with more servers than replicas
/// may place the first elsewhere).
const PLACEMENT_TRIES: usize = 8;

/// Conform's own chunkserver: running, or stopped (crashed) between runs.
pub(super) struct OwnChunkserver {
    pub(super) id: u64,
    host: Option<RunningHost<RealMsg>>,
}

impl OwnChunkserver {
    pub(super) async fn start(cluster: &ClusterConfig, id: u64) -> Result<OwnChunkserver, String> {
        let host = nodes::start_chunkserver(cluster, id)
            .await
            .map_err(|e| format!("cannot run chunkserver {id} of the cluster file: {e}"))?;
        Ok(OwnChunkserver {
            id,
            host: Some(host),
        })
    }

    /// A crash as its peers see one: every connection closes and nothing
    /// in memory (leases, push buffers) survives; the chunk files stay.
    async fn crash(&mut self) {
        if let Some(h) = self.host.take() {
            let _ = h.shutdown().await;
        }
    }

    async fn restart(&mut self, cluster: &ClusterConfig) -> Result<(), String> {
        self.host = Some(
            nodes::start_chunkserver(cluster, self.id)
                .await
                .map_err(|e| format!("cannot restart chunkserver {}: {e}", self.id))?,
        );
        Ok(())
    }

    pub(super) async fn stop(mut self) {
        self.crash().await
    }
}

/// The scenario's verdicts: (requirement, scenario, verdict).
pub(super) type Verdicts = Vec<(&'static str, &'static str, Result<String, String>)>;

const NAMED: &str = "a replica that missed a lease's version is never named";
const BACK: &str = "a stale replica is cloned back within two lease periods and grant timeouts";
/// The scenario's parts, by requirement.
pub(super) const SCENARIOS: [(&str, &str); 2] = [("VERSION-2", NAMED), ("REPL-1", BACK)];

/// Runs the scenario on `path` (a prefix: files `path-0`, `path-1`, ...).
/// `wait` is long enough for a lease to end (the master's lease period and
/// a grant timeout).
pub(super) async fn stale_after_crash(
    cluster: &ClusterConfig,
    own: &mut OwnChunkserver,
    c: &Client,
    me: u64,
    path: &str,
    wait: Duration,
    timeout: Duration,
) -> Verdicts {
    let every = |e: String| -> Verdicts {
        SCENARIOS
            .into_iter()
            .map(|(r, s)| (r, s, Err(e.clone())))
            .collect()
    };
    // A chunk with a replica on conform's server, and a record in it.
    let mut placed = None;
    for k in 0..PLACEMENT_TRIES {
        let file = format!("{path}-{k}");
        let step = async {
            c.create(&file).await.map_err(|e| e.to_string())?;
            let a = c
                .record_append_detailed(&file, b"before the crash")
                .await
                .map_err(|e| format!("the first append: {e}"))?;
            let s = c
                .stat_chunk(&file, a.index)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((file, a, s))
        };
        match step.await {
            Ok((file, a, s)) if s.replicas.contains(&own.id) => {
                placed = Some((file, a, s));
                break;
            }
            Ok(_) => {}
            Err(e) => return every(e),
        }
    }
    let Some((file, first, before)) = placed else {
        return every(format!(
            "the master placed none of {PLACEMENT_TRIES} new files' chunks on chunkserver {}",
            own.id
        ));
    };
    own.crash().await;
    // The lease of the first append ends; the next append needs a new
    // one, with a new version, which the crashed replica misses.
    tokio::time::sleep(wait).await;
    let second = match c.record_append_detailed(&file, b"while it was down").await {
        Ok(a) if a.index == first.index => a,
        Ok(a) => {
            return every(format!(
                "the second record went to chunk {} instead of {}",
                a.index, first.index
            ))
        }
        Err(e) => {
            // The master may have named the crashed replica for the new
            // lease, which the append then could not pass: say so.
            let named = match c.stat_chunk(&file, first.index).await {
                Ok(s) if s.version > before.version && s.replicas.contains(&own.id) => format!(
                    "; the master names chunkserver {}, down since version {}, for version {}: {:?}",
                    own.id, before.version, s.version, s.replicas
                ),
                _ => String::new(),
            };
            return every(format!("appending while one replica is down: {e}{named}"));
        }
    };
    let after = match c.stat_chunk(&file, first.index).await {
        Ok(s) => s,
        Err(e) => return every(e.to_string()),
    };
    if after.version <= before.version {
        // VERSION-1 is conform's other scenario's; here there is no
        // stale replica to judge.
        return every(format!(
            "the lease after the crash kept version {} (VERSION-1)",
            after.version
        ));
    }
    let mut verdicts = Verdicts::new();
    let mut named_stale = None;
    if after.replicas.contains(&own.id) {
        named_stale = Some(format!(
            "while chunkserver {} was down (at version {}), the master named it for version {}: {:?}",
            own.id, before.version, after.version, after.replicas
        ));
    }
    if let Err(e) = own.restart(cluster).await {
        return every(e);
    }
    // Until it is back: every time the master names it, it must hold the
    // record appended while it was down.
    let bound = wait * 2;
    let started = Instant::now();
    let mut back = None;
    while started.elapsed() < bound && named_stale.is_none() {
        let s = match c.stat_chunk(&file, first.index).await {
            Ok(s) => s,
            Err(e) => return every(e.to_string()),
        };
        if s.replicas.contains(&own.id) {
            match holds(cluster, me, own.id, &s, second.offset, timeout).await {
                Ok(()) => {
                    back = Some((started.elapsed(), s));
                    break;
                }
                Err(e) => {
                    named_stale = Some(format!(
                        "the master named chunkserver {} for version {}, and it {e}",
                        own.id, s.version
                    ))
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    verdicts.push((
        "VERSION-2",
        NAMED,
        match named_stale {
            Some(e) => Err(e),
            None => Ok(format!(
                "chunkserver {} missed version {}, and was named only once it held the record appended without it",
                own.id, after.version
            )),
        },
    ));
    verdicts.push((
        "REPL-1",
        BACK,
        match back {
            Some((took, s)) => Ok(format!(
                "chunkserver {} back among {:?} at version {} after {} ms",
                own.id,
                s.replicas,
                s.version,
                took.as_millis()
            )),
            None => Err(format!(
                "chunkserver {} was not named again within {} ms of its restart",
                own.id,
                bound.as_millis()
            )),
        },
    ));
    verdicts
}

/// Whether replica `replica` holds, at `s`'s version, the framing of the
/// record at `offset` (its first bytes are the record magic).
async fn holds(
    cluster: &ClusterConfig,
    me: u64,
    replica: u64,
    s: &ChunkStat,
    offset: u64,
    timeout: Duration,
) -> Result<(), String> {
    let read = Msg::Read {
        chunk: s.chunk,
        version: s.version,
        offset,
        len: crate::record::RECORD_HEADER_BYTES,
    };
    match read_answer(cluster, me, replica, read, timeout).await? {
        Ok(bytes) if bytes.as_ref().starts_with(&crate::record::RECORD_MAGIC) => Ok(()),
        Ok(bytes) => Err(format!(
            "has no record at offset {offset} ({} bytes read)",
            bytes.len()
        )),
        Err(f) => Err(format!("refused the read: {f:?}")),
    }
}

/// Sends `read` to `replica` as client `me`, and returns its answer.
async fn read_answer(
    cluster: &ClusterConfig,
    me: u64,
    replica: u64,
    read: RealMsg,
    timeout: Duration,
) -> Result<Result<crate::payload::Bytes, Failure>, String> {
    let Msg::Read { chunk, offset, .. } = read else {
        unreachable!("only reads")
    };
    let mut wire = Wire::connect(cluster, me, &[replica]).await?;
    wire.send(replica, read).await?;
    wire.next(timeout, "read reply", |m| match m {
        Msg::ReadReply {
            chunk: c,
            offset: o,
            result,
        } if c == chunk && o == offset => Some(result),
        _ => None,
    })
    .await
}
