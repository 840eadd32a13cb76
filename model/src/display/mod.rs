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
//!
//! Files: this one holds the dispatch and the layout every role shares
//! (a block of lines, chunkserver names); [`master`], [`chunkserver`] and
//! [`client`] draw each role's state, and [`store`] the model's chunk
//! store as strips.

use crate::types::*;
use crate::NodeState;
use stateright::actor::Id;
use std::fmt::{self, Debug, Display, Formatter};

mod chunkserver;
mod client;
mod master;
mod store;

pub use store::{mem_store, Strip};

impl<S: ChunkStore> Debug for NodeState<S> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            NodeState::Master(m) => master::master(m, f),
            NodeState::Chunkserver(c) => chunkserver::chunkserver(c, f),
            NodeState::Client(c) => client::client(c, f),
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
