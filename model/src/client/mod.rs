//! The client: metadata from the master, data to the replicas.
//!
//! A mutation runs acts 1210–1270 ([0093]–[00101]): ask the master for the
//! lease holder (or use the cached answer, [0094]), push the data along the
//! chain (act 1230), then send the request to the primary (act 1240). On a
//! failure the client first repeats acts 1230–1270 with the cached primary,
//! then starts again from act 1210 ([00101]). A record append that finds its
//! chunk full moves to the next chunk ([00105]). Retries are bounded.
//!
//! In the model a client runs a script of operations given in its
//! configuration; over TCP the application submits operations with
//! `Msg::Submit` and gets `Msg::Done` back.

use crate::config::{Bug, Durations, ProtocolCfg};
use crate::master::path_problem;
use crate::msg::*;
use crate::types::*;
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::borrow::Cow;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    Opening,
    /// Act 1210 sent; waiting for act 1220.
    FindingLease,
    /// Act 1230: pushing to the chain.
    Pushing,
    /// Act 1240 sent to the primary.
    Mutating,
    Locating,
    Reading {
        replica: Id,
    },
    /// Waiting out a backoff before retrying after `reason`.
    BackingOff {
        reason: Failure,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Current<P> {
    pub op_id: OpId,
    pub op: ClientOp<P>,
    pub data: DataId,
    pub phase: Phase,
    /// Chunk index the operation works on (an append moves forward).
    pub index: ChunkIndex,
    pub retries: u32,
    /// Retries of acts 1230–1270 with the cached primary since act 1210.
    pub retries_at_primary: u32,
    /// Replicas a read already tried.
    pub tried: Vec<Id>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientState<P> {
    /// Operations waiting, each with the id its answer will carry (a
    /// scripted client's are numbered in script order).
    pub queue: Vec<(OpId, ClientOp<P>)>,
    pub current: Option<Current<P>>,
    /// Cached lease holders ([0094]), one per chunk.
    pub cache: Vec<LeaseInfo>,
    pub next_seq: u32,
    /// Results in operation order; kept only when there is no application
    /// to report to (the model's properties read them).
    pub results: Vec<OpResult<P>>,
}

impl<P> ClientState<P> {
    /// The operation under way. Handlers call this only in a phase that
    /// has one (a reply or a timeout for an operation that ended is
    /// dropped before).
    fn current_mut(&mut self) -> &mut Current<P> {
        self.current.as_mut().expect("an operation is under way")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientActor<P> {
    pub cfg: Arc<ProtocolCfg>,
    /// This client's number: the `client` of every `DataId` it pushes.
    pub number: u64,
    pub script: Vec<ClientOp<P>>,
    /// Where results go over TCP; `None` keeps them in the state.
    pub report_to: Option<Id>,
    /// Largest fragment of a pipelined push.
    pub fragment_max: u64,
}

use crate::O;

mod retry;

impl<P: Payload> ClientActor<P> {
    pub fn on_start<S: ChunkStore<Payload = P>>(&self, id: Id, o: &mut O<S>) -> ClientState<P> {
        let mut state = Cow::Owned(ClientState {
            queue: (0..).zip(self.script.iter().cloned()).collect(),
            current: None,
            cache: vec![],
            next_seq: 0,
            results: vec![],
        });
        self.start_next(id, &mut state, o);
        state.into_owned()
    }

    pub fn on_msg<S: ChunkStore<Payload = P>>(
        &self,
        id: Id,
        state: &mut Cow<ClientState<P>>,
        src: Id,
        msg: Msg<P>,
        o: &mut O<S>,
    ) {
        match msg {
            Msg::Submit { op_id, op } => {
                state.to_mut().queue.push((op_id, op));
                self.start_next(id, state, o);
            }
            Msg::FileOpened { file, chunks, .. } => {
                // Only the open under way takes it: an answer to an open
                // that timed out and was retried, or a repeated one, comes
                // when the next operation may be under way (CLIENT-1).
                let opening = matches!(
                    state.current,
                    Some(Current {
                        phase: Phase::Opening,
                        ..
                    })
                );
                let any = self.cfg.bug == Bug::ClientTakesAnyFileOpened;
                if state.current.is_none() || !(opening || any) {
                    return;
                }
                let result = match file {
                    Ok(file) => OpResult::Opened { file, chunks },
                    Err(reason) => OpResult::Failed(reason),
                };
                self.finish(id, state, result, o);
            }
            Msg::FileRenamed { from, to, file } => {
                self.on_renamed(id, state, false, from, to, file, o)
            }
            Msg::SnapshotTaken { from, to, file } => {
                self.on_renamed(id, state, true, from, to, file, o)
            }
            Msg::LeaseHolder { info, .. } => {
                let Some(cur) = &state.current else { return };
                if cur.phase != Phase::FindingLease || !self.wants(cur, &info) {
                    return;
                }
                let s = state.to_mut();
                s.cache.retain(|c| c.chunk != info.chunk);
                s.cache.push(info.clone());
                s.cache.sort();
                if let Some(cur) = s.current.as_mut() {
                    cur.index = ChunkIndex::At(info.index);
                }
                self.push(id, state, &info, o);
            }
            Msg::NoLease { reason, .. } => {
                if matches!(&state.current, Some(c) if c.phase == Phase::FindingLease) {
                    self.retry(id, state, reason, o);
                }
            }
            Msg::Located { info, chunks } => {
                let Some(cur) = &state.current else { return };
                if cur.phase != Phase::Locating {
                    return;
                }
                match (cur.op.clone(), info) {
                    (ClientOp::Stat { .. }, Some(info)) => {
                        self.finish(id, state, OpResult::Stat { info, chunks }, o)
                    }
                    (ClientOp::Read { .. }, Some(info)) => {
                        state.to_mut().cache.retain(|c| c.chunk != info.chunk);
                        state.to_mut().cache.push(info.clone());
                        self.read_next(id, state, &info, o);
                    }
                    _ => self.finish(id, state, OpResult::Failed(Failure::NotFound), o),
                }
            }
            Msg::DataPushed { data } => {
                let Some(cur) = &state.current else { return };
                if cur.phase != Phase::Pushing || cur.data != data {
                    return;
                }
                let Some((info, primary)) = self.cached_lease(state, cur) else {
                    return;
                };
                // Act 1240 / [00103]: every replica has the data.
                send_mutate(&info, primary, cur, o);
                state.to_mut().current_mut().phase = Phase::Mutating;
                self.arm_timeout(o);
            }
            Msg::MutationDone {
                chunk,
                data,
                offset,
                stamp,
            } => {
                let Some(cur) = &state.current else { return };
                let other_data = cur.data != data && self.cfg.bug != Bug::ClientAcceptsStaleDone;
                if cur.phase != Phase::Mutating || other_data {
                    return;
                }
                let index = match cur.index {
                    ChunkIndex::At(n) => n,
                    ChunkIndex::Last => 0,
                };
                self.finish(
                    id,
                    state,
                    OpResult::Mutated {
                        chunk,
                        index,
                        offset,
                        stamp,
                    },
                    o,
                );
            }
            Msg::ChunkFull { chunk, data } => {
                let Some(cur) = &state.current else { return };
                // Only the report of the chunk this attempt mutates moves
                // the append on (APPEND-4). A duplicated `Mutate` of an
                // earlier attempt, delivered after the client moved on and
                // pushed the same data again, pads the chunk it left once
                // more and reports that chunk full: taken, it would send
                // the record past the chunk it is appending to.
                let mutating = cur.phase == Phase::Mutating
                    && self.cached(state, cur).is_some_and(|c| c.chunk == chunk);
                let late_taken = self.cfg.bug == Bug::ClientTakesLateChunkFull;
                if !(mutating || late_taken) || cur.data != data {
                    return;
                }
                // Act 1440: retry on the next chunk, which the master
                // allocates ([00105]). Not a failure, so no retry is used.
                let next = match cur.index {
                    ChunkIndex::At(n) => n + 1,
                    ChunkIndex::Last => 1,
                };
                let s = state.to_mut();
                s.cache.retain(|c| c.chunk != chunk);
                let cur = s.current_mut();
                cur.index = ChunkIndex::At(next);
                cur.retries_at_primary = 0;
                self.find_lease(state, o);
            }
            Msg::MutationFailed { data, reason, .. } | Msg::PushRefused { data, reason } => {
                let Some(cur) = &state.current else { return };
                let waiting = matches!(cur.phase, Phase::Mutating | Phase::Pushing);
                if waiting && cur.data == data {
                    self.retry(id, state, reason, o);
                }
            }
            Msg::ReadReply { result, .. } => {
                let Some(Current {
                    phase: Phase::Reading { replica },
                    ..
                }) = &state.current
                else {
                    return;
                };
                if *replica != src {
                    return;
                }
                match result {
                    Ok(data) => self.finish(id, state, OpResult::Read { data }, o),
                    Err(_) => {
                        // Try another up-to-date replica.
                        let Some(info) = state.current.as_ref().and_then(|c| self.cached(state, c))
                        else {
                            return;
                        };
                        self.read_next(id, state, &info, o);
                    }
                }
            }
            _ => {}
        }
    }

    pub fn on_timeout<S: ChunkStore<Payload = P>>(
        &self,
        id: Id,
        state: &mut Cow<ClientState<P>>,
        timer: &Timer,
        o: &mut O<S>,
    ) {
        match (timer, &state.current) {
            (Timer::RequestTimeout, Some(cur))
                if !matches!(cur.phase, Phase::BackingOff { .. }) =>
            {
                // No answer in time: treat the primary as unreachable ([0094]).
                self.retry(id, state, Failure::NotPrimary, o);
            }
            (Timer::RetryBackoff, Some(cur)) => {
                if let Phase::BackingOff { reason } = cur.phase.clone() {
                    self.retry_now(id, state, reason, o);
                }
            }
            _ => {}
        }
    }

    fn wants(&self, cur: &Current<P>, info: &LeaseInfo) -> bool {
        let mutation = matches!(cur.op, ClientOp::Append { .. } | ClientOp::Write { .. });
        // The reply must be for this file, and for the chunk asked about.
        mutation
            && (cur.op.file() == Some(info.file) || self.cfg.bug == Bug::ClientCacheIgnoresFile)
            && (cur.index == ChunkIndex::Last || cur.index == ChunkIndex::At(info.index))
    }

    /// The cached lease holders of `cur`'s chunk, if they name a primary:
    /// a mutation needs one, and a read's `Located` answer may have none.
    fn cached_lease(&self, state: &ClientState<P>, cur: &Current<P>) -> Option<(LeaseInfo, Id)> {
        let info = self.cached(state, cur)?;
        let primary = info.primary?;
        Some((info, primary))
    }

    fn cached(&self, state: &ClientState<P>, cur: &Current<P>) -> Option<LeaseInfo> {
        let file = cur.op.file()?;
        // Entries are per file: two files' chunks share indices (FILE-1).
        let ours = |c: &&LeaseInfo| c.file == file || self.cfg.bug == Bug::ClientCacheIgnoresFile;
        let index = match cur.index {
            ChunkIndex::At(n) => n,
            ChunkIndex::Last => state.cache.iter().filter(ours).map(|c| c.index).max()?,
        };
        state
            .cache
            .iter()
            .filter(ours)
            .find(|c| c.index == index)
            .cloned()
    }

    fn arm_timeout(&self, o: &mut O<impl ChunkStore<Payload = P>>) {
        if self.cfg.reply_timeouts {
            o.set_timer(
                Timer::RequestTimeout,
                Durations::range(self.cfg.durations.request_timeout_ms),
            );
        }
    }

    fn start_next<S: ChunkStore<Payload = P>>(
        &self,
        id: Id,
        state: &mut Cow<ClientState<P>>,
        o: &mut O<S>,
    ) {
        if state.current.is_some() || state.queue.is_empty() {
            return;
        }
        let s = state.to_mut();
        let (op_id, op) = s.queue.remove(0);
        let data = DataId {
            client: self.number,
            seq: s.next_seq,
        };
        s.next_seq += 1;
        let index = match &op {
            ClientOp::Append { .. } => ChunkIndex::Last,
            ClientOp::Write { index, .. }
            | ClientOp::Read { index, .. }
            | ClientOp::Stat { index, .. } => ChunkIndex::At(*index),
            ClientOp::Open { .. } | ClientOp::Rename { .. } | ClientOp::Snapshot { .. } => {
                ChunkIndex::At(0)
            }
        };
        s.current = Some(Current {
            op_id,
            op: op.clone(),
            data,
            phase: Phase::Opening,
            index,
            retries: 0,
            retries_at_primary: 0,
            tried: vec![],
        });
        match op {
            ClientOp::Open { path, create } => {
                o.send(self.cfg.master, Msg::OpenFile { path, create });
                self.arm_timeout(o);
            }
            ClientOp::Rename { from, to } => {
                o.send(self.cfg.master, Msg::RenameFile { from, to });
                self.arm_timeout(o);
            }
            ClientOp::Snapshot { from, to } => {
                o.send(self.cfg.master, Msg::SnapshotFile { from, to });
                self.arm_timeout(o);
            }
            ClientOp::Append { .. } | ClientOp::Write { .. } => {
                let cur = s.current.clone().unwrap();
                match self.cached_lease(s, &cur) {
                    Some((info, _)) => {
                        if let Some(c) = s.current.as_mut() {
                            c.index = ChunkIndex::At(info.index);
                        }
                        self.push(id, state, &info, o)
                    }
                    None => self.find_lease(state, o),
                }
            }
            ClientOp::Read { file, index, .. } | ClientOp::Stat { file, index } => {
                s.current_mut().phase = Phase::Locating;
                o.send(self.cfg.master, Msg::Locate { file, index });
                self.arm_timeout(o);
            }
        }
    }

    /// The master's answer to a rename, or to a snapshot (`snapshot`).
    #[allow(clippy::too_many_arguments)]
    fn on_renamed<S: ChunkStore<Payload = P>>(
        &self,
        id: Id,
        state: &mut Cow<ClientState<P>>,
        snapshot: bool,
        from: String,
        to: String,
        file: Result<FileId, Failure>,
        o: &mut O<S>,
    ) {
        // A refused path is not echoed back (the names come back empty):
        // the refusal is this operation's if its own names are ones the
        // master refuses.
        let refused = file == Err(Failure::BadPath);
        let names = match &state.current {
            Some(Current {
                op: ClientOp::Rename { from: f, to: t },
                phase: Phase::Opening,
                ..
            }) if !snapshot => Some((f, t)),
            Some(Current {
                op: ClientOp::Snapshot { from: f, to: t },
                phase: Phase::Opening,
                ..
            }) if snapshot => Some((f, t)),
            _ => None,
        };
        let asked = names.is_some_and(|(f, t)| {
            (*f == from && *t == to)
                || (refused && (path_problem(f).is_some() || path_problem(t).is_some()))
        });
        if !asked {
            return; // an answer to an earlier try, already taken
        }
        match file {
            Ok(file) if snapshot => self.finish(id, state, OpResult::Snapshotted { file }, o),
            Ok(file) => self.finish(id, state, OpResult::Renamed { file }, o),
            // Another rename or snapshot of either name is under way: it
            // ends within a lease period, so trying again succeeds.
            Err(Failure::Busy) => self.retry(id, state, Failure::Busy, o),
            Err(reason) => self.finish(id, state, OpResult::Failed(reason), o),
        }
    }

    /// Act 1210.
    fn find_lease<S: ChunkStore<Payload = P>>(
        &self,
        state: &mut Cow<ClientState<P>>,
        o: &mut O<S>,
    ) {
        let s = state.to_mut();
        let cur = s.current_mut();
        cur.phase = Phase::FindingLease;
        let file = match &cur.op {
            ClientOp::Append { file, .. } | ClientOp::Write { file, .. } => *file,
            _ => unreachable!("only mutations find leases"),
        };
        o.send(
            self.cfg.master,
            Msg::FindLease {
                file,
                index: cur.index,
            },
        );
        self.arm_timeout(o);
    }

    /// Act 1230: push along the chain, starting with the closest replica
    /// ([0096]); each fragment goes out as soon as it is cut ([0098]).
    fn push<S: ChunkStore<Payload = P>>(
        &self,
        id: Id,
        state: &mut Cow<ClientState<P>>,
        info: &LeaseInfo,
        o: &mut O<S>,
    ) {
        let s = state.to_mut();
        let cur = s.current_mut();
        cur.phase = Phase::Pushing;
        let bytes = match &cur.op {
            ClientOp::Append { data, .. } | ClientOp::Write { data, .. } => data.clone(),
            _ => unreachable!("only mutations push"),
        };
        let mut chain: Vec<Id> = info.replicas().collect();
        chain.sort();
        chain.dedup();
        let first = self.cfg.closest(id, &chain).expect("a lease has a primary");
        chain.retain(|r| *r != first);
        let fragments = bytes.split(self.fragment_max);
        let n = fragments.len() as u32;
        for (i, fragment) in fragments.into_iter().enumerate() {
            let i = i as u32;
            o.send(
                first,
                Msg::PushData {
                    data: cur.data,
                    chunk: info.chunk,
                    fragment: i,
                    last: i + 1 == n,
                    bytes: fragment,
                    chain: chain.clone(),
                    client: id,
                },
            );
        }
        if self.cfg.bug == Bug::ClientMutatesBeforeDataPushed {
            // Only with the seeded bug: act 1240 without waiting for the
            // chain's acknowledgement.
            if let Some(primary) = info.primary {
                send_mutate(info, primary, cur, o);
                cur.phase = Phase::Mutating;
            }
        }
        self.arm_timeout(o);
    }

    fn read_next<S: ChunkStore<Payload = P>>(
        &self,
        id: Id,
        state: &mut Cow<ClientState<P>>,
        info: &LeaseInfo,
        o: &mut O<S>,
    ) {
        let s = state.to_mut();
        let cur = s.current_mut();
        let ClientOp::Read { offset, len, .. } = cur.op else {
            return;
        };
        let mut replicas: Vec<Id> = info.replicas().filter(|r| !cur.tried.contains(r)).collect();
        replicas.sort();
        // GFS §2.7: read from the closest replica.
        let next = if self.cfg.bug == Bug::ClientReadsFarthest {
            replicas
                .iter()
                .copied()
                .max_by_key(|r| (self.cfg.distance(id, *r), std::cmp::Reverse(*r)))
        } else {
            self.cfg.closest(id, &replicas)
        };
        match next {
            Some(r) => {
                cur.tried.push(r);
                cur.phase = Phase::Reading { replica: r };
                o.send(
                    r,
                    Msg::Read {
                        chunk: info.chunk,
                        version: info.version,
                        offset,
                        len,
                    },
                );
                self.arm_timeout(o);
            }
            None => self.finish(id, state, OpResult::Failed(Failure::NotFound), o),
        }
    }

    fn finish<S: ChunkStore<Payload = P>>(
        &self,
        id: Id,
        state: &mut Cow<ClientState<P>>,
        result: OpResult<P>,
        o: &mut O<S>,
    ) {
        let s = state.to_mut();
        let op_id = s
            .current
            .take()
            .expect("only an operation under way finishes")
            .op_id;
        o.cancel_timer(Timer::RequestTimeout);
        match self.report_to {
            Some(app) => o.send(app, Msg::Done { op_id, result }),
            None => s.results.push(result),
        }
        self.start_next(id, state, o);
    }
}

/// Act 1240: asks the primary to apply the pushed data of `cur`.
fn send_mutate<S: ChunkStore>(
    info: &LeaseInfo,
    primary: Id,
    cur: &Current<S::Payload>,
    o: &mut O<S>,
) {
    let kind = match cur.op {
        ClientOp::Write { offset, .. } => MutationKind::Write { offset },
        _ => MutationKind::Append,
    };
    o.send(
        primary,
        Msg::Mutate {
            chunk: info.chunk,
            epoch: info.epoch,
            kind,
            data: cur.data,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memstore::{MemStore, RecordToken};
    use crate::system::ModelCfg;
    use stateright::actor::{Command, Out};

    /// The master answers a refused path with empty names; the client
    /// still takes the refusal as its rename's answer, instead of waiting
    /// for one with its names until it gives up.
    #[test]
    fn a_rename_of_a_refused_path_fails_bad_path() {
        let client: ClientActor<RecordToken> = ClientActor {
            cfg: Arc::new(ModelCfg::named("tiny").unwrap().protocol()),
            number: 0,
            script: vec![ClientOp::Rename {
                from: "relative".into(),
                to: "/x".into(),
            }],
            report_to: None,
            fragment_max: u64::MAX,
        };
        let id = Id::from(4);
        let mut o: O<MemStore> = Out::new();
        let mut state = Cow::Owned(client.on_start(id, &mut o));
        let refusal = Msg::FileRenamed {
            from: String::new(),
            to: String::new(),
            file: Err(Failure::BadPath),
        };
        client.on_msg(id, &mut state, Id::from(0), refusal, &mut o);
        assert_eq!(state.results, vec![OpResult::Failed(Failure::BadPath)]);
    }

    /// [00101]: the retry budget counts each retry, so a client with a
    /// budget of three asks the master four times in all and then gives
    /// up. (The model's budgets are one retry or unbounded, where counting
    /// down instead of up cannot show; the TCP client's is 23 to 87.)
    #[test]
    fn the_retry_budget_counts_each_retry() {
        let mut cfg = ModelCfg::named("tiny").unwrap().protocol();
        cfg.client_retries_max = 3;
        cfg.durations.retry_backoff_ms = 0;
        let data = RecordToken {
            id: DataId { client: 0, seq: 0 },
            units: 1,
        };
        let client: ClientActor<RecordToken> = ClientActor {
            cfg: Arc::new(cfg),
            number: 0,
            script: vec![ClientOp::Append { file: 0, data }],
            report_to: None,
            fragment_max: u64::MAX,
        };
        let (id, master) = (Id::from(4), Id::from(0));
        let mut o: O<MemStore> = Out::new();
        let mut state: Cow<ClientState<RecordToken>> = Cow::Owned(client.on_start(id, &mut o));
        let asked = |o: &O<MemStore>| {
            o.iter()
                .filter(|c| matches!(c, Command::Send(_, Msg::FindLease { .. })))
                .count()
        };
        let mut asks = asked(&o);
        while state.results.is_empty() && asks < 10 {
            let mut o: O<MemStore> = Out::new();
            let refusal = Msg::NoLease {
                file: 0,
                index: ChunkIndex::Last,
                reason: Failure::NoLeaseNow,
            };
            client.on_msg(id, &mut state, master, refusal, &mut o);
            asks += asked(&o);
        }
        assert_eq!(asks, 4, "the first try and three retries");
        assert_eq!(state.results, vec![OpResult::Failed(Failure::NoLeaseNow)]);
    }
}
