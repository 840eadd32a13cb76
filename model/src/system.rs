//! The checked system: a named configuration of actors, the timed fault
//! model, and the properties.
//!
//! # Time
//! Stateright's `ActorModel` fires any armed timer at any moment. That is
//! right for most timers (it models arbitrary delays), but not for the lease
//! rule of [0091], which is safe only under a clock assumption: the master
//! waits out a lease on its own clock, which runs for longer than the
//! primary's lease and starts later (the primary starts its clock when it
//! *requests* the lease, the master when it *grants* it). With drift between
//! the two clocks bounded (`Durations::satisfy_clock_bound`), the primary's
//! lease therefore always ends before the master's.
//!
//! [`LeaseholdModel`] wraps the `ActorModel` (same state and action types, so
//! the Explorer and every checker work unchanged) and encodes exactly that:
//! the master's `LeaseExpiry(chunk)` timeout is withheld while a live
//! chunkserver still runs a lease clock (`LeaseClock` timer) for that chunk
//! and epoch *that was already running when the master last armed its
//! expiry* (it granted or extended the lease): only those clocks started
//! before the master's, so only those are sure to end first in real time.
//! A clock started later (an extension's request the master has not seen)
//! does not hold the master back, so a master that forgets to restart its
//! own clock on an extension is caught. A restarted master's
//! `StartupQuiet` timeout is withheld while any live chunkserver runs any
//! lease clock. The seeded bug `MasterIgnoresClockBound` removes the first
//! guard.
//!
//! The wrapper also bounds faults in total (stateright's `max_crashes` only
//! bounds crashes at one moment) and, in configurations without faults,
//! withholds timeouts that only lost messages or slow peers would trigger
//! (the environment answers in time).

use crate::chunkserver::ChunkserverActor;
use crate::client::ClientActor;
use crate::config::{Bug, Durations, ProtocolCfg};
use crate::master::{ChunkMeta, FileMeta, LeaseView, MasterActor, MasterDurable, MasterState};
use crate::msg::*;
use crate::types::*;
use crate::{Node, NodeState};
use smallvec::SmallVec;
use stateright::actor::{
    Actor, ActorModel, ActorModelAction, ActorModelState, Command, Envelope, Id, LossyNetwork,
    Network, Out,
};
use stateright::{Expectation, Model, Path, Property};
use std::borrow::Cow;
use std::sync::Arc;

pub type ModelNode = Node<MemStore>;
pub type State = ActorModelState<ModelNode, History>;
pub type Action = ActorModelAction<Msg<RecordToken>, Timer, ()>;

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
    pub duplicating: bool,
    pub chunkserver_crashes: u8,
    pub master_crashes: u8,
    pub age_out: bool,
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
            duplicating: false,
            chunkserver_crashes: 0,
            master_crashes: 0,
            age_out: false,
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
            _ => return None,
        };
        Some(cfg)
    }

    pub const NAMES: [&'static str; 16] = [
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
            "duplicating" => self.duplicating = flag()?,
            "chunkserver_crashes" => self.chunkserver_crashes = num()? as u8,
            "master_crashes" => self.master_crashes = num()? as u8,
            "age_out" => self.age_out = flag()?,
            _ => return Err(format!("unknown configuration field {key:?}")),
        }
        Ok(())
    }

    /// Whether all clients run the same script up to their own number, so
    /// symmetry reduction over clients is sound.
    pub fn clients_interchangeable(&self) -> bool {
        self.appends.windows(2).all(|w| w[0] == w[1])
            && self.writes.windows(2).all(|w| w[0] == w[1])
    }

    pub fn with_bug(mut self, bug: Bug) -> Self {
        self.bug = bug;
        self
    }

    pub fn clients(&self) -> usize {
        self.appends.len().max(self.writes.len())
    }

    fn faulty(&self) -> bool {
        self.delays
            || self.lossy
            || self.duplicating
            || self.chunkserver_crashes > 0
            || self.master_crashes > 0
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
            replicas_per_chunk: self.chunkservers as u32,
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
            push_buffers_max: 4,
            push_buffer_bytes_max: u64::MAX,
            mutations_in_flight_max: 4,
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
            .lossy_network(if self.lossy {
                LossyNetwork::Yes
            } else {
                LossyNetwork::No
            })
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

/// Auxiliary history the properties need and the actors must not see
/// (a TLA+-style auxiliary variable, kept small).
///
/// Its lists are inline, sized for the named configurations (they spill to
/// the heap beyond): the checker clones the history into every generated
/// state, and heap lists cost an allocation each time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct History {
    pub chunkserver_crashes: u8,
    pub master_crashes: u8,
    pub lease_expiries: u8,
    /// Per (node, chunk): the last mutation it applied, as announced by its
    /// `Apply` (primary) or successful `Applied` (secondary) messages.
    pub applied: SmallVec<[(Id, ChunkHandle, Stamp); 6]>,
    /// Set when some replica applied a mutation not after its previous one.
    pub out_of_order: bool,
    /// Chunks a primary reported full (act 1440).
    pub full: SmallVec<[ChunkHandle; 2]>,
    /// (chunk, epoch, primary) of every lease the master granted.
    pub grants: SmallVec<[(ChunkHandle, LeaseEpoch, Id); 4]>,
    /// The master granted an extension of a lease it had granted before.
    pub extended: bool,
    /// The master revoked a lease.
    /// The epoch of the first lease the master revoked (0: none yet).
    pub revoked: LeaseEpoch,
    /// A mutation failed because its pushed data was gone (aged out).
    pub data_missing: bool,
    /// The lease clocks (chunkserver, chunk, clock) each chunk's master
    /// expiry waits for: those running when the master last armed it.
    pub expiry_waits: SmallVec<[(Id, ChunkHandle, u8); 2]>,
    /// For APPEND-2's real-time order: `(b client, b operation, a client,
    /// a operation)` for every record append `b` that started after record
    /// append `a` was acknowledged. An append started with nothing acked
    /// (every operation of a one-operation client) adds nothing, so only
    /// clients that append more than once add states.
    pub started_after: SmallVec<[(u8, u8, u8, u8); 1]>,
    /// Steps that broke a rule only a step can show (`STEP_*` bits): set
    /// only by a seeded bug, so the protocol's state space is unchanged.
    pub broken: u8,
}

/// A replica accepted a lease grant that answered no request of its own
/// still pending (LEASE-2).
pub const STEP_LATE_GRANT: u8 = 1;
/// A client sent a mutation in a step that was not the chain's
/// acknowledgement of its data, or a push went to a server that was not
/// the closest one left on the chain (PUSH-1).
pub const STEP_PUSH_ORDER: u8 = 2;
/// A replica applied data that was not in its buffer, or kept data that
/// aged out (PUSH-2).
pub const STEP_STALE_DATA: u8 = 4;
/// A client gave up on a record append with retries left (APPEND-5).
pub const STEP_APPEND_GAVE_UP: u8 = 8;
/// A client gave up on a write with retries left, or a primary kept a
/// mutation a replica failed instead of failing it at once (WRITE-2).
pub const STEP_WRITE_FAILURE_HIDDEN: u8 = 16;

