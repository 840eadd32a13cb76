//! `leasehold bench`: the checker and the TCP system measured against
//! their baselines, side by side, in one invocation (issue 5).
//!
//! A crate of its own, so that the product library `leasehold` carries
//! neither plotters nor the benchmark's process plumbing. `leasehold bench`
//! execs this crate's `leasehold-bench` binary from its own directory, and
//! the benchmark runs `leasehold` from that directory in turn
//! ([`leasehold_exe`]); `cargo build --release` at the workspace root
//! builds both.
//!
//! Every figure is a ratio to a baseline run in the same invocation on the
//! same machine, because absolute times drift from run to run:
//!
//! - [`checker`]: each named configuration checked in a child process of its
//!   own (unique and total states, seconds, states/s, peak memory), beside
//!   stateright's own paxos example (3 clients, DFS, 2 threads) built from
//!   the stateright package's source.
//! - [`raw`]: plain TCP forwarders (a 3-hop chain and a single hop), a
//!   round trip, and a single `fdatasync` writer: the physical limits.
//! - [`redis`]: Redis, a primary and two replicas, `XADD` + `WAIT 2 0`.
//! - [`system`]: Leasehold record appends and pushes over a local cluster.
//! - [`anatomy`]: one record append's path, leg by leg, from step traces.
//! - [`report`] and [`plot`]: `docs/performance.md` and its PNG plots.
//!
//! These are benchmarks, not tests: nothing here asserts a time.

pub mod anatomy;
pub mod checker;
pub mod plot;
pub mod proc;
pub mod raw;
pub mod redis;
pub mod report;
pub mod stats;
pub mod system;
mod tcp;
pub mod trace;

