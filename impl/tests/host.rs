//! The host with a toy actor on 127.0.0.1: messages flow, timers fire and
//! re-arm like stateright's, saves survive a restart and land before the
//! sends after them, the application hook works, and garbage on the port
//! hurts only the connection it came on, the barrier (group commit)
//! passes before any command of the handlers it covers, a node whose
//! actor is behind stops reading once its inbox's byte budget is used, and
//! a client, which listens nowhere, is answered on its own connections.

use leasehold::config::ClusterConfig;
use leasehold::frame::{self, Envelope};
use leasehold::host::{load_storage, ActorHost, HostConfig, RunningHost};
use leasehold_model::types::StoreError;
use serde::{Deserialize, Serialize};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Stands for the client library in these tests; not a cluster node.
const APP_ID: usize = 1000;
const TEST_MS_MAX: u64 = 10_000;
const WAIT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum Msg {
    /// From the app: send `Ping(n)` to `to`.
    PingOther {
        to: u64,
        n: u64,
    },
    Ping(u64),
    Pong(u64),
    /// Count one up, save, then report `Value`.
    Bump,
    Get,
    Value(u64),
    /// Set the tick timer twice in one handler: it must fire once.
    ArmTwice,
    /// Set the tick timer, then cancel it: it must not fire.
    ArmThenCancel,
    Tick(u64),
    Roll,
    Rolled(u8),
    /// Record one write outside the state (as a chunkserver writes a chunk
    /// file), then report how many were written so far.
    Write,
    Written(u64),
    /// Block the actor thread for this many milliseconds.
    Stall(u64),
    /// Block the actor thread while [`Toy::hold`] is set.
    Hold,
    /// From the app: send `Relay { via, n }` to `to`.
    RelayOther {
        to: u64,
        via: u64,
        n: u64,
    },
    /// Have node `via` send `Pong(n)` back to the sender: as the end of a
    /// push chain answers a client that sent it nothing ([0098]).
    Relay {
        via: u64,
        n: u64,
    },
    Forward {
        to: u64,
        n: u64,
    },
    /// Some bytes, numbered; reported to the app as `Got`.
    Blob(u64, leasehold::Bytes),
    /// A `Blob`'s number and length, once handled.
    Got(u64, u64),
    /// Write, then send `Forward` to `via` (and, with `answer`, `Written`
    /// back): a primary's write and its `Apply`.
    WriteThenRelay {
        via: u64,
        n: u64,
        answer: bool,
    },
}

/// Writes made by handlers outside the actor's state, and what the barrier
/// has made durable of them.
#[derive(Default)]
struct Disk {
    written: AtomicU64,
    synced: AtomicU64,
    /// Barrier passes that found something to sync.
    syncs: AtomicU64,
    fail: AtomicBool,
    /// A sync waits while this is set (a slow disk).
    slow: AtomicBool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    count: u64,
    ticks: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Timer {
    Tick,
}

struct Toy {
    /// Ticks armed by `on_start`, re-armed until this many fired.
    ticks_at_start: u64,
    disk: Arc<Disk>,
    /// Keeps a `Hold` handler from returning while set.
    hold: Arc<AtomicBool>,
}

impl Actor for Toy {
    type Msg = Msg;
    type State = State;
    type Timer = Timer;
    type Storage = u64;
    type Random = u8;

