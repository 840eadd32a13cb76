//! The receiving side: the accept loop, which admits or refuses each
//! connection, and the reader of each admitted one, which greets the
//! peer and then turns frames into messages for the inbox within the
//! node's byte budgets. A client reads its servers' answers with the same
//! [`Reader`].

use super::admission::{refuse, Admission, Refusal, Slot};
use super::routes::{way_back, write_back, Back, Routes};
use crate::frame;
use crate::host::{Inbound, ACCEPT_BACKOFF_MS_MAX, ACCEPT_BACKOFF_MS_MIN};
use serde::de::DeserializeOwned;
use stateright::actor::Id;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tracing::Instrument;

/// Receive buffer growth step; a frame larger than this grows the buffer up
/// to the frame's size (at most [`frame::FRAME_BYTES_MAX`]), after a
/// reservation from the node's budget for unfinished frames.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Room a read is given at least, whatever the frame at the front still
/// lacks: protocol messages but pushed data are a few hundred bytes, so a
/// read sized to the missing header or body took one frame, or part of
/// one, per system call. Room for many lets one `recv` take every frame
/// that has arrived (issue #13: 11.1 `recvfrom`s per 1 KiB record append
/// across the cluster before, 3.6 after; docs/performance.md). No memory
/// bound moves: a buffer could already grow to [`READ_CHUNK_BYTES`].
const READ_ROOM_BYTES_MIN: usize = 16 * 1024;

