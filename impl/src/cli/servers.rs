//! The commands that run server nodes: `master` and `chunkserver` (one
//! node from a cluster file) and `cluster` (a local master and
//! chunkservers in one process), each until Ctrl-C, SIGTERM or a node's
//! fail-stop.

use crate::{BoxError, ClusterArgs, SeededBugArgs, ServerArgs};
use leasehold::config::{ClusterConfig, Leases, Role};
use leasehold::host::RunningHost;
use leasehold::nodes::{self, RealMsg};
use leasehold_model::config::Bug;
use std::path::Path;

const LOCAL_CHUNKSERVERS: usize = 3;

/// The seeded bug a server runs with: none unless asked for by name, and
/// asked for only together with --testing.
fn seeded_bug(a: &SeededBugArgs) -> Result<Bug, BoxError> {
    let Some(name) = &a.bug else {
        return Ok(Bug::None);
    };
    if !a.testing {
        return Err(format!(
            "refusing --bug {name} without --testing: a seeded bug breaks the protocol on \
             purpose (for conformance and validation tests, never for real data)"
        )
        .into());
    }
    match Bug::parse(name) {
        Some(b) => {
            tracing::warn!(bug = %name, "running with a seeded bug (--testing)");
            Ok(b)
        }
        None => Err(format!(
            "unknown seeded bug {name:?}; known: {}",
            Bug::ALL
                .iter()
                .map(|b| b.name())
                .collect::<Vec<_>>()
                .join(", ")
        )
        .into()),
    }
}

fn hooks(bug: Bug) -> nodes::NodeHooks {
    nodes::NodeHooks {
        bug,
        ..nodes::NodeHooks::default()
    }
}

/// `leasehold master`.
pub(crate) async fn master(a: ServerArgs) -> Result<(), BoxError> {
    let bug = seeded_bug(&a.seeded)?;
    let cluster = ClusterConfig::load(&a.config)?;
    let host = nodes::start_master_with(&cluster, a.id, hooks(bug)).await?;
    serve(vec![host]).await
}

/// `leasehold chunkserver`.
pub(crate) async fn chunkserver(a: ServerArgs) -> Result<(), BoxError> {
    let bug = seeded_bug(&a.seeded)?;
    let cluster = ClusterConfig::load(&a.config)?;
    let host = nodes::start_chunkserver_with(&cluster, a.id, hooks(bug)).await?;
    serve(vec![host]).await
}

/// Runs nodes until Ctrl-C or SIGTERM (graceful shutdown) or until one of
/// them stops on its own (a failed save: fail-stop).
async fn serve(hosts: Vec<RunningHost<RealMsg>>) -> Result<(), BoxError> {
    let handles: Vec<_> = hosts.iter().map(|h| h.handle()).collect();
    let (stopped_tx, mut stopped_rx) = tokio::sync::mpsc::channel(hosts.len());
    let mut joins = Vec::new();
    for host in hosts {
        let tx = stopped_tx.clone();
        joins.push(tokio::spawn(async move {
            let r = host.join().await;
            let _ = tx.send(()).await;
            r
        }));
    }
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        _ = stopped_rx.recv() => tracing::error!("a node stopped; shutting down the rest"),
    }
    for h in &handles {
        h.shutdown();
    }
    let mut first_error = None;
    for j in joins {
        if let Ok(Err(e)) = j.await {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("can listen for SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `leasehold cluster`.
pub(crate) async fn cluster(a: ClusterArgs) -> Result<(), BoxError> {
    let bug = seeded_bug(&a.seeded)?;
    std::fs::create_dir_all(&a.dir)?;
    let dir = a.dir.canonicalize()?;
    let path = dir.join("cluster.toml");
    let cluster = if path.exists() {
        let c = ClusterConfig::load(&path)?;
        eprintln!("using the existing {}", path.display());
        c
    } else {
        let mut c = ClusterConfig::local_with_clients(LOCAL_CHUNKSERVERS, a.clients, &dir)?;
        if let Some(bytes) = a.chunk_bytes {
            c = c.with_chunk_bytes(bytes)?;
        }
        if a.short_leases {
            c = c.with_leases(Leases::Short);
        }
        if let Some(d) = a.durability {
            c = c.with_durability(d);
        }
        if a.trace {
            c = c.with_trace_dir(Some(dir.join("traces")));
        }
        // A new cluster is closed to strangers from the start; its clients
        // read the secret from the same file.
        c = c.with_secret(Some(ClusterConfig::random_secret()))?;
        c.write(&path)?;
        c
    };
    if cluster.secret.is_none() {
        eprintln!(
            "note: {} has no secret, so anyone who reaches these ports may speak as any \
             node; add secret = \"<random text>\" to it (and restart every node)",
            path.display()
        );
    }
    if a.trace && cluster.trace_dir.is_none() {
        eprintln!(
            "note: --trace applies to a new cluster; add trace_dir = \"traces\" to {} instead",
            path.display()
        );
    }
    if a.durability.is_some_and(|d| d != cluster.durability) {
        eprintln!(
            "note: --durability applies to a new cluster; {} keeps {:?}",
            path.display(),
            cluster.durability
        );
    }
    let mut hosts = Vec::new();
    for id in cluster.ids_with_role(Role::Master) {
        let id = usize::from(id) as u64;
        hosts.push(nodes::start_master_with(&cluster, id, hooks(bug)).await?);
    }
    for id in cluster.ids_with_role(Role::Chunkserver) {
        let id = usize::from(id) as u64;
        hosts.push(nodes::start_chunkserver_with(&cluster, id, hooks(bug)).await?);
    }
    print_cluster(&cluster, &path);
    if bug != Bug::None {
        println!(
            "SEEDED BUG {} in every node (--testing): this cluster breaks the protocol on purpose",
            bug.name()
        );
    }
    serve(hosts).await
}

fn print_cluster(cluster: &ClusterConfig, path: &Path) {
    let p = path.display();
    println!(
        "leasehold cluster running ({} leases, {} byte chunks):",
        match cluster.leases {
            Leases::Gfs => "60 s",
            Leases::Short => "2 s",
        },
        cluster.chunk_bytes
    );
    for n in &cluster.nodes {
        if let (Some(addr), Some(dir)) = (n.addr, &n.data_dir) {
            println!(
                "  {:<11} {:>2}  {}  {}",
                format!("{:?}", n.role).to_lowercase(),
                n.id,
                addr,
                dir.display()
            );
        }
    }
    println!("config: {p}");
    if let Some(traces) = &cluster.trace_dir {
        println!("step traces: {} (leasehold validate)", traces.display());
    }
    println!("try, in another shell:");
    println!("  seq 1 1000 | leasehold append --config {p} /logs/a");
    println!("  leasehold cat-records --config {p} /logs/a | tail -3");
    println!("  leasehold stat --config {p} /logs/a");
    println!("Ctrl-C stops the cluster.");
}
