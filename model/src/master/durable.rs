//! What the master persists: the namespace and each chunk's version, epoch
//! and placement, and the storage type every node saves through. A file of
//! its own because it is the master's whole crash-survival contract:
//! everything else in the master is volatile and rebuilt on restart.

use super::*;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileMeta {
    pub name: String,
    pub chunks: Vec<ChunkHandle>,
}

/// What the master persists per chunk.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChunkMeta {
    pub file: FileId,
    pub index: u32,
    pub version: ChunkVersion,
    /// The last lease epoch granted; epochs never repeat, even across restarts.
    pub epoch: LeaseEpoch,
    /// Lease grants so far (the model bounds them).
    pub grants: u32,
    /// The version every replica of the last grant stored before the
    /// grant was sent (the offer's: the primary requested it, the others
    /// acknowledged it), 0 if never granted, and those replicas. No
    /// mutation happens without a grant and every one acknowledged needs
    /// every replica of its lease, so one of these replicas holding this
    /// version or a later one holds every acknowledged mutation, even if
    /// the master bumped `version` since and crashed before any replica
    /// learned the bump: a restarted master counts it up to date (issue
    /// #12; GFS §4.5's master, too, trusts what replicas report over what
    /// it failed to announce). A replica left out of the grant may hold
    /// the offer's version too (it stored it but its acknowledgement was
    /// late), so only these are trusted. Saved before the grant leaves.
    #[serde(default)]
    pub granted: ChunkVersion,
    #[serde(default)]
    #[schemars(with = "Vec<u64>")]
    pub granted_to: Vec<Id>,
    /// Where the chunk's replicas were placed at allocation.
    #[schemars(with = "Vec<u64>")]
    pub replicas: Vec<Id>,
}

/// The master's durable state: namespace and chunk versions.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
pub struct MasterDurable {
    pub files: Vec<FileMeta>,
    /// Indexed by chunk handle.
    pub chunks: Vec<ChunkMeta>,
}

/// Durable state of any node (stateright has one `Storage` type per actor).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound = "S: ChunkStore")]
pub enum NodeStorage<S> {
    // Shared, not owned: the checker clones every node's storage into every
    // successor state, while a node saves only when its durable state
    // changes. Serialized like the value itself (serde's `rc` feature).
    Master(Arc<MasterDurable>),
    Chunkserver(Arc<S>),
    Client,
}
