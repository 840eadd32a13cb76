//! Hostile and excessive input, and the CLI's edges (issue 15): a master
//! and three chunkservers in this process on 127.0.0.1, with a cluster
//! secret; strangers, idle peers and greedy peers as raw sockets; the CLI
//! as the built binary. Every test is bounded in time and connections.

use leasehold::client::{Client, ClientError};
use leasehold::config::ClusterConfig;
use leasehold::frame::{self, Envelope};
use leasehold::host::{ConnLimits, RunningHost};
use leasehold::nodes::{self, NodeHooks, RealMsg};
use leasehold::validate::{validate_dir, Check, ValidateOptions};
use stateright::actor::Id;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const BIN: &str = env!("CARGO_BIN_EXE_leasehold");
const CHUNK_BYTES: u64 = 256 * 1024;
const SECRET: &str = "test-secret-0123456789";
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
const OP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an append takes on an idle loopback cluster, generously.
const APPEND_NORMAL: Duration = Duration::from_secs(5);

struct Cluster {
    dir: tempfile::TempDir,
    config: ClusterConfig,
    servers: Vec<RunningHost<RealMsg>>,
}

impl Cluster {
    async fn start(limits: ConnLimits) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let config = ClusterConfig::local_with_clients(3, 1, dir.path())
            .unwrap()
            .with_chunk_bytes(CHUNK_BYTES)
            .unwrap()
            .with_leases(leasehold::config::Leases::Short)
            .with_secret(Some(SECRET.into()))
            .unwrap()
            .with_limits(limits)
            .unwrap()
            .with_trace_dir(Some(dir.path().join("traces")));
        config.write(&dir.path().join("cluster.toml")).unwrap();
        let servers =
            nodes::start_servers_with(&config, NodeHooks::default(), |_| NodeHooks::default())
                .await
                .unwrap();
        Cluster {
            dir,
            config,
            servers,
        }
    }

    fn addr(&self, id: usize) -> SocketAddr {
        self.config.addr(Id::from(id)).unwrap()
    }

    async fn client(&self) -> Client {
        Client::connect_with_timeout(&self.config, 4, OP_TIMEOUT)
            .await
            .unwrap()
    }

    fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("cluster.toml")
    }

    /// The CLI as a user runs it: at no place, with nothing of its own in
    /// the cluster file (issue #14: a client listens nowhere), beside the
    /// test's own client at place 4.
    fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg(args[0])
            .arg("--config")
            .arg(self.config_path())
            .args(&args[1..])
            .env("RUST_LOG", "warn");
        cmd
    }

    /// Stops the servers and validates the run's traces (issue #9: every
    /// TCP test's run must validate).
    async fn stop(self) {
        self.stop_validated(false).await
    }

    /// [`Cluster::stop`] for a test that slipped frames of its own in as a
    /// configured peer: the receivers' TRACE-2 findings (a message its
    /// sender never sent) must occur, and nothing else.
    async fn stop_forged(self) {
        self.stop_validated(true).await
    }

    async fn stop_validated(self, forged: bool) {
        for s in self.servers {
            s.shutdown().await.unwrap();
        }
        let traces = self.config.trace_dir.clone().expect("tests record traces");
        let report = validate_dir(&traces, &ValidateOptions::default()).unwrap();
        let foreseen = report
            .unforeseen(|f| forged && f.check == Check::Trace2)
            .unwrap_or_else(|e| panic!("trace validation failed: {e}"));
        assert!(report.steps_replayed > 0, "{}", report.summary());
        assert!(!forged || foreseen > 0, "the forged frame left no trace");
    }
}

async fn bounded(body: impl std::future::Future<Output = ()>) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test took too long");
}

fn hello(secret: &str) -> Vec<u8> {
    let mut h = b"LHHELLO1".to_vec();
    h.extend_from_slice(&(secret.len() as u16).to_be_bytes());
    h.extend_from_slice(secret.as_bytes());
    h
}

