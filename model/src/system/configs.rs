//! The named configurations, and `--set` overrides of their fields.

use super::*;
use crate::chunkserver::ChunkserverActor;
use crate::client::ClientActor;
use crate::config::{Bug, Durations, ProtocolCfg};
use crate::master::{ChunkMeta, FileMeta, MasterActor, MasterDurable};
use crate::msg::*;
use crate::types::*;
use crate::Node;
use stateright::actor::{ActorModel, Id, LossyNetwork, Network};
use std::sync::Arc;

/// A model configuration: how many of each node, what clients do, which
/// faults the environment may inject, and the protocol's bounds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelCfg {
    pub name: &'static str,
    pub chunkservers: u8,
    /// Record appends per client; clients run them one after another.
    pub appends: Vec<u8>,
    /// Writes per client: (chunk offset) of each write, one unit each.
    pub writes: Vec<Vec<u8>>,
    /// Reads per client, after its appends and writes: each reads one
    /// record's units at chunk 0's first free unit (`prefill_units`),
    /// where the first record appended lands.
    pub reads: Vec<u8>,
    pub chunk_units: u8,
    pub record_units: u8,
    /// Units of old data already in chunk 0 on every replica at start, so a
    /// record append soon finds the chunk full ([00105]).
    pub prefill_units: u8,
    pub lease_grants_max: u32,
    pub extensions_max: u32,
    pub revocations_max: u32,
    pub client_retries_max: u32,
    /// How many times a chunkserver's lease clock may run out (a bounded
    /// timing fault). 0 models leases long enough, and extensions in time,
    /// for every mutation.
    pub lease_expiries: u8,
    /// Messages may be delayed past any timeout, so replies time out and
    /// are retried. For safety this subsumes loss: a lost message and one
    /// delayed forever look the same to every actor.
    pub delays: bool,
    pub lossy: bool,
    /// Apply messages the network may lose in all, without `lossy` (a
    /// bounded fault, counted in the history like crashes).
    pub apply_losses: u8,
    /// `CloneChunk` messages the network may lose in all (re-replication:
    /// a target that never hears of its clone looks dead to the master).
    pub clone_losses: u8,
    pub duplicating: bool,
    pub chunkserver_crashes: u8,
    pub master_crashes: u8,
    /// Chunkserver disks that may fill up, one fault each: from then on
    /// that server's store fails every change (`MemStore::fill_disk`).
    pub store_faults: u8,
    /// Chunkservers whose blocks may go bad, one fault each: from then on
    /// every read of that server fails `Corrupt` (`MemStore::corrupt_blocks`).
    pub read_faults: u8,
    pub age_out: bool,
    /// The chunkservers' push buffer (records, and units in all) and the
    /// mutations a primary keeps in flight (and a secondary holds back):
    /// the TCP nodes' limits, scaled down in `limits` so that every `Busy`
    /// path runs.
    pub push_buffers_max: u32,
    pub push_buffer_units_max: u64,
    pub mutations_in_flight_max: u32,
    /// Replicas per chunk; 0: one on every chunkserver. Fewer leaves
    /// spare servers a replica can move to (re-replication).
    pub replicas: u8,
    /// Whether the master re-replicates (`ProtocolCfg::re_replication`).
    pub re_replication: bool,
    /// Units one part of a clone carries (`ProtocolCfg::clone_part_units`).
    pub clone_part_units: u64,
    /// The network delivers what can still arrive before a reply timeout
    /// fires: a client's, the master's or a held-back secondary's timeout
    /// fires only once no message to or from it can still take effect (it
    /// was lost, or its receiver ignores it; one to a crashed server still
    /// arrives after the restart). LIVE-2's "after the last fault": faults
    /// stay arbitrary, timing does not, and unbounded retries stay finite.
    pub prompt_network: bool,
    /// The liveness check's goal includes REPL-1: besides every client's
    /// operations succeeding, the master counts every placed replica of
    /// every chunk up to date again.
    pub replication_goal: bool,
    pub bug: Bug,
}

