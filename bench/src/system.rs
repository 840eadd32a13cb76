//! Leasehold over TCP: a local cluster (master + chunkservers in one child
//! `leasehold cluster` process, like a user runs it) and clients hosted in
//! this process through the client library, all on loopback.

use super::proc::Server;
use super::stats::{latency, median, Latency};
use leasehold::client::Client;
use leasehold::config::{ClusterConfig, Role};
use leasehold::filestore::Durability;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a started cluster may take to print its banner.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of one benchmark operation (a healthy cluster answers in
/// milliseconds; this only keeps a broken run from hanging).
const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running local cluster and its clients.
pub struct LocalCluster {
    pub config: ClusterConfig,
    pub clients: Vec<Client>,
    server: Server,
    pub dir: PathBuf,
}

impl LocalCluster {
    /// Writes a cluster file with `chunkservers` chunkservers and `clients`
    /// client ids under `dir`, starts `leasehold cluster --dir dir` and
    /// connects the clients; every node (clients too) records a step trace
    /// in `trace_dir` if given.
    pub async fn start_traced(
        dir: &Path,
        chunkservers: usize,
        clients: usize,
        durability: Durability,
        push_fragment_bytes: u64,
        trace_dir: Option<PathBuf>,
    ) -> Result<LocalCluster, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let config = ClusterConfig::local_with_clients(chunkservers, clients, dir)
            .and_then(|c| c.with_push_fragment_bytes(push_fragment_bytes))
            .map_err(|e| e.to_string())?
            .with_durability(durability)
            .with_trace_dir(trace_dir);
        let path = dir.join("cluster.toml");
        config.write(&path).map_err(|e| e.to_string())?;
        let mut child = Command::new(crate::leasehold_exe()?)
            .arg("cluster")
            .arg("--dir")
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the cluster: {e}"))?;
        let out = child.stdout.take().expect("piped stdout");
        let mut server = Server::new("leasehold cluster", child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.starts_with("leasehold cluster running") {
                    let _ = tx.send(());
                }
            }
        });
        let started = Instant::now();
        while rx.try_recv().is_err() {
            if server.exited() {
                return Err("the cluster process exited before it was ready".to_string());
            }
            if started.elapsed() > CLUSTER_READY_TIMEOUT {
                return Err("the cluster did not start in 30 s".to_string());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut connected = Vec::new();
        for id in config.ids_with_role(Role::Client) {
            let id = usize::from(id) as u64;
            let c = Client::connect_with_timeout(&config, id, OP_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            connected.push(c);
        }
        Ok(LocalCluster {
            config,
            clients: connected,
            server,
            dir: dir.to_path_buf(),
        })
    }

    /// Stops the cluster and, if it recorded step traces, validates them
    /// (every check of `leasehold validate`): the summary, or an error
    /// naming the first failures. Removes the cluster's files either way.
    pub async fn stop_validated(self) -> Result<Option<String>, String> {
        let traces = self.config.trace_dir.clone();
        let dir = self.stop_keeping_files().await;
        let result = match traces {
            None => Ok(None),
            Some(traces) => {
                let opts = leasehold::validate::ValidateOptions::default();
                match leasehold::validate::validate_dir(&traces, &opts) {
                    Err(e) => Err(format!("validating {}: {e}", traces.display())),
                    Ok(r) if r.is_clean() => Ok(Some(r.summary())),
                    Ok(r) => {
                        let first: Vec<String> =
                            r.failures.iter().take(5).map(|f| f.to_string()).collect();
                        Err(format!(
                            "the run's traces fail validation: {}\n  {}\n(traces kept in {}: `leasehold validate {}`)",
                            r.summary(),
                            first.join("\n  "),
                            traces.display(),
                            traces.display()
                        ))
                    }
                }
            }
        };
        // A failed run's files are what explains it: kept.
        if result.is_ok() {
            let _ = std::fs::remove_dir_all(dir);
        }
        result
    }

    /// Stops the clients and the cluster and returns its directory, left
    /// in place (its traces are validated after the run).
    pub async fn stop_keeping_files(mut self) -> PathBuf {
        for c in self.clients.drain(..) {
            c.shutdown().await;
        }
        self.server.stop();
        self.dir.clone()
    }
}

/// One record-append run.
#[derive(Clone, Debug)]
pub struct AppendRun {
    pub durability: Durability,
    pub record_bytes: u64,
    pub clients: usize,
    /// Operations each client keeps in flight (issue #13's pipelined
    /// client); 1 for one at a time.
    pub window: usize,
    pub records: u64,
    pub elapsed: Duration,
    pub latency: Latency,
    /// CPU seconds the cluster's process and this one (the clients) used
    /// during the run, if readable.
    pub cpu_s: Option<f64>,
}

impl AppendRun {
    /// CPU time per acknowledged record, in µs.
    pub fn cpu_us_per_record(&self) -> Option<f64> {
        super::stats::cpu_us_per(self.cpu_s, self.records)
    }
    pub fn records_per_s(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
    pub fn mb_per_s(&self) -> f64 {
        super::stats::mb_per_s(self.records * self.record_bytes, self.elapsed)
    }
}

/// `clients` of the cluster's clients append `record_bytes` records to one
/// file for `duration` (each client at most `records_max / clients`), one
/// operation at a time each.
pub async fn append_load(
    cluster: &LocalCluster,
    path: &str,
    record_bytes: u64,
    clients: usize,
    duration: Duration,
    records_max: u64,
) -> Result<AppendRun, String> {
    assert!(
        clients >= 1 && clients <= cluster.clients.len(),
        "{clients} clients asked"
    );
    let appenders = cluster.clients[..clients].to_vec();
    run_appenders(
        cluster,
        path,
        record_bytes,
        appenders,
        1,
        duration,
        records_max,
    )
    .await
}

/// One client keeping `window` record appends in flight ([`Client`]'s
/// window: an actor per operation in flight), at the cluster's first client
/// place, appending `record_bytes` records to one file for `duration`.
pub async fn append_load_windowed(
    cluster: &LocalCluster,
    path: &str,
    record_bytes: u64,
    window: usize,
    duration: Duration,
    records_max: u64,
) -> Result<AppendRun, String> {
    let place = cluster
        .config
        .ids_with_role(Role::Client)
        .first()
        .map(|&id| usize::from(id) as u64)
        .ok_or("the cluster has no client place")?;
    let client = Client::connect_with_window(&cluster.config, place, OP_TIMEOUT, window)
        .await
        .map_err(|e| e.to_string())?;
    let appenders = vec![client.clone(); window];
    let r = run_appenders(
        cluster,
        path,
        record_bytes,
        appenders,
        window,
        duration,
        records_max,
    )
    .await;
    client.shutdown().await;
    r
}

/// Each of `appenders` (`window` of them share each client) appends
/// records in turn; the clients' first appends (a chunk allocated, a lease
/// obtained, the window's actors started) are not timed.
async fn run_appenders(
    cluster: &LocalCluster,
    path: &str,
    record_bytes: u64,
    appenders: Vec<Client>,
    window: usize,
    duration: Duration,
    records_max: u64,
) -> Result<AppendRun, String> {
    let data = Arc::new(vec![b'L'; record_bytes as usize]);
    cluster.clients[0]
        .create(path)
        .await
        .map_err(|e| e.to_string())?;
    let mut warm = Vec::new();
    for c in &appenders {
        let (c, data, path) = (c.clone(), data.clone(), path.to_string());
        warm.push(tokio::spawn(async move {
            c.record_append(&path, &data).await.map(|_| ())
        }));
    }
    for w in warm {
        w.await
            .map_err(|e| format!("appender panicked: {e}"))?
            .map_err(|e| e.to_string())?;
    }
    let per_appender_max = (records_max / appenders.len() as u64).max(1);
    // The cluster's one process and this one, which runs the clients.
    let cpu = super::proc::CpuMeter::start(vec![cluster.server.pid(), std::process::id()]);
    let started = Instant::now();
    let clients = appenders.len() / window;
    let mut tasks = Vec::new();
    for c in appenders {
        let data = data.clone();
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while started.elapsed() < duration && (samples.len() as u64) < per_appender_max {
                let t = Instant::now();
                c.record_append(&path, &data)
                    .await
                    .map_err(|e| e.to_string())?;
                samples.push(t.elapsed());
            }
            Ok::<_, String>(samples)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| format!("appender panicked: {e}"))??);
    }
    let elapsed = started.elapsed();
    let cpu_s = cpu.seconds();
    Ok(AppendRun {
        durability: cluster.config.durability,
        record_bytes,
        clients,
        window,
        records: all.len() as u64,
        elapsed,
        latency: latency(all),
        cpu_s,
    })
}

