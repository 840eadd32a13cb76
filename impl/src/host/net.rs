//! The network side of a node: tokio tasks on the caller's runtime that
//! accept connections and read frames into the inbox, and one writer per
//! peer that keeps a persistent connection and sends that peer's queued
//! frames in order (see "Failure handling" in the [module doc](super)).
//!
//! Admission (see "Hostile and excessive input" there): the accept loop
//! counts connections in total and per address and refuses over either
//! limit; a reader first waits for the peer's hello (and checks the cluster
//! secret), then reads frames while the peer keeps talking, reserving room
//! for each frame larger than one read from the node's budget for
//! unfinished frames before it buffers any of it, and room in the inbox's
//! byte budget for each whole frame before it hands its message on. A
//! refusal is one text line, `LEASEHOLD REFUSED <limit>: <why>`, then the
//! connection closes.

use serde::{de::DeserializeOwned, Serialize};
use stateright::actor::Id;
use std::collections::HashMap;
use std::fmt::Debug;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;

use super::{
    ConnLimits, Inbound, ACCEPT_BACKOFF_MS_MAX, ACCEPT_BACKOFF_MS_MIN, PEER_IO_TIMEOUT_MS,
    PEER_QUEUE_FRAMES_MAX, RECONNECT_BACKOFF_MS_MAX, RECONNECT_BACKOFF_MS_MIN, SECRET_BYTES_MAX,
};
use crate::frame::{self, Envelope};

/// Receive buffer growth step; a frame larger than this grows the buffer up
/// to the frame's size (at most [`frame::FRAME_BYTES_MAX`]), after a
/// reservation from the node's budget for unfinished frames.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// What every connection opens with: this magic, the secret's length (u16
/// big-endian) and the secret. Read as a frame header, the magic's first
/// four bytes announce about 1.2 GiB, far over the frame limit, so a hello
/// is never mistaken for a frame, and an open cluster can tell a peer that
/// sends frames at once (as before hellos existed) from one that greets.
pub const HELLO_MAGIC: &[u8; 8] = b"LHHELLO1";
/// The magic and the secret's length.
pub const HELLO_HEADER_BYTES: usize = HELLO_MAGIC.len() + 2;
/// How a refusal line starts; the rest is `<limit>: <why>\n`.
pub const REFUSAL_PREFIX: &str = "LEASEHOLD REFUSED ";
/// How long a refused peer is given to take its refusal line before the
/// connection is dropped: a peer that does not read costs no more.
const REFUSAL_LINGER_MS: u64 = 200;
/// Longest refusal line a writer reads back (and logs).
const REFUSAL_BYTES_MAX: usize = 512;

const _: () = assert!(
    u32::from_be_bytes([
        HELLO_MAGIC[0],
        HELLO_MAGIC[1],
        HELLO_MAGIC[2],
        HELLO_MAGIC[3]
    ]) as usize
        > frame::FRAME_PAYLOAD_BYTES_MAX
);

/// The hello this node's writers send on every new connection: none in an
/// open cluster, whose wire stays exactly as it was before hellos existed
/// (nodes of older builds, and tests that read raw frames, still talk to
/// it).
pub(super) fn hello(secret: Option<&str>) -> Vec<u8> {
    let Some(secret) = secret else {
        return Vec::new();
    };
    let secret = secret.as_bytes();
    assert!(
        secret.len() <= SECRET_BYTES_MAX,
        "config checks the secret's length"
    );
    let mut h = Vec::with_capacity(HELLO_HEADER_BYTES + secret.len());
    h.extend_from_slice(HELLO_MAGIC);
    h.extend_from_slice(&(secret.len() as u16).to_be_bytes());
    h.extend_from_slice(secret);
    h
}

/// Why a connection is refused: the limit's name (as in docs/tcp.md) and a
/// sentence for the peer and the log.
pub(super) struct Refusal {
    limit: &'static str,
    why: String,
}

impl Refusal {
    fn new(limit: &'static str, why: impl Into<String>) -> Self {
        Refusal {
            limit,
            why: why.into(),
        }
    }
}

