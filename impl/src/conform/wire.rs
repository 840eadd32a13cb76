//! Scenarios that inject a message no correct client would send at that
//! moment: conform speaks the wire itself (docs/tcp.md: a client's hello,
//! then frames), under one of its own client ids whose library client has
//! closed its connections.

use std::time::Duration;

use stateright::actor::Id;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::ChunkStat;
use crate::config::ClusterConfig;
use crate::frame::{self, Envelope, Parsed};
use crate::nodes::RealMsg;
use leasehold_model::msg::{Failure, Msg, MutationKind};
use leasehold_model::types::{DataId, LeaseEpoch};

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
    let addr = cluster
        .addr(Id::from(primary as usize))
        .map_err(|e| e.to_string())?;
    let mutate: RealMsg = Msg::Mutate {
        chunk: now.chunk,
        epoch: old_epoch,
        kind: MutationKind::Append,
        data: DataId {
            client: me,
            seq: u32::MAX,
        },
    };
    let mut bytes = crate::host::hello(cluster.secret.as_deref(), Some(me));
    bytes.extend(
        frame::encode(&Envelope {
            src: Id::from(me as usize),
            dst: Id::from(primary as usize),
            msg: mutate,
        })
        .map_err(|e| e.to_string())?,
    );
    let answer = tokio::time::timeout(timeout, async {
        let mut conn = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot reach primary {primary} at {addr}: {e}"))?;
        conn.write_all(&bytes).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        loop {
            match frame::parse::<RealMsg>(&buf).map_err(|e| e.to_string())? {
                Parsed::Frame(env, used) => {
                    buf.drain(..used);
                    if matches!(
                        env.msg,
                        Msg::MutationFailed { .. } | Msg::MutationDone { .. }
                    ) {
                        return Ok(env.msg);
                    }
                }
                Parsed::Incomplete => {
                    let mut more = [0u8; 4096];
                    let n = conn.read(&mut more).await.map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err(format!("primary {primary} closed without an answer"));
                    }
                    buf.extend_from_slice(&more[..n]);
                }
            }
        }
    })
    .await
    .map_err(|_| format!("primary {primary} did not answer within {timeout:?}"))??;
    match answer {
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
