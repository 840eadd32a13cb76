//! Network partitions for the campaign: every connection from one server
//! to another goes through a proxy of its own in this process, one per
//! directed pair (each server's cluster.toml names the proxy as the other
//! server's address), so the nemesis can cut a server off from the rest
//! while clients still reach it, as a switch port going dark would.
//!
//! A cut link drops nothing: it stops moving bytes (they wait in the
//! kernel's buffers, the sender's writes stall and time out) and takes new
//! connections without forwarding them, as packets dropped silently by a
//! partition would leave a TCP connection. When the link heals, what
//! waited is delivered in order, or the connection is found dead by the
//! peer that gave up on it: both are what TCP does across a real
//! partition, and both are delays or losses the model checks.

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The proxies, and whether each directed link (from, to) is cut.
pub(super) struct Links {
    cut: HashMap<(u64, u64), watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Links {
    /// Starts one proxy for each ordered pair of `servers` (id, real
    /// address); returns them with the address each proxy listens on.
    pub(super) async fn start(
        servers: &[(u64, SocketAddr)],
    ) -> std::io::Result<(Links, HashMap<(u64, u64), SocketAddr>)> {
        let mut links = Links {
            cut: HashMap::new(),
            tasks: vec![],
        };
        let mut addrs = HashMap::new();
        for &(from, _) in servers {
            for &(to, real) in servers {
                if from == to {
                    continue;
                }
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                addrs.insert((from, to), listener.local_addr()?);
                let (cut, watch) = watch::channel(false);
                links.cut.insert((from, to), cut);
                links.tasks.push(tokio::spawn(serve(listener, real, watch)));
            }
        }
        Ok((links, addrs))
    }

    /// Cuts (or heals) every link to and from server `id`.
    pub(super) fn isolate(&self, id: u64, cut: bool) {
        for (&(from, to), link) in &self.cut {
            if from == id || to == id {
                link.send_replace(cut);
            }
        }
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Accepts connections for one link and relays each to `real` while the
/// link is whole.
async fn serve(listener: TcpListener, real: SocketAddr, cut: watch::Receiver<bool>) {
    while let Ok((inbound, _)) = listener.accept().await {
        let mut cut = cut.clone();
        tokio::spawn(async move {
            // A connection made across a cut reaches nobody until it heals.
            if cut.wait_for(|c| !c).await.is_err() {
                return;
            }
            let Ok(outbound) = TcpStream::connect(real).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            let there = tokio::spawn(relay(in_read, out_write, cut.clone()));
            relay(out_read, in_write, cut).await;
            there.abort();
        });
    }
}

/// Moves bytes one way while the link is whole; holds them while it is cut.
/// Ends when either side closes.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut cut: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if cut.wait_for(|c| !c).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        // Read just before a cut: held until the link heals.
        if cut.wait_for(|c| !c).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