impl History {
    fn on_send(cfg: &ModelCfg, h: &History, env: Envelope<&Msg<RecordToken>>) -> Option<History> {
        match env.msg {
            // PUSH-1 ([0096]): each hop goes to the closest server of the
            // chain that has not had the data (positions are node indices,
            // ties to the lower id, as `ProtocolCfg::closest`).
            Msg::PushData { chain, .. } => {
                let d = |a: Id| usize::from(a).abs_diff(usize::from(env.src));
                let closest = !chain.contains(&env.dst)
                    && chain.iter().all(|r| (d(env.dst), env.dst) < (d(*r), *r))
                    && cfg.is_chunkserver(env.dst);
                (!closest && h.broken & STEP_PUSH_ORDER == 0).then(|| History {
                    broken: h.broken | STEP_PUSH_ORDER,
                    ..h.clone()
                })
            }
            Msg::Apply { chunk, stamp, .. } => Some(h.with_applied(env.src, *chunk, *stamp, true)),
            Msg::Applied {
                chunk,
                stamp,
                result: Ok(()),
            } => Some(h.with_applied(env.src, *chunk, *stamp, false)),
            Msg::ChunkFull { chunk, .. } if !h.full.contains(chunk) => {
                let mut h = h.clone();
                h.full.push(*chunk);
                h.full.sort();
                Some(h)
            }
            Msg::LeaseGrant { chunk, epoch, .. }
                if h.grants.contains(&(*chunk, *epoch, env.dst)) =>
            {
                (!h.extended).then(|| History {
                    extended: true,
                    ..h.clone()
                })
            }
            Msg::RevokeLease { epoch, .. } => (h.revoked == 0).then(|| History {
                revoked: *epoch,
                ..h.clone()
            }),
            Msg::MutationFailed {
                reason: Failure::DataMissing,
                ..
            }
            | Msg::Applied {
                result: Err(Failure::DataMissing),
                ..
            } => (!h.data_missing).then(|| History {
                data_missing: true,
                ..h.clone()
            }),
            Msg::LeaseGrant { chunk, epoch, .. } => {
                let mut h = h.clone();
                h.grants.push((*chunk, *epoch, env.dst));
                h.grants.sort();
                Some(h)
            }
            _ => None,
        }
    }

    fn with_applied(
        &self,
        node: Id,
        chunk: ChunkHandle,
        stamp: Stamp,
        from_primary: bool,
    ) -> History {
        let mut h = self.clone();
        match h
            .applied
            .iter_mut()
            .find(|(n, c, _)| *n == node && *c == chunk)
        {
            Some((_, _, last)) => {
                // A primary sends the same stamp to each secondary.
                let in_order = stamp > *last || (from_primary && stamp == *last);
                if !in_order {
                    h.out_of_order = true;
                }
                *last = (*last).max(stamp);
            }
            None => {
                h.applied.push((node, chunk, stamp));
                h.applied.sort();
            }
        }
        h
    }
}

/// The actors under the timed fault model (see the module doc).
#[derive(Clone)]
pub struct LeaseholdModel {
    pub inner: ActorModel<ModelNode, ModelCfg, History>,
    pub cfg: ModelCfg,
    pub properties: Vec<Property<LeaseholdModel>>,
    /// Each client's script, built once: properties read it on every state.
    pub scripts: Vec<Vec<ClientOp<RecordToken>>>,
}

impl LeaseholdModel {
    fn live_chunkservers<'a>(
        &'a self,
        s: &'a State,
    ) -> impl Iterator<Item = (Id, &'a crate::chunkserver::ChunkserverState<MemStore>)> + 'a {
        self.cfg
            .chunkserver_id_iter()
            .filter(move |id| !s.crashed[usize::from(*id)])
            .filter_map(move |id| match &**s.actor_states[usize::from(id)] {
                NodeState::Chunkserver(c) => Some((id, c)),
                _ => None,
            })
    }

    /// Whether some live chunkserver runs a lease clock (for a restarted
    /// master's quiet period: any lease its previous incarnation granted).
    fn lease_clock_running(&self, s: &State) -> bool {
        self.live_chunkservers(s).any(|(id, _)| {
            s.timers_set[usize::from(id)]
                .iter()
                .any(|t| matches!(t, Timer::LeaseClock(..)))
        })
    }

    /// The chunks whose `LeaseExpiry` the master (re)arms if it takes
    /// `action` in `last`. A re-armed timer leaves the timer set as it was,
    /// so the wrapper asks the master's handler what it commands (a second
    /// run of one master step; the master takes few of them).
    fn expiry_armed_by(&self, last: &State, action: &Action) -> SmallVec<[ChunkHandle; 1]> {
        let master = self.cfg.master_id();
        let i = usize::from(master);
        let mut out = Out::new();
        let mut state = Cow::Borrowed(&*last.actor_states[i]);
        let actor = &self.inner.actors[i];
        match action {
            ActorModelAction::Deliver { src, dst, msg } if *dst == master && !last.crashed[i] => {
                actor.on_msg(master, &mut state, *src, msg.clone(), &mut out)
            }
            ActorModelAction::Timeout(id, timer) if *id == master => {
                actor.on_timeout(master, &mut state, timer, &mut out)
            }
            _ => return SmallVec::new(),
        }
        out.iter()
            .filter_map(|c| match c {
                Command::SetTimer(Timer::LeaseExpiry(chunk), _) => Some(*chunk),
                _ => None,
            })
            .collect()
    }

    /// Keeps `History::expiry_waits` exact after a step: a chunk whose
    /// expiry the master just armed waits for the clocks of its granted
    /// epoch running now; a clock that stopped (ran out, was cancelled, its
    /// server crashed) is waited for no longer.
    fn settle_expiry_waits(&self, next: &mut State, armed: &[ChunkHandle]) {
        let running = |s: &State, id: Id, chunk: ChunkHandle, clock: u8| {
            !s.crashed[usize::from(id)]
                && s.timers_set[usize::from(id)]
                    .iter()
                    .any(|t| *t == Timer::LeaseClock(chunk, clock))
        };
        let mut waits = std::mem::take(&mut next.history.expiry_waits);
        waits.retain(|(id, chunk, clock)| {
            !armed.contains(chunk) && running(next, *id, *chunk, *clock)
        });
        for &chunk in armed {
            let Some(LeaseView::Granted { epoch, .. }) = master(next).lease(chunk) else {
                continue;
            };
            for (id, cs) in self.live_chunkservers(next) {
                if cs.lease(chunk).is_some_and(|l| l.epoch == *epoch) {
                    for clock in 0..2 {
                        if running(next, id, chunk, clock) {
                            waits.push((id, chunk, clock));
                        }
                    }
                }
            }
        }
        waits.sort();
        next.history.expiry_waits = waits;
    }

    fn allowed(&self, s: &State, action: &Action) -> bool {
        match action {
            ActorModelAction::Timeout(id, timer) => match timer {
                Timer::LeaseExpiry(chunk) => {
                    if self.cfg.bug == Bug::MasterIgnoresClockBound {
                        return true;
                    }
                    let granted =
                        matches!(master(s).lease(*chunk), Some(LeaseView::Granted { .. }));
                    !granted || !s.history.expiry_waits.iter().any(|w| w.1 == *chunk)
                }
                Timer::StartupQuiet => !self.lease_clock_running(s),
                Timer::LeaseClock(..) => s.history.lease_expiries < self.cfg.lease_expiries,
                _ => {
                    let _ = id;
                    true
                }
            },
            ActorModelAction::Crash(id) => {
                if self.cfg.is_chunkserver(*id) {
                    s.history.chunkserver_crashes < self.cfg.chunkserver_crashes
                } else if *id == self.cfg.master_id() {
                    s.history.master_crashes < self.cfg.master_crashes
                } else {
                    false
                }
            }
            _ => true,
        }
    }
}

