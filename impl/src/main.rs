//! `leasehold`: run a cluster's nodes, use it as a client, check the model.
//!
//! The binary only chooses which actor to construct (`leasehold::nodes`) or
//! which library call to make (`leasehold::client`); nothing here decides
//! anything about the protocol.

use clap::{Args, Parser, Subcommand};
use leasehold::client::{op_timeout_default, Client};
use leasehold::config::{ClusterConfig, Leases, Role};
use leasehold::filestore::Durability;
use leasehold::host::RunningHost;
use leasehold::nodes::{self, RealMsg};
use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// Where client commands look for the cluster file by default: what
/// `leasehold cluster` writes when run with its default directory.
const CONFIG_DEFAULT: &str = "leasehold-data/cluster.toml";
/// Client ids `leasehold cluster` puts in the file, so that several client
/// commands (or `append --workers`) can run at once.
const LOCAL_CLIENTS_DEFAULT: usize = 8;
const LOCAL_CHUNKSERVERS: usize = 3;
/// Records buffered between the input reader and the appenders.
const APPEND_QUEUE_RECORDS_MAX: usize = 4096;

#[derive(Parser)]
#[command(
    name = "leasehold",
    version,
    about = "The GFS mutation protocol (chunk leases, serial order, record append): \
             a model-checked reference implementation",
    long_about = "The GFS mutation protocol (chunk leases, serial order, at-least-once \
                  record append), model-checked with stateright and run for real over TCP.\n\n\
                  Logging: set RUST_LOG (e.g. RUST_LOG=debug, or \
                  RUST_LOG=leasehold=debug); logs go to stderr."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the master of a cluster (namespace, chunk versions, leases).
    Master(ServerArgs),
    /// Run one chunkserver of a cluster (chunk replicas in files).
    Chunkserver(ServerArgs),
    /// Start a local cluster (a master and three chunkservers on 127.0.0.1)
    /// in a data directory, writing its cluster.toml there. Runs until Ctrl-C.
    Cluster(ClusterArgs),
    /// Record-append records (one per input line) to a file, creating it.
    Append(AppendArgs),
    /// Write bytes at an offset of a file (split at chunk boundaries).
    Write(WriteArgs),
    /// Read raw bytes of a file to stdout.
    Read(ReadArgs),
    /// Print a file's records, one per line, skipping padding, partial
    /// records and duplicates.
    CatRecords(CatRecordsArgs),
    /// Show a file's chunks: handle, version, lease, up-to-date replicas.
    Stat(StatArgs),
    /// Model-check a configuration of the protocol.
    Check(leasehold_checks::CheckArgs),
    /// Serve stateright's Explorer for a configuration of the protocol.
    Explore(leasehold_checks::ExploreArgs),
    /// Check a run's step traces (the cluster's trace_dir) against the model.
    ///
    /// Replays every node through the checked actors, matches every message
    /// received to its send, and checks the requirements over the run
    /// (specs/trace-format.md). Exits 1 on any failure, 2 if the traces
    /// cannot be read.
    Validate(ValidateArgs),
    /// Run a fault campaign against a local cluster (issue #15): appends
    /// while chunkservers and the master are killed and restarted, a
    /// primary is paused past its lease, blocks are corrupted, a disk
    /// fills and connections are held open; then every acknowledged record
    /// is checked on every replica and the traces are validated. Exits 1
    /// if a record was lost or invented, or the traces fail.
    Nemesis(NemesisArgs),
    /// Benchmark the checker and the TCP system against their baselines
    /// (stateright's paxos, raw TCP, fdatasync, Redis); writes
    /// docs/performance.md. Takes minutes; prints progress.
    ///
    /// Runs the `leasehold-bench` binary beside this one with the same
    /// arguments (`leasehold bench --help` lists them).
    #[command(disable_help_flag = true)]
    Bench(BenchArgs),
}

/// Everything after `bench`, handed to `leasehold-bench` unparsed: the
/// benchmark lives in a crate of its own (bench/), which depends on this
/// crate's library, so this binary cannot link it and execs it instead.
#[derive(Args)]
struct BenchArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

#[derive(Args)]
struct ServerArgs {
    /// The cluster file.
    #[arg(long)]
    config: PathBuf,
    /// This node's id in the cluster file.
    #[arg(long)]
    id: u64,
}

