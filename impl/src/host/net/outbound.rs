//! The sending side: one frame queue and one writer task per peer, each
//! keeping a persistent connection, sending the hello first and
//! reconnecting with backoff. The actor thread only ever queues, never
//! waits. A client's connections also bring its servers' answers back.

use super::admission::{Admission, REFUSAL_PREFIX};
use super::gather::{gather, write_batch};
use super::inbound::{Ended, Reader};
use crate::frame::{self, Encoded, Envelope};
use crate::host::{
    Inbound, PEER_IO_TIMEOUT_MS, PEER_QUEUE_FRAMES_MAX, RECONNECT_BACKOFF_MS_MAX,
    RECONNECT_BACKOFF_MS_MIN,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use stateright::actor::Id;
use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

/// Longest refusal line a writer reads back (and logs).
const REFUSAL_BYTES_MAX: usize = 512;

/// The queue to one peer's writer task.
pub(in crate::host) struct Peer {
    frames: mpsc::Sender<Encoded>,
    /// Frames dropped since the queue was last accepting, so an outage logs
    /// one line when it starts and one when it ends, not one per frame.
    dropped: u64,
}

impl Peer {
    /// Frames `envelope` and queues it for this peer's writer, never
    /// waiting: the actor thread must not block on a slow peer, so a full
    /// queue drops the frame (the protocol tolerates loss). With `hold` (the
    /// [`crate::host::SendDelay`] test hook) the frame waits that long on
    /// `network` first.
    pub(in crate::host) fn send<M: Serialize + Debug>(
        &mut self,
        envelope: Envelope<M>,
        hold: Option<Duration>,
        network: &tokio::runtime::Handle,
    ) {
        let dst = envelope.dst;
        let bytes = match frame::encode_shared(&envelope) {
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

/// What a client's writers need to read answers: a client listens
/// nowhere, so each of its connections also carries its server's answers
/// back, into the inbox, within the client's own budgets.
pub(in crate::host) struct Answers<M> {
    pub(in crate::host) admission: Arc<Admission>,
    pub(in crate::host) inbox: mpsc::Sender<Inbound<M>>,
    /// Servers whose first connection attempt has yet to end, so that a
    /// starting client can wait until it can be answered.
    pub(in crate::host) dialing: Arc<watch::Sender<usize>>,
}

impl<M> Clone for Answers<M> {
    fn clone(&self) -> Self {
        Answers {
            admission: self.admission.clone(),
            inbox: self.inbox.clone(),
            dialing: self.dialing.clone(),
        }
    }
}

/// One frame queue and one writer task per peer, this node excluded. A
/// server's writer connects when its first frame arrives; a client's
/// (`answers`) connects at once and stays connected, since any server may
/// have an answer for it (the end of a push chain answers a client that
/// sent it nothing, [0098]).
#[allow(clippy::too_many_arguments)] // the node's whole network side, passed once
pub(in crate::host) fn spawn_writers<M>(
    id: Id,
    addrs: &HashMap<Id, SocketAddr>,
    hello: &Arc<Vec<u8>>,
    answers: Option<Answers<M>>,
    shutdown: &watch::Receiver<bool>,
    done: &mpsc::Sender<()>,
    span: &tracing::Span,
) -> HashMap<Id, Peer>
where
    M: DeserializeOwned + Debug + Send + 'static,
{
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
            Link {
                id,
                peer,
                addr,
                hello: hello.clone(),
                answers: answers.clone(),
            },
            rx,
            shutdown.clone(),
            done.clone(),
        );
        tokio::spawn(writer.instrument(span.clone()));
    }
    peers
}

/// Who one writer talks to, and how.
struct Link<M> {
    id: Id,
    peer: Id,
    addr: SocketAddr,
    hello: Arc<Vec<u8>>,
    answers: Option<Answers<M>>,
}

/// One connection to a peer: a server's, written to only; a client's,
/// whose answers a reader task takes, which says when it has ended.
enum Conn {
    Whole(TcpStream),
    Split {
        wr: OwnedWriteHalf,
        ended: oneshot::Receiver<()>,
    },
}

impl Conn {
    /// Whether the peer has closed this connection or refused us.
    fn end(&mut self) -> PeerEnd {
        match self {
            Conn::Whole(s) => peer_closed(s),
            Conn::Split { ended, .. } => match ended.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => PeerEnd::Open,
                _ => PeerEnd::Closed,
            },
        }
    }

    async fn write_batch(&mut self, batch: &[Encoded]) -> std::io::Result<()> {
        match self {
            Conn::Whole(s) => write_batch(s, batch).await,
            Conn::Split { wr, .. } => write_batch(wr, batch).await,
        }
    }

    async fn shutdown(self) {
        let io_timeout = Duration::from_millis(PEER_IO_TIMEOUT_MS);
        let _ = match self {
            Conn::Whole(mut s) => tokio::time::timeout(io_timeout, s.shutdown()).await,
            Conn::Split { mut wr, .. } => tokio::time::timeout(io_timeout, wr.shutdown()).await,
        };
    }
}

impl<M: DeserializeOwned + Debug + Send + 'static> Link<M> {
    /// Connects and says hello; a client's connection gets its reader.
    async fn connect(&self, shutdown: &watch::Receiver<bool>) -> std::io::Result<Conn> {
        let io_timeout = Duration::from_millis(PEER_IO_TIMEOUT_MS);
        let connect = async {
            let mut s = TcpStream::connect(self.addr).await?;
            // The hello goes first, in the instant of connecting, well
            // inside the peer's hello timeout.
            if !self.hello.is_empty() {
                s.write_all(&self.hello).await?;
            }
            Ok::<TcpStream, std::io::Error>(s)
        };
        let s = match tokio::time::timeout(io_timeout, connect).await {
            Ok(s) => s?,
            Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
        };
        let _ = s.set_nodelay(true);
        let Some(answers) = &self.answers else {
            return Ok(Conn::Whole(s));
        };
        let (rd, wr) = s.into_split();
        let (ended_tx, ended) = oneshot::channel();
        tokio::spawn(
            read_answers(
                self.id,
                self.peer,
                self.addr,
                rd,
                answers.clone(),
                shutdown.clone(),
                ended_tx,
            )
            .in_current_span(),
        );
        Ok(Conn::Split { wr, ended })
    }

    /// Once per writer: its first attempt to connect has ended.
    fn dialed(&self, first: &mut bool) {
        if std::mem::take(first) {
            if let Some(a) = &self.answers {
                a.dialing.send_modify(|n| *n = n.saturating_sub(1));
            }
        }
    }
}