    fn on_start(&self, _id: Id, storage: &Option<u64>, o: &mut Out<Self>) -> State {
        if self.ticks_at_start > 0 {
            o.set_timer(Timer::Tick, ms(5)..ms(15));
        }
        State {
            count: storage.unwrap_or(0),
            ticks: 0,
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<State>, src: Id, msg: Msg, o: &mut Out<Self>) {
        match msg {
            Msg::PingOther { to, n } => o.send(Id::from(to as usize), Msg::Ping(n)),
            Msg::Ping(n) => o.send(src, Msg::Pong(n)),
            Msg::Pong(n) => o.send(app_id(), Msg::Pong(n)),
            Msg::Bump => {
                let s = state.to_mut();
                s.count += 1;
                o.save(s.count);
                o.send(src, Msg::Value(s.count));
            }
            Msg::Get => o.send(src, Msg::Value(state.count)),
            Msg::ArmTwice => {
                o.set_timer(Timer::Tick, ms(30)..ms(30));
                o.set_timer(Timer::Tick, ms(60)..ms(60));
            }
            Msg::ArmThenCancel => {
                o.set_timer(Timer::Tick, ms(10)..ms(10));
                o.cancel_timer(Timer::Tick);
            }
            Msg::Roll => o.choose_random("roll", vec![1, 2, 3]),
            Msg::Write => {
                let n = self.disk.written.fetch_add(1, Ordering::SeqCst) + 1;
                o.send(src, Msg::Written(n));
            }
            Msg::Stall(n) => std::thread::sleep(ms(n)),
            Msg::Hold => {
                while self.hold.load(Ordering::SeqCst) {
                    std::thread::sleep(ms(1));
                }
            }
            Msg::Blob(n, data) => o.send(app_id(), Msg::Got(n, data.len() as u64)),
            Msg::RelayOther { to, via, n } => o.send(Id::from(to as usize), Msg::Relay { via, n }),
            Msg::Relay { via, n } => o.send(
                Id::from(via as usize),
                Msg::Forward {
                    to: usize::from(src) as u64,
                    n,
                },
            ),
            Msg::Forward { to, n } => o.send(Id::from(to as usize), Msg::Pong(n)),
            Msg::WriteThenRelay { via, n, answer } => {
                self.disk.written.fetch_add(1, Ordering::SeqCst);
                let to = APP_ID as u64;
                o.send(Id::from(via as usize), Msg::Forward { to, n });
                if answer {
                    o.send(src, Msg::Written(n));
                }
            }
            _ => {}
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<State>, _timer: &Timer, o: &mut Out<Self>) {
        let s = state.to_mut();
        s.ticks += 1;
        o.send(app_id(), Msg::Tick(s.ticks));
        if s.ticks < self.ticks_at_start {
            o.set_timer(Timer::Tick, ms(5)..ms(15));
        }
    }

    fn on_random(&self, _id: Id, _state: &mut Cow<State>, random: &u8, o: &mut Out<Self>) {
        o.send(app_id(), Msg::Rolled(*random));
    }
}

fn app_id() -> Id {
    Id::from(APP_ID)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn start(cluster: &ClusterConfig, id: u64, ticks_at_start: u64) -> RunningHost<Msg> {
    host(cluster, id, ticks_at_start, Arc::default(), false)
        .start()
        .await
        .unwrap()
}

fn host(
    cluster: &ClusterConfig,
    id: u64,
    ticks_at_start: u64,
    disk: Arc<Disk>,
    with_barrier: bool,
) -> ActorHost<Toy> {
    let config = HostConfig::from_cluster(cluster, Id::from(id as usize))
        .unwrap()
        .with_app_id(app_id())
        .with_seed(id);
    let toy = Toy {
        ticks_at_start,
        disk: disk.clone(),
        hold: Arc::default(),
    };
    let host = ActorHost::new(toy, config);
    if !with_barrier {
        return host;
    }
    host.with_barrier(Box::new(move || {
        let written = disk.written.load(Ordering::SeqCst);
        if written == disk.synced.load(Ordering::SeqCst) {
            return Ok(());
        }
        if disk.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Io("disk on fire".into()));
        }
        while disk.slow.load(Ordering::SeqCst) {
            std::thread::sleep(ms(1));
        }
        disk.syncs.fetch_add(1, Ordering::SeqCst);
        disk.synced.store(written, Ordering::SeqCst);
        Ok(())
    }))
}

async fn next(app: &mut mpsc::Receiver<Msg>) -> Msg {
    timeout(WAIT, app.recv())
        .await
        .expect("no message for the app in time")
        .expect("app channel closed")
}

/// Runs a test body under the per-test time limit.
async fn bounded(body: impl std::future::Future<Output = ()>) {
    init_tracing();
    timeout(ms(TEST_MS_MAX), body)
        .await
        .expect("test took too long");
}

fn cluster(dir: &Path) -> ClusterConfig {
    // Three servers, ids 0..3 (the toy ignores roles), and a client place.
    ClusterConfig::local_with_clients(2, 1, dir).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_between_hosts_and_back_to_the_app() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = cluster(dir.path());
        let mut a = start(&cluster, 0, 0).await;
        let b = start(&cluster, 1, 0).await;
        let c = start(&cluster, 2, 0).await;
        let mut app = a.take_app_receiver().unwrap();
        for (to, n) in [(1, 7), (2, 8), (1, 9)] {
            a.handle()
                .inject(app_id(), Msg::PingOther { to, n })
                .await
                .unwrap();
            assert_eq!(next(&mut app).await, Msg::Pong(n));
        }
        // A reply to the injected message goes to the app, not the network.
        a.handle().inject(app_id(), Msg::Get).await.unwrap();
        assert_eq!(next(&mut app).await, Msg::Value(0));
        for h in [a, b, c] {
            h.shutdown().await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_rearm_and_cancel_like_stateright() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = cluster(dir.path());
        let mut a = start(&cluster, 0, 3).await;
        let mut app = a.take_app_receiver().unwrap();
        for n in 1..=3 {
            assert_eq!(next(&mut app).await, Msg::Tick(n));
        }
        // Re-setting an armed timer re-arms it: one firing, not two.
        a.handle().inject(app_id(), Msg::ArmTwice).await.unwrap();
        assert_eq!(next(&mut app).await, Msg::Tick(4));
        // Cancelled right after being set: never fires.
        a.handle()
            .inject(app_id(), Msg::ArmThenCancel)
            .await
            .unwrap();
        tokio::time::sleep(ms(150)).await;
        assert!(
            app.try_recv().is_err(),
            "a timer fired twice or after its cancel"
        );
        a.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_storage_is_reloaded_after_a_restart() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = cluster(dir.path());
        let storage_path = HostConfig::from_cluster(&cluster, Id::from(1))
            .unwrap()
            .storage_path()
            .unwrap();
        let mut b = start(&cluster, 1, 0).await;
        let mut app = b.take_app_receiver().unwrap();
        for n in 1..=3 {
            b.handle().inject(app_id(), Msg::Bump).await.unwrap();
            assert_eq!(next(&mut app).await, Msg::Value(n));
            // The reply was sent after the save, so the save is on disk.
            assert_eq!(load_storage::<u64>(&storage_path).unwrap(), Some(n));
        }
        b.shutdown().await.unwrap();

        // Same id, same port, same directory. While b was down, another
        // test's outgoing connection may have been given its port as an
        // ephemeral one (the test ports come from that range): wait for it.
        let mut b = loop {
            match host(&cluster, 1, 0, Arc::default(), false).start().await {
                Err(leasehold::HostError::Bind { source, .. })
                    if source.kind() == std::io::ErrorKind::AddrInUse =>
                {
                    tokio::time::sleep(ms(50)).await
                }
                started => break started.unwrap(),
            }
        };
        let mut app = b.take_app_receiver().unwrap();
        b.handle().inject(app_id(), Msg::Get).await.unwrap();
        assert_eq!(next(&mut app).await, Msg::Value(3));
        b.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_choice_is_one_of_the_offered() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = cluster(dir.path());
        let mut a = start(&cluster, 0, 0).await;
        let mut app = a.take_app_receiver().unwrap();
        for _ in 0..5 {
            a.handle().inject(app_id(), Msg::Roll).await.unwrap();
            match next(&mut app).await {
                Msg::Rolled(r) => assert!((1..=3).contains(&r)),
                other => panic!("unexpected {other:?}"),
            }
        }
        a.shutdown().await.unwrap();
    })
    .await;
}

/// Sends `bytes` on a fresh connection and expects the host to close it.
async fn closed_after(addr: std::net::SocketAddr, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut sink = [0u8; 16];
    // EOF or reset, both mean the host hung up on us.
    let read = timeout(WAIT, s.read(&mut sink))
        .await
        .expect("host kept a bad connection open");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "host answered garbage: {read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_port_closes_that_connection_only() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = cluster(dir.path());
        let mut a = start(&cluster, 0, 0).await;
        let b = start(&cluster, 1, 0).await;
        let mut app = a.take_app_receiver().unwrap();
        let b_addr = b.local_addr().unwrap();

        // An HTTP request reads as an absurd frame length.
        closed_after(b_addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        // A plausible length followed by bytes that are no message.
        closed_after(b_addr, &[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]).await;
        // A valid frame with junk inside it.
        let mut bad = frame::encode(&Envelope {
            src: Id::from(0),
            dst: Id::from(1),
            msg: Msg::Ping(1),
        })
        .unwrap();
        bad.push(7);
        let len = (bad.len() - 4) as u32;
        bad[..4].copy_from_slice(&len.to_be_bytes());
        closed_after(b_addr, &bad).await;
        // A connection that dies in the middle of a frame.
        let mut s = TcpStream::connect(b_addr).await.unwrap();
        s.write_all(&[0, 0, 1, 0, 1, 2]).await.unwrap();
        drop(s);

        // A well-formed frame from a raw socket is served: b answers the
        // ping to node 0's real connection.
        let mut raw = TcpStream::connect(b_addr).await.unwrap();
        let ping = frame::encode(&Envelope {
            src: Id::from(0),
            dst: Id::from(1),
            msg: Msg::Ping(41),
        })
        .unwrap();
        raw.write_all(&ping).await.unwrap();
        assert_eq!(next(&mut app).await, Msg::Pong(41));

        // And b still talks to its peers as before.
        a.handle()
            .inject(app_id(), Msg::PingOther { to: 1, n: 42 })
            .await
            .unwrap();
        assert_eq!(next(&mut app).await, Msg::Pong(42));
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_peer_neither_blocks_nor_stops_the_node() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = cluster(dir.path());
        let mut a = start(&cluster, 0, 0).await;
        let mut app = a.take_app_receiver().unwrap();
        // Node 1 never starts: far more pings than its queue holds.
        for n in 0..(2 * leasehold::host::PEER_QUEUE_FRAMES_MAX as u64) {
            a.handle()
                .inject(app_id(), Msg::PingOther { to: 1, n })
                .await
                .unwrap();
        }
        a.handle().inject(app_id(), Msg::Get).await.unwrap();
        assert_eq!(next(&mut app).await, Msg::Value(0));
        // Shutdown does not wait for the unreachable peer.
        timeout(ms(3_000), a.shutdown())
            .await
            .expect("shutdown hung")
            .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_passes_before_replies_and_one_covers_a_batch() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = cluster(dir.path());
        let disk = Arc::new(Disk::default());
        let mut a = host(&cluster, 0, 0, disk.clone(), true)
            .start()
            .await
            .unwrap();
        let mut app = a.take_app_receiver().unwrap();
        // Writes queue up while the actor is stalled, then are handled as
        // batches: each reply leaves only after its write passed a barrier.
        const WRITES: u64 = 100;
        a.handle().inject(app_id(), Msg::Stall(200)).await.unwrap();
        for _ in 0..WRITES {
            a.handle().inject(app_id(), Msg::Write).await.unwrap();
        }
        for n in 1..=WRITES {
            assert_eq!(next(&mut app).await, Msg::Written(n));
            assert!(
                disk.synced.load(Ordering::SeqCst) >= n,
                "write {n} replied before its barrier"
            );
        }
        let syncs = disk.syncs.load(Ordering::SeqCst);
        // 100 queued writes fit in two batches of BATCH_MSGS_MAX.
        assert!(
            syncs <= WRITES.div_ceil(leasehold::host::BATCH_MSGS_MAX as u64),
            "{syncs} syncs for {WRITES} queued writes: no group commit"
        );
        a.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_barrier_stops_the_node_before_any_reply() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = cluster(dir.path());
        let disk = Arc::new(Disk::default());
        let mut a = host(&cluster, 0, 0, disk.clone(), true)
            .start()
            .await
            .unwrap();
        let mut app = a.take_app_receiver().unwrap();
        a.handle().inject(app_id(), Msg::Write).await.unwrap();
        assert_eq!(next(&mut app).await, Msg::Written(1));
        disk.fail.store(true, Ordering::SeqCst);
        let _ = a.handle().inject(app_id(), Msg::Write).await;
        let result = timeout(WAIT, a.join()).await.expect("node kept running");
        assert!(
            matches!(result, Err(leasehold::HostError::Barrier(_))),
            "{result:?}"
        );
        assert!(
            app.try_recv().is_err(),
            "a reply left although its write never became durable"
        );
    })
    .await;
}

