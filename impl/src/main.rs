//! `leasehold`: run a cluster's nodes, use it as a client, check the model.
//!
//! The binary only chooses which actor to construct (`leasehold::nodes`) or
//! which library call to make (`leasehold::client`); nothing here decides
//! anything about the protocol.
//!
//! This file is the command line (its arguments, as clap reads them) and
//! the dispatch to the subcommands, which are in [`cli`]: one place to see
//! every command and option, apart from the code that carries them out.

use clap::{Args, Parser, Subcommand};
use leasehold::filestore::Durability;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

mod cli;

/// Where client commands look for the cluster file by default: what
/// `leasehold cluster` writes when run with its default directory.
const CONFIG_DEFAULT: &str = "leasehold-data/cluster.toml";
/// Client places `leasehold cluster` puts in the file: three, one for each
/// client `conform` acts as.
const LOCAL_CLIENTS_DEFAULT: usize = 3;

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
    /// Rename a file. The master revokes the leases of its chunks first
    /// and grants none until the rename is made, so no mutation runs
    /// across it; appends cut off by it are retried into the renamed file.
    Mv(MvArgs),
    /// Take a snapshot of a file under a new path. The master revokes the
    /// leases of its chunks and grants none until the snapshot is taken;
    /// the two files share the chunks until one of them is mutated, and
    /// each shared chunk is then copied on its replicas first.
    Snapshot(SnapshotArgs),
    /// Model-check a configuration of the protocol.
    Check(leasehold_checks::CheckArgs),
    /// Serve stateright's Explorer for a configuration of the protocol.
    Explore(leasehold_checks::ExploreArgs),
    /// Check a run's step traces (the cluster's trace_dir) against the model.
    ///
    /// Replays every node through the checked actors, matches every message
    /// received to its send, and checks the requirements over the run
    /// (specs/trace-format.md). With --foreign, checks another
    /// implementation's JSON-lines traces (specs/foreign-trace.md) by
    /// behaviour. Exits 1 on any failure, 2 if the traces cannot be read.
    Validate(ValidateArgs),
    /// Check a running cluster against the requirements over the wire, as
    /// its clients: scenarios by requirement ID (concurrent appends, a
    /// chunk filled past its end, a write across chunks, bad paths, a
    /// lease waited out), judged by what clients observe. Prints a table;
    /// exits 1 on any failure, 2 if the cluster cannot be reached.
    Conform(ConformArgs),
    /// Run a checker's counterexample on real nodes (issue #11): finds the
    /// shortest path to a violation of --config with --bug, starts the
    /// configuration as a local cluster of scheduled nodes (the bug
    /// switched on, frames over loopback, chunks in files, step traces),
    /// orders every step of the path (deliver, lose, fire a timer, crash,
    /// restart), then validates the traces. A liveness counterexample
    /// (--property LIVE-1, LIVE-2 or REPL-1, or no property when no
    /// always-property breaks) is a path to a state from which the clients
    /// cannot all succeed: after it the nodes run on with no faults until
    /// the requirement's bound, where validation judges them. Exits 0 when
    /// validation finds the same requirement violated (or, with --bug-off,
    /// nothing), 1 otherwise, 2 on bad arguments.
    Replay(ReplayArgs),
    /// Write a run's step traces as foreign traces (JSON lines,
    /// specs/foreign-trace.md): what another implementation's tracer
    /// writes, and what `validate --foreign` reads.
    ExportTrace(ExportTraceArgs),
    /// Run a fault campaign against a local cluster (issue #15): appends
    /// while chunkservers and the master are killed and restarted, a
    /// primary is paused past its lease, blocks are corrupted, a disk
    /// fills and connections are held open, one fault at a time; then
    /// every acknowledged record is checked on every replica and the
    /// traces are validated. Exits 1 if a record was lost or invented, the
    /// traces fail, or appends did not come back within a fault's bound
    /// (two lease periods; a master's kill adds its quiet period).
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
    #[command(flatten)]
    seeded: SeededBugArgs,
}

