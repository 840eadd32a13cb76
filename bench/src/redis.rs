//! The peer baseline: Redis (Debian's `redis-server`), one primary and two
//! replicas on loopback, each record an `XADD` followed by `WAIT 2 0` (the
//! record is acknowledged once both replicas have it: replicated, not
//! durable; the servers run with `--save "" --appendonly no`).
//!
//! The client is a minimal RESP client written here (commands as arrays of
//! bulk strings; replies read by their first byte).

use super::proc::{free_port, Server};
use super::stats::{latency, Latency};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The stream is trimmed to about this many entries so a long run stays in
/// bounded memory (Redis keeps streams in RAM, three times here).
pub const STREAM_ENTRIES_MAX: u32 = 1000;
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// One RESP reply, as much of it as the benchmark needs.
#[derive(Debug, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

pub struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
    out: Vec<u8>,
}

/// Encodes one command as a RESP array of bulk strings.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads one reply.
pub fn read_reply(r: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.len() < 3 || !line.ends_with(b"\r\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "short reply",
        ));
    }
    let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    let bad = |_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad length");
    Ok(match line[0] {
        b'+' => Reply::Simple(body),
        b'-' => Reply::Error(body),
        b':' => Reply::Int(body.parse().map_err(bad)?),
        b'$' => {
            let n: i64 = body.parse().map_err(bad)?;
            if n < 0 {
                Reply::Bulk(None)
            } else {
                let mut data = vec![0u8; n as usize + 2];
                std::io::Read::read_exact(r, &mut data)?;
                data.truncate(n as usize);
                Reply::Bulk(Some(data))
            }
        }
        b'*' => {
            let n: i64 = body.parse().map_err(bad)?;
            let mut items = Vec::new();
            for _ in 0..n.max(0) {
                items.push(read_reply(r)?);
            }
            Reply::Array(items)
        }
        other => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unknown reply type {:?}", other as char),
            ))
        }
    })
}

impl Conn {
    pub fn connect(port: u16) -> std::io::Result<Conn> {
        let s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            r: BufReader::with_capacity(64 * 1024, s.try_clone()?),
            w: s,
            out: Vec::new(),
        })
    }

    pub fn call(&mut self, args: &[&[u8]]) -> std::io::Result<Reply> {
        self.out.clear();
        encode(&mut self.out, args);
        self.w.write_all(&self.out)?;
        read_reply(&mut self.r)
    }
}

/// A primary and two replicas, stopped by PID when dropped.
pub struct RedisTrio {
    pub primary_port: u16,
    servers: Vec<Server>,
}

