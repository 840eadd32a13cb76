//! Leasehold: the GFS mutation protocol as stateright actors.
pub mod types;
