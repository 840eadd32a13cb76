//! How node states read in the Explorer, in counterexamples and in traces.
//!
//! A derived `Debug` of a node state is a wall of nested structs; a person
//! walking the protocol wants the lease table, each replica's chunk and each
//! client's progress, in the protocol's words. So [`NodeState`] has a
//! hand-written `Debug`:
//!
//! - `{:#?}` (what the Explorer and `format_step` print) is one header line
//!   per node and one indented line per chunk, lease or operation.
//! - `{:?}` is the same on one line, `role { line; line }`.
//!
//! Node ids: a chunkserver is named `cs{id}`, as the action list names it
//! (`ModelCfg::node_name`). A client is printed as its raw `Id(n)`, as the
//! network's envelopes print it: a node state does not know how many
//! chunkservers precede the clients, so `client{k}` cannot be computed here.
//!
//! Chunk contents come from the store's own `Debug` (for the model's
//! [`MemStore`] see [`mem_store`], which draws each replica as a strip of
//! cells: records, padding, holes, free space, end offset).

use crate::chunkserver::{Buffered, ChunkserverState, HeldApply, InFlight, ReplicaLease};
use crate::client::{ClientState, Current, Phase};
use crate::master::{ChunkView, LeaseView, MasterState};
use crate::msg::{ApplyOp, ChunkIndex, ClientOp, LeaseInfo, OpResult};
use crate::types::*;
use crate::NodeState;
use stateright::actor::Id;
use std::fmt::{self, Debug, Display, Formatter};

impl<S: ChunkStore> Debug for NodeState<S> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            NodeState::Master(m) => master(m, f),
            NodeState::Chunkserver(c) => chunkserver(c, f),
            NodeState::Client(c) => client(c, f),
        }
    }
}

// ---------------------------------------------------------------------------
// Layout: a header, then lines. Multi-line under `{:#?}`, one line under
// `{:?}`. Lines are indented by two spaces; inside stateright's pretty
// printer the outer indentation is added by its pad adapter.

struct Block<'a, 'b> {
    f: &'a mut Formatter<'b>,
    lines: usize,
}

impl<'a, 'b> Block<'a, 'b> {
    fn new(f: &'a mut Formatter<'b>, header: fmt::Arguments) -> Result<Self, fmt::Error> {
        f.write_fmt(header)?;
        Ok(Block { f, lines: 0 })
    }

    fn line(&mut self, args: fmt::Arguments) -> fmt::Result {
        let sep = match (self.f.alternate(), self.lines) {
            (true, _) => "\n  ",
            (false, 0) => " { ",
            (false, _) => "; ",
        };
        self.lines += 1;
        self.f.write_str(sep)?;
        self.f.write_fmt(args)
    }

    fn finish(self) -> fmt::Result {
        if !self.f.alternate() && self.lines > 0 {
            self.f.write_str(" }")?;
        }
        Ok(())
    }
}

/// A chunkserver id, named as the action list names it.
struct Cs(Id);

impl Display for Cs {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "cs{}", usize::from(self.0))
    }
}

/// A list of chunkserver ids: `[cs1, cs2]`.
struct CsList<'a>(&'a [Id]);

impl Display for CsList<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", Cs(*id))?;
        }
        f.write_str("]")
    }
}

// ---------------------------------------------------------------------------
// Master: namespace, then the lease table, one line per chunk.

fn master(m: &MasterState, f: &mut Formatter<'_>) -> fmt::Result {
    let mut b = Block::new(f, format_args!("master"))?;
    if m.quiet {
        // [0091]: a restarted master waits out any lease its previous
        // incarnation may have granted before it grants one itself.
        b.line(format_args!(
            "quiet period: restarted, grants no lease for one lease period"
        ))?;
    }
    for (i, file) in m.durable.files.iter().enumerate() {
        b.line(format_args!(
            "file {i} {:?}: chunks {:?}",
            file.name, file.chunks
        ))?;
    }
    for (c, meta) in m.durable.chunks.iter().enumerate() {
        let view = m.views.get(c);
        b.line(format_args!(
            "chunk {c}: v{} e{}, {}",
            meta.version,
            meta.epoch,
            LeaseTableRow(view)
        ))?;
    }
    if !m.servers.is_empty() {
        let restarts: Vec<String> = m
            .servers
            .iter()
            .map(|s| format!("{} ×{}", Cs(s.id), s.incarnation))
            .collect();
        b.line(format_args!("restarts seen: {}", restarts.join(", ")))?;
    }
    b.finish()
}

struct LeaseTableRow<'a>(Option<&'a ChunkView>);

