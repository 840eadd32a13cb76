//! Step traces (`trace_dir`): what recording costs a loaded cluster, and
//! how fast `leasehold validate` checks what it recorded. The durable
//! 1 KiB x 16 clients append load runs in one invocation with traces off
//! and on, alternately, and the last traced run's trace is validated.

use super::system::{self, AppendRun, LocalCluster};
use super::APPEND_RECORDS_MAX;
use leasehold::filestore::Durability;
use leasehold::nodes::PUSH_FRAGMENT_BYTES_DEFAULT;
use leasehold::validate::{validate_dir, ValidateOptions};
use std::path::Path;
use std::time::{Duration, Instant};

pub const TRACE_RECORD_BYTES: u64 = 1 << 10;
pub const TRACE_CLIENTS: usize = 16;

pub struct TraceResults {
    pub off: AppendRun,
    pub on: AppendRun,
    /// Bytes of trace the traced run wrote.
    pub trace_bytes: u64,
    pub steps: u64,
    /// Wall time of `validate_dir` on that trace, reading included.
    pub validate: Duration,
    pub failures: usize,
    pub threads: usize,
    pub pairs: usize,
}

impl TraceResults {
    pub fn steps_per_s(&self) -> f64 {
        self.steps as f64 / self.validate.as_secs_f64()
    }
    /// Appends per second with traces on, as a share of without.
    pub fn throughput_kept(&self) -> f64 {
        self.on.records_per_s() / self.off.records_per_s()
    }
}

/// Runs of each kind, alternating off and on: the machine's load drifts
/// between runs more than tracing costs, so each kind's median run counts.
pub const TRACE_PAIRS: usize = 5;

/// The run with the median rate.
fn median_run(mut runs: Vec<AppendRun>) -> AppendRun {
    runs.sort_by(|a, b| a.records_per_s().total_cmp(&b.records_per_s()));
    runs.swap_remove(runs.len() / 2)
}

pub fn run_trace_part(
    work: &Path,
    load_time: Duration,
    pairs: usize,
) -> Result<TraceResults, String> {
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let (mut offs, mut ons) = (Vec::new(), Vec::new());
    let mut traced_dir = None;
    for traced in (0..pairs.max(1)).flat_map(|_| [false, true]) {
        let label = if traced { "on" } else { "off" };
        eprintln!(
            "\n== Leasehold, durable, traces {label}: {} appends x {TRACE_CLIENTS} clients ==",
            super::stats::size_label(TRACE_RECORD_BYTES)
        );
        let dir = work.join(format!("cluster3-trace-{label}-{}", offs.len() + ons.len()));
        let trace_dir = traced.then(|| dir.join("traces"));
        let run = runtime.block_on(async {
            let cluster = LocalCluster::start_traced(
                &dir,
                3,
                TRACE_CLIENTS,
                Durability::Fsync,
                PUSH_FRAGMENT_BYTES_DEFAULT,
                trace_dir.clone(),
            )
            .await?;
            let r = system::append_load(
                &cluster,
                "/bench/trace",
                TRACE_RECORD_BYTES,
                TRACE_CLIENTS,
                load_time,
                APPEND_RECORDS_MAX,
            )
            .await;
            cluster.stop_keeping_files().await;
            r
        });
        let run = match run {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("traces {label}: {e}"));
            }
        };
        eprintln!(
            "traces {label}: {:.0} records/s, p50 {:.0} µs, p99 {:.0} µs",
            run.records_per_s(),
            run.latency.p50_us,
            run.latency.p99_us
        );
        if traced {
            ons.push(run);
        } else {
            offs.push(run);
        }
        // The last traced run's trace is the one validated.
        match trace_dir {
            Some(t) => {
                if let Some((old, _)) = traced_dir.replace((dir, t)) {
                    let _ = std::fs::remove_dir_all(old);
                }
            }
            None => {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
    let (dir, traces) = traced_dir.expect("the traced run ran");
    let trace_bytes = std::fs::read_dir(&traces)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let opts = ValidateOptions::default();
    let threads = opts.threads;
    let started = Instant::now();
    let report = validate_dir(&traces, &opts);
    let validate = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    let report = report.map_err(|e| format!("validating the trace: {e}"))?;
    for f in report.failures.iter().take(5) {
        eprintln!("  {f}");
    }
    eprintln!("validate: {}", report.summary());
    let (off, on) = (median_run(offs), median_run(ons));
    let r = TraceResults {
        off,
        on,
        trace_bytes,
        steps: report.steps_recorded,
        validate,
        failures: report.failures.len() + report.failures_unlisted as usize,
        threads,
        pairs: pairs.max(1),
    };
    eprintln!(
        "validated {} steps ({:.0} MB of trace) in {:.2} s: {:.0} steps/s; appends with traces keep {:.0}% of the rate",
        r.steps,
        r.trace_bytes as f64 / 1e6,
        r.validate.as_secs_f64(),
        r.steps_per_s(),
        100.0 * r.throughput_kept()
    );
    Ok(r)
}
