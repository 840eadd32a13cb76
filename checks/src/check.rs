//! The `check` subcommand and the library API the tests use.
//!
//! A run prints progress while it explores, then every property's verdict
//! (an `always` property holds or is violated; a `sometimes` companion is
//! reached or not), the state counts and time, and for each violation a
//! readable counterexample: one protocol step per line.

use crate::liveness;
use clap::{Args, ValueEnum};
use leasehold_model::config::Bug;
use leasehold_model::system::{Action, LeaseholdModel, ModelCfg, State};
use stateright::{Checker, Expectation, Model};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    /// Breadth first: holds whole states, finds short counterexamples.
    Bfs,
    /// Depth first: holds only fingerprints, far leaner on memory; the only
    /// strategy where stateright applies symmetry reduction.
    Dfs,
}

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Model configuration to check (see --list).
    #[arg(long, default_value = "default")]
    pub config: String,
    /// Seeded bug to switch on, by kebab-case name (see --list).
    #[arg(long)]
    pub bug: Option<String>,
    /// Checker threads. Note: stateright ignores timeouts with one thread.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[arg(long, value_enum, default_value_t = Strategy::Bfs)]
    pub strategy: Strategy,
    /// Override a configuration field, e.g. --set lossy=true (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Safety net: stop after this many generated states (the verdict is
    /// then "incomplete").
    #[arg(long, default_value_t = 200_000_000)]
    pub max_states: usize,
    /// Symmetry reduction over interchangeable clients (DFS only: stateright
    /// ignores it in BFS).
    #[arg(long)]
    pub symmetry: bool,
    /// Also run the cycle-aware liveness check (explores the whole graph in
    /// memory: small fault-free configurations only).
    #[arg(long)]
    pub liveness: bool,
    /// Instead of the exhaustive check, this many seeded random walks
    /// (swarm: each seed favours its own mix of deliveries, timeouts,
    /// crashes and losses), for configurations too large to close. Reports
    /// the distinct states reached; it proves nothing about the rest.
    #[arg(long, value_name = "SEEDS")]
    pub swarm: Option<u64>,
    /// First seed of --swarm (rerun one walk with --swarm 1 --seed N).
    #[arg(long, default_value_t = 0, requires = "swarm")]
    pub seed: u64,
    /// Steps per --swarm walk at most.
    #[arg(long, default_value_t = 200, requires = "swarm")]
    pub depth: usize,
    /// Instead of the check, search the configuration without the
    /// reduction `drop_ignored` for a step that breaks its proof
    /// obligation (docs/model.md, "Messages ignored for ever"): one
    /// thread, depth first whatever --strategy says, by client symmetry
    /// with --symmetry, up to --max-states states.
    #[arg(long, conflicts_with_all = ["swarm", "liveness"])]
    pub obligation: bool,
    /// List configurations and seeded bugs, then exit.
    #[arg(long)]
    pub list: bool,
}

/// One property's outcome.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub name: &'static str,
    pub expectation: Expectation,
    /// For `always`: a counterexample; for `sometimes`: an example.
    pub discovery: Option<Vec<String>>,
}

impl Verdict {
    /// Whether this outcome is what the property demands.
    pub fn ok(&self) -> bool {
        match self.expectation {
            Expectation::Always | Expectation::Eventually => self.discovery.is_none(),
            Expectation::Sometimes => self.discovery.is_some(),
        }
    }

    pub fn label(&self) -> &'static str {
        match (&self.expectation, self.discovery.is_some()) {
            (Expectation::Sometimes, true) => "reached",
            (Expectation::Sometimes, false) => "NOT REACHED",
            (_, false) => "holds",
            (_, true) => "VIOLATED",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Report {
    pub config: String,
    pub bug: Bug,
    pub unique_states: usize,
    pub total_states: usize,
    pub max_depth: usize,
    pub elapsed: Duration,
    /// False when the state cap stopped the search before it finished.
    pub complete: bool,
    pub verdicts: Vec<Verdict>,
}

impl Report {
    pub fn verdict(&self, name_prefix: &str) -> Option<&Verdict> {
        self.verdicts
            .iter()
            .find(|v| v.name.starts_with(name_prefix))
    }

    /// The `always` properties that were violated.
    pub fn violated(&self) -> Vec<&'static str> {
        self.verdicts
            .iter()
            .filter(|v| v.expectation != Expectation::Sometimes && v.discovery.is_some())
            .map(|v| v.name)
            .collect()
    }

    pub fn all_ok(&self) -> bool {
        self.complete && self.verdicts.iter().all(Verdict::ok)
    }
}

pub struct Options {
    pub threads: usize,
    pub strategy: Strategy,
    pub max_states: usize,
    /// Stop at the first violation of an `always` property (for seeded bugs).
    pub stop_at_violation: bool,
    /// With `stop_at_violation`: stop only when the property whose name
    /// starts with this is violated (a seeded bug may break a stronger
    /// property first; its test shows the named one catching it too).
    pub stop_at_property: Option<String>,
    /// Print progress to stderr every second.
    pub progress: bool,
    /// Reduce by client symmetry (needs DFS and interchangeable clients).
    pub symmetry: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: 2,
            strategy: Strategy::Bfs,
            max_states: 200_000_000,
            stop_at_violation: false,
            stop_at_property: None,
            progress: false,
            symmetry: false,
        }
    }
}