/// Accepts peers until shutdown, one reader task per connection, within
/// the connection limits: a peer over one is refused at once (never left
/// waiting in the backlog, where it would wait behind idle peers). Accept
/// errors are retried with backoff; they never stop the node.
pub(in crate::host) async fn accept_loop<M>(
    id: Id,
    listener: TcpListener,
    admission: Arc<Admission>,
    routes: Arc<Routes>,
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
                // Replies to a client go back on the connection it opened:
                // without this, Nagle's algorithm holds each small reply
                // until the client's delayed ACK (40 ms), which set every
                // append's latency to 44 ms.
                let _ = stream.set_nodelay(true);
                let reader = serve_connection(
                    id,
                    stream,
                    peer_addr,
                    admission.clone(),
                    routes.clone(),
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

/// Serves one peer, after its hello, until it closes, falls silent,
/// misbehaves, or the node shuts down: its frames go to the inbox, and a
/// client's answers go back on this connection ([`super::routes`]). A bad
/// frame or a refusal closes this connection only.
#[allow(clippy::too_many_arguments)] // one task's whole context, passed once
async fn serve_connection<M>(
    id: Id,
    mut stream: TcpStream,
    peer_addr: SocketAddr,
    admission: Arc<Admission>,
    routes: Arc<Routes>,
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
    let client = match admission.greet(&mut stream, &mut buf, &mut shutdown).await {
        Ok(reply_to) => reply_to.map(|c| Id::from(c as usize)),
        Err(Some(refusal)) => return refuse(stream, peer_addr, refusal).await,
        Err(None) => return,
    };
    let (mut rd, wr) = stream.into_split();
    let (back, back_rx) = way_back();
    tokio::spawn(write_back(wr, back_rx, peer_addr).in_current_span());
    let route = match client {
        None => Ok(None),
        Some(c) => routes.open(c, back.clone()).map(|conn| Some((c, conn))),
    };
    let refusal = match route {
        Err(refusal) => Some(refusal),
        Ok(route) => {
            let reader = Reader {
                id,
                from: client,
                peer_addr,
                admission: &admission,
                inbox: &inbox,
                idle: Some(Duration::from_millis(admission.limits.connection_idle_ms)),
            };
            let ended = reader.read(&mut rd, &mut buf, &mut shutdown).await;
            if let Some((c, conn)) = route {
                routes.close(c, conn);
            }
            match ended {
                Ended::Refuse(refusal) => Some(refusal),
                Ended::Left => None,
                Ended::Malformed(e) => {
                    tracing::warn!(%peer_addr, "closing connection: {e}");
                    None
                }
            }
        }
    };
    let io_timeout = Duration::from_millis(crate::host::PEER_IO_TIMEOUT_MS);
    let _ = tokio::time::timeout(io_timeout, back.send(Back::Close(rd, refusal))).await;
}

/// How a connection's reading ended.
pub(super) enum Ended {
    /// The peer closed it, it failed, or the node is shutting down.
    Left,
    /// The peer broke a limit: it is told so and closed.
    Refuse(Refusal),
    /// Bytes that are no frame (the buffer still holds them).
    Malformed(String),
}

/// What reading frames from one connection into the inbox needs.
pub(super) struct Reader<'a, M> {
    /// This node: frames for anyone else are dropped.
    pub(super) id: Id,
    /// The one sender whose frames this connection carries, if it is
    /// known: a client's connection (and, on a client, a server's answers).
    pub(super) from: Option<Id>,
    pub(super) peer_addr: SocketAddr,
    pub(super) admission: &'a Arc<Admission>,
    pub(super) inbox: &'a mpsc::Sender<Inbound<M>>,
    /// How long the peer may stay silent; `None`: for ever (a client
    /// waiting for answers).
    pub(super) idle: Option<Duration>,
}

impl<M: DeserializeOwned + std::fmt::Debug> Reader<'_, M> {
    /// Reads frames until the connection ends, within the node's budgets.
    pub(super) async fn read(
        &self,
        rd: &mut OwnedReadHalf,
        buf: &mut bytes::BytesMut,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        let peer_addr = self.peer_addr;
        let admission = self.admission;
        // The budget reserved for the frame at the front of `buf`, if it is
        // larger than one read; returned when the frame is taken.
        let mut reserved: Option<OwnedSemaphorePermit> = None;
        loop {
            loop {
                let frame_bytes = match frame::check(buf) {
                    Ok(Some(payload)) => frame::FRAME_HEADER_BYTES + payload,
                    Ok(None) => break,
                    Err(e) => return Ended::Malformed(e.to_string()),
                };
                // Waited for with the frame still in `buf`, under its
                // unfinished-frame reservation if it needed one, given up
                // only once the message is made: the bytes a waiting reader
                // holds stay within one budget or the other.
                let budget = tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return Ended::Left,
                    permit = admission.inbox_room(frame_bytes, peer_addr) => permit,
                };
                match frame::take::<M>(buf) {
                    Ok(None) => unreachable!("frame::check found a whole frame"),
                    Ok(Some(envelope)) => {
                        reserved = None;
                        if envelope.dst != self.id {
                            tracing::warn!(
                                %peer_addr,
                                dst = usize::from(envelope.dst) as u64,
                                "frame for another node dropped (peer's config differs?)"
                            );
                            continue;
                        }
                        if self.from.is_some_and(|from| from != envelope.src) {
                            tracing::warn!(
                                %peer_addr,
                                src = usize::from(envelope.src) as u64,
                                "frame from another sender than the connection's dropped"
                            );
                            continue;
                        }
                        let inbound = Inbound {
                            src: envelope.src,
                            msg: envelope.msg,
                            budget: Some(budget),
                        };
                        tokio::select! {
                            _ = shutdown.wait_for(|stop| *stop) => return Ended::Left,
                            sent = self.inbox.send(inbound) => if sent.is_err() { return Ended::Left },
                        }
                    }
                    Err(e) => return Ended::Malformed(e.to_string()),
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
                        return Ended::Refuse(Refusal::new(
                            "unfinished_frame_bytes_max",
                            format!(
                                "no room for a frame of {wanted} bytes: the node buffers at most \
                                 {} bytes of unfinished frames",
                                admission.limits.unfinished_frame_bytes_max
                            ),
                        ));
                    }
                }
            }
            if buf.capacity() == 0 {
                // Allocate only once the peer has something to say.
                let readable = tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return Ended::Left,
                    r = within(self.idle, rd.readable()) => r,
                };
                match readable {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Ended::Left,
                    Err(idle) => return Ended::Refuse(idle_refusal(idle)),
                }
            }
            buf.reserve(
                wanted
                    .saturating_sub(buf.len())
                    .clamp(READ_ROOM_BYTES_MIN, READ_CHUNK_BYTES),
            );
            let read = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return Ended::Left,
                read = within(self.idle, rd.read_buf(buf)) => read,
            };
            let read = match read {
                Ok(read) => read,
                Err(idle) => return Ended::Refuse(idle_refusal(idle)),
            };
            match read {
                Ok(0) if buf.is_empty() => {
                    tracing::debug!(%peer_addr, "peer closed connection");
                    return Ended::Left;
                }
                Ok(0) => {
                    tracing::warn!(%peer_addr, "peer closed connection in the middle of a frame");
                    return Ended::Left;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%peer_addr, "connection failed: {e}");
                    return Ended::Left;
                }
            }
        }
    }
}

/// `f`, given up after `limit` if there is one.
async fn within<T>(
    limit: Option<Duration>,
    f: impl std::future::Future<Output = T>,
) -> Result<T, Duration> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, f).await.map_err(|_| limit),
        None => Ok(f.await),
    }
}

fn idle_refusal(idle: Duration) -> Refusal {
    Refusal::new(
        "connection_idle_ms",
        format!("nothing received for {} ms", idle.as_millis()),
    )
}