/// What [`LeaseholdModel::step_breaks`] needs to know of an action, taken
/// before the action moves into the inner model.
enum StepKind {
    Deliver { src: Id, dst: Id, msg: Delivered },
    Timeout(Id, Timer),
    Other,
}

/// The few facts of a delivered message the step checks read (the message
/// itself stays with the inner model, uncloned).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Delivered {
    Grant {
        chunk: ChunkHandle,
        epoch: LeaseEpoch,
    },
    AppliedErr {
        chunk: ChunkHandle,
        stamp: Stamp,
    },
    Pushed(DataId),
    Other,
}

impl LeaseholdModel {
    fn step_kind(&self, action: &Action) -> StepKind {
        match action {
            // The master's steps break none of the step rules.
            ActorModelAction::Deliver { src, dst, msg } if usize::from(*dst) > 0 => {
                let msg = match msg {
                    Msg::LeaseGrant { chunk, epoch, .. } => Delivered::Grant {
                        chunk: *chunk,
                        epoch: *epoch,
                    },
                    Msg::Applied {
                        chunk,
                        stamp,
                        result: Err(_),
                    } => Delivered::AppliedErr {
                        chunk: *chunk,
                        stamp: *stamp,
                    },
                    Msg::DataPushed { data } => Delivered::Pushed(*data),
                    _ => Delivered::Other,
                };
                StepKind::Deliver {
                    src: *src,
                    dst: *dst,
                    msg,
                }
            }
            ActorModelAction::Timeout(id, t) => StepKind::Timeout(*id, t.clone()),
            _ => StepKind::Other,
        }
    }

    /// Whether record append `b` started after `a` was acknowledged.
    pub fn started_after(s: &State, b: &Acked, a: &Acked) -> bool {
        let key = (b.client as u8, b.op as u8, a.client as u8, a.op as u8);
        s.history.started_after.contains(&key)
    }

    /// APPEND-2's real-time order: a record append that starts in this
    /// step (its client just finished the previous operation) records which
    /// appends were acknowledged by then.
    fn record_starts(&self, last: &State, next: &mut State) {
        for c in 0..self.cfg.clients() {
            let i = usize::from(self.cfg.client_id(c));
            let (NodeState::Client(a), NodeState::Client(b)) =
                (&**last.actor_states[i], &**next.actor_states[i])
            else {
                continue;
            };
            let k = b.results.len();
            let starts_append = matches!(self.scripts[c].get(k), Some(ClientOp::Append { .. }));
            if k <= a.results.len() || !starts_append {
                continue;
            }
            let before: SmallVec<[(u8, u8, u8, u8); 2]> = acked(self, next)
                .filter(|x| x.append)
                .map(|x| (c as u8, k as u8, x.client as u8, x.op as u8))
                .collect();
            if !before.is_empty() {
                let h = &mut next.history;
                h.started_after.extend(before);
                h.started_after.sort();
            }
        }
    }

    /// The `STEP_*` rules this step broke (see [`History::broken`]).
    fn step_breaks(&self, last: &State, kind: &StepKind, next: &State) -> u8 {
        let mut broken = 0;
        fn cs_of(s: &State, id: Id) -> Option<&crate::chunkserver::ChunkserverState<MemStore>> {
            match &**s.actor_states[usize::from(id)] {
                NodeState::Chunkserver(c) if !s.crashed[usize::from(id)] => Some(c),
                _ => None,
            }
        }
        fn client_of(s: &State, id: Id) -> Option<&crate::client::ClientState<RecordToken>> {
            match &**s.actor_states[usize::from(id)] {
                NodeState::Client(c) => Some(c),
                _ => None,
            }
        }
        let count = |s: &State, f: &dyn Fn(&Envelope<&Msg<RecordToken>>) -> bool| {
            s.network.iter_all().filter(|e| f(e)).count()
        };
        let (actor, delivered) = match kind {
            StepKind::Deliver { dst, msg, .. } => (*dst, Some(*msg)),
            StepKind::Timeout(id, _) => (*id, None),
            StepKind::Other => return 0,
        };
        if let (Some(a), Some(b)) = (cs_of(last, actor), cs_of(next, actor)) {
            // LEASE-2: a grant makes a replica the holder only when it
            // answers the replica's own request, still pending.
            if let Some(Delivered::Grant { chunk, epoch }) = delivered {
                let before = a.lease(chunk);
                let pending = before.is_some_and(|l| l.requested && l.epoch == epoch);
                let changed = before != b.lease(chunk);
                if changed && b.is_primary(chunk) && !pending {
                    broken |= STEP_LATE_GRANT;
                }
            }
            // PUSH-2: data that aged out is gone, and a replica applies
            // only data it holds.
            if let StepKind::Timeout(_, Timer::AgeOut(d)) = kind {
                if b.buffer.iter().any(|x| x.data == *d) {
                    broken |= STEP_STALE_DATA;
                }
            }
            if delivered.is_some() && a.store != b.store {
                let fresh = b.store.replicas().iter().enumerate().any(|(chunk, r)| {
                    let old = a.store.replica(chunk as ChunkHandle);
                    r.cells.iter().flatten().any(|c| match c {
                        Cell::Data { record, stamp, .. } if *stamp != Stamp::default() => {
                            let new = !old.is_some_and(|o| {
                                o.cells.iter().flatten().any(|x| cell_stamp(x) == *stamp)
                            });
                            new && !a.buffer.iter().any(|x| x.data == record.id && x.complete)
                        }
                        _ => false,
                    })
                });
                if fresh {
                    broken |= STEP_STALE_DATA;
                }
            }
            // WRITE-2: a replica's error fails the mutation at once: it
            // leaves the primary's in-flight list and is never acked.
            if let Some(Delivered::AppliedErr { chunk, stamp }) = delivered {
                let StepKind::Deliver { src, .. } = kind else {
                    unreachable!()
                };
                let awaited = a
                    .in_flight
                    .iter()
                    .any(|m| m.chunk == chunk && m.stamp == stamp && !m.acked.contains(src));
                let kept = b
                    .in_flight
                    .iter()
                    .any(|m| m.chunk == chunk && m.stamp == stamp);
                let done = |s: &State| {
                    count(s, &|e| {
                        e.src == actor
                            && matches!(e.msg, Msg::MutationDone { chunk: c, stamp: st, .. } if *c == chunk && *st == stamp)
                    })
                };
                if awaited && (kept || done(next) > done(last)) {
                    broken |= STEP_WRITE_FAILURE_HIDDEN;
                }
            }
        }
        if let (Some(a), Some(b)) = (client_of(last, actor), client_of(next, actor)) {
            // PUSH-1: a client sends a mutation only in the step that takes
            // the chain's acknowledgement of that mutation's data.
            let sent = |s: &State| {
                count(s, &|e| {
                    e.src == actor && matches!(e.msg, Msg::Mutate { .. })
                })
            };
            if sent(next) > sent(last) {
                let acknowledged = match delivered {
                    Some(Delivered::Pushed(data)) => {
                        count(next, &|e| {
                            e.src == actor
                                && matches!(e.msg, Msg::Mutate { data: d, .. } if *d == data)
                        }) > count(last, &|e| {
                            e.src == actor
                                && matches!(e.msg, Msg::Mutate { data: d, .. } if *d == data)
                        })
                    }
                    _ => false,
                };
                if !acknowledged {
                    broken |= STEP_PUSH_ORDER;
                }
            }
            // APPEND-5, WRITE-2: a client reports a mutation failed only
            // with its retries used up.
            if b.results.len() > a.results.len()
                && matches!(b.results.get(a.results.len()), Some(OpResult::Failed(_)))
            {
                if let Some(cur) = &a.current {
                    if cur.retries < self.cfg.client_retries_max {
                        broken |= match cur.op {
                            ClientOp::Append { .. } => STEP_APPEND_GAVE_UP,
                            _ => STEP_WRITE_FAILURE_HIDDEN,
                        };
                    }
                }
            }
        }
        broken
    }
}