/// Connects from `source` (any 127.x.y.z: the per-address limit counts by
/// address, and the cluster's own nodes are all 127.0.0.1).
async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

/// What the node sent back before closing: its refusal line.
async fn refusal(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
        .await
        .expect("the node closes a refused connection")
        .ok();
    String::from_utf8_lossy(&got).into_owned()
}

fn open_frame(path: String) -> Vec<u8> {
    frame::encode(&Envelope {
        src: Id::from(6),
        dst: Id::from(0),
        msg: RealMsg::OpenFile { path, create: true },
    })
    .unwrap()
}

/// A new client creates `path` and appends to it within the normal time.
async fn served(c: &Cluster, path: &str) -> Client {
    let client = c.client().await;
    client.create(path).await.unwrap();
    let started = Instant::now();
    client.record_append(path, b"served").await.unwrap();
    let took = started.elapsed();
    assert!(took < APPEND_NORMAL, "append took {took:?}");
    client
}

/// The refusal line if the node refused `s` within `within`, else `None`
/// (the connection is held open).
async fn refused_within(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut probe = [0u8; 1];
    match tokio::time::timeout(within, s.peek(&mut probe)).await {
        Ok(Ok(n)) if n > 0 => Some(refusal(s).await),
        _ => None,
    }
}

// LIMIT-1: idle connections take no one's place. Before the limits, 256
// idle connections held every slot and a new client timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_idle_connections_do_not_stop_a_new_client() {
    bounded(async {
        let c = Cluster::start(ConnLimits::default()).await;
        let mut idle = Vec::new();
        // The master and the first server of a push chain (client 4 is
        // closest to chunkserver 3).
        for to in [0, 3] {
            for _ in 0..400 {
                idle.push(TcpStream::connect(c.addr(to)).await.unwrap());
            }
        }
        let client = served(&c, "/logs/idle").await;
        drop(idle);
        client.shutdown().await;
        c.stop().await;
    })
    .await
}

// LIMIT-1: over a connection limit a peer is told which, and closed; a
// peer that says nothing is closed after the hello timeout; everyone else
// is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_connection_limit_a_peer_is_refused_and_told_why() {
    bounded(async {
        let limits = ConnLimits {
            connections_max: 12,
            connections_per_addr_max: 4,
            hello_timeout_ms: 1_000,
            ..ConnLimits::default()
        };
        let c = Cluster::start(limits).await;
        let master = c.addr(0);
        let started = Instant::now();
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(connect_from([127, 0, 0, 2], master).await);
        }
        let mut over = connect_from([127, 0, 0, 2], master).await;
        let line = refusal(&mut over).await;
        assert!(
            line.starts_with("LEASEHOLD REFUSED connections_per_addr_max:"),
            "{line:?}"
        );
        for _ in 0..4 {
            held.push(connect_from([127, 0, 0, 3], master).await);
        }
        // 8 held, and the cluster's own peers on 127.0.0.1 need room too:
        // fill to the total from a third address.
        let mut total_refused = None;
        for _ in 0..8 {
            let mut s = connect_from([127, 0, 0, 4], master).await;
            if let Some(line) = refused_within(&mut s, Duration::from_millis(100)).await {
                total_refused = Some(line);
                break;
            }
            held.push(s);
        }
        let line = total_refused.expect("the total limit is reached");
        assert!(
            line.starts_with("LEASEHOLD REFUSED connections_max:"),
            "{line:?}"
        );
        // Silent peers are closed after the hello timeout and told so.
        let line = refusal(&mut held[0]).await;
        assert!(
            line.starts_with("LEASEHOLD REFUSED hello_timeout_ms:"),
            "{line:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        // Their slots are free again: a client is served at once.
        let client = served(&c, "/logs/limits").await;
        client.shutdown().await;
        c.stop().await;
    })
    .await
}

