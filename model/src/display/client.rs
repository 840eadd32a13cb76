//! Client: what it is doing, what it caches, what it got.

use super::{Block, Cs, CsList};
use crate::client::{ClientState, Current, Phase};
use crate::msg::{ChunkIndex, ClientOp, LeaseInfo, OpResult};
use crate::types::*;
use std::fmt::{self, Display, Formatter};

pub(super) fn client<P: Payload>(c: &ClientState<P>, f: &mut Formatter<'_>) -> fmt::Result {
    let mut b = Block::new(f, format_args!("client"))?;
    match &c.current {
        Some(cur) => b.line(format_args!("doing: {}", Doing(cur)))?,
        None => b.line(format_args!("idle"))?,
    }
    if !c.queue.is_empty() {
        let ops: Vec<String> = c
            .queue
            .iter()
            .map(|(_, o)| ClientOpText(o).to_string())
            .collect();
        b.line(format_args!("then: {}", ops.join(", ")))?;
    }
    for info in &c.cache {
        b.line(format_args!("cached: {}", Info(info)))?;
    }
    for (i, r) in c.results.iter().enumerate() {
        b.line(format_args!("result {i}: {}", ResultText(r)))?;
    }
    b.finish()
}

struct Doing<'a, P>(&'a Current<P>);

impl<P: Payload> Display for Doing<'_, P> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let cur = self.0;
        let append = matches!(cur.op, ClientOp::Append { .. });
        write!(f, "{}, ", ClientOpText(&cur.op))?;
        match &cur.phase {
            Phase::Opening => f.write_str("opening the file")?,
            Phase::FindingLease => {
                f.write_str("asking the master for the lease holder (act 1210)")?
            }
            Phase::Pushing => write!(f, "pushing {:?} to the replicas (act 1230)", cur.data)?,
            Phase::Mutating if append => {
                f.write_str("waiting for the primary's append (act 1410)")?
            }
            Phase::Mutating => f.write_str("waiting for the primary's write (act 1240)")?,
            Phase::Locating => f.write_str("asking the master for replicas")?,
            Phase::Reading { replica } => write!(f, "reading from {}", Cs(*replica))?,
            Phase::BackingOff { reason } => write!(f, "waiting to retry after: {reason}")?,
        }
        match cur.index {
            ChunkIndex::Last => f.write_str(", last chunk")?,
            ChunkIndex::At(n) => write!(f, ", chunk #{n}")?,
        }
        if cur.retries > 0 || cur.retries_at_primary > 0 {
            write!(
                f,
                ", retries {} ({} at the primary)",
                cur.retries, cur.retries_at_primary
            )?;
        }
        Ok(())
    }
}

struct ClientOpText<'a, P>(&'a ClientOp<P>);

impl<P: Payload> Display for ClientOpText<'_, P> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            ClientOp::Open { path, create } => {
                write!(f, "open {path:?}{}", if *create { " (create)" } else { "" })
            }
            ClientOp::Append { file, data } => write!(f, "append {data:?} to file {file}"),
            ClientOp::Write {
                file,
                index,
                offset,
                data,
            } => write!(
                f,
                "write {data:?} at file {file} chunk #{index} offset {offset}"
            ),
            ClientOp::Read {
                file,
                index,
                offset,
                len,
            } => write!(
                f,
                "read {len} at file {file} chunk #{index} offset {offset}"
            ),
            ClientOp::Stat { file, index } => write!(f, "stat file {file} chunk #{index}"),
            // Operations added later read as their Debug until drawn here.
            #[allow(unreachable_patterns)]
            other => write!(f, "{other:?}"),
        }
    }
}

struct Info<'a>(&'a LeaseInfo);

impl Display for Info<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let i = self.0;
        write!(
            f,
            "chunk {} (file {} #{}) v{} e{}, primary {}, secondaries {}",
            i.chunk,
            i.file,
            i.index,
            i.version,
            i.epoch,
            i.primary
                .map_or_else(|| "none".to_string(), |p| Cs(p).to_string()),
            CsList(&i.secondaries)
        )
    }
}

struct ResultText<'a, P>(&'a OpResult<P>);

impl<P: Payload> Display for ResultText<'_, P> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            OpResult::Opened { file, chunks } => write!(f, "opened file {file} ({chunks} chunks)"),
            OpResult::Mutated {
                chunk,
                index,
                offset,
                stamp,
            } => write!(
                f,
                "acked at chunk {chunk} (#{index}) offset {offset}, {stamp:?}"
            ),
            OpResult::Read { data } => write!(f, "read {data:?}"),
            OpResult::Stat { info, chunks } => write!(f, "stat {} of {chunks}", Info(info)),
            OpResult::Failed(reason) => write!(f, "failed: {reason:?}"),
            OpResult::Renamed { file } => write!(f, "renamed file {file}"),
            OpResult::Snapshotted { file } => write!(f, "snapshot taken as file {file}"),
        }
    }
}