/// Who may connect, and what they hold: one per node, shared by its
/// accept loop and readers.
pub(super) struct Admission {
    limits: ConnLimits,
    secret: Option<Vec<u8>>,
    /// Open connections: in total, and per peer address.
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    /// Bytes that readers may still reserve for unfinished frames.
    unfinished: Arc<Semaphore>,
    /// Bytes of received messages the inbox may still take, and all it
    /// may hold.
    inbox: Arc<Semaphore>,
    inbox_budget: usize,
}

/// One admitted connection; dropping it frees its slots.
pub(super) struct Slot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock().expect("admission lock");
        open.0 -= 1;
        let per = open
            .1
            .get_mut(&self.ip)
            .expect("a slot's address is counted");
        *per -= 1;
        if *per == 0 {
            open.1.remove(&self.ip);
        }
    }
}

impl Admission {
    pub(super) fn new(limits: ConnLimits, secret: Option<&str>) -> Arc<Self> {
        let permits = |bytes: u64| {
            usize::try_from(bytes)
                .unwrap_or(usize::MAX)
                .min(Semaphore::MAX_PERMITS)
        };
        // A budget of nothing would let every frame take nothing, an inbox
        // without a bound; one byte lets one message in at a time.
        let inbox_budget = permits(limits.inbox_bytes_max).max(1);
        Arc::new(Admission {
            limits,
            secret: secret.map(|s| s.as_bytes().to_vec()),
            open: Mutex::new((0, HashMap::new())),
            unfinished: Arc::new(Semaphore::new(permits(limits.unfinished_frame_bytes_max))),
            inbox: Arc::new(Semaphore::new(inbox_budget)),
            inbox_budget,
        })
    }

    /// Room in the inbox for the message of a whole frame of `bytes`,
    /// waited for if the actor is behind. A frame larger than the whole
    /// budget takes all of it rather than being refused: the budget bounds
    /// what waits, not what a peer may send, and once the actor has taken
    /// everything before it, the whole budget is free.
    async fn inbox_room(&self, bytes: usize, peer_addr: SocketAddr) -> OwnedSemaphorePermit {
        let wanted = u32::try_from(bytes.min(self.inbox_budget))
            .expect("frame::check refused frames over u32");
        if let Ok(permit) = self.inbox.clone().try_acquire_many_owned(wanted) {
            return permit;
        }
        // Not reading is the point: the peer's TCP window fills and its
        // writer slows down, while the actor goes on emptying the inbox.
        tracing::debug!(
            %peer_addr,
            frame_bytes = bytes,
            inbox_bytes_max = self.limits.inbox_bytes_max,
            "inbox byte budget used up: reading from this peer waits for the actor"
        );
        let waited = Instant::now();
        let permit = self
            .inbox
            .clone()
            .acquire_many_owned(wanted)
            .await
            .expect("the inbox budget is never closed");
        tracing::debug!(%peer_addr, waited = ?waited.elapsed(), "inbox budget granted, reading on");
        permit
    }