// AUTH-1: a stranger without the secret is refused before any frame of
// its reaches the actor. Before, any frame from anyone was taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_the_secret_is_refused() {
    bounded(async {
        let c = Cluster::start(ConnLimits::default()).await;
        let master = c.addr(0);
        // No hello at all: straight to a frame, as before hellos existed.
        let mut s = TcpStream::connect(master).await.unwrap();
        s.write_all(&open_frame("/stranger/a".into()))
            .await
            .unwrap();
        let line = refusal(&mut s).await;
        assert!(line.starts_with("LEASEHOLD REFUSED secret:"), "{line:?}");
        // A hello with the wrong secret.
        let mut s = TcpStream::connect(master).await.unwrap();
        s.write_all(&hello("guess")).await.unwrap();
        s.write_all(&open_frame("/stranger/b".into()))
            .await
            .unwrap();
        let line = refusal(&mut s).await;
        assert!(line.contains("wrong cluster secret"), "{line:?}");
        // Neither file exists: the frames never reached the master.
        let client = c.client().await;
        for path in ["/stranger/a", "/stranger/b"] {
            let err = client.open(path).await.unwrap_err();
            assert!(matches!(err, ClientError::NoSuchFile(_)), "{err}");
        }
        // With the secret, the same frame is taken.
        let mut s = TcpStream::connect(master).await.unwrap();
        s.write_all(&hello(SECRET)).await.unwrap();
        s.write_all(&open_frame("/friend/c".into())).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while client.open("/friend/c").await.is_err() {
            assert!(Instant::now() < deadline, "the friend's frame was taken");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client.shutdown().await;
        c.stop_forged().await;
    })
    .await
}

// PATH-1: a 1 MiB path is refused with a clear error by the library, and
// by the master when sent raw; the master's saved state does not grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_mib_path_is_refused_and_the_master_keeps_nothing() {
    bounded(async {
        let c = Cluster::start(ConnLimits::default()).await;
        let client = c.client().await;
        let long = format!("/{}", "p".repeat(1024 * 1024));
        let err = client.create(&long).await.unwrap_err();
        assert!(matches!(err, ClientError::BadPath { .. }), "{err}");
        let shown = err.to_string();
        assert!(shown.contains("longer than 1024 bytes"), "{shown}");
        assert!(shown.len() < 300, "the error does not repeat the path");
        for bad in ["", "relative", "/a//b", "/a/../b"] {
            let err = client.create(bad).await.unwrap_err();
            assert!(matches!(err, ClientError::BadPath { .. }), "{bad:?}: {err}");
        }
        // The same, past the library: raw frames with the secret.
        let mut s = TcpStream::connect(c.addr(0)).await.unwrap();
        s.write_all(&hello(SECRET)).await.unwrap();
        for _ in 0..4 {
            s.write_all(&open_frame(long.clone())).await.unwrap();
        }
        s.write_all(&open_frame("relative/path".into()))
            .await
            .unwrap();
        // After them, one good path, so the master has handled them all
        // once the good one exists.
        s.write_all(&open_frame("/good/one".into())).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while client.open("/good/one").await.is_err() {
            assert!(Instant::now() < deadline, "the good path was created");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let err = client.open("/relative/path").await.unwrap_err();
        assert!(matches!(err, ClientError::NoSuchFile(_)), "{err}");
        let storage = c
            .config
            .node(Id::from(0))
            .unwrap()
            .dir()
            .join("actor-0.storage");
        let bytes = std::fs::metadata(&storage).unwrap().len();
        assert!(bytes < 4096, "the master saved {bytes} bytes");
        client.shutdown().await;
        c.stop_forged().await;
    })
    .await
}