#[derive(Args)]
struct NemesisArgs {
    /// Seed of the fault schedule: the same seed injects the same faults
    /// in the same order, so a failure reruns.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long to inject faults, in seconds (the load runs a little
    /// longer, then everything is checked).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Concurrent appending clients.
    #[arg(long, default_value_t = 4)]
    appenders: usize,
    /// Where the cluster keeps its files, logs and traces (default: a new
    /// folder under the system's temporary directory, kept for a look).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Args)]
struct ValidateArgs {
    /// The trace directory: node-<id>.<start>.trace files.
    dir: PathBuf,
    /// Print only the failures and the summary: no notes, no progress.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct ClusterArgs {
    /// Data directory: cluster.toml and each node's files. An existing
    /// cluster.toml there is reused (same ports, same data).
    #[arg(long, default_value = "leasehold-data")]
    dir: PathBuf,
    /// Chunk size in bytes for a new cluster (64 MiB by default).
    #[arg(long)]
    chunk_bytes: Option<u64>,
    /// 2 s leases instead of the GFS paper's 60 s, for demos and tests (new
    /// cluster only; the choice is written to cluster.toml).
    #[arg(long)]
    short_leases: bool,
    /// `fsync` (default): chunkservers make every mutation durable before
    /// they acknowledge it. `page-cache`: they leave it in the page cache
    /// (survives a killed process, not a machine crash; for measuring what
    /// fsync costs). New cluster only; written to cluster.toml.
    #[arg(long, value_enum)]
    durability: Option<Durability>,
    /// Client ids to put in a new cluster.toml.
    #[arg(long, default_value_t = LOCAL_CLIENTS_DEFAULT)]
    clients: usize,
    /// Every node, clients included, records a step trace in <DIR>/traces,
    /// for `leasehold validate <DIR>/traces` (new cluster only; written to
    /// cluster.toml as `trace_dir`).
    #[arg(long)]
    trace: bool,
}

#[derive(Args)]
struct ClientArgs {
    /// The cluster file.
    #[arg(long, default_value = CONFIG_DEFAULT)]
    config: PathBuf,
    /// Which client id of the cluster file to be; by default the first one
    /// not in use on this machine.
    #[arg(long)]
    client_id: Option<u64>,
    /// Give up on an operation after this long, retries included; by
    /// default the master's lease period (a restarted master waits that
    /// long before granting leases) plus 15 s.
    #[arg(long)]
    timeout_ms: Option<u64>,
}

#[derive(Args)]
struct AppendArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The file to append to (created if missing).
    path: String,
    /// Input files, one record per line; stdin if none.
    files: Vec<PathBuf>,
    /// Concurrent appenders, each with its own client id.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Print where each record landed: chunk index, offset, record id.
    #[arg(long)]
    print_offsets: bool,
}

#[derive(Args)]
struct WriteArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The file to write (created if missing).
    path: String,
    /// File offset to write at.
    #[arg(long, default_value_t = 0)]
    offset: u64,
    /// The bytes to write; stdin if not given.
    #[arg(long)]
    data: Option<String>,
}

#[derive(Args)]
struct ReadArgs {
    #[command(flatten)]
    client: ClientArgs,
    path: String,
    #[arg(long, default_value_t = 0)]
    offset: u64,
    /// Bytes to read; to the end of the file if not given.
    #[arg(long)]
    len: Option<u64>,
}