pub fn master(s: &State) -> &MasterState {
    match &**s.actor_states[0] {
        NodeState::Master(m) => m,
        _ => unreachable!("node 0 is the master"),
    }
}

impl Model for LeaseholdModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        self.inner.init_states()
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        self.inner.actions(state, actions);
        actions.retain(|a| self.allowed(state, a));
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let crash = match &action {
            ActorModelAction::Crash(id) => Some(*id),
            _ => None,
        };
        // A lease clock running out, held or requested, is the bounded
        // timing fault.
        let expiry = matches!(&action, ActorModelAction::Timeout(_, Timer::LeaseClock(..)));
        let armed = self.expiry_armed_by(last, &action);
        let action_copy = self.step_kind(&action);
        let mut next = self.inner.next_state(last, action)?;
        if expiry {
            next.history.lease_expiries += 1;
        }
        self.settle_expiry_waits(&mut next, &armed);
        self.record_starts(last, &mut next);
        let broken = self.step_breaks(last, &action_copy, &next);
        if broken & !next.history.broken != 0 {
            next.history.broken |= broken;
        }
        if let Some(id) = crash {
            if id == self.cfg.master_id() {
                next.history.master_crashes += 1;
            } else {
                next.history.chunkserver_crashes += 1;
            }
        }
        Some(next)
    }

    fn format_action(&self, action: &Action) -> String {
        match action {
            ActorModelAction::Deliver { src, dst, msg } => {
                // The act leads the line; the message's own Debug repeats it
                // in brackets, which this drops.
                let text = format!("{msg:?}");
                let body = text.split_once("] ").map(|(_, b)| b).unwrap_or(&text);
                format!(
                    "{} {} → {}: {body}",
                    msg.act(),
                    self.node_name(*src),
                    self.node_name(*dst)
                )
            }
            ActorModelAction::Timeout(id, timer) => {
                format!("timeout {}: {timer:?}", self.node_name(*id))
            }
            ActorModelAction::Crash(id) => format!("crash {}", self.node_name(*id)),
            ActorModelAction::Recover(id) => format!("restart {}", self.node_name(*id)),
            ActorModelAction::Drop(env) => format!(
                "lose {} → {}: {:?}",
                self.node_name(env.src),
                self.node_name(env.dst),
                env.msg
            ),
            other => self.inner.format_action(other),
        }
    }

    fn format_step(&self, last: &State, action: Action) -> Option<String> {
        self.inner.format_step(last, action)
    }

    fn as_svg(&self, path: Path<State, Action>) -> Option<String> {
        // Same states and actions: the inner model can replay the path.
        let steps = path.into_vec();
        let init = steps.first()?.0.clone();
        let actions: Vec<Action> = steps.into_iter().filter_map(|(_, a)| a).collect();
        Path::from_actions(&self.inner, init, actions.iter()).and_then(|p| self.inner.as_svg(p))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        self.properties.clone()
    }

    fn within_boundary(&self, state: &State) -> bool {
        (self.inner.within_boundary)(&self.cfg, state)
    }
}

impl LeaseholdModel {
    pub fn node_name(&self, id: Id) -> String {
        let i = usize::from(id);
        if i == 0 {
            "master".into()
        } else if self.cfg.is_chunkserver(id) {
            format!("cs{i}")
        } else if i < 1 + self.cfg.chunkservers as usize + self.cfg.clients() {
            format!("client{}", i - 1 - self.cfg.chunkservers as usize)
        } else {
            format!("node{i}")
        }
    }
}

// ---------------------------------------------------------------------------
// Properties. Names start with the requirement ID from specs/.

/// An acknowledged mutation, read back from the clients' results.
#[derive(Clone, Copy, Debug)]
pub struct Acked {
    /// The client, and the operation's place in its script.
    pub client: usize,
    pub op: usize,
    pub record: RecordToken,
    pub append: bool,
    pub chunk: ChunkHandle,
    pub offset: Offset,
    pub stamp: Stamp,
}