impl ModelCfg {
    /// The configurations tests, README and benchmarks refer to by name.
    pub fn named(name: &str) -> Option<ModelCfg> {
        let base = ModelCfg {
            name: "tiny",
            chunkservers: 3,
            appends: vec![1],
            writes: vec![],
            reads: vec![],
            chunk_units: 4,
            record_units: 1,
            prefill_units: 0,
            lease_grants_max: 1,
            extensions_max: 0,
            revocations_max: 0,
            client_retries_max: 0,
            lease_expiries: 0,
            delays: false,
            lossy: false,
            apply_losses: 0,
            clone_losses: 0,
            duplicating: false,
            chunkserver_crashes: 0,
            master_crashes: 0,
            store_faults: 0,
            read_faults: 0,
            age_out: false,
            push_buffers_max: 4,
            push_buffer_units_max: u64::MAX,
            mutations_in_flight_max: 4,
            replicas: 0,
            re_replication: false,
            clone_part_units: u64::MAX,
            prompt_network: false,
            replication_goal: false,
            bug: Bug::None,
        };
        let cfg = match name {
            // One append, no faults: the protocol's happy path.
            "tiny" => base,
            // Two clients appending concurrently, no faults; liveness is
            // checked here.
            "small" => ModelCfg {
                name: "small",
                appends: vec![1, 1],
                ..base
            },
            // A chunk that fills up: padding and the next chunk ([00105]),
            // with a lease extension.
            "pad" => ModelCfg {
                name: "pad",
                chunk_units: 8,
                record_units: 2,
                prefill_units: 7,
                extensions_max: 1,
                ..base
            },
            // The default configuration README runs: two concurrent appends,
            // a lease that runs out and is granted to another replica, and
            // one client retry.
            "default" => ModelCfg {
                name: "default",
                appends: vec![1, 1],
                lease_grants_max: 2,
                client_retries_max: 1,
                lease_expiries: 1,
                ..base
            },
            // Liveness: like "default", but the client retries without
            // bound (a fair scheduler lets the lease run out and a new one be
            // granted, so success must stay reachable from every state).
            "live" => ModelCfg {
                name: "live",
                appends: vec![1, 1],
                lease_grants_max: 2,
                client_retries_max: u32::MAX,
                lease_expiries: 1,
                ..base
            },
            // Three interchangeable clients: the symmetry benchmark.
            "three-clients" => ModelCfg {
                name: "three-clients",
                appends: vec![1, 1, 1],
                ..base
            },
            // Faults: messages delayed past timeouts (for safety this
            // subsumes loss), one chunkserver crash-restart, one lease expiry
            // and re-grant, one client retry.
            "faults" => ModelCfg {
                name: "faults",
                lease_grants_max: 2,
                client_retries_max: 1,
                lease_expiries: 1,
                delays: true,
                chunkserver_crashes: 1,
                ..base
            },
            // Stateright's lossy network: any message may be dropped.
            "lossy" => ModelCfg {
                name: "lossy",
                lease_grants_max: 2,
                client_retries_max: 1,
                lossy: true,
                ..base
            },
            // A master crash-restart while a lease is held.
            "master-restart" => ModelCfg {
                name: "master-restart",
                lease_grants_max: 2,
                client_retries_max: 1,
                lease_expiries: 1,
                master_crashes: 1,
                ..base
            },
            // Serial writes by one client, with replies delayed past timeouts so
            // a write can fail part-way and be retried.
            "writes" => ModelCfg {
                name: "writes",
                appends: vec![],
                writes: vec![vec![0, 1]],
                client_retries_max: 1,
                delays: true,
                ..base
            },
            // Pushed data ages out of a buffer before its mutation ([0095]):
            // the mutation fails and the client pushes again.
            "age-out" => ModelCfg {
                name: "age-out",
                age_out: true,
                client_retries_max: 1,
                ..base
            },
            // An early revocation ([0091]), the client's retry, and a
            // re-grant under which the append succeeds.
            "revoke" => ModelCfg {
                name: "revoke",
                lease_grants_max: 2,
                revocations_max: 1,
                client_retries_max: 1,
                ..base
            },
            // One client appending twice into a chunk with room for one
            // record: the first fits, the second pads the chunk and goes to
            // the next (APPEND-2 across chunks, APPEND-4 both ways).
            "pad-two" => ModelCfg {
                name: "pad-two",
                appends: vec![2],
                chunk_units: 8,
                record_units: 2,
                prefill_units: 5,
                ..base
            },
            // The TCP nodes' limits scaled down until they bite: one pushed
            // record buffered per server, one mutation in flight at a
            // primary, extensions past the first; two clients race into
            // each `Busy` and retry. (Age-out has its own configuration:
            // with it on as well the space does not close.)
            "limits" => ModelCfg {
                name: "limits",
                appends: vec![1, 1],
                client_retries_max: 1,
                extensions_max: 2,
                push_buffers_max: 1,
                push_buffer_units_max: 2,
                mutations_in_flight_max: 1,
                ..base
            },
            // The push buffer's byte (unit) budget, rather than its record
            // count, refusing the second client's push.
            "push-budget" => ModelCfg {
                name: "push-budget",
                appends: vec![1, 1],
                client_retries_max: 1,
                push_buffer_units_max: 1,
                ..base
            },
            // A record over the quarter-chunk limit ([00104]): refused.
            "too-large" => ModelCfg {
                name: "too-large",
                record_units: 2,
                ..base
            },
            // One chunkserver crash-restart with reply timeouts and one
            // retry, small enough for every test run (FAULT-1, VERSION-1).
            "crash" => ModelCfg {
                name: "crash",
                lease_grants_max: 2,
                client_retries_max: 1,
                chunkserver_crashes: 1,
                ..base
            },
            // One master crash-restart, possibly while the lease is held,
            // and one retry (LEASE-3), small enough for every test run.
            "master-crash" => ModelCfg {
                name: "master-crash",
                lease_grants_max: 2,
                client_retries_max: 1,
                master_crashes: 1,
                ..base
            },
            // LIVE-2: liveness after a fault. One chunkserver crash-restart
            // while one client appends (retrying without bound, as the TCP
            // client does); the lease never runs out and is never extended,
            // so only the protocol itself can get a stalled chunk moving
            // again: a new epoch would hide a secondary that waits for a
            // serial it lost.
            "live-crash" => ModelCfg {
                name: "live-crash",
                // Two servers and two clients: the smallest shape in which
                // a secondary holds back one client's Apply behind the
                // other's (three servers: 1.77 million states, 28 s).
                chunkservers: 2,
                appends: vec![1, 1],
                lease_grants_max: 2,
                client_retries_max: u32::MAX,
                chunkserver_crashes: 1,
                prompt_network: true,
                ..base
            },
            // LIVE-2 with one lost message instead of a crash: a lost
            // Apply leaves a secondary holding back the client's retry.
            "live-lossy" => ModelCfg {
                name: "live-lossy",
                lease_grants_max: 2,
                client_retries_max: u32::MAX,
                apply_losses: 1,
                prompt_network: true,
                ..base
            },
            // LIVE-2 after a master crash-restart, at any point of one
            // append retried without bound: the restarted master must
            // rebuild which replicas are up to date from their reports
            // while the dead incarnation's version announcements and
            // offers may still arrive, and wait out any lease it granted.
            // (`pad` with the same faults and a lease expiry needs a third
            // grant: the crash and the expiry may each waste one; with
            // three, this shape holds at 811,046 states.)
            "live-master-crash" => ModelCfg {
                name: "live-master-crash",
                lease_grants_max: 2,
                client_retries_max: u32::MAX,
                master_crashes: 1,
                prompt_network: true,
                ..base
            },
            // FAULT-2: a chunkserver's disk fills up, at any point, while
            // a client appends: its replica fails every later change,
            // reports it, and the master moves the chunk on without it.
            // (Two clients: over 22 million states, not closed in 5 min.)
            "store-faults" => ModelCfg {
                name: "store-faults",
                appends: vec![1],
                lease_grants_max: 2,
                client_retries_max: 1,
                store_faults: 1,
                ..base
            },
            // Writes and record appends on one file ([00106], [00107]):
            // one client appends while another writes the chunk's last
            // unit, so the write may leave no room for the record (padded
            // past, appended to the next chunk); one lease runs out and is
            // granted to another replica, one retry each. The write stays
            // clear of where the append can land: a write over an acked
            // record is the application's to avoid (APPEND-1 holds only
            // where no write overwrote the record). With replies delayed
            // past timeouts as well: 30.9 million states, 219 s.
            "mixed" => ModelCfg {
                name: "mixed",
                appends: vec![1, 0],
                writes: vec![vec![], vec![3]],
                lease_grants_max: 2,
                client_retries_max: 1,
                lease_expiries: 1,
                ..base
            },
            // LIVE-2 after a disk fills up: one client retrying without
            // bound must get its record appended, which takes a new lease
            // without the failed replica.
            "live-store" => ModelCfg {
                name: "live-store",
                lease_grants_max: 2,
                client_retries_max: u32::MAX,
                store_faults: 1,
                prompt_network: true,
                ..base
            },
            // Concurrent record appends under faults (issue #10): two
            // clients append at once while the environment injects one
            // fault. A retry multiplies every interleaving by the fault's
            // timing (`crash` with two clients and one retry passes 3.5
            // million states unclosed), so these clients do not retry:
            // a failed append stays failed, and every property must still
            // hold of what the other acknowledged. Checked with client
            // symmetry (the two clients are interchangeable).
            //
            // A chunkserver crash-restart at any point of two appends,
            // through a second lease grant: 683,596 states with symmetry.
            "concurrent-crash" => ModelCfg {
                name: "concurrent-crash",
                appends: vec![1, 1],
                lease_grants_max: 2,
                client_retries_max: 0,
                chunkserver_crashes: 1,
                ..base
            },
            // Any message lost, two appends at once (one grant: with two,
            // and a lease expiry, 1.4 million states unclosed at 100 s).
            "concurrent-lossy" => ModelCfg {
                name: "concurrent-lossy",
                appends: vec![1, 1],
                lease_grants_max: 1,
                client_retries_max: 0,
                lossy: true,
                ..base
            },
            // A master crash-restart at any point of two appends (LEASE-3
            // with two clients waiting): 8,756,711 states with symmetry,
            // several minutes, so `#[ignore]`d in the test suite.
            "concurrent-master-crash" => ModelCfg {
                name: "concurrent-master-crash",
                appends: vec![1, 1],
                lease_grants_max: 2,
                client_retries_max: 0,
                master_crashes: 1,
                ..base
            },
            // Reads (READ-1): one client appends a record, then reads it
            // back, while a chunkserver's blocks may go bad at any point:
            // the bad replica fails the read, reports itself (FAULT-2, the
            // read path), and the client reads another.
            "reads" => ModelCfg {
                name: "reads",
                reads: vec![1],
                read_faults: 1,
                ..base
            },
            // Reads around a crash: two chunkservers, one crash and restart
            // at any point, one retry. A replica that lost or never had the
            // chunk's version refuses the read; the client reads the other.
            // (With two grants: 1,645,506 states.)
            "reads-crash" => ModelCfg {
                name: "reads-crash",
                chunkservers: 2,
                reads: vec![1],
                client_retries_max: 1,
                chunkserver_crashes: 1,
                ..base
            },
            // REPL-1: re-replication after a fault. One chunkserver
            // crash-restart at any point of one append retried without
            // bound: a replica that missed a lease's version (or whose
            // primary's lease ran out while it was down) is stale when it
            // comes back. The master clones the chunk onto it from the
            // next lease's primary (revoking a lease it holds) and counts
            // it again. The chunk holds two units already and a clone
            // carries one per part, so clones of several parts are
            // checked; three grants: the crash and the re-replication may
            // each take one.
            "live-repl" => ModelCfg {
                name: "live-repl",
                prefill_units: 2,
                lease_grants_max: 3,
                client_retries_max: u32::MAX,
                chunkserver_crashes: 1,
                prompt_network: true,
                re_replication: true,
                clone_part_units: 1,
                replication_goal: true,
                ..base
            },
            // Re-replication beside two concurrent appends, one crash:
            // a clone's source refuses the old lease's Applies still in
            // flight once it holds the new version, so what it copies out
            // is final. The chunk holds three units already, so the
            // second record goes to the next chunk. No retries, three
            // grants, as in `live-repl` (with one retry each and two
            // grants: over 2.3 million states, unclosed at 8 million).
            // Checked with client symmetry.
            "repl-concurrent" => ModelCfg {
                name: "repl-concurrent",
                appends: vec![1, 1],
                prefill_units: 3,
                lease_grants_max: 3,
                client_retries_max: 0,
                chunkserver_crashes: 1,
                prompt_network: true,
                re_replication: true,
                clone_part_units: 1,
                ..base
            },
            // Re-replication onto a spare (REPL-1): four chunkservers,
            // three replicas a chunk, one crash-restart at any point of one
            // append retried without bound, a prompt network, and one
            // `CloneChunk` the network may lose: to the master its target
            // is then as good as dead, so after the grant timeout the
            // replica moves to the server that held none and the next
            // lease clones onto that. Four grants: the crash, the lost
            // clone and the clone onto the spare may each take one (with
            // three, 34,232 of 814,525 states are doomed by the bound).
            "repl-spare" => ModelCfg {
                name: "repl-spare",
                chunkservers: 4,
                replicas: 3,
                lease_grants_max: 4,
                client_retries_max: u32::MAX,
                chunkserver_crashes: 1,
                clone_losses: 1,
                prompt_network: true,
                re_replication: true,
                replication_goal: true,
                ..base
            },
            _ => return None,
        };
        Some(cfg)
    }

