//! The receiving side: the accept loop, which admits or refuses each
//! connection, and the reader of each admitted one, which greets the
//! peer and then turns frames into messages for the inbox within the
//! node's byte budgets.

use super::admission::{refuse, Admission, Refusal, Slot};
use crate::frame;
use crate::host::{Inbound, ACCEPT_BACKOFF_MS_MAX, ACCEPT_BACKOFF_MS_MIN};
use serde::de::DeserializeOwned;
use stateright::actor::Id;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tracing::Instrument;

/// Receive buffer growth step; a frame larger than this grows the buffer up
/// to the frame's size (at most [`frame::FRAME_BYTES_MAX`]), after a
/// reservation from the node's budget for unfinished frames.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Accepts peers until shutdown, one reader task per connection, within
/// the connection limits: a peer over one is refused at once (never left
/// waiting in the backlog, where it would wait behind idle peers). Accept
/// errors are retried with backoff; they never stop the node.
pub(in crate::host) async fn accept_loop<M>(
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
