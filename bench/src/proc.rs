//! Child processes for the benchmarks: run one with a time cap and learn
//! its peak memory, and start/stop servers by PID.
//!
//! Peak memory is the kernel's high-water mark of the child's resident set
//! (`ru_maxrss` from `wait4`, the same counter `/proc/<pid>/status` shows as
//! `VmHWM`), so every checker run is measured alone, in its own process.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How one capped child run ended.
#[derive(Debug)]
pub struct Finished {
    /// Its stdout, line by line.
    pub stdout: Vec<String>,
    /// The last progress line it wrote to stderr (split at `\r` too).
    pub last_stderr: String,
    pub wall: Duration,
    /// Peak resident set in KiB; 0 when unknown.
    pub peak_kib: u64,
    /// False when the cap stopped it.
    pub finished: bool,
    pub success: bool,
}

/// Runs `cmd` until it exits or `cap` passes (then kills it), echoing its
/// stderr (indented) so the user sees its progress.
pub fn run_capped(mut cmd: Command, cap: Duration) -> std::io::Result<Finished> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    let out = child.stdout.take().expect("piped stdout");
    let err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let last = Arc::new(Mutex::new(String::new()));
    let last_w = last.clone();
    let err_reader = std::thread::spawn(move || {
        let mut err = err;
        let mut buf = [0u8; 4096];
        let mut line = Vec::new();
        let mut stderr = std::io::stderr();
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            // Echo as-is (the checker's progress rewrites one line with
            // `\r`) and remember the latest complete line.
            let _ = stderr.write_all(&buf[..n]);
            for &b in &buf[..n] {
                if b == b'\r' || b == b'\n' {
                    if !line.is_empty() {
                        *last_w.lock().expect("stderr line") =
                            String::from_utf8_lossy(&line).into_owned();
                    }
                    line.clear();
                } else {
                    line.push(b);
                }
            }
        }
        let _ = stderr.flush();
    });
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut finished = true;
    loop {
        // SAFETY: pid is our own child, which nothing else reaps (std's
        // Child is never waited on), and both pointers are valid.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if started.elapsed() >= cap {
            finished = false;
            // SAFETY: signalling our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: as above; this wait blocks until it is gone.
            unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = started.elapsed();
    // The child is reaped; make sure std's Child does not try again.
    std::mem::forget(child);
    let stdout = out_reader.join().unwrap_or_default();
    let _ = err_reader.join();
    let last_stderr = last.lock().expect("stderr line").clone();
    Ok(Finished {
        stdout,
        last_stderr,
        wall,
        peak_kib: usage.ru_maxrss.max(0) as u64,
        finished,
        success: finished && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    })
}

/// This process's peak resident set in KiB, from `/proc/self/status`.
pub fn self_vmhwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user and system, every thread) process `pid` has used so
/// far, from `/proc/<pid>/stat` (`utime` and `stime`, in clock ticks:
/// 10 ms each where the kernel ticks at 100 Hz, fine over seconds of load).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it do not.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_s > 0).then(|| ticks as f64 / per_s as f64)
}

/// The CPU time of `pids` together ([`cpu_seconds`]), `None` if any is
/// unreadable.
fn cpu_seconds_of(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|p| cpu_seconds(*p)).sum()
}

/// The CPU time a set of processes uses from its start on: a load run's
/// servers and this process, which runs the clients.
pub struct CpuMeter {
    pids: Vec<u32>,
    start: Option<f64>,
}

impl CpuMeter {
    pub fn start(pids: Vec<u32>) -> CpuMeter {
        let start = cpu_seconds_of(&pids);
        CpuMeter { pids, start }
    }

    /// CPU seconds used since the start, `None` if unreadable.
    pub fn seconds(&self) -> Option<f64> {
        self.start
            .zip(cpu_seconds_of(&self.pids))
            .map(|(b, a)| a - b)
    }
}

/// The CPUs this process may run on, as `/proc/self/status` lists them.
pub fn cpus_allowed() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// A server process we started; stopped by its PID when dropped.
pub struct Server {
    pub name: String,
    child: Option<Child>,
}

impl Server {
    pub fn new(name: impl Into<String>, child: Child) -> Self {
        Server {
            name: name.into(),
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Whether it has exited already (crashed, or refused to start).
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// SIGTERM, up to 5 s for a clean exit, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        // SAFETY: signalling our own child by its PID; it is not reaped
        // (try_wait just saw it running).
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "  {} (pid {}) ignored SIGTERM; killing it",
            self.name,
            child.id()
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free loopback port right now (another process may take it before we
/// bind it again; the benchmarks accept that rare failure).
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}
