//! Who may connect and what they may hold: the connection limits (in
//! total and per address), the node's budgets for unfinished frames and
//! for the inbox, and the refusal line a peer over a limit is sent. One
//! `Admission` per node, shared by its accept loop and its readers.

use crate::host::ConnLimits;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How a refusal line starts; the rest is `<limit>: <why>\n`.
pub const REFUSAL_PREFIX: &str = "LEASEHOLD REFUSED ";
/// How long a refused peer is given to take its refusal line before the
/// connection is dropped: a peer that does not read costs no more.
const REFUSAL_LINGER_MS: u64 = 200;

/// Why a connection is refused: the limit's name (as in docs/tcp.md) and a
/// sentence for the peer and the log.
pub(super) struct Refusal {
    limit: &'static str,
    why: String,
}

impl Refusal {
    pub(super) fn new(limit: &'static str, why: impl Into<String>) -> Self {
        Refusal {
            limit,
            why: why.into(),
        }
    }
}

/// Who may connect, and what they hold: one per node, shared by its
/// accept loop and readers.
pub(in crate::host) struct Admission {
    pub(super) limits: ConnLimits,
    pub(super) secret: Option<Vec<u8>>,
    /// Open connections: in total, and per peer address.
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    /// Bytes that readers may still reserve for unfinished frames.
    pub(super) unfinished: Arc<Semaphore>,
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
    pub(in crate::host) fn new(limits: ConnLimits, secret: Option<&str>) -> Arc<Self> {
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
    pub(super) async fn inbox_room(
        &self,
        bytes: usize,
        peer_addr: SocketAddr,
    ) -> OwnedSemaphorePermit {
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
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
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
}

/// Logs `refusal` with the peer's address, sends it the refusal line and
/// closes. Bounded in time: a peer that does not read gets nothing more.
pub(super) async fn refuse(mut stream: TcpStream, peer_addr: SocketAddr, refusal: Refusal) {
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