#[derive(Args)]
struct CatRecordsArgs {
    #[command(flatten)]
    client: ClientArgs,
    path: String,
    /// Prefix each record with its chunk index, offset and record id.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Args)]
struct StatArgs {
    #[command(flatten)]
    client: ClientArgs,
    path: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let server = matches!(
        cli.cmd,
        Cmd::Master(_) | Cmd::Chunkserver(_) | Cmd::Cluster(_)
    );
    init_tracing(if server { "info" } else { "warn" });
    let cmd = match cli.cmd {
        Cmd::Check(args) => return leasehold_checks::run_check(args),
        Cmd::Explore(args) => return leasehold_checks::run_explore(args),
        Cmd::Bench(args) => return bench(args.args),
        Cmd::Validate(args) => return validate(args),
        Cmd::Nemesis(args) => return nemesis(args),
        other => other,
    };
    let Some(runtime) = new_runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(run(cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`leasehold stat | head`): it
        // has all it wanted, so stop quietly with success, as the shell
        // reports a pipeline whose last command succeeded.
        Err(e) if is_broken_pipe(&*e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `e` is a write to a closed stdout pipe. Rust ignores SIGPIPE, so
/// such a write fails with EPIPE instead of killing the process; `println!`
/// would panic on it, so output goes through `writeln!` and lands here.
fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// `leasehold validate`: failures one per line (`REQ-ID node N start S
/// step K: why`), then notes unless quiet, then the summary.
/// The runtime the client commands run on, or `None` with the error said.
fn new_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            None
        }
    }
}

fn nemesis(a: NemesisArgs) -> ExitCode {
    use leasehold::nemesis::{default_dir, run, NemesisOptions};
    let binary = match std::env::current_exe() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot find this binary to run the servers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = a.dir.unwrap_or_else(|| default_dir(a.seed));
    let opts = NemesisOptions {
        seed: a.seed,
        duration: std::time::Duration::from_secs(a.seconds),
        dir: dir.clone(),
        binary,
        appenders: a.appenders,
    };
    eprintln!(
        "nemesis: seed {}, {} s of faults, cluster in {}",
        a.seed,
        a.seconds,
        dir.display()
    );
    let Some(runtime) = new_runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(run(&opts)) {
        Ok(report) => {
            print!("{}", report.summary());
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn validate(a: ValidateArgs) -> ExitCode {
    use leasehold::validate::{validate_dir, ValidateOptions};
    // Long traces take a while; a bar only where someone watches.
    let bar = (!a.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} steps replayed {per_sec} ({eta})",
            )
            .expect("valid template"),
        )
    });
    let progress = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let opts = ValidateOptions {
        progress: Some(&progress),
        ..ValidateOptions::default()
    };
    let started = std::time::Instant::now();
    let result = validate_dir(&a.dir, &opts);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let secs = started.elapsed().as_secs_f64();
    for f in &report.failures {
        println!("{f}");
    }
    if report.failures_unlisted > 0 {
        println!(
            "... and {} more failures of the checks and nodes above",
            report.failures_unlisted
        );
    }
    if !a.quiet {
        for n in &report.notes {
            println!("note: {n}");
        }
    }
    println!(
        "{}; {:.2} s, {:.0} steps/s",
        report.summary(),
        secs,
        report.steps_recorded as f64 / secs.max(1e-9)
    );
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn init_tracing(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn run(cmd: Cmd) -> Result<(), BoxError> {
    match cmd {
        Cmd::Master(a) => {
            let cluster = ClusterConfig::load(&a.config)?;
            let host = nodes::start_master(&cluster, a.id).await?;
            serve(vec![host]).await
        }
        Cmd::Chunkserver(a) => {
            let cluster = ClusterConfig::load(&a.config)?;
            let host = nodes::start_chunkserver(&cluster, a.id).await?;
            serve(vec![host]).await
        }
        Cmd::Cluster(a) => cluster(a).await,
        Cmd::Append(a) => append(a).await,
        Cmd::Write(a) => {
            let client = connect(&a.client, 0).await?;
            let data = match a.data {
                Some(d) => d.into_bytes(),
                None => {
                    let mut buf = Vec::new();
                    std::io::stdin().read_to_end(&mut buf)?;
                    buf
                }
            };
            client.create(&a.path).await?;
            client.write(&a.path, a.offset, &data).await?;
            client.shutdown().await;
            Ok(())
        }
        Cmd::Read(a) => {
            let client = connect(&a.client, 0).await?;
            let len = a.len.unwrap_or(u64::MAX);
            let data = client.read(&a.path, a.offset, len).await?;
            std::io::stdout().write_all(&data)?;
            client.shutdown().await;
            Ok(())
        }
        Cmd::CatRecords(a) => {
            let client = connect(&a.client, 0).await?;
            let mut reader = client.records(&a.path).await?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut count = 0u64;
            while let Some(r) = reader.next().await? {
                if a.verbose {
                    write!(out, "{}\t{}\t{:016x}\t", r.index, r.offset, r.id)?;
                }
                out.write_all(&r.data)?;
                out.write_all(b"\n")?;
                count += 1;
            }
            out.flush()?;
            if a.verbose {
                eprintln!(
                    "{count} records ({} duplicates skipped)",
                    reader.duplicates()
                );
            }
            client.shutdown().await;
            Ok(())
        }
        Cmd::Stat(a) => {
            let client = connect(&a.client, 0).await?;
            let stat = client.stat(&a.path).await?;
            let chunk_bytes = client.chunk_bytes();
            client.shutdown().await;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{}: file {}, {} chunks of at most {} bytes",
                stat.path,
                stat.file,
                stat.chunks.len(),
                chunk_bytes
            )?;
            writeln!(
                out,
                "{:>5}  {:>8}  {:>7}  {:>5}  {:>7}  replicas (up to date)",
                "index", "chunk", "version", "epoch", "primary"
            )?;
            for c in &stat.chunks {
                let primary = c.primary.map_or("-".to_string(), |p| p.to_string());
                let replicas: Vec<String> = c.replicas.iter().map(|r| r.to_string()).collect();
                writeln!(
                    out,
                    "{:>5}  {:>8}  {:>7}  {:>5}  {:>7}  {}",
                    c.index,
                    c.chunk,
                    c.version,
                    c.epoch,
                    primary,
                    replicas.join(",")
                )?;
            }
            out.flush()?;
            Ok(())
        }
        Cmd::Check(_) | Cmd::Explore(_) | Cmd::Bench(_) | Cmd::Validate(_) | Cmd::Nemesis(_) => {
            unreachable!("run without a runtime")
        }
    }
}

/// The benchmark's binary, built by `cargo build --release` at the
/// workspace root next to this one.
const BENCH_BIN: &str = "leasehold-bench";

/// `leasehold bench`: replaces this process with `leasehold-bench` from this
/// binary's directory, so its output, exit status and Ctrl-C are the
/// user's as if it were a subcommand compiled in.
fn bench(args: Vec<OsString>) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: cannot find this binary, and {BENCH_BIN} beside it: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bin = exe.with_file_name(format!("{BENCH_BIN}{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        eprintln!(
            "error: `leasehold bench` runs {}, which is missing: build it with \
             `cargo build --release` at the workspace root (or \
             `cargo build --release -p leasehold-bench`)",
            bin.display()
        );
        return ExitCode::FAILURE;
    }
    // exec returns only if it failed.
    let e = std::process::Command::new(&bin).args(args).exec();
    eprintln!("error: cannot run {}: {e}", bin.display());
    ExitCode::FAILURE
}

