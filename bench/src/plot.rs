//! The report's plots, drawn by the benchmark itself: plotters renders SVG
//! (its SVG backend needs no font files: text stays text), and Debian's
//! `rsvg-convert` turns each into a PNG. Without `rsvg-convert` the SVG is
//! kept and linked instead.

use super::stats::size_label;
use super::{Results, TcpResults, CLIENT_COUNTS, RECORD_SIZES};
use plotters::prelude::*;
use std::path::Path;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 520;

/// Converts `name.svg` in `dir` to `name.png`; returns the file name the
/// report links.
fn finish(dir: &Path, name: &str, svg: String) -> Result<String, String> {
    let svg_path = dir.join(format!("{name}.svg"));
    let png_path = dir.join(format!("{name}.png"));
    std::fs::write(&svg_path, svg).map_err(|e| format!("{}: {e}", svg_path.display()))?;
    let converted = std::process::Command::new("rsvg-convert")
        .args(["--background-color", "white", "-o"])
        .arg(&png_path)
        .arg(&svg_path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if converted {
        let _ = std::fs::remove_file(&svg_path);
        Ok(format!("{name}.png"))
    } else {
        eprintln!("rsvg-convert is missing (apt-get install -y librsvg2-bin): keeping {name}.svg");
        Ok(format!("{name}.svg"))
    }
}

/// The record-size axis, in log2 of bytes: 512 B to 2 MiB.
const X_LOG2_MIN: f64 = 9.0;
const X_LOG2_MAX: f64 = 21.0;

fn log2(x: f64) -> f64 {
    x.log2()
}

/// Labels whole powers of two on a log2 axis; nothing between them.
fn pow2_label(x: f64, label: impl Fn(u64) -> String) -> String {
    if x >= 0.0 && (x - x.round()).abs() < 1e-6 {
        label(1u64 << x.round() as u32)
    } else {
        String::new()
    }
}

/// `637k`, `1.2M`, `486`.
fn short_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

fn err(e: impl std::fmt::Display) -> String {
    format!("plot: {e}")
}

/// Pixels of the label column for these bars' labels.
fn label_area(bars: &[(String, f64, bool)]) -> u32 {
    let longest = bars.iter().map(|b| b.0.chars().count()).max().unwrap_or(0);
    (longest as u32 * 7 + 16).max(230)
}

/// Check time (log scale) per configuration, with the paxos baseline.
pub fn checker_plots(dir: &Path, r: &Results) -> Result<Vec<String>, String> {
    let mut bars: Vec<(String, f64, bool)> = Vec::new();
    if let Some(p) = &r.paxos {
        bars.push((
            format!(
                "{} {} ({} states)",
                p.name,
                p.strategy,
                short_count(p.unique)
            ),
            p.secs,
            true,
        ));
    }
    for c in &r.checks {
        let label = format!(
            "{} {}{} ({} states{})",
            c.name,
            c.strategy,
            if c.symmetry { " + symmetry" } else { "" },
            short_count(c.unique),
            if c.finished { "" } else { ", capped" }
        );
        bars.push((label, c.secs, false));
    }
    if bars.is_empty() {
        return Ok(vec![]);
    }
    let mut svg = String::new();
    {
        // Horizontal bars, first run on top, so the labels read normally.
        let height = (120 + 34 * bars.len() as u32).max(260);
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let max = bars.iter().map(|b| b.1).fold(1.0, f64::max) * 3.0;
        let n = bars.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Check time per configuration (2 threads; orange: stateright's paxos example)",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            // Room for the longest label (13 px sans-serif: about 7 px a
            // character), so a long configuration name is not cut off.
            .y_label_area_size(label_area(&bars))
            .build_cartesian_2d((0.01f64..max).log_scale(), 0f64..n as f64)
            .map_err(err)?;
        let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n * 2 + 1)
            .y_label_formatter(&|y| {
                let k = y.floor() as usize;
                if (y - k as f64 - 0.5).abs() < 0.01 && k < n {
                    labels[n - 1 - k].clone()
                } else {
                    String::new()
                }
            })
            .y_label_style(("sans-serif", 13))
            .x_desc("seconds (log scale)")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let y = (n - 1 - i) as f64;
                let color = if b.2 {
                    RGBColor(200, 120, 40)
                } else {
                    RGBColor(60, 110, 180)
                };
                Rectangle::new(
                    [(0.01, y + 0.15), (b.1.max(0.011), y + 0.85)],
                    color.filled(),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let y = (n - 1 - i) as f64;
                Text::new(
                    format!("{:.2} s", b.1),
                    (b.1.max(0.011) * 1.1, y + 0.65),
                    ("sans-serif", 12),
                )
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(vec![finish(dir, "bench-check-time", svg)?])
}

/// Append throughput vs record size (one line per client count) and vs
/// clients (one line per record size), with the raw chain and Redis.
pub fn tcp_plots(dir: &Path, t: &TcpResults) -> Result<Vec<String>, String> {
    if t.appends.is_empty() {
        return Ok(vec![]);
    }
    let colors = [
        RGBColor(60, 110, 180),
        RGBColor(200, 120, 40),
        RGBColor(60, 160, 90),
    ];
    let chain = t.raw_chain_mb_per_s();
    let max_mb = t
        .appends
        .iter()
        .map(|a| a.mb_per_s())
        .chain(t.redis.iter().map(|r| r.mb_per_s()))
        .chain(std::iter::once(if chain.is_nan() { 1.0 } else { chain }))
        .fold(1.0, f64::max)
        * 2.0;
    let mut out = Vec::new();

    // Throughput vs record size.
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Record append throughput vs record size (3 replicas, durable)",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(X_LOG2_MIN..X_LOG2_MAX, (0.01f64..max_mb).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("record size (log scale)")
            .y_desc("MB/s (log scale)")
            .x_labels((X_LOG2_MAX - X_LOG2_MIN) as usize + 1)
            .x_label_formatter(&|x| pow2_label(*x, size_label))
            .draw()
            .map_err(err)?;
        for (ci, &clients) in CLIENT_COUNTS.iter().enumerate() {
            let pts: Vec<(f64, f64)> = RECORD_SIZES
                .iter()
                .filter_map(|&b| {
                    t.append(b, clients)
                        .map(|a| (log2(b as f64), a.mb_per_s().max(0.011)))
                })
                .collect();
            let c = colors[ci % colors.len()];
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(err)?
                .label(format!("Leasehold, {clients} client(s)"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(err)?;
            let redis: Vec<(f64, f64)> = RECORD_SIZES
                .iter()
                .filter_map(|&b| {
                    t.redis_run(b, clients)
                        .map(|r| (log2(b as f64), r.mb_per_s().max(0.011)))
                })
                .collect();
            if !redis.is_empty() {
                let style = c.mix(0.5).stroke_width(1);
                chart
                    .draw_series(LineSeries::new(redis.clone(), style))
                    .map_err(err)?
                    .label(format!("Redis XADD+WAIT, {clients} client(s)"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                chart
                    .draw_series(
                        redis
                            .iter()
                            .map(|&p| TriangleMarker::new(p, 5, c.mix(0.5).filled())),
                    )
                    .map_err(err)?;
            }
        }
        if !chain.is_nan() {
            let gray = RGBColor(120, 120, 120);
            chart
                .draw_series(LineSeries::new(
                    vec![(X_LOG2_MIN, chain), (X_LOG2_MAX, chain)],
                    gray.stroke_width(1),
                ))
                .map_err(err)?
                .label("raw TCP 3-hop chain (64 MiB push)")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], gray));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    out.push(finish(dir, "bench-append-size", svg)?);

    // Throughput vs clients.
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let max_clients = log2(*CLIENT_COUNTS.iter().max().expect("client counts") as f64) + 0.5;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Record append throughput vs concurrent clients (one file)",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..max_clients, (0.01f64..max_mb).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("concurrent clients (log scale)")
            .y_desc("MB/s (log scale)")
            .x_labels(max_clients.ceil() as usize + 2)
            .x_label_formatter(&|x| pow2_label(*x, |n| n.to_string()))
            .draw()
            .map_err(err)?;
        for (si, &bytes) in RECORD_SIZES.iter().enumerate() {
            let pts: Vec<(f64, f64)> = CLIENT_COUNTS
                .iter()
                .filter_map(|&c| {
                    t.append(bytes, c)
                        .map(|a| (log2(c as f64), a.mb_per_s().max(0.011)))
                })
                .collect();
            let c = colors[si % colors.len()];
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(err)?
                .label(format!("{} records", size_label(bytes)))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(err)?;
        }
        if !chain.is_nan() {
            let gray = RGBColor(120, 120, 120);
            chart
                .draw_series(LineSeries::new(
                    vec![(-0.5, chain), (max_clients, chain)],
                    gray.stroke_width(1),
                ))
                .map_err(err)?
                .label("raw TCP 3-hop chain")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], gray));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    out.push(finish(dir, "bench-append-clients", svg)?);
    Ok(out)
}
