//! For each seeded bug, which configurations catch it and how fast.
use leasehold_checks::check::{check_model, Options, Strategy};
use leasehold_model::config::Bug;
use leasehold_model::system::ModelCfg;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let configs: Vec<&str> = args
        .get(1)
        .map(|s| s.split(',').collect())
        .unwrap_or(ModelCfg::NAMES.to_vec());
    let only: Option<String> = args.get(2).cloned();
    for bug in Bug::ALL.iter().skip(1) {
        if only.as_deref().is_some_and(|o| o != bug.name()) {
            continue;
        }
        for c in &configs {
            let cfg = ModelCfg::named(c).unwrap().with_bug(*bug);
            let opts = Options {
                threads: 2,
                strategy: Strategy::Bfs,
                max_states: 5_000_000,
                stop_at_violation: true,
                stop_at_property: None,
                progress: false,
                symmetry: false,
            };
            let r = check_model(cfg, &opts);
            let v = r.violated();
            println!(
                "{:<40} {:<15} {:>9} states {:>6.2}s {:?}",
                bug.name(),
                c,
                r.unique_states,
                r.elapsed.as_secs_f64(),
                v
            );
            if !v.is_empty() {
                break;
            }
        }
    }
}