/// A seeded bug in a real node (issue #11): the model's bug switch, for
/// showing that a conformance check or trace validation catches it over
/// TCP. Never for real data.
#[derive(Args)]
struct SeededBugArgs {
    /// Run with this seeded bug switched on (`leasehold check --list`
    /// names them). Refused without --testing.
    #[arg(long, value_name = "NAME")]
    bug: Option<String>,
    /// Allow --bug: this node breaks the protocol on purpose.
    #[arg(long)]
    testing: bool,
}

#[derive(Args)]
struct NemesisArgs {
    /// Seed of the fault schedule: the same seed injects the same faults
    /// in the same order, so a failure reruns.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long to inject faults, in seconds (the load runs a little
    /// longer, then everything is checked).
    #[arg(long, default_value_t = 60, conflicts_with = "minutes")]
    seconds: u64,
    /// The same in minutes, for long campaigns (`--minutes 30`).
    #[arg(long)]
    minutes: Option<u64>,
    /// Concurrent appending clients.
    #[arg(long, default_value_t = 4)]
    appenders: usize,
    /// Clients writing at chosen offsets of a second file, beside the
    /// appenders (each write region retried until acknowledged).
    #[arg(long, default_value_t = 1)]
    writers: usize,
    /// Where the cluster keeps its files, logs and traces (default: a new
    /// folder under the system's temporary directory, kept for a look).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Fill a real disk: chunkserver 3 keeps its files on a 96 KiB tmpfs
    /// (needs root; unmounted at the end, so its files are not kept)
    /// instead of under a 48 KiB room limit of the store's own.
    #[arg(long)]
    real_disk: bool,
}

#[derive(Args)]
struct ValidateArgs {
    /// The trace directory: node-<id>.<start>.trace files (with --foreign,
    /// node-<id>.<start>.jsonl files).
    dir: PathBuf,
    /// The traces are foreign (JSON lines, specs/foreign-trace.md): judge
    /// each node by what it sent and applied, without state digests.
    #[arg(long)]
    foreign: bool,
    /// Print only the failures and the summary: no notes, no progress.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct ReplayArgs {
    /// Model configuration (see `leasehold check --list`).
    #[arg(long, default_value = "default")]
    config: String,
    /// The seeded bug whose counterexample to replay.
    #[arg(long)]
    bug: String,
    /// Override a configuration field (repeatable), as for `check`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Replay the counterexample to this property (a name prefix such as
    /// LEASE-1, or LIVE-1, LIVE-2, REPL-1 for the liveness check's); by
    /// default the first always-property the checker finds violated, else
    /// the liveness requirement.
    #[arg(long)]
    property: Option<String>,
    /// Run the same schedule with the bug switched off in the real nodes:
    /// the run should then be clean.
    #[arg(long)]
    bug_off: bool,
    /// Fire each timer the path fires as late as the next one it fires
    /// allows (a millisecond before that one is due), not at its own
    /// deadline: the model's timers have no durations, so its path lets a
    /// timer fire at any time before the next.
    #[arg(long)]
    late_timers: bool,
    /// Take the counterexample from this many seeded random walks (swarm,
    /// as `check --swarm`) instead of the exhaustive search: for a
    /// configuration the checker cannot close.
    #[arg(long, value_name = "WALKS")]
    swarm: Option<u64>,
    /// Steps per random walk (with --swarm).
    #[arg(long, default_value_t = 200)]
    depth: usize,
    /// Keep the cluster's files and traces here, a new or empty directory
    /// (default: a temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Give up the search for a counterexample after this many states.
    #[arg(long, default_value_t = 20_000_000)]
    max_states: usize,
}

