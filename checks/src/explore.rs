//! The `explore` subcommand: stateright's Explorer for a configuration.

use clap::Args;
use leasehold_model::config::Bug;
use leasehold_model::system::ModelCfg;
use stateright::Model;
use std::process::ExitCode;

#[derive(Args, Debug, Clone)]
pub struct ExploreArgs {
    /// Model configuration to explore (tiny, small, pad, default, faults, ...).
    #[arg(long, default_value = "tiny")]
    pub config: String,
    /// Seeded bug to switch on (kebab-case name, see `leasehold check --list-bugs`).
    #[arg(long)]
    pub bug: Option<String>,
    /// Address to serve the Explorer on.
    #[arg(long, default_value = "localhost:3000")]
    pub addr: String,
}

pub fn run_explore(args: ExploreArgs) -> ExitCode {
    let Some(cfg) = ModelCfg::named(&args.config) else {
        eprintln!("error: unknown configuration {:?}; known: {}", args.config, ModelCfg::NAMES.join(", "));
        return ExitCode::from(2);
    };
    let bug = match args.bug.as_deref().map(Bug::parse) {
        None => Bug::None,
        Some(Some(b)) => b,
        Some(None) => {
            eprintln!("error: unknown bug {:?}", args.bug.unwrap_or_default());
            return ExitCode::from(2);
        }
    };
    println!("Explorer for configuration {} (bug: {}) at http://{}/", cfg.name, bug.name(), args.addr);
    cfg.with_bug(bug).into_model().checker().serve(args.addr.as_str());
    ExitCode::SUCCESS
}