// STORE-2 with early sends (issue #13): a message the protocol lets leave
// before the barrier (a primary's `Apply`; here `Forward`) arrives while the
// barrier is still under way, but only from a step that sends nothing else:
// a step that also answers holds all its sends until its write is durable.
// The connection is up first: a server's writers run on its own thread,
// which the barrier holds, so a frame that must wait for a connection (or
// for room in the socket) goes on after the barrier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_send_leaves_before_the_barrier_only_from_a_step_sending_nothing_else() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = cluster(dir.path());
        let mut b = start(&cluster, 1, 0).await;
        let mut b_app = b.take_app_receiver().unwrap();
        let disk = Arc::new(Disk::default());
        let early = |m: &Msg| matches!(m, Msg::Forward { .. });
        let mut a = host(&cluster, 0, 0, disk.clone(), true)
            .with_early_sends(Box::new(early))
            .start()
            .await
            .unwrap();
        let mut a_app = a.take_app_receiver().unwrap();
        let warm = Msg::WriteThenRelay {
            via: 1,
            n: 0,
            answer: false,
        };
        a.handle().inject(app_id(), warm).await.unwrap();
        assert_eq!(next(&mut b_app).await, Msg::Pong(0));
        timeout(WAIT, async {
            while disk.synced.load(Ordering::SeqCst) < 1 {
                tokio::time::sleep(ms(1)).await;
            }
        })
        .await
        .expect("the first barrier never passed");
        for (n, answer) in [(1, false), (2, true)] {
            disk.slow.store(true, Ordering::SeqCst);
            let relay = Msg::WriteThenRelay { via: 1, n, answer };
            a.handle().inject(app_id(), relay).await.unwrap();
            if answer {
                let got = timeout(ms(300), b_app.recv()).await;
                assert!(got.is_err(), "a step that answers sent early: {got:?}");
            } else {
                assert_eq!(next(&mut b_app).await, Msg::Pong(n));
            }
            assert_eq!(disk.synced.load(Ordering::SeqCst), n, "synced early");
            assert!(a_app.try_recv().is_err(), "answered before the barrier");
            disk.slow.store(false, Ordering::SeqCst);
            if answer {
                assert_eq!(next(&mut a_app).await, Msg::Written(n));
                assert_eq!(next(&mut b_app).await, Msg::Pong(n));
            }
            timeout(WAIT, async {
                while disk.synced.load(Ordering::SeqCst) < n + 1 {
                    tokio::time::sleep(ms(1)).await;
                }
            })
            .await
            .expect("the barrier never passed");
        }
        for h in [a, b] {
            h.shutdown().await.unwrap();
        }
    })
    .await;
}

