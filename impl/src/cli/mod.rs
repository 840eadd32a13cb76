//! The subcommands' implementations, one file per kind of command, so that
//! main.rs stays the command line and its dispatch:
//!
//! - [`servers`]: `master`, `chunkserver` and `cluster`, which run nodes
//!   until Ctrl-C.
//! - [`files`]: `write`, `read`, `cat-records` and `stat`, one client
//!   operation on one file each.
//! - [`append`]: `append`, which feeds input lines to concurrent appenders.
//! - [`tools`]: `validate`, `nemesis` and `bench`, which test or measure a
//!   cluster rather than use it, and run without the client runtime.
//!
//! This file holds what the client commands share: starting a client.

use crate::{BoxError, ClientArgs};
use leasehold::client::{op_timeout_default, Client};
use leasehold::config::{ClusterConfig, ConfigError, Role};
use std::time::Duration;

pub(crate) mod append;
pub(crate) mod files;
pub(crate) mod servers;
pub(crate) mod tools;

/// Starts a client: at place `--place` plus `offset` (the n-th worker), or
/// at no place.
pub(crate) async fn connect(args: &ClientArgs, offset: usize) -> Result<Client, BoxError> {
    connect_with_window(args, offset, 1).await
}

/// [`connect`] for a client with up to `window` operations in flight.
pub(crate) async fn connect_with_window(
    args: &ClientArgs,
    offset: usize,
    window: usize,
) -> Result<Client, BoxError> {
    let cluster = ClusterConfig::load(&args.config).map_err(|e| match e {
        ConfigError::Read { .. } => {
            format!("{e} (start a local cluster with `leasehold cluster`, or pass --config)")
        }
        e => e.to_string(),
    })?;
    let timeout = args
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or_else(|| op_timeout_default(&cluster));
    let client = match args.place {
        Some(first) => {
            let ids: Vec<u64> = cluster
                .ids_with_role(Role::Client)
                .into_iter()
                .map(|i| usize::from(i) as u64)
                .filter(|&i| i >= first)
                .collect();
            let id = *ids.get(offset).ok_or_else(|| {
                format!(
                    "the cluster file has no client place number {} from {first} on",
                    offset + 1
                )
            })?;
            Client::connect_with_window(&cluster, id, timeout, window).await?
        }
        None => Client::connect_any_with_window(&cluster, timeout, window).await?,
    };
    Ok(client)
}