/// Checks `cfg` and returns every property's verdict.
pub fn check_model(cfg: ModelCfg, opts: &Options) -> Report {
    let name = cfg.name.to_string();
    let bug = cfg.bug;
    assert!(
        !opts.symmetry || cfg.clients_interchangeable(),
        "symmetry needs clients with the same script"
    );
    let model = cfg.into_model();
    let named = opts.stop_at_property.as_ref().map(|prefix| {
        let names: std::collections::BTreeSet<&'static str> = model
            .properties
            .iter()
            .filter(|p| p.expectation == Expectation::Always)
            .filter(|p| p.name.starts_with(prefix.as_str()))
            .map(|p| p.name)
            .collect();
        assert!(!names.is_empty(), "no property named {prefix}");
        names
    });
    let mut builder = model
        .checker()
        .threads(opts.threads)
        .target_state_count(opts.max_states);
    if opts.symmetry {
        builder = builder.symmetry_fn(leasehold_model::symmetry::representative);
    }
    if opts.stop_at_violation {
        builder = builder.finish_when(match named {
            Some(names) => stateright::HasDiscoveries::AnyOf(names),
            None => stateright::HasDiscoveries::AnyFailures,
        });
    }
    let started = Instant::now();
    match opts.strategy {
        Strategy::Bfs => collect(name, bug, builder.spawn_bfs(), started, opts),
        Strategy::Dfs => collect(name, bug, builder.spawn_dfs(), started, opts),
    }
}

fn collect<C: Checker<LeaseholdModel>>(
    config: String,
    bug: Bug,
    checker: C,
    started: Instant,
    opts: &Options,
) -> Report {
    let mut last = Instant::now();
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(50));
        if opts.progress && last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            let unique = checker.unique_state_count();
            eprint!(
                "\r  {:>6.1}s  {:>12} unique  {:>13} total  depth {:>3}  {:>9.0} unique/s ",
                secs,
                unique,
                checker.state_count(),
                checker.max_depth(),
                unique as f64 / secs
            );
            let _ = std::io::stderr().flush();
        }
    }
    let checker = checker.join();
    if opts.progress {
        eprintln!();
    }
    let model = checker.model();
    let verdicts = model
        .properties()
        .into_iter()
        .map(|p| Verdict {
            name: p.name,
            expectation: p.expectation.clone(),
            discovery: checker.discovery(p.name).map(|path| {
                path.into_vec()
                    .into_iter()
                    .filter_map(|(_, action)| action)
                    .map(|a| model.format_action(&a))
                    .collect()
            }),
        })
        .collect();
    let total = checker.state_count();
    Report {
        config,
        bug,
        unique_states: checker.unique_state_count(),
        total_states: total,
        max_depth: checker.max_depth(),
        elapsed: started.elapsed(),
        complete: total < opts.max_states || opts.stop_at_violation,
        verdicts,
    }
}

pub fn print_report(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "configuration {} (bug: {})",
        report.config,
        report.bug.name()
    )?;
    for v in &report.verdicts {
        let kind = match v.expectation {
            Expectation::Always => "always",
            Expectation::Sometimes => "sometimes",
            Expectation::Eventually => "eventually",
        };
        writeln!(out, "  {:<11} {:<9} {}", v.label(), kind, v.name)?;
    }
    writeln!(
        out,
        "  {} unique states, {} total, max depth {}, {:.2} s{}",
        report.unique_states,
        report.total_states,
        report.max_depth,
        report.elapsed.as_secs_f64(),
        if report.complete {
            ""
        } else {
            " (INCOMPLETE: state cap reached)"
        }
    )?;
    for v in report
        .verdicts
        .iter()
        .filter(|v| v.expectation != Expectation::Sometimes)
    {
        if let Some(path) = &v.discovery {
            writeln!(out, "\ncounterexample for {}:", v.name)?;
            for (i, step) in path.iter().enumerate() {
                writeln!(out, "  {:>3}. {step}", i + 1)?;
            }
        }
    }
    Ok(())
}

/// Resolves `--config`, `--set` and `--bug` into a configuration.
pub fn resolve(config: &str, sets: &[String], bug: Option<&str>) -> Result<ModelCfg, String> {
    let mut cfg = ModelCfg::named(config).ok_or_else(|| {
        format!(
            "unknown configuration {config:?}; known: {}",
            ModelCfg::NAMES.join(", ")
        )
    })?;
    for s in sets {
        cfg.set(s)?;
    }
    cfg.consistent()?;
    if let Some(name) = bug {
        let b = Bug::parse(name).ok_or_else(|| {
            let names: Vec<String> = Bug::ALL.iter().skip(1).map(|b| b.name()).collect();
            format!("unknown bug {name:?}; known: {}", names.join(", "))
        })?;
        cfg = cfg.with_bug(b);
    }
    Ok(cfg)
}