use clap::Args;
use leasehold::filestore::Durability;
use leasehold::nodes::PUSH_FRAGMENT_BYTES_DEFAULT;
use leasehold_checks::check::Strategy;
use leasehold_model::system::ModelCfg;
use stats::{size_label, thousands};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Record sizes of the append runs.
pub const RECORD_SIZES: [u64; 3] = [1 << 10, 64 << 10, 1 << 20];
/// Concurrent clients of the append runs.
pub const CLIENT_COUNTS: [usize; 2] = [1, 16];
/// Record appends one pipelined client keeps in flight (issue #13), as
/// many as the most clients so that the two compare.
pub const PIPELINE_WINDOW: usize = 16;
/// Push sizes for the 3-replica vs 1-replica figure.
pub const PUSH_SIZES: [u64; 2] = [1 << 20, 64 << 20];
/// Records one append run may make at most (bounds disk use).
pub const APPEND_RECORDS_MAX: u64 = 200_000;
/// Configurations whose exhaustive check takes minutes on 2 cores (none
/// finished in 150 s here), and `concurrent-faults`, issue #10's target,
/// which does not close: checked depth-first (BFS holds every frontier
/// state and passed 10 GB within a minute on `writes`) under the shorter
/// `--large-cap-s`, so the report shows how far, and how fast, each got.
pub const LARGE_CONFIGS: [&str; 4] = ["faults", "master-restart", "writes", "concurrent-faults"];
/// Configurations checked depth-first, as their tests check them: from
/// hundreds of thousands of states to millions, whose frontier BFS would
/// hold in gigabytes for the larger ones; under the ordinary cap.
pub const DFS_CONFIGS: [&str; 11] = [
    "crash",
    "master-crash",
    "barrier-crash",
    "limits-expiry",
    "live-store-master-crash",
    "store-faults",
    "reads-crash",
    "mixed",
    "concurrent-barrier-crash",
    "concurrent-duplicating",
    "snapshot-delays",
];
/// The two-client fault configurations: checked depth-first with client
/// symmetry, as their tests check them (checks/tests/model.rs,
/// `exhaustive_symmetric`), and `concurrent-faults` the same way (under the
/// large configurations' cap).
pub const SYMMETRIC_CONFIGS: [&str; 7] = [
    "concurrent-crash",
    "concurrent-crash-delays",
    "concurrent-crash-expiry",
    "concurrent-lossy",
    "concurrent-master-crash",
    "concurrent-faults",
    "repl-concurrent",
];
/// Configurations `--quick` checks: those that finish in seconds.
pub const QUICK_CONFIGS: [&str; 5] = ["tiny", "small", "pad", "default", "three-clients"];

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Run the checker benchmark (with neither --checker nor --tcp, both run).
    #[arg(long)]
    pub checker: bool,
    /// Run the TCP benchmark (loopback only).
    #[arg(long)]
    pub tcp: bool,
    /// Run the step-trace benchmark: durable 1 KiB x 16 clients appends
    /// with traces off and on, and `validate` on the recorded trace.
    #[arg(long)]
    pub trace: bool,
    /// Run the anatomy of one append: one client's 1 KiB appends on a
    /// traced cluster, in each durability mode, and each leg of their path
    /// (push hops, the chain's acknowledgement, the request, Apply,
    /// Applied, the answer) from the traces.
    #[arg(long)]
    pub anatomy: bool,
    /// Short runs: 1 s per load, the small configurations only, fewer
    /// repeats. For trying the benchmark out; the figures are noisier.
    #[arg(long)]
    pub quick: bool,
    /// Configurations to check, comma-separated (default: all named ones).
    #[arg(long, value_delimiter = ',')]
    pub configs: Vec<String>,
    /// Stop any one check after this many seconds (reported as capped).
    #[arg(long, default_value_t = 150)]
    pub check_cap_s: u64,
    /// The cap for the large configurations (faults, master-restart,
    /// writes), checked depth-first.
    #[arg(long, default_value_t = 60)]
    pub large_cap_s: u64,
    /// Seconds per TCP load run (default 5, or 1 with --quick).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// The report to write; its generated sections are replaced, the
    /// hand-written text around them kept. Plots go next to it.
    #[arg(long, default_value = "docs/performance.md")]
    pub out: PathBuf,
    /// Print the results only; write no report and no plots.
    #[arg(long)]
    pub no_write: bool,
    /// Do not record step traces of the TCP runs. By default every cluster
    /// the TCP part starts records them, and after it stops (outside the
    /// timed part) `leasehold validate` must pass on them, or the bench
    /// fails; the trace part measures what recording costs.
    #[arg(long)]
    pub no_validate: bool,
    /// Scratch directory for clusters, Redis and the paxos build (default:
    /// the system temp directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Internal: check one configuration and print one result line (the
    /// parent runs each check in a child so its peak memory is its own).
    #[arg(long, hide = true)]
    pub child_check: Option<String>,
    #[arg(long, hide = true, value_enum, default_value_t = Strategy::Bfs)]
    pub child_strategy: Strategy,
    #[arg(long, hide = true)]
    pub child_symmetry: bool,
}

/// The `leasehold` binary beside this one (both land in the same target
/// directory), which the TCP runs start as `leasehold cluster`.
pub fn leasehold_exe() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let leasehold = exe.with_file_name(format!("leasehold{}", std::env::consts::EXE_SUFFIX));
    if leasehold.is_file() {
        Ok(leasehold)
    } else {
        Err(format!(
            "{} is missing: build it with `cargo build --release` at the workspace root",
            leasehold.display()
        ))
    }
}

/// Which parts of the benchmark ran (and so which report sections are
/// rewritten).
#[derive(Clone, Copy, Debug)]
pub struct Parts {
    pub checker: bool,
    pub tcp: bool,
    pub trace: bool,
    pub anatomy: bool,
}

/// What the machine was doing, reported with every figure.
#[derive(Clone, Debug)]
pub struct MachineInfo {
    pub cpus: usize,
    pub cpus_allowed: String,
    pub pinned: bool,
    pub load_before: String,
    pub load_after: String,
    pub kernel: String,
    pub date: String,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

impl MachineInfo {
    fn now() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let online = command_output("nproc", &["--all"]).parse().unwrap_or(cpus);
        MachineInfo {
            cpus: online,
            cpus_allowed: proc::cpus_allowed(),
            pinned: cpus < online,
            load_before: load_average(),
            load_after: String::new(),
            kernel: command_output("uname", &["-r"]),
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        }
    }
}

/// Everything one invocation measured.
#[derive(Default)]
pub struct Results {
    pub checks: Vec<checker::CheckRow>,
    pub paxos: Option<checker::CheckRow>,
    pub paxos_error: Option<String>,
    pub check_notes: Vec<String>,
    pub tcp: Option<TcpResults>,
    pub trace: Option<trace::TraceResults>,
    pub anatomy: Option<anatomy::AnatomyResults>,
}

