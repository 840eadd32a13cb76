//! The checker benchmark: every named configuration, each in a child
//! process of its own (so its peak memory is its own), and stateright's
//! own paxos example built from the stateright package's source as the
//! baseline, in the same invocation.

use super::proc::{run_capped, self_vmhwm_kib};
use super::stats::field;
use leasehold_checks::check::{check_model, Options, Strategy};
use leasehold_model::system::ModelCfg;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The stateright release the workspace depends on; its `examples/paxos.rs`
/// is the baseline.
pub const STATERIGHT_VERSION: &str = "0.31.0";
/// Paxos clients in the baseline (the issue's "3 clients, DFS, 2 threads";
/// the example uses one checker thread per CPU, 2 here).
pub const PAXOS_CLIENTS: u32 = 3;
/// Checker threads for our runs: the same as the baseline's.
pub const CHECK_THREADS: usize = 2;
/// The line a child check prints for the parent to parse.
const RESULT_TAG: &str = "LEASEHOLD-BENCH-RESULT";

/// The configuration of the symmetry figure: three clients that each
/// append one record, interchangeable (the model's symmetry benchmark).
pub const SYMMETRY_CONFIG: &str = "three-clients";

/// One checker run to make.
#[derive(Clone, Debug)]
pub struct CheckPlan {
    pub config: String,
    pub strategy: Strategy,
    pub symmetry: bool,
}

/// One checker run's figures.
#[derive(Clone, Debug)]
pub struct CheckRow {
    /// `default`, `paxos (3 clients)`, ...
    pub name: String,
    pub strategy: &'static str,
    pub symmetry: bool,
    pub unique: u64,
    pub total: u64,
    pub depth: u64,
    /// Wall time of the child process.
    pub secs: f64,
    pub peak_mib: f64,
    /// False when the time cap stopped it (the counts are then what it had
    /// reached, from its progress line, if any).
    pub finished: bool,
    /// Every property as demanded (ours only; `None` for paxos or capped).
    pub verdicts_ok: Option<bool>,
    /// The command that reproduces it.
    pub command: String,
}

impl CheckRow {
    pub fn rate(&self) -> f64 {
        self.unique as f64 / self.secs.max(1e-9)
    }
}

pub fn strategy_name(s: Strategy) -> &'static str {
    match s {
        Strategy::Bfs => "BFS",
        Strategy::Dfs => "DFS",
    }
}

/// Checker options for one benchmark run.
pub fn check_options(strategy: Strategy, symmetry: bool) -> Options {
    // Stateright reduces symmetry only depth-first.
    assert!(!symmetry || strategy == Strategy::Dfs, "symmetry needs DFS");
    Options {
        threads: CHECK_THREADS,
        strategy,
        symmetry,
        progress: true,
        ..Options::default()
    }
}

/// The child side: check one configuration in this process and print one
/// result line (counts, time, this process's VmHWM) for the parent.
pub fn run_child(config: &str, strategy: Strategy, symmetry: bool) -> std::process::ExitCode {
    let Some(cfg) = ModelCfg::named(config) else {
        eprintln!("error: unknown configuration {config:?}");
        return std::process::ExitCode::from(2);
    };
    let report = check_model(cfg, &check_options(strategy, symmetry));
    println!(
        "{RESULT_TAG} unique={} total={} depth={} secs={:.3} complete={} ok={} vmhwm_kib={}",
        report.unique_states,
        report.total_states,
        report.max_depth,
        report.elapsed.as_secs_f64(),
        report.complete,
        report.all_ok(),
        self_vmhwm_kib().unwrap_or(0),
    );
    std::process::ExitCode::SUCCESS
}

/// Parses `<n> unique  <m> total` from the check's progress line (used for
/// runs the cap stopped).
fn progress_counts(line: &str) -> (u64, u64) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let before = |w: &str| {
        words
            .windows(2)
            .find(|p| p[1] == w)
            .and_then(|p| p[0].parse().ok())
            .unwrap_or(0)
    };
    (before("unique"), before("total"))
}

