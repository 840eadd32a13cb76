//! Checking the Leasehold model: the `check` and `explore` subcommands.
//!
//! - [`check`]: runs the checker on a named configuration (optionally with a
//!   seeded bug), printing progress, each property's verdict, state counts
//!   and a readable counterexample.
//! - [`explore`]: serves the same model in stateright's Explorer.
//! - [`liveness`]: the cycle-aware "a goal stays reachable" check that
//!   stateright's `eventually` cannot make.
//! - [`swarm`]: seeded random walks for configurations too large to close.
//! - [`reduction`]: the proof obligation of the checker's reduction
//!   `drop_ignored`, searched on unreduced configurations.

pub mod check;
pub mod explore;
pub mod liveness;
pub mod reduction;
pub mod swarm;

pub use check::{run_check, CheckArgs};
pub use explore::{run_explore, ExploreArgs};
