//! The hello that opens every connection: what a writer sends, and how
//! a reader waits for it and checks the cluster secret. A file of its own
//! because the hello is the wire format's one exception to frames, and
//! this is the only place the secret is compared.

use super::admission::{Admission, Refusal};
use crate::frame;
use crate::host::SECRET_BYTES_MAX;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// What a server's connection opens with, in a cluster with a secret:
/// this magic, the secret's length (u16 big-endian) and the secret. Read as
/// a frame header, the magic's first four bytes announce about 1.2 GiB, far
/// over the frame limit, so a hello is never mistaken for a frame, and an
/// open cluster can tell a peer that sends frames at once (as before hellos
/// existed) from one that greets.
pub const HELLO_MAGIC: &[u8; 8] = b"LHHELLO1";
/// What a client's connection always opens with: this magic, the client's
/// id (u64 big-endian), then the secret's length and the secret as above.
/// A client listens nowhere: the server answers it on this connection, and
/// the id says which of the node's sends are for it (docs/tcp.md,
/// "Handshake").
pub const HELLO_MAGIC_CLIENT: &[u8; 8] = b"LHHELLO2";
/// The magic and the secret's length.
pub const HELLO_HEADER_BYTES: usize = HELLO_MAGIC.len() + 2;
/// The magic, the client's id and the secret's length.
pub const HELLO_CLIENT_HEADER_BYTES: usize = HELLO_MAGIC_CLIENT.len() + 8 + 2;
/// What both magics share; the byte after it is the version.
const HELLO_STEM: &[u8] = b"LHHELLO";

const _: () = assert!(
    u32::from_be_bytes([
        HELLO_MAGIC[0],
        HELLO_MAGIC[1],
        HELLO_MAGIC[2],
        HELLO_MAGIC[3]
    ]) as usize
        > frame::FRAME_PAYLOAD_BYTES_MAX
);

/// The hello this node's writers send on every new connection. A server
/// of an open cluster sends none, so its wire stays exactly as it was
/// before hellos existed (tests that read raw frames still talk to it). A
/// client (`reply_to`: its own id) always sends one: the server needs the
/// id before the client's first frame, since the end of a push chain
/// answers on a connection the client never sent a frame on.
pub(crate) fn hello(secret: Option<&str>, reply_to: Option<u64>) -> Vec<u8> {
    let mut h = Vec::new();
    match (reply_to, secret) {
        (None, None) => return h,
        (None, Some(_)) => h.extend_from_slice(HELLO_MAGIC),
        (Some(id), _) => {
            h.extend_from_slice(HELLO_MAGIC_CLIENT);
            h.extend_from_slice(&id.to_be_bytes());
        }
    }
    let secret = secret.map(str::as_bytes).unwrap_or_default();
    assert!(
        secret.len() <= SECRET_BYTES_MAX,
        "config checks the secret's length"
    );
    h.extend_from_slice(&(secret.len() as u16).to_be_bytes());
    h.extend_from_slice(secret);
    h
}

/// What the first bytes of a connection say so far. Decided from a prefix
/// and never changed by the bytes after it (fuzzed:
/// `leasehold::fuzzing::hello`), so the reader may decide as soon as it can.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opening {
    /// Too few bytes to tell.
    NeedMore,
    /// No hello: the peer starts with a frame (an open cluster takes it).
    Frames,
    /// A whole hello, `len` bytes, offering the secret at `secret..len`;
    /// from a client, with the id to answer it under.
    Hello {
        len: usize,
        secret: usize,
        reply_to: Option<u64>,
    },
    /// Not a hello that can be taken: the limit it breaks (as in
    /// docs/tcp.md) and why.
    Bad { limit: &'static str, why: String },
}

/// Reads the opening of a connection from the bytes received so far.
pub fn opening(buf: &[u8]) -> Opening {
    if buf.is_empty() {
        return Opening::NeedMore;
    }
    if buf[0] != HELLO_STEM[0] {
        return Opening::Frames;
    }
    let malformed = || Opening::Bad {
        limit: "hello",
        why: "malformed hello".into(),
    };
    let common = buf.len().min(HELLO_STEM.len());
    if buf[..common] != HELLO_STEM[..common] {
        return malformed();
    }
    let Some(&version) = buf.get(HELLO_STEM.len()) else {
        return Opening::NeedMore;
    };
    let header = match version {
        b'1' => HELLO_HEADER_BYTES,
        b'2' => HELLO_CLIENT_HEADER_BYTES,
        _ => return malformed(),
    };
    if buf.len() < header {
        return Opening::NeedMore;
    }
    let reply_to =
        (version == b'2').then(|| u64::from_be_bytes(buf[8..16].try_into().expect("8 bytes")));
    let n = u16::from_be_bytes([buf[header - 2], buf[header - 1]]) as usize;
    if n > SECRET_BYTES_MAX {
        return Opening::Bad {
            limit: "secret",
            why: format!("a secret of {n} bytes is over the limit of {SECRET_BYTES_MAX}"),
        };
    }
    if buf.len() < header + n {
        return Opening::NeedMore;
    }
    Opening::Hello {
        len: header + n,
        secret: header,
        reply_to,
    }
}

impl Admission {
    /// Waits for the peer's hello and checks its secret; returns the id a
    /// client asked to be answered under. In an open cluster a server may
    /// instead start with a frame: its bytes stay in `buf`. `Err(None)`:
    /// the peer left or the node is shutting down.
    pub(super) async fn greet(
        &self,
        stream: &mut TcpStream,
        buf: &mut bytes::BytesMut,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<u64>, Option<Refusal>> {
        let deadline = Instant::now() + Duration::from_millis(self.limits.hello_timeout_ms);
        loop {
            match opening(buf) {
                Opening::NeedMore => {}
                Opening::Frames if self.secret.is_some() => {
                    return Err(Some(Refusal::new(
                        "secret",
                        "this cluster requires a hello with its secret first",
                    )));
                }
                Opening::Frames => return Ok(None),
                Opening::Bad { limit, why } => return Err(Some(Refusal::new(limit, why))),
                Opening::Hello {
                    len,
                    secret,
                    reply_to,
                } => {
                    let hello = buf.split_to(len);
                    let offered = &hello[secret..];
                    return match &self.secret {
                        Some(secret) if !same_secret(secret, offered) => Err(Some(Refusal::new(
                            "secret",
                            "wrong cluster secret (is this peer's cluster.toml the cluster's?)",
                        ))),
                        // An open node takes any hello: its peers may
                        // already have a secret it has yet to be given.
                        _ => Ok(reply_to),
                    };
                }
            }
            buf.reserve(HELLO_CLIENT_HEADER_BYTES + SECRET_BYTES_MAX);
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