#[derive(Args)]
struct ConformArgs {
    /// The cluster file.
    #[arg(long, default_value = "leasehold-data/cluster.toml")]
    config: PathBuf,
    /// The three client places of the cluster file to act at: two append
    /// concurrently, one is moved to each replica's position in turn to read
    /// it as its closest client (by default the file's last three).
    #[arg(long, value_delimiter = ',', num_args = 3)]
    clients: Option<Vec<u64>>,
    /// Give up on an operation after this long (default: the master's
    /// lease period plus 15 s).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// A chunkserver entry of the cluster file that the cluster under test
    /// does not run: conform runs Leasehold's chunkserver there (with the
    /// entry's data directory), crashes it and restarts it stale, and
    /// judges what clients see of it (VERSION-2, READ-1, REPL-1). Without
    /// it that scenario is skipped.
    #[arg(long, value_name = "ID")]
    as_chunkserver: Option<u64>,
}

#[derive(Args)]
struct ExportTraceArgs {
    /// The trace directory of a Leasehold run (node-<id>.<start>.trace).
    dir: PathBuf,
    /// Where to write node-<id>.<start>.jsonl (made if missing).
    out: PathBuf,
}

#[derive(Args)]
struct ClusterArgs {
    /// Data directory: cluster.toml and each node's files. An existing
    /// cluster.toml there is reused (same ports, same data).
    #[arg(long, default_value = "leasehold-data")]
    dir: PathBuf,
    #[command(flatten)]
    seeded: SeededBugArgs,
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
    /// Client places to put in a new cluster.toml: network positions a
    /// client may be started at (`--place`). A client needs none: it
    /// listens nowhere, and draws its own id.
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
    /// Start at this client place of the cluster file (its network
    /// position; with several workers, the n-th place from it on). By
    /// default a client takes no place: its position is estimated from its
    /// address, and it needs nothing reserved in the cluster file.
    #[arg(long, alias = "client-id")]
    place: Option<u64>,
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
    /// Concurrent appenders, each a client of its own.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Records each worker's client keeps in flight: later records are
    /// pushed while earlier ones commit. With more than one (or more than
    /// one worker), records land in the file out of input order.
    #[arg(long, default_value_t = 1)]
    window: usize,
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

#[derive(Args)]
struct MvArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The file's path now.
    from: String,
    /// Its new path: no file may have it.
    to: String,
}

#[derive(Args)]
struct SnapshotArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The file to take the snapshot of.
    from: String,
    /// The snapshot's path: no file may have it.
    to: String,
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
        Cmd::Bench(args) => return cli::tools::bench(args.args),
        Cmd::Validate(args) => return cli::tools::validate(args),
        Cmd::ExportTrace(args) => return cli::tools::export_trace(args),
        Cmd::Conform(args) => return cli::tools::conform(args),
        Cmd::Replay(args) => return cli::tools::replay(args),
        Cmd::Nemesis(args) => return cli::tools::nemesis(args),
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
        Cmd::Master(a) => cli::servers::master(a).await,
        Cmd::Chunkserver(a) => cli::servers::chunkserver(a).await,
        Cmd::Cluster(a) => cli::servers::cluster(a).await,
        Cmd::Append(a) => cli::append::append(a).await,
        Cmd::Write(a) => cli::files::write(a).await,
        Cmd::Read(a) => cli::files::read(a).await,
        Cmd::CatRecords(a) => cli::files::cat_records(a).await,
        Cmd::Stat(a) => cli::files::stat(a).await,
        Cmd::Mv(a) => cli::files::mv(a).await,
        Cmd::Snapshot(a) => cli::files::snapshot(a).await,
        Cmd::Check(_)
        | Cmd::Explore(_)
        | Cmd::Bench(_)
        | Cmd::Validate(_)
        | Cmd::ExportTrace(_)
        | Cmd::Conform(_)
        | Cmd::Replay(_)
        | Cmd::Nemesis(_) => {
            unreachable!("run without a runtime")
        }
    }
}
