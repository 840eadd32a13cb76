//! Running one operation on an actor: a lane taken for it, one submission
//! and its answer within a deadline. Every operation goes through here.
//! Whether and when to retry is the actor's alone (`ClientActor::retry`: transient
//! failures only, with exponential backoff, within a budget that outlasts
//! the deadline), so the retry policy the model checks is the one that
//! runs; the library only bounds how long a caller waits.

use leasehold_model::msg::{ClientOp, Failure, Msg, OpId, OpResult};
use stateright::actor::Id;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

use super::lanes::TakeError;
use super::{Client, ClientError, Result, APP_ID};
use crate::nodes::RealMsg;
use crate::payload::Bytes;

/// The application side of the client actor: its answers, and the id the
/// next submission gets. An answer carries its submission's id, so one that
/// comes after its operation was given up on (timed out) is told apart and
/// dropped, whatever else was lost or reordered.
pub(super) struct Session {
    done: mpsc::Receiver<RealMsg>,
    next_op_id: OpId,
}

impl Session {
    pub(super) fn new(done: mpsc::Receiver<RealMsg>) -> Session {
        Session {
            done,
            next_op_id: 0,
        }
    }
}

/// Waits for the answer to submission `op_id`, dropping answers to earlier
/// submissions whose callers gave up on them.
async fn answer_to(
    done: &mut mpsc::Receiver<RealMsg>,
    op_id: OpId,
    deadline: Instant,
) -> Result<OpResult<Bytes>, SubmitError> {
    loop {
        match timeout_at(deadline, done.recv()).await {
            Ok(Some(Msg::Done { op_id: id, result })) if id == op_id => return Ok(result),
            Ok(Some(Msg::Done { op_id: late, .. })) => {
                tracing::debug!(op_id = late, "answer to an operation given up on, dropped");
            }
            Ok(Some(_)) => {}
            Ok(None) => return Err(SubmitError::Closed),
            Err(_) => return Err(SubmitError::Timeout),
        }
    }
}

#[derive(Debug)]
enum SubmitError {
    Timeout,
    Closed,
    /// A lane was needed for the operation and could not start.
    Start(ClientError),
}

/// An operation's answer and the failures replicas answered its reads with.
type Answered = (Result<OpResult<Bytes>, SubmitError>, Vec<(u64, Failure)>);

impl Client {
    /// Submits one operation on an idle lane and waits for its answer until
    /// `deadline`.
    async fn submit(&self, op: ClientOp<Bytes>, deadline: Instant) -> Answered {
        let mut taken = match self.inner.lanes.take(deadline).await {
            Ok(taken) => taken,
            Err(TakeError::Timeout) => return (Err(SubmitError::Timeout), Vec::new()),
            Err(TakeError::Start(e)) => return (Err(SubmitError::Start(e)), Vec::new()),
        };
        // What the lane's replicas said before this operation is not its.
        taken.lane.take_read_failures();
        let s = &mut *taken.session;
        let op_id = s.next_op_id;
        s.next_op_id += 1;
        let inject = taken
            .lane
            .handle
            .inject(Id::from(APP_ID), Msg::Submit { op_id, op });
        let answer = match timeout_at(deadline, inject).await {
            Ok(Ok(())) => answer_to(&mut s.done, op_id, deadline).await,
            Ok(Err(_)) => Err(SubmitError::Closed),
            Err(_) => Err(SubmitError::Timeout),
        };
        (answer, taken.lane.take_read_failures())
    }

    /// Runs one operation to its end within the operation timeout.
    pub(super) async fn run(
        &self,
        op_name: &'static str,
        path: &str,
        op: ClientOp<Bytes>,
    ) -> Result<OpResult<Bytes>> {
        let started = Instant::now();
        self.run_until(op_name, path, op, started, started + self.inner.op_timeout)
            .await
    }

    /// [`Client::run`], with the failures replicas answered the operation's
    /// reads with.
    pub(super) async fn run_reporting(
        &self,
        op_name: &'static str,
        path: &str,
        op: ClientOp<Bytes>,
    ) -> (Result<OpResult<Bytes>>, Vec<(u64, Failure)>) {
        let started = Instant::now();
        let (answer, reports) = self.submit(op, started + self.inner.op_timeout).await;
        (Self::answered(op_name, path, started, answer), reports)
    }

    /// [`Client::run`] within a deadline of an operation that began at
    /// `started` (a write of several pieces has one deadline for all).
    pub(super) async fn run_until(
        &self,
        op_name: &'static str,
        path: &str,
        op: ClientOp<Bytes>,
        started: Instant,
        deadline: Instant,
    ) -> Result<OpResult<Bytes>> {
        let (answer, _) = self.submit(op, deadline).await;
        Self::answered(op_name, path, started, answer)
    }

    fn answered(
        op_name: &'static str,
        path: &str,
        started: Instant,
        answer: Result<OpResult<Bytes>, SubmitError>,
    ) -> Result<OpResult<Bytes>> {
        match answer {
            Ok(OpResult::Failed(reason)) => Err(ClientError::Failed {
                op: op_name,
                path: path.into(),
                reason,
            }),
            Ok(other) => Ok(other),
            Err(SubmitError::Closed) => Err(ClientError::Closed),
            Err(SubmitError::Start(e)) => Err(e),
            Err(SubmitError::Timeout) => Err(ClientError::Timeout {
                op: op_name,
                path: path.into(),
                ms: started.elapsed().as_millis() as u64,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasehold_model::msg::Failure;
    use std::time::Duration;

    fn done(op_id: OpId, result: OpResult<Bytes>) -> RealMsg {
        Msg::Done { op_id, result }
    }

    #[tokio::test]
    async fn late_answers_to_abandoned_operations_are_told_apart_by_id() {
        let (tx, mut rx) = mpsc::channel(8);
        // Operations 3 and 4 were given up on; their answers come late,
        // out of order, around the answer to 5.
        tx.send(done(4, OpResult::Failed(Failure::NoLeaseNow)))
            .await
            .unwrap();
        tx.send(done(3, OpResult::Opened { file: 1, chunks: 1 }))
            .await
            .unwrap();
        tx.send(done(5, OpResult::Opened { file: 9, chunks: 2 }))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let got = answer_to(&mut rx, 5, deadline).await.unwrap();
        assert_eq!(got, OpResult::Opened { file: 9, chunks: 2 });
        // Nothing is answered twice: 5's answer was taken, so waiting for
        // it again times out.
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(matches!(
            answer_to(&mut rx, 5, soon).await,
            Err(SubmitError::Timeout)
        ));
        drop(tx);
        assert!(matches!(
            answer_to(&mut rx, 6, deadline).await,
            Err(SubmitError::Closed)
        ));
    }
}