    pub const NAMES: [&'static str; 32] = [
        "tiny",
        "small",
        "pad",
        "default",
        "live",
        "three-clients",
        "faults",
        "lossy",
        "master-restart",
        "writes",
        "revoke",
        "age-out",
        "pad-two",
        "too-large",
        "crash",
        "master-crash",
        "limits",
        "push-budget",
        "live-crash",
        "live-lossy",
        "live-master-crash",
        "store-faults",
        "live-store",
        "mixed",
        "concurrent-crash",
        "concurrent-lossy",
        "concurrent-master-crash",
        "reads",
        "reads-crash",
        "live-repl",
        "repl-concurrent",
        "repl-spare",
    ];

    /// Overrides one field by name (`key=value`), for experiments from the
    /// command line (`leasehold check --set lossy=true`).
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got {assignment:?}"))?;
        let num = || value.parse::<u32>().map_err(|e| format!("{key}: {e}"));
        let flag = || value.parse::<bool>().map_err(|e| format!("{key}: {e}"));
        let list = || -> Result<Vec<u8>, String> {
            value
                .split(',')
                .filter(|v| !v.is_empty())
                .map(|v| v.parse::<u8>().map_err(|e| format!("{key}: {e}")))
                .collect()
        };
        match key {
            "chunkservers" => self.chunkservers = num()? as u8,
            "appends" => self.appends = list()?,
            "chunk_units" => self.chunk_units = num()? as u8,
            "record_units" => self.record_units = num()? as u8,
            "prefill_units" => self.prefill_units = num()? as u8,
            "lease_grants_max" => self.lease_grants_max = num()?,
            "extensions_max" => self.extensions_max = num()?,
            "revocations_max" => self.revocations_max = num()?,
            "client_retries_max" => self.client_retries_max = num()?,
            "lease_expiries" => self.lease_expiries = num()? as u8,
            "delays" => self.delays = flag()?,
            "lossy" => self.lossy = flag()?,
            "apply_losses" => self.apply_losses = num()? as u8,
            "clone_losses" => self.clone_losses = num()? as u8,
            "duplicating" => self.duplicating = flag()?,
            "chunkserver_crashes" => self.chunkserver_crashes = num()? as u8,
            "master_crashes" => self.master_crashes = num()? as u8,
            "store_faults" => self.store_faults = num()? as u8,
            "read_faults" => self.read_faults = num()? as u8,
            "reads" => self.reads = list()?,
            "age_out" => self.age_out = flag()?,
            "push_buffers_max" => self.push_buffers_max = num()?,
            "push_buffer_units_max" => self.push_buffer_units_max = u64::from(num()?),
            "mutations_in_flight_max" => self.mutations_in_flight_max = num()?,
            "prompt_network" => self.prompt_network = flag()?,
            "re_replication" => self.re_replication = flag()?,
            "replicas" => self.replicas = num()? as u8,
            "clone_part_units" => self.clone_part_units = u64::from(num()?),
            "replication_goal" => self.replication_goal = flag()?,
            _ => return Err(format!("unknown configuration field {key:?}")),
        }
        Ok(())
    }

    /// Whether all clients run the same script up to their own number, so
    /// symmetry reduction over clients is sound.
    pub fn clients_interchangeable(&self) -> bool {
        self.appends.windows(2).all(|w| w[0] == w[1])
            && self.writes.windows(2).all(|w| w[0] == w[1])
            && self.reads.windows(2).all(|w| w[0] == w[1])
    }

    pub fn with_bug(mut self, bug: Bug) -> Self {
        self.bug = bug;
        self
    }

    pub fn clients(&self) -> usize {
        self.appends
            .len()
            .max(self.writes.len())
            .max(self.reads.len())
    }

    /// Whether the environment injects faults (and actors time out).
    pub fn faulty(&self) -> bool {
        self.delays
            || self.lossy
            || self.apply_losses > 0
            || self.clone_losses > 0
            || self.duplicating
            || self.chunkserver_crashes > 0
            || self.master_crashes > 0
            || self.store_faults > 0
            || self.read_faults > 0
            || self.age_out
    }

    pub fn master_id(&self) -> Id {
        Id::from(0)
    }

    pub fn chunkserver_ids(&self) -> Vec<Id> {
        self.chunkserver_id_iter().collect()
    }

    /// The chunkservers' ids without a list, for the properties, which run
    /// on every state.
    pub fn chunkserver_id_iter(&self) -> impl Iterator<Item = Id> + Clone {
        (1..=self.chunkservers as usize).map(Id::from)
    }

    pub fn client_id(&self, n: usize) -> Id {
        Id::from(1 + self.chunkservers as usize + n)
    }

    pub fn is_chunkserver(&self, id: Id) -> bool {
        (1..=self.chunkservers as usize).contains(&usize::from(id))
    }

    pub fn protocol(&self) -> ProtocolCfg {
        let n = 1 + self.chunkservers as usize + self.clients();
        ProtocolCfg {
            chunk_size: self.chunk_units as u64,
            replicas_per_chunk: if self.replicas == 0 {
                self.chunkservers as u32
            } else {
                self.replicas as u32
            },
            master: self.master_id(),
            chunkservers: self.chunkserver_ids(),
            // A line: clients sit past the last chunkserver, so a push runs
            // down the chain from the highest chunkserver id ([0096]).
            positions: (0..n).map(|i| (Id::from(i), i as u64)).collect(),
            lease_grants_max: self.lease_grants_max,
            extensions_max: self.extensions_max,
            revocations_max: self.revocations_max,
            chunks_max: 2,
            client_retries_max: self.client_retries_max,
            age_out: self.age_out,
            reply_timeouts: self.faulty(),
            push_buffers_max: self.push_buffers_max,
            push_buffer_bytes_max: self.push_buffer_units_max,
            mutations_in_flight_max: self.mutations_in_flight_max,
            heartbeats_when_idle: false,
            re_replication: self.re_replication,
            clone_part_units: self.clone_part_units,
            durations: Durations::gfs(),
            bug: self.bug,
        }
    }

    /// The record a client's `k`-th append pushes.
    pub fn record(&self, client: usize, k: usize) -> RecordToken {
        RecordToken {
            id: DataId {
                client: client as u32,
                seq: k as u32,
            },
            units: self.record_units,
        }
    }

    pub fn script(&self, client: usize) -> Vec<ClientOp<RecordToken>> {
        let mut ops = vec![];
        for k in 0..self.appends.get(client).copied().unwrap_or(0) as usize {
            ops.push(ClientOp::Append {
                file: 0,
                data: self.record(client, k),
            });
        }
        for (k, &offset) in self
            .writes
            .get(client)
            .map(|w| w.as_slice())
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let data = RecordToken {
                id: DataId {
                    client: client as u32,
                    seq: k as u32,
                },
                units: 1,
            };
            ops.push(ClientOp::Write {
                file: 0,
                index: 0,
                offset: offset as u64,
                data,
            });
        }
        for _ in 0..self.reads.get(client).copied().unwrap_or(0) {
            ops.push(ClientOp::Read {
                file: 0,
                index: 0,
                offset: u64::from(self.prefill_units),
                len: u64::from(self.record_units),
            });
        }
        ops
    }

    fn initial_store(&self) -> MemStore {
        let mut store = MemStore::new(self.chunk_units);
        if self.prefill_units > 0 {
            let old = RecordToken {
                id: DataId {
                    client: u32::MAX,
                    seq: 0,
                },
                units: self.prefill_units,
            };
            store
                .write_at(0, 0, &old, Stamp::default())
                .expect("prefill fits");
        }
        store
    }

    fn initial_master(&self) -> MasterDurable {
        let mut durable = MasterDurable {
            files: vec![FileMeta {
                name: "log".into(),
                chunks: vec![],
            }],
            chunks: vec![],
        };
        if self.prefill_units > 0 {
            durable.files[0].chunks.push(0);
            durable.chunks.push(ChunkMeta {
                file: 0,
                index: 0,
                version: 0,
                epoch: 0,
                grants: 0,
                replicas: self.chunkserver_ids(),
            });
        }
        durable
    }

    pub fn into_model(self) -> LeaseholdModel {
        let protocol = Arc::new(self.protocol());
        let mut actors: Vec<ModelNode> = vec![Node::Master(MasterActor {
            cfg: protocol.clone(),
            initial: self.initial_master(),
        })];
        for _ in 0..self.chunkservers {
            actors.push(Node::Chunkserver(ChunkserverActor {
                cfg: protocol.clone(),
                initial_store: self.initial_store(),
            }));
        }
        for c in 0..self.clients() {
            actors.push(Node::Client(ClientActor {
                cfg: protocol.clone(),
                number: c as u32,
                script: self.script(c),
                report_to: None,
                fragment_max: u64::MAX,
            }));
        }
        let network = if self.duplicating {
            Network::new_unordered_duplicating([])
        } else {
            Network::new_unordered_nonduplicating([])
        };
        let inner = ActorModel::new(self.clone(), History::default())
            .actors(actors)
            .init_network(network)
            .lossy_network(
                if self.lossy || self.apply_losses > 0 || self.clone_losses > 0 {
                    LossyNetwork::Yes
                } else {
                    LossyNetwork::No
                },
            )
            .max_crashes(1)
            .record_msg_out(History::on_send);
        let properties = properties(&self);
        let scripts = (0..self.clients()).map(|c| self.script(c)).collect();
        LeaseholdModel {
            inner,
            cfg: self,
            properties,
            scripts,
        }
    }
}
