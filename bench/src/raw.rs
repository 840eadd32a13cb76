//! Raw baselines written here: what the machine can do without any
//! protocol.
//!
//! - A chain of plain TCP forwarders, client → S1 → S2 → S3, each a thread
//!   that copies through a 64 KiB buffer while it receives (pipelined, as
//!   GFS pushes data, [0080]): the physical limit of a 3-replica push on
//!   this machine. The last server acknowledges with one byte that travels
//!   back along the chain.
//! - The same with one server: a single-hop push.
//! - A one-byte round trip over one connection.
//! - A single writer appending 64 KiB blocks with `fdatasync` after each:
//!   what a durable mutation costs the disk without group commit.

use super::stats::{latency, median, Latency};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Forwarding buffer of each raw server.
pub const RAW_BUFFER_BYTES: usize = 64 * 1024;

/// A chain of forwarders; the client talks to the first.
pub struct Chain {
    client: TcpStream,
    threads: Vec<JoinHandle<()>>,
    buf: Vec<u8>,
}

/// One forwarder: frames are `u64` length + bytes; a zero length ends it.
fn forward(mut up: TcpStream, mut down: Option<TcpStream>) {
    let mut buf = vec![0u8; RAW_BUFFER_BYTES];
    loop {
        let mut len = [0u8; 8];
        if up.read_exact(&mut len).is_err() {
            return;
        }
        if let Some(d) = down.as_mut() {
            if d.write_all(&len).is_err() {
                return;
            }
        }
        let mut left = u64::from_le_bytes(len);
        if left == 0 {
            return;
        }
        while left > 0 {
            let want = (left as usize).min(buf.len());
            let n = match up.read(&mut buf[..want]) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if let Some(d) = down.as_mut() {
                if d.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            left -= n as u64;
        }
        let mut ack = [1u8; 1];
        if let Some(d) = down.as_mut() {
            if d.read_exact(&mut ack).is_err() {
                return;
            }
        }
        if up.write_all(&ack).is_err() {
            return;
        }
    }
}

/// Pins the calling thread to one CPU.
fn pin_to(cpu: usize) {
    // SAFETY: cpu_set_t is a plain bit set; zeroed is empty, CPU_SET sets
    // one bit, and sched_setaffinity(0, ..) affects only this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

impl Chain {
    /// Starts `hops` forwarders on loopback and connects the client.
    pub fn start(hops: usize) -> std::io::Result<Chain> {
        Self::start_pinned(hops, None)
    }

    /// Like [`Chain::start`], with every server thread pinned to `cpu`.
    pub fn start_pinned(hops: usize, cpu: Option<usize>) -> std::io::Result<Chain> {
        assert!(hops >= 1, "a chain has at least one server");
        let mut threads = Vec::new();
        // Build from the tail: each server knows its downstream address.
        let mut downstream: Option<std::net::SocketAddr> = None;
        for _ in 0..hops {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            let addr = listener.local_addr()?;
            let down_addr = downstream;
            threads.push(std::thread::spawn(move || {
                if let Some(cpu) = cpu {
                    pin_to(cpu);
                }
                let Ok((up, _)) = listener.accept() else {
                    return;
                };
                let _ = up.set_nodelay(true);
                let down = down_addr.and_then(|a| TcpStream::connect(a).ok());
                if let Some(d) = &down {
                    let _ = d.set_nodelay(true);
                }
                forward(up, down);
            }));
            downstream = Some(addr);
        }
        let client = TcpStream::connect(downstream.expect("hops >= 1"))?;
        client.set_nodelay(true)?;
        Ok(Chain {
            client,
            threads,
            buf: vec![0xA5; RAW_BUFFER_BYTES],
        })
    }

    /// Pushes `bytes` through the chain and waits for the tail's ack.
    pub fn push(&mut self, bytes: u64) -> std::io::Result<Duration> {
        assert!(bytes > 0, "a zero length ends the chain");
        let started = Instant::now();
        self.client.write_all(&bytes.to_le_bytes())?;
        let mut left = bytes;
        while left > 0 {
            let n = (left as usize).min(self.buf.len());
            self.client.write_all(&self.buf[..n])?;
            left -= n as u64;
        }
        let mut ack = [0u8; 1];
        self.client.read_exact(&mut ack)?;
        Ok(started.elapsed())
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        let _ = self.client.write_all(&0u64.to_le_bytes());
        let _ = self.client.shutdown(std::net::Shutdown::Both);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Median time of `repeats` pushes of `bytes` through `hops` servers (after
/// one warm-up push).
pub fn push_time(hops: usize, bytes: u64, repeats: usize) -> std::io::Result<Duration> {
    let mut chain = Chain::start(hops)?;
    chain.push(bytes)?;
    let mut samples = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        samples.push(chain.push(bytes)?);
    }
    Ok(median(samples))
}

/// One-byte round trips over one connection, for `duration` (at most
/// `count_max`); with `cpu`, both ends run pinned to that CPU (the
/// `taskset -c 0` mode: no cross-core wake-up).
pub fn round_trip(
    duration: Duration,
    count_max: usize,
    cpu: Option<usize>,
) -> std::io::Result<Latency> {
    std::thread::spawn(move || {
        if let Some(cpu) = cpu {
            pin_to(cpu);
        }
        round_trip_here(duration, count_max, cpu)
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("round-trip thread panicked")))
}

fn round_trip_here(
    duration: Duration,
    count_max: usize,
    cpu: Option<usize>,
) -> std::io::Result<Latency> {
    let mut chain = Chain::start_pinned(1, cpu)?;
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < duration && samples.len() < count_max {
        samples.push(chain.push(1)?);
    }
    Ok(latency(samples))
}

/// A single writer appending `block_bytes` and calling `fdatasync` after
/// each, in a scratch file under `dir`, for `duration`: syncs per second.
pub fn fdatasync_rate(dir: &Path, block_bytes: usize, duration: Duration) -> std::io::Result<f64> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("fdatasync-baseline");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let block = vec![0x5Au8; block_bytes];
    let started = Instant::now();
    let mut syncs = 0u64;
    while started.elapsed() < duration {
        file.write_all(&block)?;
        file.sync_data()?;
        syncs += 1;
    }
    let rate = syncs as f64 / started.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_forwards_and_acks() {
        let mut chain = Chain::start(3).expect("chain starts");
        chain.push(200_000).expect("push");
        chain.push(1).expect("small push");
    }
}
