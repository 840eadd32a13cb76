//! Chunkserver: the store's replicas, then per chunk the lease, then the
//! buffers that make mutations wait.

use super::{Block, Cs, CsList};
use crate::chunkserver::{Buffered, ChunkserverState, HeldApply, InFlight, ReplicaLease};
use crate::msg::ApplyOp;
use crate::types::*;
use std::fmt::{self, Display, Formatter};

pub(super) fn chunkserver<S: ChunkStore>(
    c: &ChunkserverState<S>,
    f: &mut Formatter<'_>,
) -> fmt::Result {
    let restarts = c.store.incarnation();
    let mut b = if restarts > 0 {
        Block::new(f, format_args!("chunkserver (restarted ×{restarts})"))?
    } else {
        Block::new(f, format_args!("chunkserver"))?
    };
    // The store draws its own replicas (the model's with [`mem_store`]). Its
    // compact form keeps it on one line in both modes: a pretty-printed list
    // would spill brackets over the block.
    b.line(format_args!("data: {:?}", c.store))?;
    // Every chunk the replica has a version of, a lease on, or mutations
    // for, so a secondary shows its version and end too.
    let mut chunks: Vec<ChunkHandle> = c.store.chunks().into_iter().map(|(h, _)| h).collect();
    chunks.extend(c.leases.iter().map(|l| l.chunk));
    chunks.extend(c.in_flight.iter().map(|m| m.chunk));
    chunks.extend(c.held.iter().map(|h| h.chunk));
    chunks.sort();
    chunks.dedup();
    for chunk in chunks {
        let meta = c.store.meta(chunk);
        let end = c.store.chunk_len(chunk);
        match c.lease(chunk) {
            Some(l) => b.line(format_args!(
                "chunk {chunk}: v{}, end {end}, applied {:?}; {}",
                meta.version,
                meta.applied,
                Lease(l)
            ))?,
            None => b.line(format_args!(
                "chunk {chunk}: v{}, end {end}, applied {:?}",
                meta.version, meta.applied
            ))?,
        }
    }
    if !c.buffer.is_empty() {
        b.line(format_args!("push buffer: {}", PushBuffer(&c.buffer)))?;
    }
    for m in &c.in_flight {
        b.line(format_args!("{}", Waiting(m)))?;
    }
    for h in &c.held {
        b.line(format_args!("{}", Held(h)))?;
    }
    for k in &c.clones {
        b.line(format_args!(
            "cloning chunk {} at v{} from {}: next part at {}",
            k.chunk,
            k.version,
            Cs(k.source),
            k.next
        ))?;
    }
    b.finish()
}

struct Lease<'a>(&'a ReplicaLease);

impl Display for Lease<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let l = self.0;
        if l.holding {
            write!(
                f,
                "primary under lease e{}, next serial {}, secondaries {}",
                l.epoch,
                l.next_serial,
                CsList(&l.secondaries)
            )?;
            if l.extensions > 0 {
                write!(f, ", extended ×{}", l.extensions)?;
            }
            if l.requested {
                f.write_str(", extension requested")?;
            }
            Ok(())
        } else if l.requested {
            write!(f, "lease e{} requested, clock running", l.epoch)
        } else if l.epoch == 0 {
            f.write_str("no lease")
        } else {
            write!(f, "no lease (last e{})", l.epoch)
        }
    }
}

struct PushBuffer<'a, P>(&'a [Buffered<P>]);

impl<P> Display for PushBuffer<'_, P> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{:?}", b.data)?;
            if !b.complete {
                write!(f, " (partial, {} fragments)", b.fragments.len())?;
            }
        }
        Ok(())
    }
}

/// A mutation the primary applied and forwarded ([00101]).
struct Waiting<'a>(&'a InFlight);

impl Display for Waiting<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "awaiting secondaries: {:?} chunk {} ", m.stamp, m.chunk)?;
        match m.offset {
            Some(o) => write!(f, "{:?} at {o}", m.data)?,
            None => write!(f, "pad for {:?}", m.data)?,
        }
        write!(
            f,
            " for client {:?}, applied on {}",
            m.client,
            CsList(&m.acked)
        )
    }
}

/// A forwarded mutation that arrived before its serial's turn ([00100]).
struct Held<'a>(&'a HeldApply);

impl Display for Held<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let h = self.0;
        write!(
            f,
            "held back: {:?} chunk {} v{} from {}: {}",
            h.stamp,
            h.chunk,
            h.version,
            Cs(h.primary),
            Op(&h.op)
        )
    }
}

struct Op<'a>(&'a ApplyOp);

impl Display for Op<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            ApplyOp::WriteAt { offset, data } => write!(f, "write {data:?} at {offset}"),
            ApplyOp::PadTo { end } => write!(f, "pad to {end}"),
            ApplyOp::Skip => write!(f, "skip (failed at the primary)"),
        }
    }
}
