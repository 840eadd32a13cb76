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
//!
//! A client listens nowhere: it connects to every server, says hello with
//! its id, and reads its answers from those connections; a server sends
//! what its actor addresses to a client back on the client's latest one.
//!
//! Files: [`handshake`] the hello and its secret, [`admission`] the
//! connection limits, byte budgets and refusals, [`inbound`] the accept
//! loop and the reader of each connection, [`outbound`] the queue and
//! writer for each peer, [`routes`] the ways back to clients, [`gather`]
//! the frames queued for one connection written together. This one
//! only names what the host uses.

mod admission;
mod gather;
mod handshake;
mod inbound;
mod outbound;
mod routes;

pub(super) use admission::Admission;
pub(crate) use handshake::{hello, opening, Opening, HELLO_HEADER_BYTES};
pub(super) use inbound::accept_loop;
pub(super) use outbound::{spawn_writers, Answers, Peer};
pub(super) use routes::{Routes, Unrouted};