// LIMIT-1: unfinished frames share one budget; a frame that would pass it
// is refused, and the budget is back once frames complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_frames_beyond_the_budget_are_refused() {
    bounded(async {
        let limits = ConnLimits {
            unfinished_frame_bytes_max: 3 * 1024 * 1024,
            ..ConnLimits::default()
        };
        let c = Cluster::start(limits).await;
        let master = c.addr(0);
        // Each announces a 1 MiB frame and sends a little of it.
        let mut greedy = Vec::new();
        let mut refused = None;
        for _ in 0..4 {
            let mut s = TcpStream::connect(master).await.unwrap();
            s.write_all(&hello(SECRET)).await.unwrap();
            s.write_all(&(1024 * 1024u32).to_be_bytes()).await.unwrap();
            s.write_all(&[6, 0]).await.unwrap();
            if let Some(line) = refused_within(&mut s, Duration::from_millis(300)).await {
                refused = Some(line);
                break;
            }
            greedy.push(s);
        }
        let line = refused.expect("the budget runs out");
        assert!(
            line.starts_with("LEASEHOLD REFUSED unfinished_frame_bytes_max:"),
            "{line:?}"
        );
        // Small frames need no budget: a client is served meanwhile.
        let client = served(&c, "/logs/budget").await;
        drop(greedy);
        client.shutdown().await;
        c.stop().await;
    })
    .await
}

// ---- the CLI

