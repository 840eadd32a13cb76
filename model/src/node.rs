//! One actor type for every role, so one model (and one TCP host) holds the
//! master, the chunkservers and the clients. It only delegates.

use crate::chunkserver::{ChunkserverActor, ChunkserverState};
use crate::client::{ClientActor, ClientState};
use crate::master::{MasterActor, MasterDurable, MasterState, NodeStorage};
use crate::msg::{Msg, Timer};
use crate::types::{digest, ChunkStore, StoreView};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::fmt::{self, Debug, Formatter};
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node<S: ChunkStore> {
    Master(MasterActor),
    Chunkserver(ChunkserverActor<S>),
    Client(ClientActor<S::Payload>),
}

// Debug is hand-written in `display.rs`, to read like the protocol.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum NodeState<S: ChunkStore> {
    Master(MasterState),
    Chunkserver(ChunkserverState<S>),
    Client(ClientState<S::Payload>),
}

impl<S: ChunkStore> NodeState<S> {
    /// A digest of the node's protocol state that does not depend on how
    /// its chunk store keeps data: a chunkserver's store counts only as its
    /// [`StoreView`]. Real nodes record it after every step, and trace
    /// validation compares it with a replay of the same steps through the
    /// same actor code on an in-memory store.
    pub fn protocol_digest(&self) -> u64 {
        match self {
            NodeState::Master(m) => digest(&(0u8, m)),
            NodeState::Chunkserver(c) => digest(&(
                1u8,
                &c.leases,
                &c.buffer,
                &c.in_flight,
                &c.held,
                &c.early,
                &c.failed,
                StoreView::of(&c.store),
            )),
            NodeState::Client(c) => digest(&(2u8, c)),
        }
    }
}

/// A node's state with a digest of it, taken the first time it is hashed.
///
/// The checker hashes every node's state for every state it generates,
/// though a step changes one node at most; hashing a node as its digest
/// makes that one word per node. The state is read-only once wrapped, so
/// the digest cannot go stale. It is taken lazily because the TCP host
/// never hashes states, and a chunkserver's state there holds megabytes of
/// pushed data. Equality, `Debug` and the value are the state's own.
///
/// The symmetry reduction permutes every node of every state the checker
/// generates, though a step changes one node at most; so a node also keeps
/// its images under the client permutations once made (`image`), and a
/// node shared with the state it came from is permuted (and digested) once.
#[derive(Clone)]
pub struct Digested<T> {
    value: T,
    digest: OnceLock<u64>,
    images: [OnceLock<Arc<Digested<T>>>; IMAGES_KEPT],
}

/// The non-identity permutations of three clients, the most any
/// configuration with interchangeable clients has; more are made afresh.
pub const IMAGES_KEPT: usize = 5;

impl<T: Hash> Digested<T> {
    pub fn new(value: T) -> Self {
        Digested {
            digest: OnceLock::new(),
            images: Default::default(),
            value,
        }
    }

    fn digest(&self) -> u64 {
        *self
            .digest
            .get_or_init(|| crate::types::digest(&self.value))
    }

    /// This state under the permutation numbered `index`, which `make`
    /// computes; kept from the first call on, since the value never changes.
    pub fn image(&self, index: usize, make: impl FnOnce(&T) -> T) -> Arc<Digested<T>> {
        match self.images.get(index) {
            Some(kept) => kept
                .get_or_init(|| Arc::new(Digested::new(make(&self.value))))
                .clone(),
            None => Arc::new(Digested::new(make(&self.value))),
        }
    }
}

impl<T> Deref for Digested<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Hash> Hash for Digested<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest());
    }
}

impl<T: PartialEq> PartialEq for Digested<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: Eq> Eq for Digested<T> {}

impl<T: Debug> Debug for Digested<T> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

/// Runs a role's handler on its own state type inside the node's `Cow`,
/// keeping the state borrowed (so the checker can prune no-op steps) unless
/// the handler really changed it.
macro_rules! delegate {
    ($state:ident, $variant:ident, |$s:ident| $call:expr) => {{
        let NodeState::$variant(inner) = &***$state else {
            unreachable!("node and state roles agree")
        };
        let mut $s = Cow::Borrowed(inner);
        $call;
        if let Cow::Owned(next) = $s {
            *$state = Cow::Owned(Digested::new(NodeState::$variant(next)));
        }
    }};
}

impl<S: ChunkStore> Actor for Node<S> {
    type Msg = Msg<S::Payload>;
    type State = Digested<NodeState<S>>;
    type Timer = Timer;
    type Random = ();
    type Storage = NodeStorage<S>;

    fn name(&self) -> String {
        match self {
            Node::Master(_) => "master".into(),
            Node::Chunkserver(_) => "chunkserver".into(),
            Node::Client(_) => "client".into(),
        }
    }

    fn on_start(&self, id: Id, storage: &Option<Self::Storage>, o: &mut Out<Self>) -> Self::State {
        Digested::new(match self {
            Node::Master(a) => {
                let durable = match storage {
                    Some(NodeStorage::Master(d)) => Some(MasterDurable::clone(d)),
                    _ => None,
                };
                NodeState::Master(a.on_start(&durable, o))
            }
            Node::Chunkserver(a) => NodeState::Chunkserver(a.on_start(storage, o)),
            Node::Client(a) => NodeState::Client(a.on_start(id, o)),
        })
    }

    fn on_msg(
        &self,
        id: Id,
        state: &mut Cow<Self::State>,
        src: Id,
        msg: Self::Msg,
        o: &mut Out<Self>,
    ) {
        match self {
            Node::Master(a) => delegate!(state, Master, |s| a.on_msg(&mut s, src, msg, o)),
            Node::Chunkserver(a) => {
                delegate!(state, Chunkserver, |s| a.on_msg(id, &mut s, src, msg, o))
            }
            Node::Client(a) => delegate!(state, Client, |s| a.on_msg(id, &mut s, src, msg, o)),
        }
    }

    fn on_timeout(
        &self,
        id: Id,
        state: &mut Cow<Self::State>,
        timer: &Self::Timer,
        o: &mut Out<Self>,
    ) {
        match self {
            Node::Master(a) => delegate!(state, Master, |s| a.on_timeout(&mut s, timer, o)),
            Node::Chunkserver(a) => {
                delegate!(state, Chunkserver, |s| a.on_timeout(&mut s, timer, o))
            }
            Node::Client(a) => delegate!(state, Client, |s| a.on_timeout(id, &mut s, timer, o)),
        }
    }
}
