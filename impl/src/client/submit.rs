//! Running one operation on the actor: one submission and its answer
//! within a deadline, and resubmission with backoff after a transient
//! failure. Every operation goes through here, so the library's deadline
//! and its side of the retry policy (the actor retries too, before it
//! answers) are decided in one place.

use leasehold_model::msg::{ClientOp, Msg, OpResult};
use stateright::actor::Id;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

use super::{Client, ClientError, Result, APP_ID};
use crate::nodes::RealMsg;
use crate::payload::Bytes;

const RESUBMIT_BACKOFF_MS_MIN: u64 = 20;
const RESUBMIT_BACKOFF_MS_MAX: u64 = 1_000;

const _: () = assert!(RESUBMIT_BACKOFF_MS_MIN <= RESUBMIT_BACKOFF_MS_MAX);

/// The application side of the client actor: its answers, and how many
/// operations were given up on (timed out) whose answers are still due.
/// The actor runs operations in submission order and answers each once,
/// so skipping that many answers resynchronises.
pub(super) struct Session {
    done: mpsc::Receiver<RealMsg>,
    abandoned: u32,
}

impl Session {
    pub(super) fn new(done: mpsc::Receiver<RealMsg>) -> Session {
        Session { done, abandoned: 0 }
    }
}

enum SubmitError {
    Timeout,
    Closed,
}

impl Client {
    /// Submits one operation and waits for its answer until `deadline`.
    async fn submit(
        &self,
        op: ClientOp<Bytes>,
        deadline: Instant,
    ) -> Result<OpResult<Bytes>, SubmitError> {
        let mut s = timeout_at(deadline, self.inner.session.lock())
            .await
            .map_err(|_| SubmitError::Timeout)?;
        while s.abandoned > 0 {
            match timeout_at(deadline, s.done.recv()).await {
                Ok(Some(Msg::Done { .. })) => s.abandoned -= 1,
                Ok(Some(_)) => {}
                Ok(None) => return Err(SubmitError::Closed),
                Err(_) => return Err(SubmitError::Timeout),
            }
        }
        let inject = self
            .inner
            .handle
            .inject(Id::from(APP_ID), Msg::Submit { op });
        match timeout_at(deadline, inject).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(SubmitError::Closed),
            Err(_) => return Err(SubmitError::Timeout),
        }
        loop {
            match timeout_at(deadline, s.done.recv()).await {
                Ok(Some(Msg::Done { result })) => return Ok(result),
                Ok(Some(_)) => {}
                Ok(None) => return Err(SubmitError::Closed),
                Err(_) => {
                    s.abandoned += 1;
                    return Err(SubmitError::Timeout);
                }
            }
        }
    }

    /// Runs one operation to its end within the operation timeout. With
    /// `resubmit`, a transient failure (the actor ran out of retries while
    /// no lease could be had or a replica was down) is submitted again
    /// after a backoff.
    pub(super) async fn run(
        &self,
        op_name: &'static str,
        path: &str,
        op: ClientOp<Bytes>,
        resubmit: bool,
    ) -> Result<OpResult<Bytes>> {
        let started = Instant::now();
        self.run_until(
            op_name,
            path,
            op,
            resubmit,
            started,
            started + self.inner.op_timeout,
        )
        .await
    }

    /// [`Client::run`] within a deadline of an operation that began at
    /// `started` (a write of several pieces has one deadline for all).
    pub(super) async fn run_until(
        &self,
        op_name: &'static str,
        path: &str,
        op: ClientOp<Bytes>,
        resubmit: bool,
        started: Instant,
        deadline: Instant,
    ) -> Result<OpResult<Bytes>> {
        let mut backoff = Duration::from_millis(RESUBMIT_BACKOFF_MS_MIN);
        loop {
            let result = match self.submit(op.clone(), deadline).await {
                Ok(r) => r,
                Err(SubmitError::Closed) => return Err(ClientError::Closed),
                Err(SubmitError::Timeout) => {
                    return Err(ClientError::Timeout {
                        op: op_name,
                        path: path.into(),
                        ms: started.elapsed().as_millis() as u64,
                    })
                }
            };
            match result {
                OpResult::Failed(reason)
                    if resubmit && reason.is_transient() && Instant::now() + backoff < deadline =>
                {
                    tracing::debug!(
                        op = op_name,
                        path,
                        reason = %reason,
                        "resubmitting"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(RESUBMIT_BACKOFF_MS_MAX));
                }
                OpResult::Failed(reason) => {
                    return Err(ClientError::Failed {
                        op: op_name,
                        path: path.into(),
                        reason,
                    })
                }
                other => return Ok(other),
            }
        }
    }
}
