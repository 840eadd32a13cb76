use leasehold_model::config::Bug;
use leasehold_model::system::ModelCfg;
use stateright::{Checker, Model};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(|s| s.as_str()).unwrap_or("tiny");
    let bug = args.get(2).and_then(|b| Bug::parse(b)).unwrap_or(Bug::None);
    let dfs = args.get(3).map(|s| s == "dfs").unwrap_or(false);
    let mut cfg = ModelCfg::named(name).unwrap().with_bug(bug);
    for a in args.iter().skip(4) {
        cfg.set(a).unwrap();
    }
    let model = cfg.into_model();
    let t = std::time::Instant::now();
    let b = model.checker().threads(2).target_state_count(
        std::env::var("CAP")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(30_000_000),
    );
    if dfs {
        report(name, bug, b.spawn_dfs().join(), t)
    } else {
        report(name, bug, b.spawn_bfs().join(), t)
    }
}
fn report<C: Checker<leasehold_model::system::LeaseholdModel>>(
    name: &str,
    bug: Bug,
    c: C,
    t: std::time::Instant,
) {
    println!(
        "{name} {bug:?}: unique {} total {} depth {} in {:?}",
        c.unique_state_count(),
        c.state_count(),
        c.max_depth(),
        t.elapsed()
    );
    for p in c.model().properties() {
        let d = c.discovery(p.name);
        println!(
            "  {:?} {}: {}",
            p.expectation,
            p.name,
            if d.is_some() { "DISCOVERED" } else { "-" }
        );
        if let Some(path) = d {
            if !matches!(p.expectation, stateright::Expectation::Sometimes) {
                for (_s, a) in path.into_vec() {
                    if let Some(a) = a {
                        println!("      {}", c.model().format_action(&a));
                    }
                }
            }
        }
    }
}