/// Every acknowledged mutation. An iterator, not a list: the properties
/// read it several times on every state the checker visits.
pub fn acked<'a>(model: &'a LeaseholdModel, s: &'a State) -> impl Iterator<Item = Acked> + 'a {
    (0..model.cfg.clients()).flat_map(move |c| {
        let results: &[OpResult<RecordToken>] =
            match &**s.actor_states[usize::from(model.cfg.client_id(c))] {
                NodeState::Client(client) => &client.results,
                _ => &[],
            };
        model.scripts[c]
            .iter()
            .zip(results)
            .enumerate()
            .filter_map(move |(k, (op, result))| {
                let OpResult::Mutated {
                    chunk,
                    offset,
                    stamp,
                    ..
                } = result
                else {
                    return None;
                };
                let (record, append) = match op {
                    ClientOp::Append { data, .. } => (*data, true),
                    ClientOp::Write { data, .. } => (*data, false),
                    _ => return None,
                };
                Some(Acked {
                    client: c,
                    op: k,
                    record,
                    append,
                    chunk: *chunk,
                    offset: *offset,
                    stamp: *stamp,
                })
            })
    })
}

fn store(s: &State, id: Id) -> &MemStore {
    match &**s.actor_states[usize::from(id)] {
        NodeState::Chunkserver(c) => &c.store,
        _ => unreachable!("a chunkserver id"),
    }
}

/// Whether replica `store` holds `record` whole at `offset` of `chunk`.
fn holds(store: &MemStore, chunk: ChunkHandle, offset: Offset, record: RecordToken) -> bool {
    let Some(r) = store.replica(chunk) else {
        return false;
    };
    (0..record.units).all(|part| {
        matches!(r.cells.get(offset as usize + part as usize), Some(Some(Cell::Data { record: got, part: p, .. })) if *got == record && *p == part)
    })
}

/// Replicas at the master's current version of `chunk`.
fn current_replicas<'a>(
    model: &'a LeaseholdModel,
    s: &'a State,
    chunk: ChunkHandle,
) -> impl Iterator<Item = Id> + 'a {
    let version = master(s)
        .durable
        .chunks
        .get(chunk as usize)
        .map(|c| c.version);
    model
        .cfg
        .chunkserver_id_iter()
        .filter(move |id| Some(store(s, *id).meta(chunk).version) == version)
}

/// Whether replica `store` holds the acknowledged write `a` at its offset,
/// unit by unit, unless a later mutation (a higher stamp) overwrote a unit.
fn holds_write(store: &MemStore, a: &Acked) -> bool {
    let Some(r) = store.replica(a.chunk) else {
        return false;
    };
    (0..a.record.units).all(|p| {
        match r
            .cells
            .get(a.offset as usize + p as usize)
            .copied()
            .flatten()
        {
            Some(Cell::Data {
                record,
                part,
                stamp,
            }) if stamp == a.stamp => record == a.record && part == p,
            Some(c) => cell_stamp(&c) > a.stamp,
            None => false,
        }
    })
}

/// Whether replica `id` holds every acknowledged mutation of `chunk`: each
/// record append whole at its offset, each write at its offset unless a
/// later mutation overwrote it (VERSION-1, VERSION-2).
fn holds_all_acked(model: &LeaseholdModel, s: &State, id: Id, chunk: ChunkHandle) -> bool {
    acked(model, s)
        .filter(|a| a.chunk == chunk)
        .all(|a| match a.append {
            true => holds(store(s, id), chunk, a.offset, a.record),
            false => holds_write(store(s, id), &a),
        })
}

fn lease_1(model: &LeaseholdModel, s: &State) -> bool {
    let chunks = master(s).durable.chunks.len() as ChunkHandle;
    (0..chunks.max(2)).all(|c| {
        model
            .live_chunkservers(s)
            .filter(|(_, cs)| cs.is_primary(c))
            .count()
            <= 1
    })
}

fn order_1(model: &LeaseholdModel, s: &State) -> bool {
    // Any two replicas that applied mutation (epoch, serial) applied the
    // same one, at the same place, unless a later mutation overwrote it.
    let ids = model.cfg.chunkserver_id_iter();
    for a in ids.clone() {
        for (chunk, ra) in store(s, a).replicas().iter().enumerate() {
            for (o, cell) in ra.cells.iter().enumerate() {
                let Some(cell) = cell else { continue };
                let stamp = cell_stamp(cell);
                if stamp == Stamp::default() {
                    continue; // prefilled data predates the model
                }
                for b in ids.clone() {
                    let Some(rb) = store(s, b).replica(chunk as ChunkHandle) else {
                        continue;
                    };
                    let b_applied = rb.cells.iter().flatten().any(|c| cell_stamp(c) == stamp);
                    if !b_applied {
                        continue;
                    }
                    match rb.cells.get(o).copied().flatten() {
                        Some(other) if other == *cell => {}
                        Some(other) if cell_stamp(&other) > stamp => {}
                        _ => return false,
                    }
                }
            }
        }
    }
    true
}

fn cell_stamp(c: &Cell) -> Stamp {
    match c {
        Cell::Pad(s) => *s,
        Cell::Data { stamp, .. } => *stamp,
    }
}

fn append_1(model: &LeaseholdModel, s: &State) -> bool {
    acked(model, s).filter(|a| a.append).all(|a| {
        current_replicas(model, s, a.chunk)
            .all(|id| holds(store(s, id), a.chunk, a.offset, a.record))
    })
}

/// APPEND-2 ([00107]): every *later* acknowledged append gets a higher
/// offset in the same chunk or a later chunk (by its index in the file).
///
/// "Later" must be an order the protocol promises, or the property would
/// fail on correct runs:
/// * not acknowledgement order: two concurrent appends are acknowledged in
///   whatever order their replies travel, so the one acknowledged second may
///   well sit at the lower offset, or (one padded the chunk, the other was
///   serialised before the pad) in the earlier chunk;
/// * within one chunk, the serial order the primaries chose: a higher stamp
///   (lease grant order, then serial, [0090]) is a later mutation, whichever
///   client sent it and whenever it was acknowledged;
/// * across chunks stamps do not compare (each chunk has its own epochs), so
///   real time: `b` is later than `a` when `b`'s operation started after `a`
///   was acknowledged (`History::started_after`; a client's next operation
///   always starts after its previous one finished).
fn append_2(model: &LeaseholdModel, s: &State) -> bool {
    acked(model, s).filter(|a| a.append).all(|a| {
        acked(model, s).filter(|b| b.append).all(|b| {
            let serial_later = b.chunk == a.chunk && b.stamp > a.stamp;
            let real_time_later = LeaseholdModel::started_after(s, &b, &a);
            let index = |x: &Acked| {
                master(s)
                    .durable
                    .chunks
                    .get(x.chunk as usize)
                    .map_or(x.chunk as u32, |c| c.index)
            };
            !(serial_later || real_time_later)
                || index(&b) > index(&a)
                || (b.chunk == a.chunk && b.offset >= a.offset + a.record.len())
        })
    })
}

/// APPEND-3 ([00104]): no acknowledged record is larger than a quarter
/// chunk or crosses the chunk's end, and no replica grows past it.
fn append_3(model: &LeaseholdModel, s: &State) -> bool {
    let size = model.cfg.chunk_units as u64;
    // `ProtocolCfg::record_size_max`, without building the protocol.
    let max = size / 4;
    acked(model, s)
        .filter(|a| a.append)
        .all(|a| a.record.len() <= max && a.offset + a.record.len() <= size)
        && model.cfg.chunkserver_id_iter().all(|id| {
            store(s, id)
                .replicas()
                .iter()
                .all(|r| r.cells.len() as u64 <= size)
        })
}