    /// Takes a slot for a connection from `ip`, or says which limit is full.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut open = self.open.lock().expect("admission lock");
        if open.0 >= self.limits.connections_max {
            return Err(Refusal::new(
                "connections_max",
                format!("the node serves {} connections already", open.0),
            ));
        }
        let per = open.1.get(&ip).copied().unwrap_or(0);
        if per >= self.limits.connections_per_addr_max {
            return Err(Refusal::new(
                "connections_per_addr_max",
                format!("{per} connections from {ip} already"),
            ));
        }
        open.0 += 1;
        *open.1.entry(ip).or_insert(0) += 1;
        Ok(Slot {
            admission: self.clone(),
            ip,
        })
    }

    /// Waits for the peer's hello and checks its secret. In an open cluster
    /// a peer may instead start with a frame: its bytes stay in `buf`.
    /// `Err(None)`: the peer left or the node is shutting down.
    async fn greet(
        &self,
        stream: &mut TcpStream,
        buf: &mut bytes::BytesMut,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Option<Refusal>> {
        let deadline = Instant::now() + Duration::from_millis(self.limits.hello_timeout_ms);
        loop {
            if buf.first().is_some_and(|b| *b != HELLO_MAGIC[0]) {
                if self.secret.is_some() {
                    return Err(Some(Refusal::new(
                        "secret",
                        "this cluster requires a hello with its secret first",
                    )));
                }
                return Ok(());
            }
            let common = buf.len().min(HELLO_MAGIC.len());
            if buf[..common] != HELLO_MAGIC[..common] {
                return Err(Some(Refusal::new("hello", "malformed hello")));
            }
            if buf.len() >= HELLO_HEADER_BYTES {
                let n = u16::from_be_bytes([buf[8], buf[9]]) as usize;
                if n > SECRET_BYTES_MAX {
                    return Err(Some(Refusal::new(
                        "secret",
                        format!("a secret of {n} bytes is over the limit of {SECRET_BYTES_MAX}"),
                    )));
                }
                if buf.len() >= HELLO_HEADER_BYTES + n {
                    let hello = buf.split_to(HELLO_HEADER_BYTES + n);
                    let offered = &hello[HELLO_HEADER_BYTES..];
                    return match &self.secret {
                        Some(secret) if !same_secret(secret, offered) => Err(Some(Refusal::new(
                            "secret",
                            "wrong cluster secret (is this peer's cluster.toml the cluster's?)",
                        ))),
                        // An open node takes any hello: its peers may
                        // already have a secret it has yet to be given.
                        _ => Ok(()),
                    };
                }
            }
            buf.reserve(HELLO_HEADER_BYTES + SECRET_BYTES_MAX);
            let read = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return Err(None),
                read = tokio::time::timeout_at(deadline, stream.read_buf(buf)) => read,
            };
            match read {
                Err(_) => {
                    return Err(Some(Refusal::new(
                        "hello_timeout_ms",
                        format!(
                            "no hello within {} ms of connecting",
                            self.limits.hello_timeout_ms
                        ),
                    )))
                }
                Ok(Ok(0)) | Ok(Err(_)) => return Err(None),
                Ok(Ok(_)) => {}
            }
        }
    }
}

/// Compares secrets in time that does not depend on where they differ, so
/// that timing tells a stranger nothing about the secret.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Logs `refusal` with the peer's address, sends it the refusal line and
/// closes. Bounded in time: a peer that does not read gets nothing more.
async fn refuse(mut stream: TcpStream, peer_addr: SocketAddr, refusal: Refusal) {
    let Refusal { limit, why } = refusal;
    tracing::warn!(%peer_addr, limit, "refusing connection: {why}");
    let line = format!("{REFUSAL_PREFIX}{limit}: {why}\n");
    let linger = Duration::from_millis(REFUSAL_LINGER_MS);
    let _ = tokio::time::timeout(linger, async {
        stream.write_all(line.as_bytes()).await?;
        stream.shutdown().await?;
        // Reading what the peer sent meanwhile lets the close be a FIN, not
        // a reset that could destroy the line before the peer reads it.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// The queue to one peer's writer task.
pub(super) struct Peer {
    frames: mpsc::Sender<Vec<u8>>,
    /// Frames dropped since the queue was last accepting, so an outage logs
    /// one line when it starts and one when it ends, not one per frame.
    dropped: u64,
}

impl Peer {
    /// Frames `envelope` and queues it for this peer's writer, never
    /// waiting: the actor thread must not block on a slow peer, so a full
    /// queue drops the frame (the protocol tolerates loss). With `hold` (the
    /// [`super::SendDelay`] test hook) the frame waits that long on
    /// `network` first.
    pub(super) fn send<M: Serialize + Debug>(
        &mut self,
        envelope: Envelope<M>,
        hold: Option<Duration>,
        network: &tokio::runtime::Handle,
    ) {
        let dst = envelope.dst;
        let bytes = match frame::encode(&envelope) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(dst = usize::from(dst) as u64, msg = ?envelope.msg, "message dropped: {e}");
                return;
            }
        };
        if let Some(hold) = hold {
            tracing::debug!(dst = usize::from(dst) as u64, ?hold, msg = ?envelope.msg, "message held (test hook)");
            let frames = self.frames.clone();
            network.spawn(async move {
                tokio::time::sleep(hold).await;
                let _ = frames.send(bytes).await;
            });
            return;
        }
        match self.frames.try_send(bytes) {
            Ok(()) if self.dropped > 0 => {
                tracing::info!(
                    dst = usize::from(dst) as u64,
                    dropped = self.dropped,
                    "peer queue accepting again"
                );
                self.dropped = 0;
            }
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.dropped == 0 {
                    tracing::warn!(
                        dst = usize::from(dst) as u64,
                        "peer queue full, dropping messages to it"
                    );
                }
                self.dropped += 1;
            }
            // The writer is gone only if the runtime carrying the network
            // tasks was dropped; the node is going down with it.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!(
                    dst = usize::from(dst) as u64,
                    "network stopped, message dropped"
                )
            }
        }
    }
}