/// Sends one peer its frames over one persistent connection, in order,
/// reconnecting with capped exponential backoff. Ends when the actor thread
/// ends (its sender is dropped), after writing what was queued if the peer
/// is connected; once shutting down it no longer reconnects.
async fn write_peer<M: DeserializeOwned + Debug + Send + 'static>(
    link: Link<M>,
    mut frames: mpsc::Receiver<Encoded>,
    mut shutdown: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
) {
    let (peer_id, addr) = (usize::from(link.peer) as u64, link.addr);
    let io_timeout = Duration::from_millis(PEER_IO_TIMEOUT_MS);
    let mut conn: Option<Conn> = None;
    let mut backoff_ms = RECONNECT_BACKOFF_MS_MIN;
    let mut failures: u64 = 0;
    let mut first = true;
    loop {
        // A client stays connected, frames or not: its answers come back
        // on this connection.
        let eager = link.answers.is_some() && !*shutdown.borrow();
        if eager && conn.is_none() {
            conn = connected(&link, &shutdown, &mut backoff_ms, &mut failures).await;
            link.dialed(&mut first);
            if conn.is_none() {
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => {}
                    _ = tokio::time::sleep(Duration::from_millis(backoff_ms)) => {}
                }
                backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MS_MAX);
                continue;
            }
        }
        let next = match &mut conn {
            Some(Conn::Split { ended, .. }) if eager => tokio::select! {
                bytes = frames.recv() => Next::Frame(bytes),
                _ = ended => Next::Ended,
                _ = shutdown.wait_for(|stop| *stop) => Next::Stopping,
            },
            _ => Next::Frame(frames.recv().await),
        };
        let bytes = match next {
            Next::Frame(bytes) => bytes,
            Next::Ended => {
                tracing::debug!(peer = peer_id, %addr, "the server closed the connection, reconnecting");
                conn = None;
                continue;
            }
            Next::Stopping => continue,
        };
        let Some(bytes) = bytes else { break };
        match conn.as_mut().map(Conn::end) {
            None | Some(PeerEnd::Open) => {}
            Some(PeerEnd::Closed) => {
                // The peer closed its end (e.g. a client process exited and
                // a new one took its id). Writing would lose this frame to
                // the old connection's reset: connect anew first.
                tracing::debug!(peer = peer_id, %addr, "peer closed the connection, reconnecting");
                conn = None;
            }
            Some(PeerEnd::Refused(line)) => {
                log_refusal(peer_id, addr, &line);
                conn = None;
            }
        }
        if conn.is_none() {
            if *shutdown.borrow() {
                // Nobody will wait for an unreachable peer during shutdown.
                continue;
            }
            conn = connected(&link, &shutdown, &mut backoff_ms, &mut failures).await;
            link.dialed(&mut first);
        }
        let Some(c) = conn.as_mut() else {
            // This frame is lost; wait before the next attempt so an
            // unreachable peer costs neither CPU nor log lines. Frames
            // arriving meanwhile queue up to the peer queue limit.
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => {}
                _ = tokio::time::sleep(Duration::from_millis(backoff_ms)) => {}
            }
            backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MS_MAX);
            continue;
        };
        // Connected: the frames queued behind this one go with it.
        let batch = gather(bytes, || frames.try_recv().ok());
        match tokio::time::timeout(io_timeout, c.write_batch(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let frames = batch.len();
                tracing::warn!(peer = peer_id, %addr, frames, "connection lost, frames dropped: {e}");
                conn = None;
            }
            Err(_) => {
                let frames = batch.len();
                tracing::warn!(peer = peer_id, %addr, frames, "write timed out, frames dropped, reconnecting");
                conn = None;
            }
        }
    }
    link.dialed(&mut first);
    if let Some(c) = conn {
        c.shutdown().await;
    }
}

