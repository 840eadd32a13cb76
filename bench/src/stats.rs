//! Small statistics and formatting helpers shared by the benchmarks.

use std::time::Duration;

/// Latency summary of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub samples: usize,
}

/// The `q`-quantile (0..=1) of `sorted` by nearest rank; `None` when empty.
pub fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    assert!((0.0..=1.0).contains(&q), "quantile {q} outside 0..=1");
    if sorted.is_empty() {
        return None;
    }
    // Nearest rank: the smallest sample with at least q of all samples at
    // or below it.
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Sorts the samples and summarises them.
pub fn latency(mut samples: Vec<Duration>) -> Latency {
    samples.sort_unstable();
    let us = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e6);
    Latency {
        p50_us: us(quantile(&samples, 0.50)),
        p99_us: us(quantile(&samples, 0.99)),
        samples: samples.len(),
    }
}

/// The median of a few repeated timings (upper median for even counts).
pub fn median(mut samples: Vec<Duration>) -> Duration {
    assert!(!samples.is_empty(), "median of no samples");
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Megabytes (10^6 bytes) per second.
pub fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}

/// CPU microseconds per record, from CPU seconds over a run.
pub fn cpu_us_per(cpu_s: Option<f64>, records: u64) -> Option<f64> {
    cpu_s
        .filter(|_| records > 0)
        .map(|s| s * 1e6 / records as f64)
}

/// `a / b`, or NaN when either is missing or `b` is zero.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 || a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a / b
    }
}

/// A human size: `1 KiB`, `64 KiB`, `1 MiB`, or bytes.
pub fn size_label(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// A number with thousands separators, for state counts.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A float with `digits` decimals, or `n/a` for NaN.
pub fn fmt(x: f64, digits: usize) -> String {
    if x.is_nan() {
        "n/a".to_string()
    } else {
        format!("{x:.digits$}")
    }
}

/// `key=value` from a line of `key=value` pairs separated by spaces or
/// commas (stateright's `Done. states=…, unique=…` and our child's line).
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split([' ', ','])
        .filter_map(|tok| tok.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn nearest_rank_quantiles() {
        let s = ms(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(quantile(&s, 0.5), Some(Duration::from_millis(5)));
        assert_eq!(quantile(&s, 0.99), Some(Duration::from_millis(10)));
        assert_eq!(quantile(&s, 0.0), Some(Duration::from_millis(1)));
        assert_eq!(quantile(&[], 0.5), None);
        let l = latency(ms(&[3, 1, 2]));
        assert_eq!(l.p50_us, 2000.0);
        assert_eq!(l.samples, 3);
    }

    #[test]
    fn median_and_labels() {
        assert_eq!(median(ms(&[9, 1, 5])), Duration::from_millis(5));
        assert_eq!(size_label(1024), "1 KiB");
        assert_eq!(size_label(64 << 10), "64 KiB");
        assert_eq!(size_label(1 << 20), "1 MiB");
        assert_eq!(size_label(1000), "1000 B");
        assert_eq!(thousands(1_194_428), "1,194,428");
        assert_eq!(thousands(12), "12");
        assert!(ratio(1.0, 0.0).is_nan());
    }

    #[test]
    fn parses_stateright_done_line() {
        let line = "Done. states=2420477, unique=1194428, depth=28, sec=5";
        assert_eq!(field(line, "unique"), Some("1194428"));
        assert_eq!(field(line, "states"), Some("2420477"));
        assert_eq!(field(line, "sec"), Some("5"));
        assert_eq!(field(line, "nope"), None);
    }
}