// Replay's crash before the barrier (docs/replay.md): a scheduled node
// told to hold its barrier sends what may leave before it and keeps the
// rest of its steps' commands until told to pass it, or until a step sends
// something that must follow it, which passes it then for every step held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_node_holds_its_barrier_until_told_or_until_a_step_must_pass_it() {
    use leasehold::host::{schedule, Likeness, Order, VirtualClock};
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = cluster(dir.path());
        let mut b = start(&cluster, 1, 0).await;
        let mut b_app = b.take_app_receiver().unwrap();
        let disk = Arc::new(Disk::default());
        let (orders, scheduling) = schedule::<Toy>(VirtualClock::starting_now());
        let early = |m: &Msg| matches!(m, Msg::Forward { .. });
        let mut a = host(&cluster, 0, 0, disk.clone(), true)
            .with_early_sends(Box::new(early))
            .with_schedule(scheduling)
            .start()
            .await
            .unwrap();
        let mut a_app = a.take_app_receiver().unwrap();
        let deliver = |n: u64, answer: bool| {
            let msg = Msg::WriteThenRelay { via: 1, n, answer };
            let handle = a.handle();
            let orders = orders.clone();
            let wanted = msg.clone();
            async move {
                handle.inject(app_id(), msg).await.unwrap();
                let pick = move |m: &Msg| {
                    if *m == wanted {
                        Likeness::Same
                    } else {
                        Likeness::Unlike
                    }
                };
                orders
                    .order(Order::Deliver {
                        src: app_id(),
                        pick: Box::new(pick),
                        keep: false,
                    })
                    .await
                    .unwrap();
            }
        };
        let synced = || disk.synced.load(Ordering::SeqCst);

        // Held, then passed when told.
        orders.order(Order::HoldBarrier).await.unwrap();
        deliver(1, false).await;
        assert_eq!(next(&mut b_app).await, Msg::Pong(1), "the early send left");
        assert_eq!(synced(), 0, "the barrier passed although held");
        orders.order(Order::PassBarrier).await.unwrap();
        assert_eq!(synced(), 1);

        // Held over two steps, then passed by the one that answers: its
        // answer waits for the write of both.
        orders.order(Order::HoldBarrier).await.unwrap();
        deliver(2, false).await;
        assert_eq!(next(&mut b_app).await, Msg::Pong(2));
        assert_eq!(synced(), 1);
        deliver(3, true).await;
        assert_eq!(synced(), 3, "a step that answers passes the held barrier");
        assert_eq!(disk.syncs.load(Ordering::SeqCst), 2, "one sync for both");
        assert_eq!(next(&mut a_app).await, Msg::Written(3));
        assert_eq!(next(&mut b_app).await, Msg::Pong(3));

        // Nothing held: passing is a no-op, and steps commit as before.
        orders.order(Order::PassBarrier).await.unwrap();
        deliver(4, true).await;
        assert_eq!(synced(), 4);
        assert_eq!(next(&mut a_app).await, Msg::Written(4));
        for h in [a, b] {
            h.shutdown().await.unwrap();
        }
    })
    .await;
}