impl Display for LeaseTableRow<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let Some(v) = self.0 else {
            return f.write_str("no volatile view");
        };
        match &v.lease {
            LeaseView::Free => f.write_str("no lease")?,
            LeaseView::Offered {
                primary,
                epoch,
                requested,
                acked,
            } => {
                write!(f, "lease e{epoch} offered to {}", Cs(*primary))?;
                if *requested {
                    f.write_str(" (requested)")?;
                } else {
                    f.write_str(" (not yet requested)")?;
                }
                write!(f, ", version acks {}", CsList(acked))?;
            }
            LeaseView::Granted {
                primary,
                epoch,
                secondaries,
                revoking,
            } => {
                write!(
                    f,
                    "lease e{epoch} granted to {}, secondaries {}",
                    Cs(*primary),
                    CsList(secondaries)
                )?;
                if *revoking {
                    f.write_str(", revoking")?;
                }
            }
        }
        write!(f, "; up to date {}", CsList(&v.up_to_date))?;
        if !v.waiting.is_empty() {
            write!(f, "; waiting clients {:?}", v.waiting)?;
        }
        if v.revocations > 0 {
            write!(f, "; revocations {}", v.revocations)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Chunkserver: the store's replicas, then per chunk the lease, then the
// buffers that make mutations wait.

fn chunkserver<S: ChunkStore>(c: &ChunkserverState<S>, f: &mut Formatter<'_>) -> fmt::Result {
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

// ---------------------------------------------------------------------------
// Client: what it is doing, what it caches, what it got.

fn client<P: Payload>(c: &ClientState<P>, f: &mut Formatter<'_>) -> fmt::Result {
    let mut b = Block::new(f, format_args!("client"))?;
    match &c.current {
        Some(cur) => b.line(format_args!("doing: {}", Doing(cur)))?,
        None => b.line(format_args!("idle"))?,
    }
    if !c.queue.is_empty() {
        let ops: Vec<String> = c
            .queue
            .iter()
            .map(|o| ClientOpText(o).to_string())
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
            Cs(i.primary),
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
        }
    }
}

// ---------------------------------------------------------------------------
// The model's store as strips.

/// Draws the model's store, one strip per chunk replica it has, for
/// `impl Debug for MemStore`. A strip shows the replica's version, its cells
/// from offset 0 grouped into runs, the free units up to the chunk size, and
/// its end offset:
///
/// `chunk 1 v1 [d0.0@e1#1 | pad×2@e1#2 | hole | · ·] end 4/6`
///
/// - `d0.0@e1#1`: record `d0.0` whole, written by mutation (epoch 1, serial 1);
///   `d0.0×2` when it spans two units.
/// - `pad×2`: padding ([00105]).
/// - `hole`: a unit never written here (a failed mutation left it undefined).
/// - `~d0.0[1/2]`: part of a record not whole here (garbage from an
///   overwrite or a failed write).
/// - `old×7`: data the configuration put in the chunk before the model ran.
/// - `·`: free unit before the chunk's maximum size.
pub fn mem_store(store: &MemStore, f: &mut Formatter<'_>) -> fmt::Result {
    let mut first = true;
    for (chunk, r) in store.replicas().iter().enumerate() {
        if r.meta.version == 0 && r.cells.is_empty() {
            continue; // a chunk this server never saw
        }
        let sep = match (f.alternate(), first) {
            (_, true) => "",
            (true, false) => "\n",
            (false, false) => "; ",
        };
        first = false;
        write!(f, "{sep}chunk {chunk} {}", Strip(r, store.chunk_size()))?;
    }
    if first {
        f.write_str("no chunks")?;
    }
    Ok(())
}

/// One replica as a strip; see [`mem_store`].
pub struct Strip<'a>(pub &'a MemReplica, pub u8);

impl Display for Strip<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let Strip(r, size) = *self;
        write!(f, "v{} [", r.meta.version)?;
        let runs = runs(&r.cells);
        let free = (size as usize).saturating_sub(r.cells.len());
        for (i, run) in runs.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{run}")?;
        }
        if free > 0 {
            if !runs.is_empty() {
                f.write_str(" | ")?;
            }
            let dots = vec!["·"; free];
            f.write_str(&dots.join(" "))?;
        }
        write!(f, "] end {}/{}", r.cells.len(), size)
    }
}

/// A run of cells drawn as one segment of a strip.
#[derive(PartialEq)]
enum Run {
    Record(RecordToken, Stamp),
    Partial(RecordToken, u8, Stamp),
    Pad(usize, Stamp),
    Hole(usize),
}