fn wait_bounded(mut child: Child, within: Duration) -> Output {
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {within:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// CLI-1: `stat … | head` and `append --print-offsets … | head -1` exit 0
// quietly when their reader goes away (they panicked with 101).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_stat_and_append_quietly() {
    bounded(async {
        let c = Cluster::start(ConnLimits::default()).await;
        let client = c.client().await;
        client.create("/logs/pipe").await.unwrap();
        client.record_append("/logs/pipe", b"x").await.unwrap();
        client.shutdown().await;

        let mut stat = c
            .cli(&["stat", "/logs/pipe"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(stat.stdout.take()); // the reader is gone before any output
        let out = tokio::task::spawn_blocking(move || wait_bounded(stat, Duration::from_secs(20)))
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{:?}: {}",
            out.status,
            stderr_of(&out)
        );
        assert!(!stderr_of(&out).contains("panicked"), "{}", stderr_of(&out));

        let mut append = c
            .cli(&["append", "--print-offsets", "/logs/pipe"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = append.stdin.take().unwrap();
        let stdout = append.stdout.take().unwrap();
        let out = tokio::task::spawn_blocking(move || {
            for i in 0..200 {
                writeln!(stdin, "record {i}").unwrap();
            }
            drop(stdin);
            let mut first = String::new();
            BufReader::new(stdout).read_line(&mut first).unwrap(); // `head -1`
            assert!(first.starts_with("1\t"), "{first:?}");
            wait_bounded(append, Duration::from_secs(30))
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{:?}: {}",
            out.status,
            stderr_of(&out)
        );
        assert!(!stderr_of(&out).contains("panicked"), "{}", stderr_of(&out));
        c.stop().await;
    })
    .await
}

// CLI-1: `append` exits after a failed record although its stdin stays open
// (`tail -f log | leasehold append` hung), and its summary counts the
// records acknowledged before the failure (it said 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_stops_at_a_failed_record_and_counts_the_acknowledged_ones() {
    bounded(async {
        let c = Cluster::start(ConnLimits::default()).await;
        let mut append = c
            .cli(&["append", "/logs/tail"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = append.stdin.take().unwrap();
        let out = tokio::task::spawn_blocking(move || {
            for i in 0..3 {
                writeln!(stdin, "fine {i}").unwrap();
            }
            // More than a quarter chunk: refused, the command's failure.
            let too_big = "x".repeat(CHUNK_BYTES as usize / 4 + 1);
            writeln!(stdin, "{too_big}").unwrap();
            stdin.flush().unwrap();
            // stdin stays open, as `tail -f` keeps it.
            let out = wait_bounded(append, Duration::from_secs(30));
            drop(stdin);
            out
        })
        .await
        .unwrap();
        let err = stderr_of(&out);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("appended 3 records"), "{err}");
        c.stop().await;
    })
    .await
}

// Issue #13: `append --window` keeps several records in flight on one
// client; every line is appended once and said where, whatever order they
// land in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_with_a_window_appends_every_line_once() {
    use std::collections::HashSet;
    bounded(async {
        let c = Cluster::start(ConnLimits::default()).await;
        let lines = 300;
        let mut append = c
            .cli(&["append", "--window", "8", "--print-offsets", "/logs/window"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = append.stdin.take().unwrap();
        let out = tokio::task::spawn_blocking(move || {
            for i in 0..lines {
                writeln!(stdin, "windowed record {i}").unwrap();
            }
            drop(stdin);
            wait_bounded(append, Duration::from_secs(60))
        })
        .await
        .unwrap();
        let err = stderr_of(&out);
        assert!(out.status.success(), "{:?}: {err}", out.status);
        assert!(err.contains(&format!("appended {lines} records")), "{err}");
        // One line per record: input line, chunk index, offset, record id.
        let printed = String::from_utf8(out.stdout).unwrap();
        let mut line_nos = HashSet::new();
        let mut places = HashSet::new();
        for row in printed.lines() {
            let f: Vec<&str> = row.split('\t').collect();
            assert_eq!(f.len(), 4, "{row:?}");
            line_nos.insert(f[0].parse::<u64>().unwrap());
            places.insert((f[1].to_string(), f[2].to_string()));
        }
        assert_eq!(line_nos, (1..=lines).collect::<HashSet<u64>>());
        assert_eq!(places.len(), lines as usize, "no two records at one place");
        let client = c.client().await;
        let records = client.read_records("/logs/window").await.unwrap();
        let data: HashSet<Vec<u8>> = records.into_iter().map(|r| r.data).collect();
        let want: HashSet<Vec<u8>> = (0..lines)
            .map(|i| format!("windowed record {i}").into_bytes())
            .collect();
        assert_eq!(data, want);
        client.shutdown().await;
        c.stop().await;
    })
    .await
}

// CLI-1: a write far past the file's end is refused at once with the bound
// named, allocating nothing (it ignored --timeout-ms and allocated
// thousands of chunks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_far_past_the_end_is_refused_within_its_deadline() {
    bounded(async {
        let c = Cluster::start(ConnLimits::default()).await;
        let write = c
            .cli(&[
                "write",
                "--offset",
                "1099511627776",
                "--timeout-ms",
                "10000",
                "--data",
                "far",
                "/far/file",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let out = tokio::task::spawn_blocking(move || wait_bounded(write, Duration::from_secs(12)))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        let err = stderr_of(&out);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("WRITE_NEW_CHUNKS_MAX"), "{err}");
        let client = c.client().await;
        assert_eq!(client.open("/far/file").await.unwrap().chunks, 0);
        client.shutdown().await;
        c.stop().await;
    })
    .await
}

// CLI-1: a read whose only reachable replica is corrupt names the
// corruption (it said "timed out … is the cluster running").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_from_a_corrupt_last_replica_names_the_corruption() {
    bounded(async {
        let mut c = Cluster::start(ConnLimits::default()).await;
        let client = c.client().await;
        client.create("/logs/corrupt").await.unwrap();
        let (chunk, _) = client
            .record_append("/logs/corrupt", &[b'r'; 5000])
            .await
            .unwrap();
        client.shutdown().await;
        // Chunkservers 1 and 2 stop; 3 keeps a corrupt replica.
        let servers = std::mem::take(&mut c.servers);
        for s in servers {
            if [1, 2].contains(&usize::from(s.id())) {
                s.shutdown().await.unwrap();
            } else {
                c.servers.push(s);
            }
        }
        let node = c.config.node(Id::from(3)).unwrap();
        let file = nodes::chunk_dir(node).join(format!("chunk-{chunk}.dat"));
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[100] ^= 0x55;
        std::fs::write(&file, bytes).unwrap();

        let read = c
            .cli(&["read", "--timeout-ms", "4000", "/logs/corrupt"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = tokio::task::spawn_blocking(move || wait_bounded(read, Duration::from_secs(20)))
            .await
            .unwrap();
        let err = stderr_of(&out);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("chunkserver 3"), "{err}");
        assert!(err.contains("corrupt"), "{err}");
        assert!(!err.contains("is the cluster running"), "{err}");
        c.stop().await;
    })
    .await
}