#[derive(Default)]
pub struct TcpResults {
    pub seconds: f64,
    pub rtt: Option<stats::Latency>,
    /// The same with both ends pinned to CPU 0.
    pub rtt_pinned: Option<stats::Latency>,
    /// (bytes, hops, median time)
    pub raw_push: Vec<(u64, usize, Duration)>,
    pub fdatasync_per_s: f64,
    pub redis: Vec<redis::RedisRun>,
    pub redis_note: Option<String>,
    pub appends: Vec<system::AppendRun>,
    pub pushes: Vec<system::PushRun>,
    pub notes: Vec<String>,
}

impl TcpResults {
    pub fn raw(&self, bytes: u64, hops: usize) -> Option<Duration> {
        self.raw_push
            .iter()
            .find(|r| r.0 == bytes && r.1 == hops)
            .map(|r| r.2)
    }
    /// With the default fragment size.
    fn push_run(&self, bytes: u64, replicas: usize) -> Option<&system::PushRun> {
        self.push_with(bytes, replicas, PUSH_FRAGMENT_BYTES_DEFAULT)
    }
    pub fn push_with(
        &self,
        bytes: u64,
        replicas: usize,
        fragment_bytes: u64,
    ) -> Option<&system::PushRun> {
        self.pushes.iter().find(|r| {
            r.bytes == bytes && r.replicas == replicas && r.fragment_bytes == fragment_bytes
        })
    }
    /// The median push alone (no commit).
    pub fn push(&self, bytes: u64, replicas: usize) -> Option<Duration> {
        self.push_run(bytes, replicas).map(|r| r.push)
    }
    /// The median whole write: push and commit.
    pub fn write(&self, bytes: u64, replicas: usize) -> Option<Duration> {
        self.push_run(bytes, replicas).map(|r| r.write)
    }
    /// The durable (fsync) run.
    pub fn append(&self, bytes: u64, clients: usize) -> Option<&system::AppendRun> {
        self.append_in(bytes, clients, Durability::Fsync)
    }
    pub fn append_in(
        &self,
        bytes: u64,
        clients: usize,
        durability: Durability,
    ) -> Option<&system::AppendRun> {
        self.appends.iter().find(|r| {
            r.record_bytes == bytes
                && r.clients == clients
                && r.window == 1
                && r.durability == durability
        })
    }
    /// One client with [`PIPELINE_WINDOW`] appends in flight.
    pub fn windowed(&self, bytes: u64, durability: Durability) -> Option<&system::AppendRun> {
        self.appends.iter().find(|r| {
            r.record_bytes == bytes
                && r.clients == 1
                && r.window == PIPELINE_WINDOW
                && r.durability == durability
        })
    }
    pub fn redis_run(&self, bytes: u64, clients: usize) -> Option<&redis::RedisRun> {
        self.redis
            .iter()
            .find(|r| r.record_bytes == bytes && r.clients == clients)
    }
    /// Streaming throughput of the raw 3-hop chain (its largest push), MB/s.
    pub fn raw_chain_mb_per_s(&self) -> f64 {
        let big = PUSH_SIZES[PUSH_SIZES.len() - 1];
        self.raw(big, 3)
            .map_or(f64::NAN, |d| stats::mb_per_s(big, d))
    }
}