/// One frame queue and one writer task per peer, this node excluded. A
/// writer connects when its first frame arrives.
pub(super) fn spawn_writers(
    id: Id,
    addrs: &HashMap<Id, SocketAddr>,
    hello: &Arc<Vec<u8>>,
    shutdown: &watch::Receiver<bool>,
    done: &mpsc::Sender<()>,
    span: &tracing::Span,
) -> HashMap<Id, Peer> {
    let mut peers = HashMap::new();
    for (&peer, &addr) in addrs {
        if peer == id {
            continue;
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE_FRAMES_MAX);
        peers.insert(
            peer,
            Peer {
                frames: tx,
                dropped: 0,
            },
        );
        let writer = write_peer(
            peer,
            addr,
            hello.clone(),
            rx,
            shutdown.clone(),
            done.clone(),
        );
        tokio::spawn(writer.instrument(span.clone()));
    }
    peers
}

/// Accepts peers until shutdown, one reader task per connection, within
/// the connection limits: a peer over one is refused at once (never left
/// waiting in the backlog, where it would wait behind idle peers). Accept
/// errors are retried with backoff; they never stop the node.
pub(super) async fn accept_loop<M>(
    id: Id,
    listener: TcpListener,
    admission: Arc<Admission>,
    inbox: mpsc::Sender<Inbound<M>>,
    mut shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) where
    M: DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut backoff_ms = ACCEPT_BACKOFF_MS_MIN;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer_addr)) => {
                backoff_ms = ACCEPT_BACKOFF_MS_MIN;
                let slot = match admission.admit(peer_addr.ip()) {
                    Ok(slot) => slot,
                    Err(refusal) => {
                        tokio::spawn(refuse(stream, peer_addr, refusal).in_current_span());
                        continue;
                    }
                };
                tracing::debug!(%peer_addr, "accepted connection");
                let reader = read_connection(
                    id,
                    stream,
                    peer_addr,
                    admission.clone(),
                    slot,
                    inbox.clone(),
                    shutdown.clone(),
                    done.clone(),
                );
                tokio::spawn(reader.in_current_span());
            }
            Err(e) => {
                tracing::warn!("accept failed, retrying in {backoff_ms} ms: {e}");
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    _ = tokio::time::sleep(Duration::from_millis(backoff_ms)) => {}
                }
                backoff_ms = (backoff_ms * 2).min(ACCEPT_BACKOFF_MS_MAX);
            }
        }
    }
    tracing::debug!("stopped accepting");
    drop(done);
}

