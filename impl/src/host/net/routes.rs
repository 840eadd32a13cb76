//! Answers to clients. A client listens nowhere (it needs no address in
//! cluster.toml): it opens a connection to each server and says hello with
//! its id, and a server sends what its actor addresses to that id back on
//! the latest such connection. Every admitted connection gets a writer for
//! its way back; only a client's is entered here, under the client's id.
//! A server's way back carries nothing but a refusal line, as before.

use super::admission::{refuse, Refusal};
use super::gather::{gather, write_batch};
use crate::frame::Encoded;
use crate::host::{PEER_IO_TIMEOUT_MS, PEER_QUEUE_FRAMES_MAX};
use stateright::actor::Id;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

/// What goes back on a connection a peer opened.
pub(super) enum Back {
    /// A frame for the client that opened it.
    Frame(Encoded),
    /// The reader is done: send the refusal line, if any, and close.
    Close(OwnedReadHalf, Option<Refusal>),
}

/// One connection a client opened, as its way back.
struct Route {
    conn: u64,
    back: mpsc::Sender<Back>,
}

/// The ways back to the clients connected to this node.
pub(in crate::host) struct Routes {
    /// This node and every node with an address: their frames travel on
    /// connections of their own, never on a client's way back, so a peer
    /// may not say hello as one of them.
    configured: HashSet<Id>,
    table: Mutex<HashMap<Id, Route>>,
    next_conn: AtomicU64,
}

/// Why a frame for a client did not go.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::host) enum Unrouted {
    /// No connection from it is open (it left, or has yet to connect).
    NoConnection,
    /// Its way back is full: it reads slower than it is answered.
    Full,
}

impl Routes {
    pub(in crate::host) fn new(configured: HashSet<Id>) -> Self {
        Routes {
            configured,
            table: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
        }
    }

    /// Makes `back` the way back to `client`, replacing any older one (a
    /// client that reconnected left that one behind). Returns the
    /// connection's number, for [`Routes::close`].
    pub(super) fn open(&self, client: Id, back: mpsc::Sender<Back>) -> Result<u64, Refusal> {
        if self.configured.contains(&client) {
            return Err(Refusal::new(
                "hello",
                format!(
                    "a client may not say hello as node {}, which has an address in the \
                     cluster file",
                    usize::from(client)
                ),
            ));
        }
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        self.table
            .lock()
            .expect("routes lock")
            .insert(client, Route { conn, back });
        tracing::debug!(
            client = usize::from(client) as u64,
            conn,
            "client connected"
        );
        Ok(conn)
    }

    /// Forgets connection `conn` as the way back to `client`, unless a newer
    /// one has taken its place.
    pub(super) fn close(&self, client: Id, conn: u64) {
        let mut table = self.table.lock().expect("routes lock");
        if table.get(&client).is_some_and(|r| r.conn == conn) {
            table.remove(&client);
        }
    }

    /// Queues `frame` on the way back to `client`, never waiting (the actor
    /// thread calls this).
    pub(in crate::host) fn send(&self, client: Id, frame: Encoded) -> Result<(), Unrouted> {
        let mut table = self.table.lock().expect("routes lock");
        let Some(route) = table.get(&client) else {
            return Err(Unrouted::NoConnection);
        };
        match route.back.try_send(Back::Frame(frame)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Unrouted::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                table.remove(&client);
                Err(Unrouted::NoConnection)
            }
        }
    }
}

/// A new way back, and its queue's receiving end for [`write_back`].
pub(super) fn way_back() -> (mpsc::Sender<Back>, mpsc::Receiver<Back>) {
    mpsc::channel(PEER_QUEUE_FRAMES_MAX)
}

/// Writes what goes back on one connection until its reader closes it. A
/// client that does not take its answers within the peer I/O timeout
/// loses this connection (it connects anew, and the protocol retries what
/// was lost); the node never waits on it.
pub(super) async fn write_back(
    mut wr: OwnedWriteHalf,
    mut back: mpsc::Receiver<Back>,
    peer_addr: SocketAddr,
) {
    let io_timeout = Duration::from_millis(PEER_IO_TIMEOUT_MS);
    // A close taken while gathering frames, after them.
    let mut closing: Option<Back> = None;
    loop {
        let item = match closing.take() {
            Some(close) => close,
            None => match back.recv().await {
                Some(item) => item,
                None => break,
            },
        };
        match item {
            Back::Frame(bytes) => {
                let batch = gather(bytes, || match back.try_recv() {
                    Ok(Back::Frame(bytes)) => Some(bytes),
                    Ok(close) => {
                        closing = Some(close);
                        None
                    }
                    Err(_) => None,
                });
                match tokio::time::timeout(io_timeout, write_batch(&mut wr, &batch)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(%peer_addr, "answer not sent, connection lost: {e}");
                        break;
                    }
                    Err(_) => {
                        tracing::warn!(
                            %peer_addr,
                            "a client took no answer for {PEER_IO_TIMEOUT_MS} ms; closing its \
                             connection"
                        );
                        break;
                    }
                }
            }
            Back::Close(rd, refusal) => {
                match (refusal, rd.reunite(wr)) {
                    (Some(refusal), Ok(stream)) => refuse(stream, peer_addr, refusal).await,
                    (None, Ok(mut stream)) => {
                        let _ = tokio::time::timeout(io_timeout, stream.shutdown()).await;
                    }
                    (_, Err(_)) => unreachable!("both halves come from one stream"),
                }
                return;
            }
        }
    }
    let _ = tokio::time::timeout(io_timeout, wr.shutdown()).await;
}