/// The most a loopback connection's receiving socket may buffer beyond what
/// the host has read (the kernel's autotuning maximum; 32 MiB where it
/// cannot be read), so that a test can send well past it.
fn kernel_receive_buffer_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_rmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(32 << 20)
}

// LIMIT-1: the inbox is bounded in bytes, not only in messages. Before, a
// node whose actor was blocked read every frame into its inbox (up to 1024
// messages of up to 16 MiB each); now it stops reading once the budget is
// used, and goes on, losing nothing, when the actor takes messages, a frame
// larger than the whole budget included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_actor_stops_reading_once_the_inbox_byte_budget_is_used() {
    bounded(async {
        const BUDGET: usize = 2 << 20;
        const BLOB: usize = 1 << 20;
        let dir = tempfile::tempdir().unwrap();
        let cluster = cluster(dir.path());
        let mut config = HostConfig::from_cluster(&cluster, Id::from(1))
            .unwrap()
            .with_app_id(app_id());
        config.limits.inbox_bytes_max = BUDGET as u64;
        let hold = Arc::new(AtomicBool::new(true));
        let toy = Toy {
            ticks_at_start: 0,
            disk: Arc::default(),
            hold: hold.clone(),
        };
        let mut b = ActorHost::new(toy, config).start().await.unwrap();
        let mut app = b.take_app_receiver().unwrap();
        b.handle().inject(app_id(), Msg::Hold).await.unwrap();

        // Twice what the kernel may buffer, so the sender can only finish
        // if the host reads on; the last blob is over the whole budget.
        let blobs = 2 * kernel_receive_buffer_max() / BLOB + 8;
        let sizes: Vec<usize> = (0..blobs)
            .map(|n| if n + 1 < blobs { BLOB } else { 3 * BUDGET })
            .collect();
        let socket = TcpSocket::new_v4().unwrap();
        // Keeps what waits on the sender's side out of the count.
        socket.set_send_buffer_size(64 << 10).unwrap();
        let mut s = socket.connect(b.local_addr().unwrap()).await.unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let writer = tokio::spawn({
            let sent = sent.clone();
            let sizes = sizes.clone();
            async move {
                for (n, size) in sizes.into_iter().enumerate() {
                    let blob = frame::encode(&Envelope {
                        src: Id::from(0),
                        dst: Id::from(1),
                        msg: Msg::Blob(n as u64, vec![n as u8; size].into()),
                    })
                    .unwrap();
                    s.write_all(&blob).await.unwrap();
                    sent.store(n as u64 + 1, Ordering::SeqCst);
                }
                s
            }
        });
        // Until the writer finishes or makes no progress for a while.
        let mut seen = u64::MAX;
        while !writer.is_finished() && sent.load(Ordering::SeqCst) != seen {
            seen = sent.load(Ordering::SeqCst);
            tokio::time::sleep(ms(500)).await;
        }
        let stalled_at = sent.load(Ordering::SeqCst);
        assert!(
            stalled_at < blobs as u64,
            "the node read all {blobs} blobs while its actor was blocked: \
             its inbox holds more than {BUDGET} bytes"
        );

        hold.store(false, Ordering::SeqCst);
        for (n, size) in sizes.iter().enumerate() {
            assert_eq!(next(&mut app).await, Msg::Got(n as u64, *size as u64));
        }
        let s = timeout(WAIT, writer)
            .await
            .expect("the writer went on once the actor took messages")
            .unwrap();
        drop(s);
        b.shutdown().await.unwrap();
    })
    .await;
}

