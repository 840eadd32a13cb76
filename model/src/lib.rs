//! Leasehold: the GFS mutation protocol as stateright actors.
//!
//! Map of the crate:
//! - [`types`]: protocol vocabulary and the host interface for chunk data
//!   ([`types::ChunkStore`], [`types::Payload`]).
//! - [`msg`]: messages (named by the patent's acts) and timers.
//! - [`config`]: protocol parameters shared by a cluster, and seeded bugs.
//! - [`master`], [`chunkserver`], [`client`]: the three roles.
//! - [`node`]: one actor type delegating to the roles.
//! - [`display`]: how node states read in the Explorer and in traces.
//! - [`system`]: the checked model: configurations, the timed fault model,
//!   and the properties, each named by its requirement in `specs/`.
//!
//! Handlers only emit commands (send, set timer, save); they never touch
//! clocks, sockets or files, so the same code is checked here and hosted over
//! TCP by the `leasehold` crate.

pub mod chunkserver;
pub mod client;
pub mod config;
pub mod display;
pub mod master;
pub mod memstore;
pub mod msg;
pub mod node;
pub mod symmetry;
pub mod system;
pub mod types;

pub use node::{Node, NodeState};

/// The commands one handler of any actor emits (an actor's `Out`).
pub(crate) type O<S> = stateright::actor::Out<Node<S>>;
