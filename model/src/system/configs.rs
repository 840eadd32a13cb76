//! A model configuration ([`ModelCfg`]), `--set` overrides of its fields,
//! and how it becomes a model. The named ones are in `named.rs`.

use super::*;
use crate::chunkserver::ChunkserverActor;
use crate::client::ClientActor;
use crate::config::{Bug, Durations, ProtocolCfg};
use crate::master::{ChunkMeta, FileMeta, MasterActor, MasterDurable};
use crate::memstore::*;
use crate::msg::*;
use crate::types::*;
use crate::Node;
use stateright::actor::{ActorModel, Id, LossyNetwork, Network};
use std::sync::Arc;

/// The model's one file, and the name the `rename` configuration gives it.
pub const RENAME_FROM: &str = "/log";
pub const RENAME_TO: &str = "/renamed";
/// The name the `snapshot` configuration gives the snapshot of the file.
pub const SNAPSHOT_TO: &str = "/snap";
/// The snapshot's file id: the master's files are `RENAME_FROM` alone
/// until the snapshot adds the second.
pub const SNAPSHOT_FILE: FileId = 1;
/// The second file `two_files` starts the master with (file id 1, empty).
pub const SECOND_FILE: &str = "/other";

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
    /// Whether a client waits (a timer, `Timer::RetryBackoff`) before each
    /// retry, as the TCP client does, or retries in the step that failed.
    /// Off, the same retries happen with fewer interleavings: a wait is a
    /// step in which the client's retry is not yet sent, and a retry sent
    /// at once may itself wait in the network as long as any wait
    /// (docs/model.md, "Retries").
    pub retry_backoff: bool,
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
    /// `LeaseOffer` and `NewVersion` messages the network may lose in all:
    /// the announcements of a version the master has already made durable.
    /// Over TCP a master killed between its barrier and its sends loses
    /// them all at once (issue #12: no replica learns the version).
    pub announce_losses: u8,
    /// Stateright's duplicating network: every message stays deliverable
    /// after its delivery. It never closes (each duplicated push and
    /// mutation may re-append a record), so it is walked (`--swarm`), not
    /// checked exhaustively.
    pub duplicating: bool,
    /// Messages the network may deliver a second time, in all: duplication
    /// as a bounded fault, like crashes and losses, so that a
    /// configuration with it closes.
    pub duplications: u8,
    /// Grant timeouts that may fire while the offer's answers are still on
    /// their way, in all, under `prompt_network` (a bounded timing fault:
    /// a restarted master's connections come back slower than its grant
    /// timeout, as the fault campaign saw).
    pub early_grant_timeouts: u8,
    pub chunkserver_crashes: u8,
    /// Chunkserver crashes that lose what the server wrote since its last
    /// barrier, in all (a bounded fault, counted apart from
    /// `chunkserver_crashes`). Only a step that sent nothing but messages
    /// that leave before the barrier (`Msg::leaves_before_barrier`) leaves
    /// such writes behind it: any other send passes the barrier first.
    /// An environment action "barrier" stands for the host's end of a
    /// batch. Without it (0), a crash keeps every write, which is sound
    /// because a write no message has told of is one whose step could as
    /// well not have happened (docs/model.md, "Barriers").
    pub barrier_crashes: u8,
    /// A crash before a barrier may instead tear the barrier's sync: any
    /// non-empty set of the replicas whose data the server wrote since its
    /// last barrier comes back damaged (`MemStore::damage_replica`), the
    /// rest as of the last barrier. A store that syncs a replica's data
    /// and metadata together (one sync per batch) can leave that.
    pub torn_syncs: bool,
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
    /// `ProtocolCfg::apply_batch_max`: 2 in `batched`, 1 elsewhere.
    pub apply_batch_max: u32,
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
    /// The clients that, after their other operations, rename the file
    /// (`/log` to `/renamed`, [0091]). With two, one of them meets the
    /// other's rename pending (`Busy`) or made (`NotFound`).
    pub renamers: Vec<u8>,
    /// The clients that, after their other operations, take a snapshot of
    /// the file (`/log` as `/snap`, GFS §3.4). Nothing writes the
    /// snapshot: SNAP-1 says it keeps what the file held.
    pub snapshotters: Vec<u8>,
    /// After its snapshot, a snapshotter appends one record to the file
    /// (which copies the shared chunk for the file) and then one to the
    /// snapshot (which leases the shared chunk again, for the snapshot
    /// alone), so a mutation sent under the file's old lease can meet the
    /// snapshot's new one (SNAP-1's second half).
    pub snapshot_appends: bool,
    /// The master may find a chunkserver silent (`Timer::ServerSilent`,
    /// which needs `re_replication`); without this its silence timers
    /// never fire, as if every server's heartbeats arrived in time.
    pub silent_servers: bool,
    /// A crashed chunkserver never restarts: gone for good. The liveness
    /// goal then asks that no chunk is placed on it any more.
    pub crashes_permanent: bool,
    /// The prefilled chunk 0 is placed as the master places a new chunk
    /// (on `replicas` servers, leaving spares). Without it, it is on every
    /// chunkserver, the shape the older configurations were pinned with.
    pub prefill_as_placed: bool,
    /// Each client first opens the file by its path, and last asks for a
    /// stat of its chunk 0: the operations the TCP clients begin with
    /// and `leasehold stat` sends (CLIENT-1).
    pub opens_and_stats: bool,
    /// The master starts with a second, empty file (`SECOND_FILE`), and
    /// each client's record appends after its first go to it: an answer
    /// about one file's chunk, late, meets the lookup for the other's
    /// (FILE-1).
    pub two_files: bool,
    /// The checker's reduction (docs/model.md, "Messages ignored for
    /// ever"): after each step, a message its live receiver ignores now
    /// and in every state that can follow is taken out of the network, so
    /// states that differ only in such messages are one. Sound where its
    /// proof obligation holds (`LeaseholdModel::stays_ignored`, checked
    /// on the unreduced configurations in checks/tests/reduction.rs).
    pub drop_ignored: bool,
    pub bug: Bug,
}