/// What a client's writer waited for.
enum Next {
    Frame(Option<Encoded>),
    /// The server closed the connection (its reader ended).
    Ended,
    Stopping,
}

/// One attempt to connect, logged once per outage, not once per attempt.
async fn connected<M: DeserializeOwned + Debug + Send + 'static>(
    link: &Link<M>,
    shutdown: &watch::Receiver<bool>,
    backoff_ms: &mut u64,
    failures: &mut u64,
) -> Option<Conn> {
    let (peer_id, addr) = (usize::from(link.peer) as u64, link.addr);
    match link.connect(shutdown).await {
        Ok(c) => {
            if *failures > 0 {
                tracing::info!(peer = peer_id, %addr, failures = *failures, "reconnected");
            }
            *backoff_ms = RECONNECT_BACKOFF_MS_MIN;
            *failures = 0;
            Some(c)
        }
        Err(e) => {
            if *failures == 0 {
                tracing::warn!(peer = peer_id, %addr, "cannot connect, will retry: {e}");
            }
            *failures += 1;
            None
        }
    }
}

/// An idle connection closed by the peer is routine; any other refusal
/// means this node breaks one of its limits or lacks the cluster secret,
/// which an operator must see.
fn log_refusal(peer_id: u64, addr: SocketAddr, line: &str) {
    if line.contains("connection_idle_ms") {
        tracing::debug!(peer = peer_id, %addr, "{line}, reconnecting");
    } else {
        tracing::warn!(peer = peer_id, %addr, "the peer refused us: {line}");
    }
}

/// Reads a server's answers to this client from one connection into the
/// inbox, until the server closes it or refuses us (its refusal line is
/// logged) or the node shuts down; then tells the writer, which connects
/// anew.
async fn read_answers<M: DeserializeOwned + Debug>(
    id: Id,
    server: Id,
    addr: SocketAddr,
    mut rd: OwnedReadHalf,
    answers: Answers<M>,
    mut shutdown: watch::Receiver<bool>,
    ended: oneshot::Sender<()>,
) {
    let reader = Reader {
        id,
        from: Some(server),
        peer_addr: addr,
        admission: &answers.admission,
        inbox: &answers.inbox,
        idle: None,
    };
    let mut buf = bytes::BytesMut::new();
    match reader.read(&mut rd, &mut buf, &mut shutdown).await {
        Ended::Left => {}
        Ended::Malformed(_) if buf.starts_with(REFUSAL_PREFIX.as_bytes()) => {
            // The line is short and the server closes after it.
            let rest = async {
                while buf.len() < REFUSAL_BYTES_MAX && !buf.contains(&b'\n') {
                    if rd.read_buf(&mut buf).await? == 0 {
                        break;
                    }
                }
                Ok::<(), std::io::Error>(())
            };
            let _ = tokio::time::timeout(Duration::from_millis(PEER_IO_TIMEOUT_MS), rest).await;
            let line = String::from_utf8_lossy(&buf[..buf.len().min(REFUSAL_BYTES_MAX)]);
            log_refusal(usize::from(server) as u64, addr, line.trim_end());
        }
        Ended::Malformed(e) => {
            tracing::warn!(peer = usize::from(server) as u64, %addr, "closing connection: {e}")
        }
        Ended::Refuse(_) => unreachable!("a client's reader has no idle limit"),
    }
    let _ = ended.send(());
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
