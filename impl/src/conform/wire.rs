//! Scenarios that inject a message no correct client would send at that
//! moment, or send one twice as a duplicating network would: conform
//! speaks the wire itself (docs/tcp.md: a client's hello, then frames),
//! under one of its own client ids whose library client has closed its
//! connections.

use std::time::Duration;

use stateright::actor::Id;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::client::ChunkStat;
use crate::config::ClusterConfig;
use crate::frame::{self, Envelope, Parsed};
use crate::nodes::RealMsg;
use crate::payload::Bytes;
use leasehold_model::msg::{Failure, Msg, MutationKind};
use leasehold_model::types::{DataId, LeaseEpoch};

/// The data id conform's raw pushes and mutations name: a sequence no
/// library client of `me` reaches (theirs start below 2^47).
fn raw_data(me: u64) -> DataId {
    DataId {
        client: me,
        seq: u32::MAX,
    }
}

/// Connections to servers as client `me`, each with a reader that hands
/// every frame that arrives, from whichever server, to one channel.
pub(super) struct Wire {
    me: u64,
    writers: Vec<(u64, OwnedWriteHalf)>,
    frames: mpsc::Receiver<Result<RealMsg, String>>,
}

impl Wire {
    pub(super) async fn connect(
        cluster: &ClusterConfig,
        me: u64,
        servers: &[u64],
    ) -> Result<Wire, String> {
        let (tx, frames) = mpsc::channel(64);
        let mut writers = vec![];
        for &server in servers {
            let addr = cluster
                .addr(Id::from(server as usize))
                .map_err(|e| e.to_string())?;
            let conn = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("cannot reach server {server} at {addr}: {e}"))?;
            let _ = conn.set_nodelay(true);
            let (mut read, mut write) = conn.into_split();
            write
                .write_all(&crate::host::hello(cluster.secret.as_deref(), Some(me)))
                .await
                .map_err(|e| format!("hello to server {server}: {e}"))?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    match frame::parse::<RealMsg>(&buf) {
                        Ok(Parsed::Frame(env, used)) => {
                            buf.drain(..used);
                            if tx.send(Ok(env.msg)).await.is_err() {
                                return;
                            }
                        }
                        Ok(Parsed::Incomplete) => {
                            let mut more = [0u8; 4096];
                            match read.read(&mut more).await {
                                Ok(n) if n > 0 => buf.extend_from_slice(&more[..n]),
                                _ => return,
                            }
                        }
                        Err(e) => {
                            let _ = tx
                                .send(Err(format!("server {server} sent a bad frame: {e}")))
                                .await;
                            return;
                        }
                    }
                }
            });
            writers.push((server, write));
        }
        Ok(Wire {
            me,
            writers,
            frames,
        })
    }

    pub(super) async fn send(&mut self, to: u64, msg: RealMsg) -> Result<(), String> {
        let bytes = frame::encode(&Envelope {
            src: Id::from(self.me as usize),
            dst: Id::from(to as usize),
            msg,
        })
        .map_err(|e| e.to_string())?;
        let (_, w) = self
            .writers
            .iter_mut()
            .find(|(s, _)| *s == to)
            .ok_or_else(|| format!("no connection to server {to}"))?;
        w.write_all(&bytes)
            .await
            .map_err(|e| format!("sending to server {to}: {e}"))
    }

    /// The next message that `wanted` picks, within `timeout`.
    pub(super) async fn next<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        wanted: impl Fn(RealMsg) -> Option<T>,
    ) -> Result<T, String> {
        tokio::time::timeout(timeout, async {
            loop {
                match self.frames.recv().await {
                    Some(Ok(msg)) => {
                        if let Some(t) = wanted(msg) {
                            return Ok(t);
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Err(format!("every server closed before {what}")),
                }
            }
        })
        .await
        .map_err(|_| format!("no {what} within {timeout:?}"))?
    }
}

/// A mutation's answer, as a client sees it.
fn answer(data: DataId) -> impl Fn(RealMsg) -> Option<RealMsg> {
    move |m| match m {
        Msg::MutationFailed { data: d, .. }
        | Msg::MutationDone { data: d, .. }
        | Msg::ChunkFull { data: d, .. }
            if d == data =>
        {
            Some(m)
        }
        _ => None,
    }
}

/// SNAP-1's epoch rule ([0094]): a primary takes a mutation only under the
/// lease epoch the client names, so one sent under a lease that ended (by
/// expiry here; by a snapshot's revocation where it matters most) is
/// refused `NotPrimary` and the client asks the master again. `now` is the
/// chunk's stat just after a mutation under its current lease; conform, as
/// client `me`, sends that lease's primary a record append under
/// `old_epoch` (data it never pushed: a primary that took the epoch would
/// answer for the data instead).
pub(super) async fn late_mutation(
    cluster: &ClusterConfig,
    me: u64,
    now: &ChunkStat,
    old_epoch: LeaseEpoch,
    timeout: Duration,
) -> Result<String, String> {
    let Some(primary) = now.primary else {
        return Ok("no lease held after the second append, nothing to judge".into());
    };
    if now.epoch == old_epoch {
        return Ok("the first lease was still held, nothing to judge".into());
    }
    let data = raw_data(me);
    let mut wire = Wire::connect(cluster, me, &[primary]).await?;
    let mutate = Msg::Mutate {
        chunk: now.chunk,
        epoch: old_epoch,
        kind: MutationKind::Append,
        data,
    };
    wire.send(primary, mutate).await?;
    match wire.next(timeout, "answer", answer(data)).await? {
        Msg::MutationFailed {
            reason: Failure::NotPrimary,
            ..
        } => Ok(format!(
            "primary {primary}, holding epoch {}, refused a record append under epoch {old_epoch} as NotPrimary",
            now.epoch
        )),
        other => Err(format!(
            "primary {primary}, holding epoch {}, took a record append under epoch {old_epoch}: it answered {other:?}, not NotPrimary",
            now.epoch
        )),
    }
}

/// PUSH-2 ([0095], [00101]): pushed data waits only until a mutation uses
/// it, so a record append delivered twice (a duplicating network, a
/// client's resend) is applied once. Conform, as client `me`, pushes a
/// record along the chain of `now`'s replicas, waits for `DataPushed`, and
/// sends the primary the same record append twice, back to back, under
/// the current lease. The second must fail (`DataMissing`: the data is
/// gone) or repeat the first's answer (a primary that recognises the
/// duplicate); applied again under a serial of its own, the record is in
/// the chunk twice though the client appended it once. The record is
/// framed, so a reader of the file sees one well-formed record.
pub(super) async fn duplicated_mutation(
    cluster: &ClusterConfig,
    me: u64,
    now: &ChunkStat,
    timeout: Duration,
) -> Result<String, String> {
    let Some(primary) = now.primary else {
        return Ok("no lease held after the second append, nothing to judge".into());
    };
    let data = raw_data(me);
    let record = crate::record::frame(me << 48 | 0xffff_ffff, b"conform: one append, sent twice");
    let mut wire = Wire::connect(cluster, me, &now.replicas).await?;
    // The push goes to the primary first and on along the others (each
    // server forwards to the closest left, [0096]); the chain's end answers.
    let chain: Vec<Id> = now
        .replicas
        .iter()
        .filter(|r| **r != primary)
        .map(|r| Id::from(*r as usize))
        .collect();
    let push = Msg::PushData {
        data,
        chunk: now.chunk,
        fragment: 0,
        last: true,
        bytes: Bytes::from(record),
        chain,
        client: Id::from(me as usize),
    };
    wire.send(primary, push).await?;
    let pushed = |m| match m {
        Msg::DataPushed { data: d } if d == data => Some(Ok(())),
        Msg::PushRefused { data: d, reason } if d == data => Some(Err(reason)),
        _ => None,
    };
    if let Err(reason) = wire.next(timeout, "DataPushed", pushed).await? {
        return Err(format!(
            "the push of one small record was refused: {reason:?}"
        ));
    }
    let mutate = Msg::Mutate {
        chunk: now.chunk,
        epoch: now.epoch,
        kind: MutationKind::Append,
        data,
    };
    wire.send(primary, mutate.clone()).await?;
    wire.send(primary, mutate).await?;
    let first = wire.next(timeout, "answer", answer(data)).await?;
    let second = wire.next(timeout, "second answer", answer(data)).await?;
    let (done, other) = match (&first, &second) {
        (Msg::MutationDone { .. }, _) => (&first, &second),
        (_, Msg::MutationDone { .. }) => (&second, &first),
        (
            Msg::MutationFailed {
                reason: Failure::NotPrimary,
                ..
            },
            _,
        ) => {
            return Ok(format!(
                "primary {primary}'s lease {} ended before the mutation, nothing to judge",
                now.epoch
            ))
        }
        _ => {
            return Err(format!(
                "neither copy of a pushed record append under the current lease was applied: {first:?}, {second:?}"
            ))
        }
    };
    let Msg::MutationDone { offset, stamp, .. } = done else {
        unreachable!()
    };
    match other {
        Msg::MutationFailed {
            reason: Failure::DataMissing,
            ..
        } => Ok(format!(
            "applied once at offset {offset} under {stamp:?}; the duplicate found its data used up"
        )),
        again @ Msg::MutationDone { .. } if again == done => Ok(format!(
            "applied once at offset {offset} under {stamp:?}; the duplicate was answered the same"
        )),
        Msg::MutationDone {
            offset: o2,
            stamp: s2,
            ..
        } => Err(format!(
            "one record append, delivered twice, was applied twice: at offset {offset} under {stamp:?} and at offset {o2} under {s2:?}"
        )),
        other => Err(format!(
            "applied at offset {offset} under {stamp:?}; the duplicate was answered {other:?}, neither DataMissing nor the same answer"
        )),
    }
}