/// Checks one configuration in a child `leasehold-bench --child-check`.
pub fn run_ours(plan: &CheckPlan, cap: Duration) -> Result<CheckRow, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["--child-check", &plan.config, "--child-strategy"])
        .arg(strategy_name(plan.strategy).to_lowercase());
    if plan.symmetry {
        cmd.arg("--child-symmetry");
    }
    let run = run_capped(cmd, cap).map_err(|e| format!("cannot run the check: {e}"))?;
    if !run.finished {
        // The killed check left its progress line open.
        eprintln!();
    }
    let line = run.stdout.iter().find(|l| l.starts_with(RESULT_TAG));
    let num = |k: &str| {
        line.and_then(|l| field(l, k))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let (unique, total) = match line {
        Some(_) => (num("unique").unwrap_or(0), num("total").unwrap_or(0)),
        None => progress_counts(&run.last_stderr),
    };
    if run.finished && line.is_none() {
        return Err(format!(
            "the check of {} ended without a result (exit ok: {})",
            plan.config, run.success
        ));
    }
    let mut command = format!(
        "leasehold check --config {} --strategy {} --threads {CHECK_THREADS}",
        plan.config,
        strategy_name(plan.strategy).to_lowercase()
    );
    if plan.symmetry {
        command.push_str(" --symmetry");
    }
    Ok(CheckRow {
        name: plan.config.clone(),
        strategy: strategy_name(plan.strategy),
        symmetry: plan.symmetry,
        unique,
        total,
        depth: num("depth").unwrap_or(0),
        secs: run.wall.as_secs_f64(),
        peak_mib: run.peak_kib as f64 / 1024.0,
        finished: run.finished,
        verdicts_ok: line.and_then(|l| field(l, "ok")).map(|v| v == "true"),
        command,
    })
}

/// Where cargo unpacked the stateright package's source.
fn stateright_source() -> Result<PathBuf, String> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let src = cargo_home.join("registry").join("src");
    let name = format!("stateright-{STATERIGHT_VERSION}");
    let entries = std::fs::read_dir(&src).map_err(|e| format!("{}: {e}", src.display()))?;
    for e in entries.flatten() {
        let dir = e.path().join(&name);
        if dir.join("examples").join("paxos.rs").is_file() {
            return Ok(dir);
        }
    }
    Err(format!(
        "{name} is not unpacked under {} (build leasehold once with cargo first)",
        src.display()
    ))
}

/// Builds stateright's own paxos example from the package's source: the
/// unpacked package directory is copied whole into `work` (the registry
/// copy stays untouched) and built there with its own Cargo.lock.
pub fn build_paxos(work: &Path) -> Result<PathBuf, String> {
    let src = stateright_source()?;
    let pkg = work.join(format!("stateright-{STATERIGHT_VERSION}"));
    let target = work.join("target");
    let bin = target.join("release").join("examples").join("paxos");
    if !pkg.join("Cargo.toml").is_file() {
        std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
        let status = Command::new("cp")
            .arg("-r")
            .arg(&src)
            .arg(work)
            .status()
            .map_err(|e| format!("cp: {e}"))?;
        if !status.success() {
            return Err(format!(
                "cannot copy {} to {}",
                src.display(),
                work.display()
            ));
        }
    }
    eprintln!(
        "building stateright {STATERIGHT_VERSION}'s paxos example in {} (first time: ~2 min)",
        pkg.display()
    );
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--example",
            "paxos",
        ])
        .arg("--manifest-path")
        .arg(pkg.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() || !bin.is_file() {
        return Err("cargo could not build the paxos example".to_string());
    }
    Ok(bin)
}

/// Runs `paxos check-dfs 3` and parses stateright's `Done.` line.
pub fn run_paxos(bin: &Path, cap: Duration) -> Result<CheckRow, String> {
    let mut cmd = Command::new(bin);
    cmd.args(["check-dfs", &PAXOS_CLIENTS.to_string()])
        .env("RUST_LOG", "warn");
    let run = run_capped(cmd, cap).map_err(|e| format!("cannot run paxos: {e}"))?;
    let done = run.stdout.iter().rev().find(|l| l.starts_with("Done."));
    let Some(done) = done else {
        return Err(format!(
            "paxos printed no `Done.` line (finished: {})",
            run.finished
        ));
    };
    let num = |k: &str| {
        field(done, k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(CheckRow {
        name: format!("paxos ({PAXOS_CLIENTS} clients)"),
        strategy: "DFS",
        symmetry: false,
        unique: num("unique"),
        total: num("states"),
        depth: num("depth"),
        secs: run.wall.as_secs_f64(),
        peak_mib: run.peak_kib as f64 / 1024.0,
        finished: run.finished,
        verdicts_ok: None,
        command: format!(
            "paxos check-dfs {PAXOS_CLIENTS}  # stateright {STATERIGHT_VERSION} examples/paxos.rs"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_progress_line() {
        let l =
            "    12.0s        640000 unique        1400000 total  depth  40     53000 unique/s ";
        assert_eq!(progress_counts(l), (640_000, 1_400_000));
        assert_eq!(progress_counts(""), (0, 0));
    }
}
