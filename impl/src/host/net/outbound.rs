//! The sending side: one frame queue and one writer task per peer, each
//! keeping a persistent connection, sending the hello first and
//! reconnecting with backoff. The actor thread only ever queues, never
//! waits.

use crate::frame::{self, Envelope};
use crate::host::{
    PEER_IO_TIMEOUT_MS, PEER_QUEUE_FRAMES_MAX, RECONNECT_BACKOFF_MS_MAX, RECONNECT_BACKOFF_MS_MIN,
};
use serde::Serialize;
use stateright::actor::Id;
use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

/// Longest refusal line a writer reads back (and logs).
const REFUSAL_BYTES_MAX: usize = 512;

/// The queue to one peer's writer task.
pub(in crate::host) struct Peer {
    frames: mpsc::Sender<Vec<u8>>,
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
pub(in crate::host) fn spawn_writers(
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
