//! What a node lets its peers make it hold, and how it backs off: every
//! limit has a name here, and docs/tcp.md's limits table lists them.

use serde::Serialize;
/// Frames waiting for one peer's connection. When full (the peer is down or
/// slow), new frames for that peer are dropped and logged.
pub const PEER_QUEUE_FRAMES_MAX: usize = 1024;
/// Inbound connections served at once, from every address together. A
/// peer over it is accepted, sent a refusal naming this limit and closed,
/// so that it learns why and the backlog never fills with waiting peers.
pub const CONNECTIONS_MAX: usize = 1024;
/// Inbound connections from one IP address. Half the total, so that one
/// address can never take every slot. On loopback every node and client
/// shares 127.0.0.1, so this must also cover a whole test cluster's fan-in.
pub const CONNECTIONS_PER_ADDR_MAX: usize = 512;
/// A new connection must complete its hello (in an open cluster: send its
/// first byte) within this long, or it is refused and closed. Our own
/// writers connect only when they have a frame, and send it (after the
/// hello) in the same instant, so this only ever expires for a peer that
/// connects and then says nothing.
pub const HELLO_TIMEOUT_MS: u64 = 2_000;
/// A connection that sends nothing for this long is closed. Our writers
/// keep connections open while idle and reconnect when they find one
/// closed, so closing costs a quiet peer one reconnect.
pub const CONNECTION_IDLE_MS: u64 = 120_000;
/// Bytes buffered for unfinished frames larger than one read, across every
/// connection of a node. A frame that would go over it is refused and its
/// connection closed: without it, 100 connections each holding most of a
/// maximum-size frame held 1.6 GB (issue 15).
pub const UNFINISHED_FRAME_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Longest cluster secret (`secret` in cluster.toml) in a hello.
pub const SECRET_BYTES_MAX: usize = 256;
/// Messages received (from peers or injected) but not yet handled. When
/// full, connection readers wait, which pushes back on the senders via TCP.
pub const INBOX_MSGS_MAX: usize = 1024;
/// Bytes of frames received from peers whose messages the actor has not yet
/// handled (in the inbox, or in the batch being committed). The message
/// count alone let 1024 pushed fragments of up to [`FRAME_BYTES_MAX`] each
/// (16 GiB) wait in one inbox. Three maximum-size frames fit, so a busy
/// chunkserver still has the next fragments of a push chain received
/// while it handles one; a quarter of [`UNFINISHED_FRAME_BYTES_MAX`], so
/// what a node holds of frames it has received, whole or not, stays under
/// 320 MiB plus one read per connection. Readers that find it used up stop
/// reading until the actor takes messages; a frame larger than the whole
/// budget waits for all of it. Messages injected through [`HostHandle`]
/// are not counted: the application made them in this process, which holds
/// their bytes whether they wait in the inbox or not.
///
/// [`FRAME_BYTES_MAX`]: crate::frame::FRAME_BYTES_MAX
pub const INBOX_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Messages the actor sent to the application and the application has not
/// taken yet. When full, new ones are dropped and logged.
pub const APP_QUEUE_MSGS_MAX: usize = 1024;
/// Messages the actor sent to itself and has not handled yet.
pub const SELF_QUEUE_MSGS_MAX: usize = 1024;
/// First and largest wait between attempts to reach a peer.
pub const RECONNECT_BACKOFF_MS_MIN: u64 = 10;
pub const RECONNECT_BACKOFF_MS_MAX: u64 = 2_000;
/// First and largest wait after a failed accept (e.g. out of descriptors).
pub const ACCEPT_BACKOFF_MS_MIN: u64 = 10;
pub const ACCEPT_BACKOFF_MS_MAX: u64 = 1_000;
/// Bytes of queued frames one write to a peer gathers (a frame that starts
/// under it is taken whole): enough for a group commit's burst of small
/// frames in one system call, small enough that a write of pushed data
/// never holds the frames behind it for long.
pub const WRITE_BATCH_BYTES_MAX: usize = 256 * 1024;
/// A connect or a frame write that takes longer marks the peer unreachable.
pub const PEER_IO_TIMEOUT_MS: u64 = 2_000;
/// Messages handled before one barrier and the execution of their
/// commands; bounds how long a reply waits behind other messages' handlers.
pub const BATCH_MSGS_MAX: usize = 64;

const _: () = assert!(RECONNECT_BACKOFF_MS_MIN <= RECONNECT_BACKOFF_MS_MAX);
const _: () = assert!(CONNECTIONS_PER_ADDR_MAX < CONNECTIONS_MAX);
// One maximum-size frame must fit the budget, or a legitimate one could
// never be received.
const _: () = assert!(crate::frame::FRAME_BYTES_MAX as u64 <= UNFINISHED_FRAME_BYTES_MAX);
// At the default a maximum-size frame never needs the inbox to itself, so
// large pushes to a busy node overlap with its handlers.
const _: () = assert!(3 * crate::frame::FRAME_BYTES_MAX as u64 <= INBOX_BYTES_MAX);
const _: () = assert!(SECRET_BYTES_MAX <= u16::MAX as usize);
const _: () = assert!(HELLO_TIMEOUT_MS <= CONNECTION_IDLE_MS);

/// What one peer may make a node hold (see the constants of the same names,
/// which are the defaults). `[limits]` in cluster.toml may lower or raise
/// them for a whole cluster; tests lower them to reach them quickly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnLimits {
    pub connections_max: usize,
    pub connections_per_addr_max: usize,
    pub hello_timeout_ms: u64,
    pub connection_idle_ms: u64,
    pub unfinished_frame_bytes_max: u64,
    pub inbox_bytes_max: u64,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            connections_max: CONNECTIONS_MAX,
            connections_per_addr_max: CONNECTIONS_PER_ADDR_MAX,
            hello_timeout_ms: HELLO_TIMEOUT_MS,
            connection_idle_ms: CONNECTION_IDLE_MS,
            unfinished_frame_bytes_max: UNFINISHED_FRAME_BYTES_MAX,
            inbox_bytes_max: INBOX_BYTES_MAX,
        }
    }
}

impl ConnLimits {
    pub fn is_default(&self) -> bool {
        *self == ConnLimits::default()
    }
}
const _: () = assert!(ACCEPT_BACKOFF_MS_MIN <= ACCEPT_BACKOFF_MS_MAX);