/// Reads frames from one peer, after its hello, until it closes, falls
/// silent, misbehaves, or the node shuts down. A bad frame or a refusal
/// closes this connection only.
#[allow(clippy::too_many_arguments)] // one task's whole context, passed once
async fn read_connection<M>(
    id: Id,
    mut stream: TcpStream,
    peer_addr: SocketAddr,
    admission: Arc<Admission>,
    _slot: Slot,
    inbox: mpsc::Sender<Inbound<M>>,
    mut shutdown: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
) where
    M: DeserializeOwned + std::fmt::Debug,
{
    // Nothing is allocated for a peer until it speaks: an idle connection
    // costs a task and a socket, no buffer.
    let mut buf = bytes::BytesMut::new();
    match admission.greet(&mut stream, &mut buf, &mut shutdown).await {
        Ok(()) => {}
        Err(Some(refusal)) => return refuse(stream, peer_addr, refusal).await,
        Err(None) => return,
    }
    let idle = Duration::from_millis(admission.limits.connection_idle_ms);
    // The budget reserved for the frame at the front of `buf`, if it is
    // larger than one read; returned when the frame is taken.
    let mut reserved: Option<OwnedSemaphorePermit> = None;
    loop {
        loop {
            let frame_bytes = match frame::check(&buf) {
                Ok(Some(payload)) => frame::FRAME_HEADER_BYTES + payload,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer_addr, "closing connection: {e}");
                    return;
                }
            };
            // Waited for with the frame still in `buf`, under its
            // unfinished-frame reservation if it needed one, given up only
            // once the message is made: the bytes a waiting reader holds
            // stay within one budget or the other.
            let budget = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                permit = admission.inbox_room(frame_bytes, peer_addr) => permit,
            };
            match frame::take::<M>(&mut buf) {
                Ok(None) => unreachable!("frame::check found a whole frame"),
                Ok(Some(envelope)) => {
                    reserved = None;
                    if envelope.dst != id {
                        tracing::warn!(
                            %peer_addr,
                            dst = usize::from(envelope.dst) as u64,
                            "frame for another node dropped (peer's config differs?)"
                        );
                        continue;
                    }
                    let inbound = Inbound {
                        src: envelope.src,
                        msg: envelope.msg,
                        budget: Some(budget),
                    };
                    tokio::select! {
                        _ = shutdown.wait_for(|stop| *stop) => return,
                        sent = inbox.send(inbound) => if sent.is_err() { return },
                    }
                }
                Err(e) => {
                    tracing::warn!(%peer_addr, "closing connection: {e}");
                    return;
                }
            }
        }
        // Room for the rest of the frame being received, or one more chunk.
        let wanted = match buf.get(..frame::FRAME_HEADER_BYTES) {
            Some(h) => {
                frame::FRAME_HEADER_BYTES
                    + u32::from_be_bytes(h.try_into().expect("4 bytes")) as usize
            }
            None => frame::FRAME_HEADER_BYTES,
        };
        if wanted > READ_CHUNK_BYTES && reserved.is_none() {
            // Reserve before buffering, so the sum over all connections
            // never passes the budget, whatever the peers announce.
            let bytes = u32::try_from(wanted).expect("frame::take refused larger headers");
            match admission.unfinished.clone().try_acquire_many_owned(bytes) {
                Ok(permit) => reserved = Some(permit),
                Err(_) => {
                    let refusal = Refusal::new(
                        "unfinished_frame_bytes_max",
                        format!(
                            "no room for a frame of {wanted} bytes: the node buffers at most \
                             {} bytes of unfinished frames",
                            admission.limits.unfinished_frame_bytes_max
                        ),
                    );
                    return refuse(stream, peer_addr, refusal).await;
                }
            }
        }
        if buf.capacity() == 0 {
            // Allocate only once the peer has something to say.
            let readable = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                r = tokio::time::timeout(idle, stream.readable()) => r,
            };
            match readable {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => return refuse(stream, peer_addr, idle_refusal(idle)).await,
            }
        }
        buf.reserve(wanted.saturating_sub(buf.len()).clamp(1, READ_CHUNK_BYTES));
        let read = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            read = tokio::time::timeout(idle, stream.read_buf(&mut buf)) => read,
        };
        let read = match read {
            Ok(read) => read,
            Err(_) => return refuse(stream, peer_addr, idle_refusal(idle)).await,
        };
        match read {
            Ok(0) if buf.is_empty() => {
                tracing::debug!(%peer_addr, "peer closed connection");
                return;
            }
            Ok(0) => {
                tracing::warn!(%peer_addr, "peer closed connection in the middle of a frame");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(%peer_addr, "connection failed: {e}");
                return;
            }
        }
    }
}

fn idle_refusal(idle: Duration) -> Refusal {
    Refusal::new(
        "connection_idle_ms",
        format!("nothing received for {} ms", idle.as_millis()),
    )
}