/// APPEND-4 ([00105]) both ways: a chunk reported full is padded to its
/// end on every up-to-date replica, and a chunk is padded only where the
/// record that padded it would have crossed the end.
///
/// The second half cannot see the padding append's record or the primary's
/// end when it padded, so it bounds both from above, which keeps it sound
/// (it may miss a bug, never accuse the protocol): the record by the largest
/// any client appends within the quarter-chunk limit; the primary's end by
/// the largest, over every replica that applied the pad, of where its pad
/// cells start, or of its length if it wrote none (it was full already;
/// lengths only grow, and the primary is among them). A replica that missed
/// a failed mutation pads from a shorter end than the primary, so no single
/// replica's start would do. A pad that leaves room even then was written
/// although the record fit.
fn append_4(model: &LeaseholdModel, s: &State) -> bool {
    let size = model.cfg.chunk_units as u64;
    let full_padded = s
        .history
        .full
        .iter()
        .all(|&c| current_replicas(model, s, c).all(|id| store(s, id).chunk_len(c) == size));
    if !full_padded {
        return false;
    }
    let max = size / 4; // `ProtocolCfg::record_size_max`
    let largest = model
        .scripts
        .iter()
        .flatten()
        .filter_map(|op| match op {
            ClientOp::Append { data, .. } if data.len() <= max => Some(data.len()),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let ids = model.cfg.chunkserver_id_iter();
    ids.clone().all(|id| {
        store(s, id)
            .replicas()
            .iter()
            .enumerate()
            .all(|(chunk, r)| {
                r.cells.iter().flatten().all(|c| {
                    let Cell::Pad(stamp) = c else { return true };
                    let start = ids
                        .clone()
                        .filter_map(|other| {
                            let r = store(s, other).replica(chunk as ChunkHandle)?;
                            match r.cells.iter().position(|x| *x == Some(Cell::Pad(*stamp))) {
                                Some(i) => Some(i),
                                None => (r.meta.applied >= *stamp).then_some(r.cells.len()),
                            }
                        })
                        .max()
                        .unwrap_or(0) as u64;
                    start + largest > size
                })
            })
    })
}

fn order_2(_: &LeaseholdModel, s: &State) -> bool {
    !s.history.out_of_order
}

fn write_1(model: &LeaseholdModel, s: &State) -> bool {
    acked(model, s)
        .filter(|a| !a.append)
        .all(|a| current_replicas(model, s, a.chunk).all(|id| holds_write(store(s, id), &a)))
}

/// LEASE-2 ([0091]): a replica holds a lease only for an epoch it
/// requested, from a grant that arrived while that request was pending
/// (checked at each grant's delivery: `STEP_LATE_GRANT`).
fn lease_2(_: &LeaseholdModel, s: &State) -> bool {
    s.history.broken & STEP_LATE_GRANT == 0
}

/// LEASE-4 ([0091]): extensions and revocations keep the primary's lease
/// inside the master's: a live replica holds a lease only while the master
/// grants that epoch to that replica. A crashed master, or a restarted one
/// in its waiting period, does not know the leases it granted before;
/// LEASE-3's wait covers those.
fn lease_4(model: &LeaseholdModel, s: &State) -> bool {
    if s.crashed[0] {
        return true;
    }
    let m = master(s);
    if m.quiet {
        return true;
    }
    model.live_chunkservers(s).all(|(id, cs)| {
        cs.leases.iter().filter(|l| l.holding).all(|l| {
            matches!(m.lease(l.chunk), Some(LeaseView::Granted { primary, epoch, .. })
                if *primary == id && *epoch == l.epoch)
        })
    })
}

/// PUSH-1 ([0096]–[0099]): a client sends a mutation only on the chain's
/// acknowledgement of its data, and each hop of a push goes to the closest
/// server left on the chain (`STEP_PUSH_ORDER`, set by the step's check and
/// by `History::on_send`).
fn push_1(_: &LeaseholdModel, s: &State) -> bool {
    s.history.broken & STEP_PUSH_ORDER == 0
}

/// PUSH-2 ([0095], [00101]): a replica applies only data that is in its
/// buffer, and data that ages out leaves the buffer (`STEP_STALE_DATA`).
fn push_2(_: &LeaseholdModel, s: &State) -> bool {
    s.history.broken & STEP_STALE_DATA == 0
}

/// APPEND-5 ([00107]): a failed record append is retried: a client reports
/// one failed only with its retries used up (`STEP_APPEND_GAVE_UP`).
fn append_5(_: &LeaseholdModel, s: &State) -> bool {
    s.history.broken & STEP_APPEND_GAVE_UP == 0
}

/// WRITE-2 ([00101]): a mutation that fails at a replica is failed by the
/// primary at once, so it is never acknowledged; and a client reports a
/// write failed only with its retries used up
/// (`STEP_WRITE_FAILURE_HIDDEN`).
fn write_2(_: &LeaseholdModel, s: &State) -> bool {
    s.history.broken & STEP_WRITE_FAILURE_HIDDEN == 0
}

fn version_1(model: &LeaseholdModel, s: &State) -> bool {
    if s.crashed[0] {
        return true; // a crashed master counts nothing
    }
    master(s).views.iter().enumerate().all(|(c, v)| {
        v.up_to_date
            .iter()
            .all(|id| holds_all_acked(model, s, *id, c as ChunkHandle))
    })
}

fn version_2(model: &LeaseholdModel, s: &State) -> bool {
    let m = master(s);
    let current = |chunk: ChunkHandle, epoch: LeaseEpoch| matches!(m.lease(chunk), Some(LeaseView::Granted { epoch: e, .. }) if *e == epoch);
    let named_ok = |info: &LeaseInfo| {
        !current(info.chunk, info.epoch)
            || std::iter::once(info.primary)
                .chain(info.secondaries.iter().copied())
                .all(|id| holds_all_acked(model, s, id, info.chunk))
    };
    let in_flight = s.network.iter_all().all(|env| match env.msg {
        Msg::LeaseHolder { info, .. } => named_ok(info),
        _ => true,
    });
    let cached = (0..model.cfg.clients()).all(|c| {
        match &**s.actor_states[usize::from(model.cfg.client_id(c))] {
            NodeState::Client(cl) => cl.cache.iter().all(named_ok),
            _ => true,
        }
    });
    in_flight && cached
}

/// Every client finished every operation successfully.
pub fn all_succeeded(model: &LeaseholdModel, s: &State) -> bool {
    (0..model.cfg.clients()).all(
        |c| match &**s.actor_states[usize::from(model.cfg.client_id(c))] {
            NodeState::Client(cl) => {
                cl.results.len() == model.scripts[c].len()
                    && cl
                        .results
                        .iter()
                        .all(|r| matches!(r, OpResult::Mutated { .. }))
            }
            _ => true,
        },
    )
}

fn some_append_acked(model: &LeaseholdModel, s: &State) -> bool {
    acked(model, s).any(|a| a.append)
}

fn some_write_acked(model: &LeaseholdModel, s: &State) -> bool {
    acked(model, s).any(|a| !a.append)
}

fn duplicate_record(model: &LeaseholdModel, s: &State) -> bool {
    model.cfg.chunkserver_id_iter().any(|id| {
        let mut seen: SmallVec<[RecordToken; 8]> = SmallVec::new();
        store(s, id)
            .replicas()
            .iter()
            .flat_map(|r| r.cells.iter())
            .any(|c| match c {
                Some(Cell::Data {
                    record, part: 0, ..
                }) => {
                    let dup = seen.contains(record);
                    seen.push(*record);
                    dup
                }
                _ => false,
            })
    })
}

fn padded_and_next_chunk(model: &LeaseholdModel, s: &State) -> bool {
    !s.history.full.is_empty() && acked(model, s).any(|a| a.append && a.chunk != 0)
}

fn later_chunk_after_ack(model: &LeaseholdModel, s: &State) -> bool {
    acked(model, s).filter(|a| a.append).any(|a| {
        acked(model, s)
            .filter(|b| b.append)
            .any(|b| b.chunk != a.chunk && LeaseholdModel::started_after(s, &b, &a))
    })
}

fn second_server_led(_: &LeaseholdModel, s: &State) -> bool {
    s.history.grants.iter().any(|(c, _, p)| {
        s.history
            .grants
            .iter()
            .any(|(c2, _, p2)| c == c2 && p != p2)
    })
}

fn stale_replica_detected(_: &LeaseholdModel, s: &State) -> bool {
    let m = master(s);
    m.durable
        .chunks
        .iter()
        .zip(m.views.iter())
        .any(|(meta, view)| meta.version > 0 && view.up_to_date.len() < meta.replicas.len())
}

fn replicas_differ(model: &LeaseholdModel, s: &State) -> bool {
    (0..master(s).durable.chunks.len() as ChunkHandle).any(|c| {
        let mut current = current_replicas(model, s, c);
        let Some(first) = current.next() else {
            return false;
        };
        let cells =
            |id: Id| -> &[Option<Cell>] { store(s, id).replica(c).map_or(&[], |r| &r.cells[..]) };
        let a = cells(first);
        current.any(|id| cells(id) != a)
    })
}

fn failed_write_replicas_differ(model: &LeaseholdModel, s: &State) -> bool {
    replicas_differ(model, s)
        && (0..model.cfg.clients()).any(|c| {
            match &**s.actor_states[usize::from(model.cfg.client_id(c))] {
                NodeState::Client(cl) => {
                    cl.current.as_ref().is_some_and(|cur| cur.retries > 0)
                        || cl.results.iter().any(|r| matches!(r, OpResult::Failed(_)))
                }
                _ => false,
            }
        })
}

fn same_stamp_on_two_replicas(model: &LeaseholdModel, s: &State) -> bool {
    let ids = model.cfg.chunkserver_id_iter();
    ids.clone().any(|a| {
        store(s, a).replicas().iter().enumerate().any(|(chunk, r)| {
            r.cells
                .iter()
                .flatten()
                .map(cell_stamp)
                .filter(|st| *st != Stamp::default())
                .any(|st| {
                    ids.clone().filter(|b| *b != a).any(|b| {
                        store(s, b).replica(chunk as ChunkHandle).is_some_and(|rb| {
                            rb.cells.iter().flatten().any(|c| cell_stamp(c) == st)
                        })
                    })
                })
        })
    })
}

fn two_acked_in_one_chunk(model: &LeaseholdModel, s: &State) -> bool {
    acked(model, s).enumerate().any(|(i, a)| {
        acked(model, s)
            .skip(i + 1)
            .any(|b| a.append && b.append && a.chunk == b.chunk)
    })
}

/// A client was told a lease holder while some replica of the chunk was
/// left out of the named set (stale).
fn named_without_stale(model: &LeaseholdModel, s: &State) -> bool {
    let replicas = model.cfg.chunkservers as usize;
    let short = |info: &LeaseInfo| 1 + info.secondaries.len() < replicas;
    (0..model.cfg.clients()).any(
        |c| match &**s.actor_states[usize::from(model.cfg.client_id(c))] {
            NodeState::Client(cl) => cl.cache.iter().any(short),
            _ => false,
        },
    )
}

fn held_back(model: &LeaseholdModel, s: &State) -> bool {
    model
        .live_chunkservers(s)
        .any(|(_, cs)| !cs.held.is_empty())
}

fn lease_expired_and_regranted(_: &LeaseholdModel, s: &State) -> bool {
    s.history.grants.iter().any(|(_, e, _)| *e >= 2)
}

fn attach(cfg: &ModelCfg) -> Vec<Property<LeaseholdModel>> {
    let appends = !cfg.appends.is_empty();
    let writes = !cfg.writes.is_empty();
    // Whether some mutation can succeed at all: a record over the
    // quarter-chunk limit is always refused.
    let mutates = writes || (appends && cfg.record_units as u64 <= cfg.chunk_units as u64 / 4);
    let mut p = vec![
        Property::always(
            "LEASE-1 at most one primary per chunk at any instant",
            lease_1,
        ),
        Property::always(
            "ORDER-1 replicas agree on the mutation at each (epoch, serial)",
            order_1,
        ),
        Property::always(
            "ORDER-2 each replica applies mutations in increasing (epoch, serial)",
            order_2,
        ),
        Property::always(
            "VERSION-1 the master counts as up to date only replicas holding every acked mutation",
            version_1,
        ),
        Property::always(
            "VERSION-2 the master names to clients only replicas holding every acked mutation",
            version_2,
        ),
        Property::always(
            "LEASE-2 a replica holds a lease only from a grant answering its own pending request",
            lease_2,
        ),
    ];
    if cfg.extensions_max > 0 || cfg.revocations_max > 0 {
        p.push(Property::always(
            "LEASE-4 a replica holds a lease only while the master grants it that epoch",
            lease_4,
        ));
    }
    if appends || writes {
        p.push(Property::always(
            "PUSH-1 a mutation is sent only on the chain's acknowledgement, each hop to the closest server left",
            push_1,
        ));
        p.push(Property::always(
            "PUSH-2 a replica applies only buffered data, and aged-out data leaves the buffer",
            push_2,
        ));
    }
    if mutates {
        p.push(Property::sometimes(
            "PUSH-1 reached: a mutation acknowledged after its data went down the chain",
            |m: &LeaseholdModel, s: &State| acked(m, s).next().is_some(),
        ));
    }
    if appends {
        p.push(Property::always(
            "APPEND-5 a client reports a record append failed only with its retries used up",
            append_5,
        ));
    }
    if appends {
        p.push(Property::always(
            "APPEND-1 an acked record stays whole at its offset on every up-to-date replica",
            append_1,
        ));
        p.push(Property::always(
            "APPEND-2 a later acked append (higher stamp in the chunk, or started after the ack) gets a higher offset or a later chunk",
            append_2,
        ));
        p.push(Property::always(
            "APPEND-3 no acked record exceeds a quarter chunk or crosses a chunk boundary",
            append_3,
        ));
        p.push(Property::always(
            "APPEND-4 a chunk is padded exactly when the record did not fit, on every up-to-date replica",
            append_4,
        ));
    }
    if appends && mutates {
        p.push(Property::sometimes(
            "APPEND-1 reached: a record append acknowledged",
            some_append_acked,
        ));
    }
    if writes {
        p.push(Property::always(
            "WRITE-1 a serial acked write leaves its region defined on every up-to-date replica",
            write_1,
        ));
        p.push(Property::sometimes(
            "WRITE-1 reached: a write acknowledged",
            some_write_acked,
        ));
        p.push(Property::always(
            "WRITE-2 a write failed at a replica is never acked, and is reported failed only with retries used up",
            write_2,
        ));
    }
    if cfg.appends.iter().any(|&n| n >= 2) && cfg.prefill_units > 0 {
        p.push(Property::sometimes(
            "APPEND-2 reached: an append started after another's ack acked in a later chunk",
            later_chunk_after_ack,
        ));
    }
    if appends && cfg.record_units as u64 > cfg.chunk_units as u64 / 4 {
        p.push(Property::sometimes(
            "APPEND-3 reached: a record over a quarter chunk refused",
            |m: &LeaseholdModel, s: &State| {
                (0..m.cfg.clients()).any(|c| {
                    match &**s.actor_states[usize::from(m.cfg.client_id(c))] {
                        NodeState::Client(cl) => {
                            cl.results.contains(&OpResult::Failed(Failure::TooLarge))
                        }
                        _ => false,
                    }
                })
            },
        ));
    }
    if cfg.master_crashes > 0 {
        p.push(Property::sometimes(
            "LEASE-3 reached: a restarted master granted a lease after its waiting period",
            |_, s: &State| {
                s.history.master_crashes > 0
                    && !s.crashed[0]
                    && master(s)
                        .views
                        .iter()
                        .any(|v| matches!(v.lease, LeaseView::Granted { .. }))
            },
        ));
    }
    // Reachability companions, each attached where the configuration can
    // produce the situation its safety property guards.
    if cfg.lease_grants_max >= 2 && cfg.lease_expiries > 0 {
        p.push(Property::sometimes(
            "LEASE-1 reached: a lease granted to a second server after expiry",
            second_server_led,
        ));
        p.push(Property::sometimes(
            "LEASE-2 reached: a lease expired and a new epoch was granted",
            lease_expired_and_regranted,
        ));
    }
    if mutates {
        p.push(Property::sometimes(
            "ORDER-1 reached: two replicas applied the same (epoch, serial)",
            same_stamp_on_two_replicas,
        ));
    }
    // Two appends in one chunk need room for two records there.
    let room = cfg.chunk_units.saturating_sub(cfg.prefill_units);
    if cfg.appends.iter().map(|a| *a as usize).sum::<usize>() >= 2 && room >= 2 * cfg.record_units {
        p.push(Property::sometimes(
            "APPEND-2 reached: two appends acked in the same chunk",
            two_acked_in_one_chunk,
        ));
    }
    if appends && cfg.prefill_units > 0 {
        p.push(Property::sometimes(
            "APPEND-3 reached: a record that did not fit was acked in the next chunk",
            padded_and_next_chunk,
        ));
    }
    if cfg.chunkserver_crashes > 0 || cfg.lossy {
        p.push(Property::sometimes(
            "VERSION-2 reached: a lease holder named to a client without a stale replica",
            named_without_stale,
        ));
    }
    if cfg.age_out && cfg.client_retries_max > 0 {
        p.push(Property::sometimes("PUSH-2 reached: data aged out, the mutation failed, the client pushed again and succeeded", |m: &LeaseholdModel, s: &State| {
            s.history.data_missing && all_succeeded(m, s)
        }));
    }
    if cfg.extensions_max > 0 {
        p.push(Property::sometimes(
            "LEASE-4 reached: a lease extended while mutating",
            |_, s: &State| s.history.extended,
        ));
    }
    if cfg.revocations_max > 0 {
        p.push(Property::sometimes(
            "LEASE-4 reached: a lease revoked early",
            |_, s: &State| s.history.revoked > 0,
        ));
        if cfg.lease_grants_max > 1 && cfg.client_retries_max > 0 {
            p.push(Property::sometimes(
                "LEASE-4 reached: a lease granted again after a revocation, and every append acked",
                |m: &LeaseholdModel, s: &State| {
                    let h = &s.history;
                    h.revoked > 0 && h.grants.iter().any(|g| g.1 > h.revoked) && all_succeeded(m, s)
                },
            ));
        }
    }
    if cfg.chunkserver_crashes > 0 || cfg.lossy {
        p.push(Property::sometimes(
            "VERSION-1 reached: a stale replica detected",
            stale_replica_detected,
        ));
    }
    if appends
        && (cfg.chunkserver_crashes > 0 || cfg.lossy || cfg.duplicating)
        && cfg.client_retries_max > 0
    {
        p.push(Property::sometimes(
            "APPEND-5 reached: a record duplicated in some replica",
            duplicate_record,
        ));
    }
    if appends && cfg.prefill_units > 0 {
        p.push(Property::sometimes(
            "APPEND-4 reached: a chunk padded and the append retried on the next chunk",
            padded_and_next_chunk,
        ));
    }
    if writes && cfg.client_retries_max > 0 && cfg.faulty() {
        p.push(Property::sometimes(
            "WRITE-2 reached: a failed write left replicas different",
            failed_write_replicas_differ,
        ));
    }
    // One client holds back only behind a fault: without one, a re-grant
    // completes after every secondary has the new version, and one mutation
    // is in flight at a time.
    if cfg.clients() > 1 || (cfg.client_retries_max > 0 && cfg.lease_grants_max > 1 && cfg.faulty())
    {
        p.push(Property::sometimes(
            "ORDER-2 reached: a secondary held back an early mutation",
            held_back,
        ));
    }
    p
}

pub fn properties(cfg: &ModelCfg) -> Vec<Property<LeaseholdModel>> {
    attach(cfg)
}

/// Cross-checks used by tests: the expectation of a property by name.
pub fn expectation(model: &LeaseholdModel, name: &str) -> Option<Expectation> {
    model
        .properties
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.expectation.clone())
}