impl Display for Run {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Run::Record(rec, stamp) => {
                if rec.id.client == u32::MAX {
                    write!(f, "old")?;
                } else {
                    write!(f, "{:?}", rec.id)?;
                }
                if rec.units > 1 {
                    write!(f, "×{}", rec.units)?;
                }
                if *stamp != Stamp::default() {
                    write!(f, "@{stamp:?}")?;
                }
                Ok(())
            }
            Run::Partial(rec, part, stamp) => {
                write!(f, "~{:?}[{}/{}]@{stamp:?}", rec.id, part + 1, rec.units)
            }
            Run::Pad(1, stamp) => write!(f, "pad@{stamp:?}"),
            Run::Pad(n, stamp) => write!(f, "pad×{n}@{stamp:?}"),
            Run::Hole(1) => write!(f, "hole"),
            Run::Hole(n) => write!(f, "hole×{n}"),
        }
    }
}

fn runs(cells: &[Option<Cell>]) -> Vec<Run> {
    let mut out: Vec<Run> = vec![];
    let mut i = 0;
    while i < cells.len() {
        match cells[i] {
            None => match out.last_mut() {
                Some(Run::Hole(n)) => *n += 1,
                _ => out.push(Run::Hole(1)),
            },
            Some(Cell::Pad(stamp)) => match out.last_mut() {
                Some(Run::Pad(n, s)) if *s == stamp => *n += 1,
                _ => out.push(Run::Pad(1, stamp)),
            },
            Some(Cell::Data {
                record,
                part,
                stamp,
            }) => {
                // A record is whole when its parts 0..units follow in order
                // from here under one stamp.
                let whole = part == 0
                    && (0..record.units).all(|p| {
                        cells.get(i + p as usize).copied().flatten()
                            == Some(Cell::Data {
                                record,
                                part: p,
                                stamp,
                            })
                    });
                if whole {
                    out.push(Run::Record(record, stamp));
                    i += record.units as usize;
                    continue;
                }
                out.push(Run::Partial(record, part, stamp));
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::master::{ChunkMeta, FileMeta, MasterDurable};

    fn rec(client: u32, seq: u32, units: u8) -> RecordToken {
        RecordToken {
            id: DataId { client, seq },
            units,
        }
    }

    fn stamp(epoch: u64, serial: u64) -> Stamp {
        Stamp { epoch, serial }
    }

    struct Store<'a>(&'a MemStore);
    impl Debug for Store<'_> {
        fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
            mem_store(self.0, f)
        }
    }

    #[test]
    fn strip_shows_records_padding_holes_and_free_space() {
        let mut s = MemStore::new(8);
        s.write_at(0, 0, &rec(0, 0, 2), stamp(1, 1)).unwrap();
        s.write_at(0, 3, &rec(1, 0, 1), stamp(1, 2)).unwrap();
        s.pad_to(0, 6, stamp(1, 3)).unwrap();
        assert_eq!(
            format!("{:?}", Store(&s)),
            "chunk 0 v0 [d0.0×2@e1#1 | hole | d1.0@e1#2 | pad×2@e1#3 | · ·] end 6/8"
        );
    }

    #[test]
    fn strip_marks_partial_records_and_old_data() {
        let mut s = MemStore::new(4);
        s.write_at(0, 0, &rec(u32::MAX, 0, 2), Stamp::default())
            .unwrap();
        s.write_at(0, 2, &rec(0, 0, 2), stamp(1, 1)).unwrap();
        // A later write overwrote the record's first unit.
        s.write_at(0, 2, &rec(1, 0, 1), stamp(2, 1)).unwrap();
        assert_eq!(
            format!("{:?}", Store(&s)),
            "chunk 0 v0 [old×2 | d1.0@e2#1 | ~d0.0[2/2]@e1#1] end 4/4"
        );
    }

    #[test]
    fn master_lease_table_compact_and_pretty() {
        let m = MasterState {
            durable: MasterDurable {
                files: vec![FileMeta {
                    name: "log".into(),
                    chunks: vec![0],
                }],
                chunks: vec![ChunkMeta {
                    file: 0,
                    index: 0,
                    version: 1,
                    epoch: 1,
                    grants: 1,
                    replicas: vec![Id::from(1), Id::from(2)],
                }],
            },
            views: vec![ChunkView {
                up_to_date: vec![Id::from(1), Id::from(2)],
                lease: LeaseView::Granted {
                    primary: Id::from(2),
                    epoch: 1,
                    secondaries: vec![Id::from(1)],
                    revoking: false,
                },
                waiting: vec![],
                last_primary: Some(Id::from(2)),
                revocations: 0,
            }],
            servers: vec![],
            quiet: false,
        };
        let node: NodeState<MemStore> = NodeState::Master(m);
        assert_eq!(
            format!("{node:?}"),
            "master { file 0 \"log\": chunks [0]; chunk 0: v1 e1, lease e1 granted to cs2, \
             secondaries [cs1]; up to date [cs1, cs2] }"
        );
        assert_eq!(
            format!("{node:#?}"),
            "master\n  file 0 \"log\": chunks [0]\n  chunk 0: v1 e1, lease e1 granted to cs2, \
             secondaries [cs1]; up to date [cs1, cs2]"
        );
    }
}