/// Runs nodes until Ctrl-C or SIGTERM (graceful shutdown) or until one of
/// them stops on its own (a failed save: fail-stop).
async fn serve(hosts: Vec<RunningHost<RealMsg>>) -> Result<(), BoxError> {
    let handles: Vec<_> = hosts.iter().map(|h| h.handle()).collect();
    let (stopped_tx, mut stopped_rx) = tokio::sync::mpsc::channel(hosts.len());
    let mut joins = Vec::new();
    for host in hosts {
        let tx = stopped_tx.clone();
        joins.push(tokio::spawn(async move {
            let r = host.join().await;
            let _ = tx.send(()).await;
            r
        }));
    }
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        _ = stopped_rx.recv() => tracing::error!("a node stopped; shutting down the rest"),
    }
    for h in &handles {
        h.shutdown();
    }
    let mut first_error = None;
    for j in joins {
        if let Ok(Err(e)) = j.await {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("can listen for SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn cluster(a: ClusterArgs) -> Result<(), BoxError> {
    std::fs::create_dir_all(&a.dir)?;
    let dir = a.dir.canonicalize()?;
    let path = dir.join("cluster.toml");
    let cluster = if path.exists() {
        let c = ClusterConfig::load(&path)?;
        eprintln!("using the existing {}", path.display());
        c
    } else {
        let mut c = ClusterConfig::local_with_clients(LOCAL_CHUNKSERVERS, a.clients, &dir)?;
        if let Some(bytes) = a.chunk_bytes {
            c = c.with_chunk_bytes(bytes)?;
        }
        if a.short_leases {
            c = c.with_leases(Leases::Short);
        }
        if let Some(d) = a.durability {
            c = c.with_durability(d);
        }
        if a.trace {
            c = c.with_trace_dir(Some(dir.join("traces")));
        }
        // A new cluster is closed to strangers from the start; its clients
        // read the secret from the same file.
        c = c.with_secret(Some(ClusterConfig::random_secret()))?;
        c.write(&path)?;
        c
    };
    if cluster.secret.is_none() {
        eprintln!(
            "note: {} has no secret, so anyone who reaches these ports may speak as any \
             node; add secret = \"<random text>\" to it (and restart every node)",
            path.display()
        );
    }
    if a.trace && cluster.trace_dir.is_none() {
        eprintln!(
            "note: --trace applies to a new cluster; add trace_dir = \"traces\" to {} instead",
            path.display()
        );
    }
    if a.durability.is_some_and(|d| d != cluster.durability) {
        eprintln!(
            "note: --durability applies to a new cluster; {} keeps {:?}",
            path.display(),
            cluster.durability
        );
    }
    let mut hosts = Vec::new();
    for id in cluster.ids_with_role(Role::Master) {
        hosts.push(nodes::start_master(&cluster, usize::from(id) as u64).await?);
    }
    for id in cluster.ids_with_role(Role::Chunkserver) {
        hosts.push(nodes::start_chunkserver(&cluster, usize::from(id) as u64).await?);
    }
    print_cluster(&cluster, &path);
    serve(hosts).await
}

fn print_cluster(cluster: &ClusterConfig, path: &Path) {
    let p = path.display();
    println!(
        "leasehold cluster running ({} leases, {} byte chunks):",
        match cluster.leases {
            Leases::Gfs => "60 s",
            Leases::Short => "2 s",
        },
        cluster.chunk_bytes
    );
    for n in &cluster.nodes {
        if n.role != Role::Client {
            println!(
                "  {:<11} {:>2}  {}  {}",
                format!("{:?}", n.role).to_lowercase(),
                n.id,
                n.addr,
                n.data_dir.display()
            );
        }
    }
    println!("config: {p}");
    if let Some(traces) = &cluster.trace_dir {
        println!("step traces: {} (leasehold validate)", traces.display());
    }
    println!("try, in another shell:");
    println!("  seq 1 1000 | leasehold append --config {p} /logs/a");
    println!("  leasehold cat-records --config {p} /logs/a | tail -3");
    println!("  leasehold stat --config {p} /logs/a");
    println!("Ctrl-C stops the cluster.");
}

/// Starts a client: `--client-id` plus `offset` (the n-th worker), or else
/// the first client id that is free on this machine.
async fn connect(args: &ClientArgs, offset: usize) -> Result<Client, BoxError> {
    let cluster = ClusterConfig::load(&args.config).map_err(|e| {
        format!("{e} (start a local cluster with `leasehold cluster`, or pass --config)")
    })?;
    let timeout = args
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or_else(|| op_timeout_default(&cluster));
    let client = match args.client_id {
        Some(first) => {
            let ids: Vec<u64> = cluster
                .ids_with_role(Role::Client)
                .into_iter()
                .map(|i| usize::from(i) as u64)
                .filter(|&i| i >= first)
                .collect();
            let id = *ids.get(offset).ok_or_else(|| {
                format!(
                    "the cluster file has no client id number {} from {first} on",
                    offset + 1
                )
            })?;
            Client::connect_with_timeout(&cluster, id, timeout).await?
        }
        None => Client::connect_any(&cluster, timeout).await?,
    };
    Ok(client)
}

async fn append(a: AppendArgs) -> Result<(), BoxError> {
    if a.workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    let mut clients = Vec::new();
    for w in 0..a.workers {
        clients.push(connect(&a.client, w).await?);
    }
    clients[0].create(&a.path).await?;
    let total_bytes: Option<u64> = if a.files.is_empty() {
        None
    } else {
        let mut sum = 0;
        for f in &a.files {
            sum += std::fs::metadata(f)
                .map_err(|e| format!("{}: {e}", f.display()))?
                .len();
        }
        Some(sum)
    };
    let bar = match total_bytes {
        Some(n) => indicatif::ProgressBar::new(n).with_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
                .expect("valid template"),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} records {per_sec}")
                .expect("valid template"),
        ),
    };
    // Lines are read on a thread of their own (stdin is blocking) and handed
    // to the appenders through a bounded queue, so input of any size runs in
    // bounded memory.
    let (tx, rx) = tokio::sync::mpsc::channel::<(u64, Vec<u8>)>(APPEND_QUEUE_RECORDS_MAX);
    let files = a.files.clone();
    let reader = std::thread::spawn(move || -> Result<(), String> {
        let mut line_no = 0u64;
        let mut feed = |input: &mut dyn BufRead, name: &str| -> Result<bool, String> {
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = input
                    .read_until(b'\n', &mut line)
                    .map_err(|e| format!("{name}: {e}"))?;
                if n == 0 {
                    return Ok(true);
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                line_no += 1;
                if tx.blocking_send((line_no, line.clone())).is_err() {
                    return Ok(false); // the appenders stopped on an error
                }
            }
        };
        if files.is_empty() {
            feed(&mut std::io::stdin().lock(), "stdin")?;
        } else {
            for f in &files {
                let file = std::fs::File::open(f).map_err(|e| format!("{}: {e}", f.display()))?;
                if !feed(&mut std::io::BufReader::new(file), &f.display().to_string())? {
                    break;
                }
            }
        }
        Ok(())
    });
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    // Set by the first worker that fails (or finds stdout closed), so the
    // others stop before their next record, not after the queue drains.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let print_offsets = a.print_offsets;
    let mut workers = Vec::new();
    for client in clients {
        let rx = rx.clone();
        let stop = stop.clone();
        let path = a.path.clone();
        let bar = bar.clone();
        workers.push(tokio::spawn(async move {
            // Acknowledged records are counted whatever happens next, so
            // the summary after an error is true.
            let mut appended = 0u64;
            let mut outcome = Ok(());
            loop {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let next = rx.lock().await.recv().await;
                let Some((line_no, data)) = next else { break };
                match client.record_append_detailed(&path, &data).await {
                    Ok(at) => {
                        appended += 1;
                        if print_offsets {
                            let printed = bar.suspend(|| {
                                let mut out = std::io::stdout().lock();
                                writeln!(
                                    out,
                                    "{line_no}\t{}\t{}\t{:016x}",
                                    at.index, at.offset, at.record_id
                                )
                                .and_then(|()| out.flush())
                            });
                            if let Err(e) = printed {
                                // `| head -1` has what it wanted: stop
                                // appending, as a killed filter would.
                                stop.store(true, std::sync::atomic::Ordering::SeqCst);
                                rx.lock().await.close();
                                outcome = Err(AppendEnd::Output(e));
                                break;
                            }
                        }
                        if total_bytes.is_some() {
                            bar.inc(data.len() as u64 + 1);
                        } else {
                            bar.inc(1);
                        }
                    }
                    Err(e) => {
                        // Stop everyone: close the queue so the reader ends.
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                        rx.lock().await.close();
                        outcome = Err(AppendEnd::Failed(format!("line {line_no}: {e}")));
                        break;
                    }
                }
            }
            client.shutdown().await;
            (appended, outcome)
        }));
    }
    let mut appended = 0;
    let mut errors = Vec::new();
    let mut output_closed = None;
    for w in workers {
        match w.await {
            Ok((n, outcome)) => {
                appended += n;
                match outcome {
                    Ok(()) => {}
                    Err(AppendEnd::Failed(e)) => errors.push(e),
                    Err(AppendEnd::Output(e)) => output_closed = Some(e),
                }
            }
            Err(e) => errors.push(format!("appender panicked: {e}")),
        }
    }
    bar.finish_and_clear();
    // The reader has ended unless an appender stopped early: then it may be
    // blocked reading stdin for ever (`tail -f log | leasehold append`), so
    // it is left behind; the process exits without it.
    if errors.is_empty() && output_closed.is_none() {
        if let Ok(Err(e)) = reader.join() {
            errors.push(e);
        }
    }
    eprintln!("appended {appended} records to {}", a.path);
    match (errors.into_iter().next(), output_closed) {
        (Some(e), _) => Err(e.into()),
        (None, Some(e)) => Err(e.into()),
        (None, None) => Ok(()),
    }
}

/// Why an appender stopped before its input ended.
enum AppendEnd {
    /// A record failed: the command fails with this message.
    Failed(String),
    /// Printing an offset failed (stdout closed): see [`is_broken_pipe`].
    Output(std::io::Error),
}