pub fn run_bench(args: BenchArgs) -> ExitCode {
    if let Some(config) = &args.child_check {
        return checker::run_child(config, args.child_strategy, args.child_symmetry);
    }
    let all = !(args.checker || args.tcp || args.trace || args.anatomy);
    let (do_checker, do_tcp, do_trace, do_anatomy) = (
        all || args.checker,
        all || args.tcp,
        all || args.trace,
        all || args.anatomy,
    );
    let mut machine = MachineInfo::now();
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("leasehold-bench-{}", std::process::id()));
    eprintln!(
        "leasehold bench: {} CPUs, allowed {} ({}), load {}",
        machine.cpus,
        machine.cpus_allowed,
        if machine.pinned {
            "pinned"
        } else {
            "not pinned"
        },
        machine.load_before
    );
    let started = Instant::now();
    let mut results = Results::default();
    if do_checker {
        run_checker_part(&args, &mut results);
    }
    if do_tcp {
        match tcp::run_tcp_part(&args, &work) {
            Ok(t) => results.tcp = Some(t),
            Err(e) => {
                // Its clusters' files (traces included) stay for a look.
                eprintln!(
                    "error: the TCP benchmark failed: {e}\n(work files kept in {})",
                    work.display()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    if do_trace {
        let secs = args.seconds.unwrap_or(if args.quick { 1.0 } else { 5.0 });
        let pairs = if args.quick { 1 } else { trace::TRACE_PAIRS };
        match trace::run_trace_part(&work, Duration::from_secs_f64(secs), pairs) {
            Ok(t) => results.trace = Some(t),
            Err(e) => {
                eprintln!("error: the trace benchmark failed: {e}");
                let _ = std::fs::remove_dir_all(&work);
                return ExitCode::FAILURE;
            }
        }
    }
    if do_anatomy {
        let secs = args.seconds.unwrap_or(if args.quick { 1.0 } else { 5.0 });
        match anatomy::run_anatomy_part(&work, Duration::from_secs_f64(secs)) {
            Ok(a) => results.anatomy = Some(a),
            Err(e) => {
                eprintln!("error: the anatomy benchmark failed: {e}");
                let _ = std::fs::remove_dir_all(&work);
                return ExitCode::FAILURE;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    machine.load_after = load_average();
    eprintln!(
        "\nall done in {:.0} s (load now {})",
        started.elapsed().as_secs_f64(),
        machine.load_after
    );
    let text = report::summary(&results, &machine, args.quick);
    println!("{text}");
    if !args.no_write {
        if let Err(e) = report::write(
            &args.out,
            &results,
            &machine,
            args.quick,
            Parts {
                checker: do_checker,
                tcp: do_tcp,
                trace: do_trace,
                anatomy: do_anatomy,
            },
        ) {
            eprintln!("error: cannot write the report: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {} and its plots", args.out.display());
    }
    ExitCode::SUCCESS
}

fn run_checker_part(args: &BenchArgs, results: &mut Results) {
    let cap = Duration::from_secs(args.check_cap_s);
    eprintln!(
        "\n== checker: every configuration in its own process, {} threads, cap {} s ==",
        checker::CHECK_THREADS,
        args.check_cap_s
    );
    // The baseline first: stateright's paxos example.
    let paxos_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!(
            "leasehold-bench-stateright-{}",
            checker::STATERIGHT_VERSION
        ));
    match checker::build_paxos(&paxos_dir) {
        Ok(bin) => {
            eprintln!("paxos check-dfs {} (baseline) ...", checker::PAXOS_CLIENTS);
            match checker::run_paxos(&bin, cap) {
                Ok(row) => {
                    eprintln!("  {}", one_line(&row));
                    results.paxos = Some(row);
                }
                Err(e) => results.paxos_error = Some(e),
            }
        }
        Err(e) => results.paxos_error = Some(e),
    }
    if let Some(e) = &results.paxos_error {
        eprintln!("  paxos baseline skipped: {e}");
    }
    let names: Vec<String> = if !args.configs.is_empty() {
        args.configs.clone()
    } else if args.quick {
        QUICK_CONFIGS.iter().map(|s| s.to_string()).collect()
    } else {
        ModelCfg::NAMES.iter().map(|s| s.to_string()).collect()
    };
    let large: Vec<&str> = LARGE_CONFIGS
        .iter()
        .copied()
        .filter(|l| names.iter().any(|n| n == l))
        .collect();
    if !large.is_empty() {
        results.check_notes.push(format!(
            "{} are checked depth-first (BFS memory passed 10 GB within a minute on some) and capped at {} s (`--large-cap-s`); a row marked capped shows how far that check got and at what rate",
            large.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", "),
            args.large_cap_s
        ));
    }
    let dfs: Vec<String> = DFS_CONFIGS
        .iter()
        .chain(SYMMETRIC_CONFIGS.iter())
        .filter(|l| names.iter().any(|n| n == *l) && !LARGE_CONFIGS.contains(l))
        .map(|l| format!("`{l}`"))
        .collect();
    if !dfs.is_empty() {
        results.check_notes.push(format!(
            "{} are checked depth-first as their tests check them (the two-client fault configurations with client symmetry), capped at {} s; the rest breadth-first, as `leasehold check` runs by default",
            dfs.join(", "),
            args.check_cap_s
        ));
    }
    if args.quick {
        results
            .check_notes
            .push("`--quick`: only the small configurations were checked".to_string());
    }
    let mut plans: Vec<checker::CheckPlan> = Vec::new();
    // Like for like with the baseline first: the default configuration
    // depth-first, then every configuration breadth-first but the large ones (what
    // `leasehold check` runs by default).
    if names.iter().any(|n| n == "default") {
        plans.push(checker::CheckPlan {
            config: "default".into(),
            strategy: Strategy::Dfs,
            symmetry: false,
        });
    }
    // The symmetry figure: the same configuration depth-first (stateright
    // reduces symmetry only in DFS) without and with the reduction.
    if names.iter().any(|n| n == checker::SYMMETRY_CONFIG) {
        if checker::SYMMETRY_CONFIG != "default" {
            plans.push(checker::CheckPlan {
                config: checker::SYMMETRY_CONFIG.into(),
                strategy: Strategy::Dfs,
                symmetry: false,
            });
        }
        plans.push(checker::CheckPlan {
            config: checker::SYMMETRY_CONFIG.into(),
            strategy: Strategy::Dfs,
            symmetry: true,
        });
    }
    for n in &names {
        let name = n.as_str();
        let symmetry = SYMMETRIC_CONFIGS.contains(&name);
        let strategy = if LARGE_CONFIGS.contains(&name) || DFS_CONFIGS.contains(&name) || symmetry {
            Strategy::Dfs
        } else {
            Strategy::Bfs
        };
        plans.push(checker::CheckPlan {
            config: n.clone(),
            strategy,
            symmetry,
        });
    }
    for plan in &plans {
        eprintln!(
            "check {} ({}{}) ...",
            plan.config,
            checker::strategy_name(plan.strategy),
            if plan.symmetry { ", symmetry" } else { "" }
        );
        let cap = if LARGE_CONFIGS.contains(&plan.config.as_str()) {
            Duration::from_secs(args.large_cap_s)
        } else {
            cap
        };
        match checker::run_ours(plan, cap) {
            Ok(row) => {
                eprintln!("  {}", one_line(&row));
                results.checks.push(row);
            }
            Err(e) => {
                eprintln!("  failed: {e}");
                results
                    .check_notes
                    .push(format!("`{}` failed: {e}", plan.config));
            }
        }
    }
}

fn one_line(r: &checker::CheckRow) -> String {
    format!(
        "{} {}{}: {} unique, {} total, {:.2} s, {:.0} unique/s, peak {:.0} MiB{}",
        r.name,
        r.strategy,
        if r.symmetry { " + symmetry" } else { "" },
        thousands(r.unique),
        thousands(r.total),
        r.secs,
        r.rate(),
        r.peak_mib,
        if r.finished { "" } else { " (CAPPED)" }
    )
}

/// The append matrix runs in each mode, durable first.
pub const DURABILITY_MODES: [Durability; 2] = [Durability::Fsync, Durability::PageCache];

/// Fragment sizes pushed besides the default, to show the trade-off.
pub const PUSH_FRAGMENT_SWEEP: [u64; 2] = [256 << 10, 1 << 20];

pub fn durability_label(d: Durability) -> &'static str {
    match d {
        Durability::Fsync => "durable",
        Durability::PageCache => "page-cache",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name in the strategy lists that is no configuration would leave
    /// the configuration it meant to the default plan (breadth-first, and
    /// gigabytes of frontier for the large ones) without a word.
    #[test]
    fn the_strategy_lists_name_configurations() {
        let lists = LARGE_CONFIGS
            .iter()
            .chain(DFS_CONFIGS.iter())
            .chain(SYMMETRIC_CONFIGS.iter())
            .chain(QUICK_CONFIGS.iter());
        for name in lists {
            assert!(
                ModelCfg::NAMES.contains(name),
                "{name} is not a configuration"
            );
        }
    }
}
