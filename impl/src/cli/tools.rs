//! The commands that test or measure a cluster rather than use it:
//! `validate` (step traces against the model), `replay` (a counterexample
//! on real nodes), `nemesis` (a fault campaign) and `bench` (execs `leasehold-bench`). `main` runs them before it starts
//! the client runtime: each makes its own, or none.

use crate::{new_runtime, ConformArgs, ExportTraceArgs, NemesisArgs, ReplayArgs, ValidateArgs};
use std::ffi::OsString;
use std::process::ExitCode;

/// `leasehold nemesis`.
pub(crate) fn nemesis(a: NemesisArgs) -> ExitCode {
    use leasehold::nemesis::{default_dir, run, NemesisOptions};
    let binary = match std::env::current_exe() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot find this binary to run the servers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = a.dir.unwrap_or_else(|| default_dir(a.seed));
    let seconds = match a.minutes.map(|m| m.checked_mul(60)) {
        None => a.seconds,
        Some(Some(s)) => s,
        Some(None) => {
            eprintln!("error: --minutes {} is too long", a.minutes.unwrap_or(0));
            return ExitCode::from(2);
        }
    };
    let opts = NemesisOptions {
        seed: a.seed,
        duration: std::time::Duration::from_secs(seconds),
        dir: dir.clone(),
        binary,
        appenders: a.appenders,
        writers: a.writers,
        real_disk: a.real_disk,
    };
    if a.real_disk && !leasehold::nemesis::Tmpfs::can_mount() {
        eprintln!("error: --real-disk mounts a tmpfs, which needs root");
        return ExitCode::from(2);
    }
    eprintln!(
        "nemesis: seed {}, {} s of faults, cluster in {}{}",
        a.seed,
        seconds,
        dir.display(),
        if a.real_disk {
            " (chunkserver 3 on a small tmpfs)"
        } else {
            ""
        }
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

/// `leasehold validate`: failures one per line (`REQ-ID node N start S
/// step K: why`), then notes unless quiet, then the summary.
pub(crate) fn validate(a: ValidateArgs) -> ExitCode {
    use leasehold::validate::{validate_dir, validate_foreign_dir, ValidateOptions};
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
    let result = if a.foreign {
        validate_foreign_dir(&a.dir, &opts)
    } else {
        validate_dir(&a.dir, &opts)
    };
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

/// `leasehold conform`.
pub(crate) fn conform(a: ConformArgs) -> ExitCode {
    use leasehold::client::op_timeout_default;
    use leasehold::config::{ClusterConfig, Role};
    use leasehold::conform::{run, ConformOptions};
    let cluster = match ClusterConfig::load(&a.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let ids: Vec<u64> = cluster
        .ids_with_role(Role::Client)
        .into_iter()
        .map(|i| usize::from(i) as u64)
        .collect();
    let clients = match a.clients.as_deref() {
        Some([x, y, z]) => [*x, *y, *z],
        _ if ids.len() >= 3 => [ids[ids.len() - 3], ids[ids.len() - 2], ids[ids.len() - 1]],
        _ => {
            eprintln!(
                "error: {} names fewer than three client places; conform acts as three clients \
                 (`leasehold cluster` writes three)",
                a.config.display()
            );
            return ExitCode::from(2);
        }
    };
    if let Some(id) = a.as_chunkserver {
        let role = cluster
            .node(stateright::actor::Id::from(id as usize))
            .map(|n| n.role);
        if !matches!(role, Ok(Role::Chunkserver)) {
            eprintln!(
                "error: --as-chunkserver {id}: {} has no chunkserver entry {id}",
                a.config.display()
            );
            return ExitCode::from(2);
        }
    }
    let Some(runtime) = new_runtime() else {
        return ExitCode::from(2);
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let progress = |s: &str| eprintln!("conform: {s}");
    let opts = ConformOptions {
        op_timeout: a.timeout_ms.map_or_else(
            || op_timeout_default(&cluster),
            std::time::Duration::from_millis,
        ),
        cluster,
        clients,
        prefix: format!("/conform/{stamp}"),
        progress: Some(&progress),
        chunkserver: a.as_chunkserver,
    };
    let report = match runtime.block_on(run(&opts)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot act as clients {clients:?}: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", report.table());
    for s in &report.skipped {
        println!("skipped: {s}");
    }
    if report.passed() {
        println!("all {} scenarios passed", report.outcomes.len());
        ExitCode::SUCCESS
    } else {
        let failed = report.outcomes.iter().filter(|o| !o.passed).count();
        println!("{failed} of {} scenarios failed", report.outcomes.len());
        ExitCode::from(1)
    }
}

/// `leasehold export-trace`.
pub(crate) fn export_trace(a: ExportTraceArgs) -> ExitCode {
    use leasehold::validate::{export_foreign, ValidateOptions};
    let report = match export_foreign(&a.dir, &a.out, &ValidateOptions::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for f in &report.replay_failures {
        eprintln!("warning: {f}");
    }
    println!(
        "{} foreign trace files, {} steps, written to {}",
        report.files,
        report.steps,
        a.out.display()
    );
    if report.replay_failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "warning: the replay failed {} times: nodes whose replay stopped are exported without their mutations",
            report.replay_failures.len()
        );
        ExitCode::from(1)
    }
}

/// The benchmark's binary, built by `cargo build --release` at the
/// workspace root next to this one.
const BENCH_BIN: &str = "leasehold-bench";

/// `leasehold bench`: replaces this process with `leasehold-bench` from this
/// binary's directory, so its output, exit status and Ctrl-C are the
/// user's as if it were a subcommand compiled in.
pub(crate) fn bench(args: Vec<OsString>) -> ExitCode {
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

/// `leasehold replay`.
pub(crate) fn replay(a: ReplayArgs) -> ExitCode {
    use leasehold::replay::{print_report, replay, ReplayPlan};
    let cfg = match leasehold_checks::check::resolve(&a.config, &a.sets, Some(&a.bug)) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = new_runtime() else {
        return ExitCode::FAILURE;
    };
    eprintln!(
        "searching {} with bug {} for a counterexample...",
        cfg.name,
        cfg.bug.name()
    );
    let plan = ReplayPlan {
        cfg,
        property: a.property,
        bug_off: a.bug_off,
        late_timers: a.late_timers,
        swarm: a.swarm.map(|seeds| leasehold_checks::swarm::SwarmOptions {
            seeds,
            first_seed: 0,
            depth: a.depth,
            keep_steps: true,
        }),
        dir: a.dir,
        max_states: a.max_states,
    };
    match runtime.block_on(replay(plan)) {
        Ok(report) => {
            let _ = print_report(&report, &mut std::io::stdout());
            let ok = if a.bug_off {
                report.validation.is_clean()
            } else {
                report.caught()
            };
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
