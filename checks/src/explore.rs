//! The `explore` subcommand: stateright's Explorer for a configuration.
//!
//! The Explorer is a web page over the model: it starts at the initial
//! state, lists the actions enabled in the selected state (named by protocol
//! step, see `LeaseholdModel::format_action`) and shows the state each one
//! leads to (drawn by `leasehold_model::display`). Its property list names
//! every property with its requirement ID.
//!
//! Stateright's Explorer checks on demand: discoveries (counterexamples and
//! examples) appear in the property list only once its checker has run,
//! which normally waits for the page's "Run to completion" button. With a
//! seeded bug the whole point is the counterexample, so `explore` starts the
//! checker itself as soon as the server listens: the violated property then
//! links to its path, one click away.

use crate::check::resolve;
use clap::Args;
use leasehold_model::config::Bug;
use leasehold_model::system::ModelCfg;
use stateright::Model;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone)]
pub struct ExploreArgs {
    /// Model configuration to explore (see `leasehold check --list`).
    #[arg(long, default_value = "tiny")]
    pub config: String,
    /// Seeded bug to switch on, by kebab-case name (see `leasehold check
    /// --list`). Starts the checker at once, so the violated property links
    /// to its counterexample.
    #[arg(long)]
    pub bug: Option<String>,
    /// Override a configuration field, e.g. --set lossy=true (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Address to serve the Explorer on.
    #[arg(long, default_value = "localhost:3000")]
    pub addr: String,
    /// Start the checker at once even without a bug, so every property shows
    /// its verdict without pressing "Run to completion".
    #[arg(long)]
    pub run: bool,
}

pub fn run_explore(args: ExploreArgs) -> ExitCode {
    let cfg = match resolve(&args.config, &args.sets, args.bug.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let run = args.run || cfg.bug != Bug::None;
    match serve(cfg, &args.addr, run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves the Explorer for `cfg` on `addr` until the process ends (the
/// Explorer's server never returns). With `run_checker`, asks the Explorer's
/// checker to run to completion once the server listens.
///
/// Errors: an address that does not resolve or cannot be bound. The check is
/// made here because stateright's server panics on a bind failure.
pub fn serve(cfg: ModelCfg, addr: &str, run_checker: bool) -> Result<(), String> {
    let bound = probe(addr)?;
    let url = format!("http://{}/", display_addr(addr, bound));
    println!(
        "Explorer for configuration {} (bug: {}) at {url}",
        cfg.name,
        cfg.bug.name()
    );
    if run_checker {
        println!(
            "The checker runs in the background; a violated property turns into a link to its \
             counterexample under Properties."
        );
        let target = bound;
        thread::spawn(move || {
            if let Err(e) = start_checker(target) {
                eprintln!("warning: could not start the Explorer's checker: {e}");
            }
        });
    } else {
        println!("Press \"Run to completion\" on the page to check every property.");
    }
    cfg.into_model().checker().serve(bound);
    Ok(())
}

/// Resolves `addr` and checks that it can be bound, then frees it for the
/// Explorer's own server.
fn probe(addr: &str) -> Result<SocketAddr, String> {
    let resolved: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve address {addr:?}: {e}"))?
        .collect();
    // Prefer IPv4: `localhost` often resolves to ::1 first, and a browser
    // asked for http://localhost tries both.
    let mut candidates = resolved.clone();
    candidates.sort_by_key(|a| !a.is_ipv4());
    let mut last = None;
    for a in candidates {
        if a.port() == 0 {
            return Err(format!(
                "address {addr:?} has port 0: name a port, the Explorer cannot report one it \
                 was given"
            ));
        }
        match TcpListener::bind(a) {
            Ok(l) => {
                drop(l);
                return Ok(a);
            }
            Err(e) => last = Some(format!("cannot listen on {a}: {e}")),
        }
    }
    Err(last.unwrap_or_else(|| format!("address {addr:?} resolves to nothing")))
}

/// The host part as the user wrote it (so `localhost` stays `localhost`),
/// with the port that was bound.
fn display_addr(addr: &str, bound: SocketAddr) -> String {
    match addr.rsplit_once(':') {
        Some((host, _)) if !host.is_empty() => format!("{host}:{}", bound.port()),
        _ => bound.to_string(),
    }
}

/// Sends the request the page's "Run to completion" button sends, once the
/// server accepts connections. Bounded: gives up after ten seconds.
fn start_checker(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => return Err(e.to_string()),
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "POST /.runtocompletion HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    if response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!(
            "unexpected answer: {}",
            response.lines().next().unwrap_or("")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_addr_keeps_the_host_as_written() {
        let bound: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        assert_eq!(display_addr("localhost:3000", bound), "localhost:3000");
        assert_eq!(display_addr("127.0.0.1:3000", bound), "127.0.0.1:3000");
    }

    #[test]
    fn probe_refuses_port_zero_and_a_taken_port() {
        assert!(probe("127.0.0.1:0").unwrap_err().contains("port 0"));
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        assert!(probe(&addr).unwrap_err().contains("cannot listen"));
    }
}