pub fn run_check(args: CheckArgs) -> ExitCode {
    if args.list {
        println!("configurations: {}", ModelCfg::NAMES.join(", "));
        println!("seeded bugs:");
        for b in Bug::ALL.iter().skip(1) {
            println!("  {}", b.name());
        }
        return ExitCode::SUCCESS;
    }
    let cfg = match resolve(&args.config, &args.sets, args.bug.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.threads == 0 {
        eprintln!("error: --threads must be at least 1");
        return ExitCode::from(2);
    }
    if args.obligation {
        if args.symmetry && !cfg.clients_interchangeable() {
            eprintln!("error: --symmetry needs clients with the same script");
            return ExitCode::from(2);
        }
        return run_obligation(cfg, args.symmetry, args.max_states);
    }
    if args.symmetry && (args.strategy != Strategy::Dfs || !cfg.clients_interchangeable()) {
        eprintln!("error: --symmetry needs --strategy dfs and clients with the same script");
        return ExitCode::from(2);
    }
    if let Some(seeds) = args.swarm {
        eprintln!(
            "swarm over configuration {}: {seeds} walks from seed {}, up to {} steps each",
            cfg.name, args.seed, args.depth
        );
        let opts = crate::swarm::SwarmOptions {
            seeds,
            first_seed: args.seed,
            depth: args.depth,
            keep_steps: false,
        };
        let r = crate::swarm::swarm(cfg, &opts);
        let _ = crate::swarm::print_swarm(&r, &mut std::io::stdout());
        return if r.violations.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let symmetry = if args.symmetry {
        ", client symmetry"
    } else {
        ""
    };
    eprintln!(
        "checking configuration {} ({:?}, {} threads{symmetry})",
        cfg.name, args.strategy, args.threads
    );
    let opts = Options {
        threads: args.threads,
        strategy: args.strategy,
        max_states: args.max_states,
        stop_at_violation: false,
        stop_at_property: None,
        progress: true,
        symmetry: args.symmetry,
    };
    let report = check_model(cfg.clone(), &opts);
    let mut stdout = std::io::stdout();
    let _ = print_report(&report, &mut stdout);
    let mut ok = report.all_ok();
    if args.liveness {
        let live = liveness::check_liveness(&cfg.into_model(), 5_000_000);
        let _ = liveness::print_liveness(&live, &mut stdout);
        ok &= live.holds();
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_obligation(cfg: ModelCfg, symmetry: bool, max_states: usize) -> ExitCode {
    eprintln!(
        "searching configuration {} without drop_ignored for a step that unmarks a marked message{}",
        cfg.name,
        if symmetry { " (client symmetry)" } else { "" }
    );
    let started = Instant::now();
    let o = crate::reduction::obligation(cfg, false, symmetry, max_states);
    println!(
        "{} states, {} steps, {} with a message marked, {:.2} s",
        o.states,
        o.steps,
        o.states_with_marked,
        started.elapsed().as_secs_f64()
    );
    match o.broken {
        Some(broken) => {
            println!("obligation broken: {broken}");
            ExitCode::FAILURE
        }
        None if o.states >= max_states => {
            println!("obligation holds in the states searched; stopped at --max-states");
            ExitCode::FAILURE
        }
        None => {
            println!("obligation holds in every step of the configuration");
            ExitCode::SUCCESS
        }
    }
}

/// The shortest counterexample (breadth first) to an `always` property of
/// `cfg`: the first whose name starts with `property`, or any. Returns the
/// property's name and the path's steps, each action with the state it is
/// taken in, or `None` if none is found within `max_states`. For
/// replaying it on real nodes (`leasehold replay`).
pub fn counterexample(
    cfg: ModelCfg,
    property: Option<&str>,
    max_states: usize,
) -> Option<(&'static str, Vec<(State, Action)>)> {
    let model = cfg.into_model();
    let names: std::collections::BTreeSet<&'static str> = model
        .properties
        .iter()
        .filter(|p| p.expectation == Expectation::Always)
        .filter(|p| property.is_none_or(|prefix| p.name.starts_with(prefix)))
        .map(|p| p.name)
        .collect();
    if names.is_empty() {
        return None;
    }
    let checker = model
        .checker()
        .threads(2)
        .target_state_count(max_states)
        .finish_when(stateright::HasDiscoveries::AnyOf(names.clone()))
        .spawn_bfs()
        .join();
    names.into_iter().find_map(|name| {
        let path = checker.discovery(name)?;
        let steps = path
            .into_vec()
            .into_iter()
            .filter_map(|(state, action)| Some((state, action?)))
            .collect();
        Some((name, steps))
    })
}