fn start_one(dir: &Path, port: u16, primary: Option<u16>) -> std::io::Result<Server> {
    let mut cmd = Command::new("redis-server");
    cmd.arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--daemonize", "no", "--protected-mode", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join(format!("redis-{port}.log")));
    if let Some(p) = primary {
        cmd.args(["--replicaof", "127.0.0.1"]).arg(p.to_string());
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Ok(Server::new(format!("redis-server :{port}"), cmd.spawn()?))
}

impl RedisTrio {
    /// Whether `redis-server` is installed.
    pub fn available() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Starts the three servers under `dir` and waits until both replicas
    /// are online.
    pub fn start(dir: &Path) -> Result<RedisTrio, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let primary_port = free_port().map_err(|e| e.to_string())?;
        let mut servers = vec![start_one(dir, primary_port, None).map_err(|e| e.to_string())?];
        for _ in 0..2 {
            let port = free_port().map_err(|e| e.to_string())?;
            servers.push(start_one(dir, port, Some(primary_port)).map_err(|e| e.to_string())?);
        }
        let trio = RedisTrio {
            primary_port,
            servers,
        };
        let started = Instant::now();
        loop {
            if let Ok(mut c) = Conn::connect(primary_port) {
                if let Ok(Reply::Bulk(Some(info))) = c.call(&[b"INFO", b"replication"]) {
                    let info = String::from_utf8_lossy(&info);
                    let online = info.lines().filter(|l| l.contains("state=online")).count();
                    if online == 2 {
                        return Ok(trio);
                    }
                }
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err("the Redis replicas did not come online in 15 s".to_string());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(|s| s.pid()).collect()
    }
}

/// One Redis load run.
#[derive(Clone, Debug)]
pub struct RedisRun {
    pub record_bytes: u64,
    pub clients: usize,
    pub records: u64,
    pub elapsed: Duration,
    pub latency: Latency,
    /// CPU seconds the three redis-servers and this process (the
    /// clients) used during the run, if readable.
    pub cpu_s: Option<f64>,
}

impl RedisRun {
    /// CPU time per acknowledged record, in µs.
    pub fn cpu_us_per_record(&self) -> Option<f64> {
        super::stats::cpu_us_per(self.cpu_s, self.records)
    }
    pub fn records_per_s(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
    pub fn mb_per_s(&self) -> f64 {
        super::stats::mb_per_s(self.records * self.record_bytes, self.elapsed)
    }
}

/// `clients` threads, each a connection doing `XADD` + `WAIT 2 0` with
/// `record_bytes` of payload, for `duration`.
pub fn load(
    port: u16,
    record_bytes: u64,
    clients: usize,
    duration: Duration,
    servers: &[u32],
) -> Result<RedisRun, String> {
    let stream = format!("bench-{record_bytes}-{clients}");
    let cpu = super::proc::CpuMeter::start(
        servers
            .iter()
            .copied()
            .chain([std::process::id()])
            .collect(),
    );
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let stream = stream.clone();
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut c = Conn::connect(port).map_err(|e| e.to_string())?;
                let payload = vec![b'r'; record_bytes as usize];
                let maxlen = STREAM_ENTRIES_MAX.to_string();
                let mut samples = Vec::new();
                while started.elapsed() < duration {
                    let t = Instant::now();
                    let args: [&[u8]; 7] = [
                        b"XADD",
                        stream.as_bytes(),
                        b"MAXLEN",
                        b"~",
                        maxlen.as_bytes(),
                        b"*",
                        b"d",
                    ];
                    let mut full: Vec<&[u8]> = args.to_vec();
                    full.push(&payload);
                    match c.call(&full).map_err(|e| e.to_string())? {
                        Reply::Bulk(Some(_)) => {}
                        other => return Err(format!("XADD answered {other:?}")),
                    }
                    match c.call(&[b"WAIT", b"2", b"0"]).map_err(|e| e.to_string())? {
                        Reply::Int(2) => {}
                        other => return Err(format!("WAIT 2 0 answered {other:?}")),
                    }
                    samples.push(t.elapsed());
                }
                Ok(samples)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(
            t.join()
                .map_err(|_| "a Redis client thread panicked".to_string())??,
        );
    }
    let elapsed = started.elapsed();
    let cpu_s = cpu.seconds();
    Ok(RedisRun {
        record_bytes,
        clients,
        records: all.len() as u64,
        elapsed,
        latency: latency(all),
        cpu_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_round_trip() {
        let mut out = Vec::new();
        encode(&mut out, &[b"WAIT", b"2", b"0"]);
        assert_eq!(out, b"*3\r\n$4\r\nWAIT\r\n$1\r\n2\r\n$1\r\n0\r\n");
        let mut r = &b":2\r\n$3\r\nabc\r\n$-1\r\n*2\r\n+OK\r\n-ERR x\r\n"[..];
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Int(2));
        assert_eq!(
            read_reply(&mut r).unwrap(),
            Reply::Bulk(Some(b"abc".to_vec()))
        );
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Bulk(None));
        assert_eq!(
            read_reply(&mut r).unwrap(),
            Reply::Array(vec![
                Reply::Simple("OK".into()),
                Reply::Error("ERR x".into())
            ])
        );
    }
}