/// A client's id, as a real one draws it: no node of the cluster file.
const CLIENT: usize = 1 << 40;

async fn start_client(cluster: &ClusterConfig) -> RunningHost<Msg> {
    let config = HostConfig::client_of(cluster, Id::from(CLIENT)).with_app_id(app_id());
    let toy = Toy {
        ticks_at_start: 0,
        disk: Arc::default(),
        hold: Arc::default(),
    };
    let host = ActorHost::new(toy, config).start().await.unwrap();
    assert_eq!(host.local_addr(), None, "a client listens nowhere");
    assert_eq!(host.dialed(WAIT).await, 0, "reached every server");
    host
}

/// Pings `to` from the client until a pong comes back: the first may be
/// lost while the client's connection to `to` is being made anew, as the
/// protocol allows.
async fn ping_until_answered(
    client: &RunningHost<Msg>,
    app: &mut mpsc::Receiver<Msg>,
    msg: impl Fn(u64) -> Msg,
) {
    for n in 100.. {
        client.handle().inject(app_id(), msg(n)).await.unwrap();
        match timeout(ms(300), app.recv()).await {
            Ok(Some(Msg::Pong(m))) if m == n => return,
            Ok(Some(Msg::Pong(_))) => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => {}
        }
    }
}

// Issue #14: a client needs no address reserved in cluster.toml. It says
// hello with its id on a connection to each server, and every server
// answers it there, also one it never sent a frame to (the end of a push
// chain, [0098]); when a server restarts, the client connects anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_listens_nowhere_and_is_answered_on_its_own_connections() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = cluster(dir.path());
        let a = start(&cluster, 0, 0).await;
        let b = start(&cluster, 1, 0).await;
        let c = start(&cluster, 2, 0).await;
        let mut client = start_client(&cluster).await;
        let mut app = client.take_app_receiver().unwrap();

        // Node 2 answers a request that reached it through node 0 only: the
        // client has sent it nothing.
        client
            .handle()
            .inject(
                app_id(),
                Msg::RelayOther {
                    to: 0,
                    via: 2,
                    n: 4,
                },
            )
            .await
            .unwrap();
        assert_eq!(next(&mut app).await, Msg::Pong(4));

        // A server answers on the connection the request came in on.
        for (to, n) in [(0, 1), (1, 2), (2, 3)] {
            client
                .handle()
                .inject(app_id(), Msg::PingOther { to, n })
                .await
                .unwrap();
            assert_eq!(next(&mut app).await, Msg::Pong(n));
        }

        // Node 2 restarts; the client's connection to it ends, and it
        // connects anew on its own, with nothing to send there.
        c.shutdown().await.unwrap();
        let c = start(&cluster, 2, 0).await;
        ping_until_answered(&client, &mut app, |n| Msg::PingOther { to: 2, n }).await;

        client.handle().shutdown();
        for h in [a, b, c] {
            h.shutdown().await.unwrap();
        }
    })
    .await;
}

/// A client may not say hello as a node of the cluster file: answers meant
/// for that server would go to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_as_a_server_is_refused() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = cluster(dir.path());
        let a = start(&cluster, 0, 0).await;
        let mut s = TcpStream::connect(a.local_addr().unwrap()).await.unwrap();
        let mut hello = b"LHHELLO2".to_vec();
        hello.extend_from_slice(&1u64.to_be_bytes());
        hello.extend_from_slice(&0u16.to_be_bytes());
        s.write_all(&hello).await.unwrap();
        let mut line = String::new();
        timeout(WAIT, s.read_to_string(&mut line))
            .await
            .expect("refused in time")
            .unwrap();
        assert!(
            line.starts_with("LEASEHOLD REFUSED hello: a client may not say hello as node 1"),
            "{line}"
        );
        a.shutdown().await.unwrap();
    })
    .await;
}
