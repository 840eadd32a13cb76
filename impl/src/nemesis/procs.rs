//! The campaign's server processes: a master and chunkservers started as
//! processes of this binary, each with its own cluster.toml, signalled,
//! killed and restarted by the nemesis.

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stateright::actor::Id;

use crate::config::{ClusterConfig, Role};

/// The server processes.
pub(super) struct Procs {
    pub(super) binary: PathBuf,
    /// Each server's own cluster.toml: the other servers' addresses in it
    /// are the proxies of its links to them.
    pub(super) config_paths: HashMap<u64, PathBuf>,
    pub(super) config: ClusterConfig,
    pub(super) logs: PathBuf,
    pub(super) children: HashMap<u64, Child>,
}

impl Procs {
    pub(super) fn spawn(&mut self, id: u64) -> Result<(), String> {
        let node = self
            .config
            .node(Id::from(id as usize))
            .map_err(|e| e.to_string())?;
        let role = match node.role {
            Role::Master => "master",
            Role::Chunkserver => "chunkserver",
            Role::Client => return Err(format!("node {id} is a client")),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("node-{id}.log")))
            .map_err(|e| e.to_string())?;
        let config_path = &self.config_paths[&id];
        let child = spawn_server(&self.binary, config_path, role, id, &[], log)
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        self.children.insert(id, child);
        let addr = node
            .addr
            .ok_or_else(|| format!("node {id} has no address"))?;
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(format!("node {id} did not start"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    pub(super) fn signal(&self, id: u64, signal: i32) {
        if let Some(child) = self.children.get(&id) {
            // SAFETY: kill(2) on a child this process started and has not
            // reaped; it touches no memory of ours.
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
        }
    }

    pub(super) fn kill(&mut self, id: u64) {
        self.signal(id, libc::SIGKILL);
        if let Some(mut child) = self.children.remove(&id) {
            let _ = child.wait();
        }
    }

    pub(super) fn stop_all(&mut self) {
        let ids: Vec<u64> = self.children.keys().copied().collect();
        for id in ids {
            self.signal(id, libc::SIGCONT);
            self.kill(id);
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Starts `binary` as server `id` (`role`: "master" or "chunkserver") of
/// the cluster in `config`, with `extra` arguments (a seeded bug for a
/// test: `--bug NAME --testing`), logging at info to `log`.
pub fn spawn_server(
    binary: &Path,
    config: &Path,
    role: &str,
    id: u64,
    extra: &[&str],
    log: std::fs::File,
) -> std::io::Result<Child> {
    Command::new(binary)
        .args([role, "--config"])
        .arg(config)
        .args(["--id", &id.to_string()])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
}