/// Sends one peer its frames over one persistent connection, in order,
/// reconnecting with capped exponential backoff. Ends when the actor thread
/// ends (its sender is dropped), after writing what was queued if the peer
/// is connected; once shutting down it no longer reconnects.
async fn write_peer(
    peer: Id,
    addr: SocketAddr,
    hello: Arc<Vec<u8>>,
    mut frames: mpsc::Receiver<Vec<u8>>,
    shutdown: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
) {
    let peer_id = usize::from(peer) as u64;
    let io_timeout = Duration::from_millis(PEER_IO_TIMEOUT_MS);
    let mut stream: Option<TcpStream> = None;
    let mut backoff_ms = RECONNECT_BACKOFF_MS_MIN;
    let mut failures: u64 = 0;
    while let Some(bytes) = frames.recv().await {
        match stream.as_ref().map(peer_closed) {
            None | Some(PeerEnd::Open) => {}
            Some(PeerEnd::Closed) => {
                // The peer closed its end (e.g. a client process exited and
                // a new one took its id). Writing would lose this frame to
                // the old connection's reset: connect anew first.
                tracing::debug!(peer = peer_id, %addr, "peer closed the connection, reconnecting");
                stream = None;
            }
            Some(PeerEnd::Refused(line)) => {
                // An idle connection closed by the peer is routine; any
                // other refusal means this node breaks one of its limits or
                // lacks the cluster secret, which an operator must see.
                if line.contains("connection_idle_ms") {
                    tracing::debug!(peer = peer_id, %addr, "{line}, reconnecting");
                } else {
                    tracing::warn!(peer = peer_id, %addr, "the peer refused us: {line}");
                }
                stream = None;
            }
        }
        if stream.is_none() {
            if *shutdown.borrow() {
                // Nobody will wait for an unreachable peer during shutdown.
                continue;
            }
            let connect = async {
                let mut s = TcpStream::connect(addr).await?;
                // The hello goes first, in the instant of connecting, well
                // inside the peer's hello timeout.
                if !hello.is_empty() {
                    s.write_all(&hello).await?;
                }
                Ok::<TcpStream, std::io::Error>(s)
            };
            match tokio::time::timeout(io_timeout, connect).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    if failures > 0 {
                        tracing::info!(peer = peer_id, %addr, failures, "reconnected");
                    }
                    stream = Some(s);
                    backoff_ms = RECONNECT_BACKOFF_MS_MIN;
                    failures = 0;
                }
                Ok(Err(e)) => {
                    // One line per outage, not one per attempt.
                    if failures == 0 {
                        tracing::warn!(peer = peer_id, %addr, "cannot connect, will retry: {e}");
                    }
                    failures += 1;
                }
                Err(_) => {
                    if failures == 0 {
                        tracing::warn!(peer = peer_id, %addr, "connect timed out, will retry");
                    }
                    failures += 1;
                }
            }
        }
        let Some(s) = stream.as_mut() else {
            // This frame is lost; wait before the next attempt so an
            // unreachable peer costs neither CPU nor log lines. Frames
            // arriving meanwhile queue up to the peer queue limit.
            let mut shutdown = shutdown.clone();
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => {}
                _ = tokio::time::sleep(Duration::from_millis(backoff_ms)) => {}
            }
            backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MS_MAX);
            continue;
        };
        match tokio::time::timeout(io_timeout, s.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(peer = peer_id, %addr, "connection lost, frame dropped: {e}");
                stream = None;
            }
            Err(_) => {
                tracing::warn!(peer = peer_id, %addr, "write timed out, frame dropped, reconnecting");
                stream = None;
            }
        }
    }
    if let Some(mut s) = stream {
        let _ = tokio::time::timeout(io_timeout, s.shutdown()).await;
    }
}

/// What the other end of a connection we only write to has done.
enum PeerEnd {
    Open,
    Closed,
    /// It sent its refusal line (the only bytes a node ever sends back).
    Refused(String),
}

/// Whether the peer has closed a connection we only write to: it never
/// sends anything but a refusal, so readable means a refusal, end of stream
/// or an error.
fn peer_closed(stream: &TcpStream) -> PeerEnd {
    let mut probe = [0u8; REFUSAL_BYTES_MAX];
    match stream.try_read(&mut probe) {
        Ok(0) => PeerEnd::Closed,
        Ok(n) => PeerEnd::Refused(String::from_utf8_lossy(&probe[..n]).trim_end().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => PeerEnd::Open,
        Err(_) => PeerEnd::Closed,
    }
}
