//! `leasehold-bench`: the benchmark's binary. `leasehold bench ARGS` execs
//! it from the directory of the running `leasehold`, so users keep typing
//! `leasehold bench`; it runs `leasehold` from its own directory in turn
//! (`leasehold cluster` for the TCP runs).

use clap::Parser;
use leasehold_bench::{run_bench, BenchArgs};
use std::process::ExitCode;

/// Benchmark the checker and the TCP system against their baselines
/// (stateright's paxos, raw TCP, fdatasync, Redis); writes
/// docs/performance.md. Takes minutes; prints progress.
#[derive(Parser)]
#[command(name = "leasehold-bench", bin_name = "leasehold bench")]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn main() -> ExitCode {
    run_bench(Cli::parse().args)
}
