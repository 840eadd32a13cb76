//! Garbage collection on the chunkserver's side (GFS §4.4): the master
//! asks a server to delete a replica it no longer places there (the
//! replica moved to another server). The server deletes it only if it
//! still holds what the master saw, at that version or older, and is not
//! taking a clone of the chunk: a copy of the request that arrives late,
//! after the master placed the chunk here again, finds either a clone
//! under way or the clone's newer version, and deletes nothing.

use super::*;

impl<S: ChunkStore> ChunkserverActor<S> {
    pub(super) fn on_delete_replica(
        &self,
        state: &mut Cow<ChunkserverState<S>>,
        chunk: ChunkHandle,
        version: ChunkVersion,
    ) {
        let held = state.store.meta(chunk).version;
        let cloning = state.clones.iter().any(|c| c.chunk == chunk);
        let leased = state.lease(chunk).is_some_and(|l| l.holding || l.requested);
        if held > version || cloning || leased {
            return;
        }
        // A store that cannot delete keeps the replica: it is never
        // counted (not placed), and the next report asks again.
        let _ = state.to_mut().store.delete_replica(chunk);
    }
}
