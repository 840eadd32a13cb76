//! The TCP part of the benchmark: Leasehold's local cluster under append,
//! push and write loads, beside the raw chain, `fdatasync` and Redis
//! baselines run in the same invocation.

use super::*;

pub(crate) fn run_tcp_part(args: &BenchArgs, work: &std::path::Path) -> Result<TcpResults, String> {
    let secs = args.seconds.unwrap_or(if args.quick { 1.0 } else { 5.0 });
    let load_time = Duration::from_secs_f64(secs);
    let repeats = if args.quick { 1 } else { 5 };
    let mut t = TcpResults {
        seconds: secs,
        ..TcpResults::default()
    };
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;

    eprintln!(
        "\n== raw baselines: TCP forwarders with {} KiB buffers ==",
        raw::RAW_BUFFER_BYTES >> 10
    );
    let rtt_time = Duration::from_secs_f64(secs.min(2.0));
    let rtt = raw::round_trip(rtt_time, 100_000, None).map_err(|e| e.to_string())?;
    eprintln!(
        "round trip, as scheduled: p50 {:.1} µs, p99 {:.1} µs",
        rtt.p50_us, rtt.p99_us
    );
    t.rtt = Some(rtt);
    let pinned = raw::round_trip(rtt_time, 100_000, Some(0)).map_err(|e| e.to_string())?;
    eprintln!(
        "round trip, both ends on CPU 0: p50 {:.1} µs, p99 {:.1} µs",
        pinned.p50_us, pinned.p99_us
    );
    t.rtt_pinned = Some(pinned);
    for &bytes in &PUSH_SIZES {
        for hops in [1, 3] {
            let reps = if bytes > 8 << 20 {
                repeats.min(3)
            } else {
                repeats * 10
            };
            let d = raw::push_time(hops, bytes, reps).map_err(|e| e.to_string())?;
            eprintln!(
                "raw push {} through {hops} hop(s): {:.2} ms ({:.0} MB/s)",
                size_label(bytes),
                d.as_secs_f64() * 1e3,
                stats::mb_per_s(bytes, d)
            );
            t.raw_push.push((bytes, hops, d));
        }
    }
    let fsync_dir = work.join("fdatasync");
    t.fdatasync_per_s =
        raw::fdatasync_rate(&fsync_dir, 64 << 10, Duration::from_secs_f64(secs.min(3.0)))
            .map_err(|e| e.to_string())?;
    eprintln!(
        "fdatasync of 64 KiB appends, one writer: {:.0} /s",
        t.fdatasync_per_s
    );

    eprintln!("\n== Redis: a primary and two replicas, XADD + WAIT 2 0 ==");
    if redis::RedisTrio::available() {
        match redis::RedisTrio::start(&work.join("redis")) {
            Ok(trio) => {
                eprintln!("started redis-server pids {:?}", trio.pids());
                for &bytes in &RECORD_SIZES[..2] {
                    for &clients in &CLIENT_COUNTS {
                        match redis::load(
                            trio.primary_port,
                            bytes,
                            clients,
                            load_time,
                            &trio.pids(),
                        ) {
                            Ok(r) => {
                                eprintln!(
                                    "redis {} x {clients} clients: {:.0} records/s, {:.1} MB/s, p50 {:.0} µs, p99 {:.0} µs",
                                    size_label(bytes),
                                    r.records_per_s(),
                                    r.mb_per_s(),
                                    r.latency.p50_us,
                                    r.latency.p99_us
                                );
                                t.redis.push(r);
                            }
                            Err(e) => t
                                .notes
                                .push(format!("Redis {} x {clients}: {e}", size_label(bytes))),
                        }
                    }
                }
                drop(trio);
                eprintln!("stopped redis-server");
            }
            Err(e) => t.redis_note = Some(format!("Redis did not start: {e}")),
        }
    } else {
        t.redis_note = Some(
            "redis-server is not installed (`apt-get install -y redis-server`; scripts/bench-all does it): Redis baseline skipped".to_string(),
        );
    }
    if let Some(n) = &t.redis_note {
        eprintln!("{n}");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let validate = !args.no_validate;
    runtime.block_on(leasehold_part(&mut t, work, load_time, repeats, validate))?;
    if !validate {
        t.notes
            .push("The TCP runs recorded no step traces (--no-validate).".into());
    }
    Ok(t)
}

async fn leasehold_part(
    t: &mut TcpResults,
    work: &std::path::Path,
    load_time: Duration,
    repeats: usize,
    validate: bool,
) -> Result<(), String> {
    let start = |dir: std::path::PathBuf, servers, clients, durability, fragment| async move {
        let traces = validate.then(|| dir.join("traces"));
        system::LocalCluster::start_traced(&dir, servers, clients, durability, fragment, traces)
            .await
    };
    let max_clients = CLIENT_COUNTS[CLIENT_COUNTS.len() - 1];
    for durability in DURABILITY_MODES {
        let mode = durability_label(durability);
        eprintln!("\n== Leasehold, {mode}: master + 3 chunkservers (one `leasehold cluster` process), {max_clients} clients here ==");
        let dir = work.join(format!("cluster3-{mode}"));
        let cluster = start(dir, 3, max_clients, durability, PUSH_FRAGMENT_BYTES_DEFAULT).await?;
        let mut result = appends(t, &cluster, load_time, mode).await;
        if result.is_ok() && durability == Durability::Fsync {
            result = pushes(t, &cluster, 3, repeats).await;
        }
        let checked = cluster.stop_validated().await;
        result?;
        note_validated(t, &format!("3 chunkservers, {mode}"), checked?);
    }
    let single = start(
        work.join("cluster1"),
        1,
        1,
        Durability::Fsync,
        PUSH_FRAGMENT_BYTES_DEFAULT,
    )
    .await?;
    let r = pushes(t, &single, 1, repeats).await;
    let checked = single.stop_validated().await;
    r?;
    note_validated(t, "1 chunkserver", checked?);
    // The fragment size trades how soon the next hop starts against how
    // many messages a push costs: measure the alternatives.
    for fragment in PUSH_FRAGMENT_SWEEP {
        eprintln!(
            "\n== Leasehold pushes with {} fragments ==",
            size_label(fragment)
        );
        let dir = work.join(format!("cluster3-fragment-{fragment}"));
        let cluster = start(dir, 3, 1, Durability::Fsync, fragment).await?;
        let r = pushes(t, &cluster, 3, repeats).await;
        let checked = cluster.stop_validated().await;
        r?;
        note_validated(
            t,
            &format!("pushes in {} fragments", size_label(fragment)),
            checked?,
        );
    }
    Ok(())
}

/// Records that a run's traces validated (`None`: it recorded none).
fn note_validated(t: &mut TcpResults, run: &str, summary: Option<String>) {
    if let Some(summary) = summary {
        eprintln!("validated ({run}): {summary}");
        t.notes.push(format!(
            "Step traces of the run ({run}) validated: {summary}."
        ));
    }
}

async fn appends(
    t: &mut TcpResults,
    cluster: &system::LocalCluster,
    load_time: Duration,
    mode: &str,
) -> Result<(), String> {
    for &bytes in &RECORD_SIZES {
        for &clients in &CLIENT_COUNTS {
            let path = format!("/bench/append-{bytes}-{clients}");
            let load = system::append_load(
                cluster,
                &path,
                bytes,
                clients,
                load_time,
                APPEND_RECORDS_MAX,
            );
            let what = format!("{mode} append {} x {clients} clients", size_label(bytes));
            t.appends.push(reported(&what, load.await)?);
        }
        let path = format!("/bench/append-{bytes}-window-{PIPELINE_WINDOW}");
        let load = system::append_load_windowed(
            cluster,
            &path,
            bytes,
            PIPELINE_WINDOW,
            load_time,
            APPEND_RECORDS_MAX,
        );
        let what = format!(
            "{mode} append {} x 1 client, window {PIPELINE_WINDOW}",
            size_label(bytes)
        );
        t.appends.push(reported(&what, load.await)?);
    }
    Ok(())
}

/// Prints an append run's figures under `what`, or names it in its error.
fn reported(
    what: &str,
    run: Result<system::AppendRun, String>,
) -> Result<system::AppendRun, String> {
    let r = run.map_err(|e| format!("{what}: {e}"))?;
    eprintln!(
        "{what}: {:.0} records/s, {:.1} MB/s, p50 {:.0} µs, p99 {:.0} µs",
        r.records_per_s(),
        r.mb_per_s(),
        r.latency.p50_us,
        r.latency.p99_us
    );
    Ok(r)
}

async fn pushes(
    t: &mut TcpResults,
    cluster: &system::LocalCluster,
    replicas: usize,
    repeats: usize,
) -> Result<(), String> {
    for &bytes in &PUSH_SIZES {
        let reps = if bytes > 8 << 20 {
            repeats.min(3)
        } else {
            repeats * 2
        };
        let r = system::push_time(cluster, bytes, reps, &replicas.to_string()).await?;
        eprintln!(
            "push {} to {replicas} replica(s) in {} fragments: {:.2} ms ({:.0} MB/s); whole write with commit {:.2} ms",
            size_label(bytes),
            size_label(r.fragment_bytes),
            r.push.as_secs_f64() * 1e3,
            stats::mb_per_s(bytes, r.push),
            r.write.as_secs_f64() * 1e3,
        );
        t.pushes.push(r);
    }
    Ok(())
}
