//! The network side of a node: tokio tasks on the caller's runtime that
//! accept connections and read frames into the inbox, and one writer per
//! peer that keeps a persistent connection and sends that peer's queued
//! frames in order (see "Failure handling" in the [module doc](super)).

use serde::{de::DeserializeOwned, Serialize};
use stateright::actor::Id;
use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::Instrument;

use super::{
    Inbound, ACCEPT_BACKOFF_MS_MAX, ACCEPT_BACKOFF_MS_MIN, CONNECTIONS_MAX, PEER_IO_TIMEOUT_MS,
    PEER_QUEUE_FRAMES_MAX, RECONNECT_BACKOFF_MS_MAX, RECONNECT_BACKOFF_MS_MIN,
};
use crate::frame::{self, Envelope};

/// Receive buffer growth step; a frame larger than this grows the buffer up
/// to the frame's size (at most [`frame::FRAME_BYTES_MAX`]).
const READ_CHUNK_BYTES: usize = 64 * 1024;

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
        let writer = write_peer(peer, addr, rx, shutdown.clone(), done.clone());
        tokio::spawn(writer.instrument(span.clone()));
    }
    peers
}

/// Accepts peers until shutdown, one reader task per connection, at most
/// [`CONNECTIONS_MAX`] at once. Accept errors are retried with backoff;
/// they never stop the node.
pub(super) async fn accept_loop<M>(
    id: Id,
    listener: TcpListener,
    inbox: mpsc::Sender<Inbound<M>>,
    mut shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) where
    M: DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut backoff_ms = ACCEPT_BACKOFF_MS_MIN;
    loop {
        let permit = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            permit = permits.clone().acquire_owned() => permit.expect("semaphore is never closed"),
        };
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer_addr)) => {
                backoff_ms = ACCEPT_BACKOFF_MS_MIN;
                tracing::debug!(%peer_addr, "accepted connection");
                let reader = read_connection(
                    id,
                    stream,
                    peer_addr,
                    inbox.clone(),
                    shutdown.clone(),
                    done.clone(),
                );
                tokio::spawn(
                    async move {
                        reader.await;
                        drop(permit);
                    }
                    .in_current_span(),
                );
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

/// Reads frames from one peer until it closes, misbehaves, or the node
/// shuts down. A bad frame closes this connection only.
async fn read_connection<M>(
    id: Id,
    mut stream: TcpStream,
    peer_addr: SocketAddr,
    inbox: mpsc::Sender<Inbound<M>>,
    mut shutdown: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
) where
    M: DeserializeOwned + std::fmt::Debug,
{
    let mut buf = bytes::BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        loop {
            match frame::take::<M>(&mut buf) {
                Ok(None) => break,
                Ok(Some(envelope)) => {
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
        buf.reserve(wanted.saturating_sub(buf.len()).clamp(1, READ_CHUNK_BYTES));
        let read = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            read = stream.read_buf(&mut buf) => read,
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

/// Sends one peer its frames over one persistent connection, in order,
/// reconnecting with capped exponential backoff. Ends when the actor thread
/// ends (its sender is dropped), after writing what was queued if the peer
/// is connected; once shutting down it no longer reconnects.
async fn write_peer(
    peer: Id,
    addr: SocketAddr,
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
        if stream.as_ref().is_some_and(peer_closed) {
            // The peer closed its end (e.g. a client process exited and a
            // new one took its id). Writing would lose this frame to the
            // old connection's reset: connect anew first.
            tracing::debug!(peer = peer_id, %addr, "peer closed the connection, reconnecting");
            stream = None;
        }
        if stream.is_none() {
            if *shutdown.borrow() {
                // Nobody will wait for an unreachable peer during shutdown.
                continue;
            }
            match tokio::time::timeout(io_timeout, TcpStream::connect(addr)).await {
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

/// Whether the peer has closed a connection we only write to: it never
/// sends anything, so readable means end of stream (or an error).
fn peer_closed(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    match stream.try_read(&mut probe) {
        Ok(0) => true,
        Ok(_) => false, // unexpected bytes; the protocol never sends any back
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}
