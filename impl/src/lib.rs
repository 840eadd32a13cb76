//! Leasehold over TCP: runs the protocol's stateright actors for real, with
//! chunk replicas in files.
//!
//! Modules:
//!
//! - [`frame`]: the wire format, length-prefixed postcard frames carrying
//!   `(src, dst, msg)`, with its size limit.
//! - [`config`]: the cluster file, mapping actor ids to addresses, roles and
//!   data directories; [`config::ClusterConfig::local`] for tests.
//! - [`host`]: [`host::ActorHost`] runs any `stateright::actor::Actor` as one
//!   node: frames in, timers on the real clock, saves to disk, frames out.
//! - [`filestore`]: [`filestore::FileStore`], the model's `ChunkStore`
//!   interface over files, checksummed per 64 KiB block.
//! - [`payload`]: [`payload::Bytes`], the model's `Payload` interface over
//!   real bytes.
//! - [`nodes`]: builds a master, chunkserver or client node from the cluster
//!   file: the model's actors, unchanged, with parameters for real sizes.
//! - [`client`]: the client library over one hosted client actor: files,
//!   record append, writes, reads, and the record reader.
//! - [`record`]: record framing for record append (checksum and unique id,
//!   so readers skip padding, partial records and duplicates).
//! - [`trace`]: step traces of real nodes, one record per step the host
//!   takes.
//! - [`validate`]: `leasehold validate`, which replays those traces through
//!   the model's actors and checks the requirements over the run.
//!
//! The benchmark (`leasehold bench`) is a crate of its own, `bench/`.
//!
//! A node's loop (see [`host`] for the details):
//!
//! 1. Take the next event: an expired timer, a message the actor sent to
//!    itself, a pending random choice, or else wait for a frame, an injected
//!    message, the next timer or shutdown. A message brings along up to
//!    [`host::BATCH_MSGS_MAX`] in all that have arrived (group commit).
//! 2. Call the actor's handler for each, which only returns commands; with
//!    step traces on, each step is recorded as its handler returns.
//! 3. Pass the barrier once (a chunkserver's chunk writes become durable),
//!    then execute the commands in the order the handlers emitted them; a
//!    `Save` is on disk (fsync, rename, fsync of the directory) before the
//!    next command runs, so nothing sent after it can overtake it.

pub mod client;
pub mod config;
pub mod conform;
pub mod filestore;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod nemesis;
pub mod nodes;
pub mod payload;
pub mod record;
pub mod replay;
pub mod trace;
pub mod validate;

pub use host::HostError;
pub use payload::Bytes;