impl ModelCfg {
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
            "retry_backoff" => self.retry_backoff = flag()?,
            "lease_expiries" => self.lease_expiries = num()? as u8,
            "delays" => self.delays = flag()?,
            "lossy" => self.lossy = flag()?,
            "apply_losses" => self.apply_losses = num()? as u8,
            "clone_losses" => self.clone_losses = num()? as u8,
            "announce_losses" => self.announce_losses = num()? as u8,
            "duplicating" => self.duplicating = flag()?,
            "duplications" => self.duplications = num()? as u8,
            "early_grant_timeouts" => self.early_grant_timeouts = num()? as u8,
            "chunkserver_crashes" => self.chunkserver_crashes = num()? as u8,
            "barrier_crashes" => self.barrier_crashes = num()? as u8,
            "torn_syncs" => self.torn_syncs = flag()?,
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
            "apply_batch_max" => self.apply_batch_max = num()?.max(1),
            "replication_goal" => self.replication_goal = flag()?,
            "silent_servers" => self.silent_servers = flag()?,
            "crashes_permanent" => self.crashes_permanent = flag()?,
            "prefill_as_placed" => self.prefill_as_placed = flag()?,
            "renamers" => self.renamers = list()?,
            "snapshotters" => self.snapshotters = list()?,
            "snapshot_appends" => self.snapshot_appends = flag()?,
            "opens_and_stats" => self.opens_and_stats = flag()?,
            "two_files" => self.two_files = flag()?,
            "drop_ignored" => self.drop_ignored = flag()?,
            _ => return Err(format!("unknown configuration field {key:?}")),
        }
        Ok(())
    }

    /// Whether the fields fit together, once every `set` is made (each
    /// alone may come before the one it needs): a field that would
    /// change nothing is refused rather than silently ignored.
    pub fn consistent(&self) -> Result<(), String> {
        if !self.snapshotters.is_empty() && self.prefill_units > 0 {
            // The prefilled chunk holds data at version 0, which the
            // master takes for a chunk no replica holds any of: a copy of
            // it for a snapshot would be empty.
            return Err("snapshotters need prefill_units=0".into());
        }
        if self.two_files && !self.snapshotters.is_empty() {
            return Err(
                "two_files=true cannot go with snapshotters: the snapshot is the second file"
                    .into(),
            );
        }
        if self.snapshot_appends && self.snapshotters.is_empty() {
            return Err(
                "snapshot_appends=true needs snapshotters (e.g. --set snapshotters=0): \
                 only a snapshotter appends to the snapshot"
                    .into(),
            );
        }
        Ok(())
    }

    /// Whether all clients run the same script up to their own number, so
    /// symmetry reduction over clients is sound.
    pub fn clients_interchangeable(&self) -> bool {
        self.renamers.is_empty()
            && self.snapshotters.is_empty()
            && self.appends.windows(2).all(|w| w[0] == w[1])
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
            .max(
                self.renamers
                    .iter()
                    .chain(&self.snapshotters)
                    .map(|&c| c as usize + 1)
                    .max()
                    .unwrap_or(0),
            )
    }

    /// Whether the environment injects faults (and actors time out).
    pub fn faulty(&self) -> bool {
        self.delays
            || self.lossy
            || self.apply_losses > 0
            || self.clone_losses > 0
            || self.announce_losses > 0
            || self.duplicating
            || self.duplications > 0
            || self.early_grant_timeouts > 0
            || self.chunkserver_crashes > 0
            || self.barrier_crashes > 0
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
            apply_batch_max: self.apply_batch_max,
            durations: Durations {
                retry_backoff_ms: if self.retry_backoff {
                    Durations::gfs().retry_backoff_ms
                } else {
                    0
                },
                ..Durations::gfs()
            },
            bug: self.bug,
        }
    }

    /// The record a client's operation `k` (its place in the script)
    /// pushes.
    pub fn record(&self, client: usize, k: usize) -> RecordToken {
        RecordToken {
            id: DataId {
                client: client as u64,
                seq: k as u32,
            },
            units: self.record_units,
        }
    }

    pub fn script(&self, client: usize) -> Vec<ClientOp<RecordToken>> {
        let mut ops = vec![];
        if self.opens_and_stats {
            ops.push(ClientOp::Open {
                path: RENAME_FROM.into(),
                create: false,
            });
        }
        // A mutation's data id is its operation's place in the script, as
        // the client numbers what it pushes.
        for k in 0..self.appends.get(client).copied().unwrap_or(0) {
            let file = FileId::from(self.two_files && k > 0);
            ops.push(ClientOp::Append {
                file,
                data: self.record(client, ops.len()),
            });
        }
        for &offset in self.writes.get(client).map(|w| w.as_slice()).unwrap_or(&[]) {
            let data = RecordToken {
                id: DataId {
                    client: client as u64,
                    seq: ops.len() as u32,
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
        if self.renamers.contains(&(client as u8)) {
            ops.push(ClientOp::Rename {
                from: RENAME_FROM.into(),
                to: RENAME_TO.into(),
            });
        }
        if self.snapshotters.contains(&(client as u8)) {
            ops.push(ClientOp::Snapshot {
                from: RENAME_FROM.into(),
                to: SNAPSHOT_TO.into(),
            });
            if self.snapshot_appends {
                // The snapshot is the master's second file. A record's id
                // is its operation's data id: its place in the script.
                for file in [0, SNAPSHOT_FILE] {
                    let data = self.record(client, ops.len());
                    ops.push(ClientOp::Append { file, data });
                }
            }
        }
        if self.opens_and_stats {
            ops.push(ClientOp::Stat { file: 0, index: 0 });
        }
        ops
    }

    /// The chunkservers the prefilled chunk 0 is placed on: the first
    /// `replicas` of them (all with 0), as the master places a new chunk.
    pub fn prefill_placed(&self) -> Vec<Id> {
        let k = match self.replicas {
            k if k > 0 && self.prefill_as_placed => k.min(self.chunkservers),
            _ => self.chunkservers,
        };
        self.chunkserver_ids()
            .into_iter()
            .take(k as usize)
            .collect()
    }

    fn initial_store(&self, placed: bool) -> MemStore {
        let mut store = MemStore::new(self.chunk_units);
        if self.prefill_units > 0 && placed {
            let old = RecordToken {
                id: DataId {
                    client: DataId::PREFILLED_CLIENT,
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

    pub fn initial_master(&self) -> MasterDurable {
        let mut durable = MasterDurable {
            files: vec![FileMeta {
                name: RENAME_FROM.into(),
                chunks: vec![],
            }],
            chunks: vec![],
        };
        if self.two_files {
            durable.files.push(FileMeta {
                name: SECOND_FILE.into(),
                chunks: vec![],
            });
        }
        if self.prefill_units > 0 {
            durable.files[0].chunks.push(0);
            durable.chunks.push(ChunkMeta {
                file: 0,
                index: 0,
                version: 0,
                epoch: 0,
                grants: 0,
                granted: 0,
                granted_to: vec![],
                replicas: self.prefill_placed(),
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
        let placed = self.prefill_placed();
        for id in self.chunkserver_ids() {
            actors.push(Node::Chunkserver(ChunkserverActor {
                cfg: protocol.clone(),
                initial_store: self.initial_store(placed.contains(&id)),
            }));
        }
        for c in 0..self.clients() {
            actors.push(Node::Client(ClientActor {
                cfg: protocol.clone(),
                number: c as u64,
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
                if self.lossy
                    || self.apply_losses > 0
                    || self.clone_losses > 0
                    || self.announce_losses > 0
                {
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