/// One write size to one replica count: the medians of the push alone and
/// of the whole write.
#[derive(Clone, Copy, Debug)]
pub struct PushRun {
    pub bytes: u64,
    pub replicas: usize,
    pub fragment_bytes: u64,
    /// From the first fragment sent to the chain's `DataPushed`, summed over
    /// the write's pieces ([`leasehold::client::PushStats`]).
    pub push: Duration,
    /// The whole write: push, then the commit on every replica.
    pub write: Duration,
    /// A raw chain of as many hops as replicas, pushed the same bytes right
    /// after each timed write: the baseline of the same moments, since the
    /// machine's speed drifts between the parts of a run (the raw chain's
    /// own 1 MiB push took 0.81 ms in one run and 1.29 ms in the next).
    pub raw_alongside: Duration,
}

/// Medians of `repeats` writes of `bytes` at offset 0 of fresh files, each
/// a push to every replica of the chunk, then the commit. A one-byte write
/// first allocates the chunk and obtains the lease, so the timed write is
/// data flow and commit only. After each, the same bytes through a raw
/// chain of as many hops as replicas.
pub async fn push_time(
    cluster: &LocalCluster,
    bytes: u64,
    repeats: usize,
    tag: &str,
) -> Result<PushRun, String> {
    let c = &cluster.clients[0];
    let data = vec![b'P'; bytes as usize];
    let replicas = cluster.config.ids_with_role(Role::Chunkserver).len();
    let mut chain = super::raw::Chain::start(replicas).map_err(|e| e.to_string())?;
    let (mut pushes, mut writes, mut raws) = (Vec::new(), Vec::new(), Vec::new());
    // One warm-up write, then the timed ones.
    for i in 0..=repeats.max(1) {
        let path = format!("/bench/push-{tag}-{bytes}-{i}");
        c.create(&path).await.map_err(|e| e.to_string())?;
        c.write(&path, 0, b"p").await.map_err(|e| e.to_string())?;
        let before = c.push_stats();
        let t = Instant::now();
        c.write(&path, 0, &data).await.map_err(|e| e.to_string())?;
        let write = t.elapsed();
        let push = c.push_stats().time - before.time;
        // The raw chain's threads block; this runtime has other workers
        // for the client's tasks.
        let raw = tokio::task::block_in_place(|| chain.push(bytes)).map_err(|e| e.to_string())?;
        if i > 0 {
            pushes.push(push);
            writes.push(write);
            raws.push(raw);
        }
    }
    Ok(PushRun {
        bytes,
        replicas,
        fragment_bytes: cluster.config.push_fragment_bytes,
        push: median(pushes),
        write: median(writes),
        raw_alongside: median(raws),
    })
}
