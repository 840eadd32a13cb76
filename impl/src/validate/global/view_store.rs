//! A replica as the global state holds it ([`ViewStore`]): the replay
//! store's bytes and metadata, and the regions (which stamp wrote each
//! byte range) that the model's properties read through
//! [`StampedStore`]. Separate from the pass over the run in `mod.rs`: this
//! is the data, that is the order of steps.

use leasehold_model::system::{Region, StampedStore};
use leasehold_model::types::{ChunkHandle, ChunkStore, ClonePiece, Offset, ReplicaMeta, Stamp};
use std::collections::{BTreeMap, HashMap};

use super::super::store::{ReplayStore, StoreEvent};
use crate::payload::Bytes;

/// A replica in the global state: the replay store's bytes and metadata,
/// and the regions the properties read (kept here, not in the store the
/// actors ran on, which is cloned into every save).
#[derive(Clone, Debug)]
pub struct ViewStore {
    store: ReplayStore,
    regions: BTreeMap<ChunkHandle, Vec<Region>>,
    /// How many regions of each (chunk, stamp) there are, for `has_stamp`
    /// without a scan (a benchmark's chunk has thousands of regions).
    stamps: HashMap<(ChunkHandle, Stamp), u32>,
}

impl ViewStore {
    pub fn new(chunk_bytes: u64) -> Self {
        ViewStore {
            store: ReplayStore::new(chunk_bytes),
            regions: BTreeMap::new(),
            stamps: HashMap::new(),
        }
    }

    /// Whether `stamp`'s bytes in `chunk` are one region, reaching over
    /// `from`: where every replica applied a mutation at the same place,
    /// ORDER-1 needs to look only at the range just written.
    pub fn stamp_only_at(&self, chunk: ChunkHandle, stamp: Stamp, from: Offset) -> bool {
        self.stamps.get(&(chunk, stamp)) == Some(&1)
            && self
                .regions_from(chunk, from)
                .next()
                .is_some_and(|r| r.stamp == stamp && r.start <= from)
    }

    /// Applies what a replayed store did; what it changed.
    pub fn apply(&mut self, e: &StoreEvent) -> Vec<Touched> {
        // The replayed store accepted each of these, so this one does too.
        match e {
            StoreEvent::Wrote {
                chunk,
                stamp,
                offset,
                data,
            } => {
                let _ = self.store.write_at(*chunk, *offset, data, *stamp);
                overwrite(
                    self.regions.entry(*chunk).or_default(),
                    &mut self.stamps,
                    *chunk,
                    Region {
                        start: *offset,
                        end: offset + data.as_slice().len() as u64,
                        stamp: *stamp,
                        pad: false,
                    },
                );
                vec![Touched::Range(
                    *chunk,
                    *offset,
                    offset + data.as_slice().len() as u64,
                )]
            }
            StoreEvent::Padded { chunk, stamp, end } => {
                let from = self.store.chunk_len(*chunk);
                let _ = self.store.pad_to(*chunk, *end, *stamp);
                overwrite(
                    self.regions.entry(*chunk).or_default(),
                    &mut self.stamps,
                    *chunk,
                    Region {
                        start: from,
                        end: *end,
                        stamp: *stamp,
                        pad: true,
                    },
                );
                vec![Touched::Range(*chunk, from, *end)]
            }
            StoreEvent::Version { chunk, version } => {
                let _ = self.store.set_version(*chunk, *version);
                vec![Touched::Whole(*chunk)]
            }
            StoreEvent::Consumed { chunk, stamp } => {
                let _ = self.store.set_applied(*chunk, *stamp);
                vec![Touched::Meta(*chunk)]
            }
            StoreEvent::Cloned {
                chunk,
                from,
                data,
                done,
            } => {
                let piece = [ClonePiece::Bytes(data.clone())];
                let _ = self.store.install_clone(*chunk, *from, &piece, *done);
                // Which mutations wrote the copied bytes is the source's
                // to say: the caller copies its regions over
                // ([`ViewStore::copy_regions`]).
                self.cut_regions(*chunk, *from);
                vec![
                    Touched::Whole(*chunk),
                    Touched::Cloned(*chunk, *from, from + data.as_slice().len() as u64),
                ]
            }
            // Refused: the store is as it was.
            StoreEvent::RefusedPastEnd { .. } => vec![],
            StoreEvent::Deleted { chunk } => {
                let _ = self.store.delete_replica(*chunk);
                self.cut_regions(*chunk, 0);
                self.regions.remove(chunk);
                vec![Touched::Whole(*chunk)]
            }
            StoreEvent::Adopted { view, damaged } => {
                self.store.adopt_view(view, damaged);
                // Bytes a restart restored beyond the replay are unknown:
                // in no region. A shorter replica loses its tail.
                self.regions
                    .retain(|c, _| view.chunks.iter().any(|(h, ..)| h == c));
                for (chunk, _, len) in &view.chunks {
                    if let Some(rs) = self.regions.get_mut(chunk) {
                        rs.retain(|r| r.start < *len);
                        if let Some(last) = rs.last_mut() {
                            last.end = last.end.min(*len);
                        }
                    }
                }
                self.stamps.clear();
                for (chunk, rs) in &self.regions {
                    for r in rs {
                        *self.stamps.entry((*chunk, r.stamp)).or_default() += 1;
                    }
                }
                view.chunks
                    .iter()
                    .map(|(c, ..)| *c)
                    .chain(damaged.iter().copied())
                    .map(Touched::Whole)
                    .collect()
            }
        }
    }
}

impl ViewStore {
    /// Forgets which mutations wrote the chunk's bytes from `from` on.
    fn cut_regions(&mut self, chunk: ChunkHandle, from: Offset) {
        let Some(rs) = self.regions.get_mut(&chunk) else {
            return;
        };
        for r in rs.iter_mut().filter(|r| r.end > from) {
            r.end = r.end.min(from);
        }
        rs.retain(|r| r.start < r.end);
        // Recount the chunk's stamps from what is left (cheap: a clone is
        // rare, and this keeps the counts exact whatever was cut).
        self.stamps.retain(|(c, _), _| *c != chunk);
        for r in rs.iter() {
            *self.stamps.entry((chunk, r.stamp)).or_default() += 1;
        }
    }

    /// Whether this replica holds `data` at `from` of `chunk`: a
    /// candidate for the source of a clone that copied it.
    pub fn holds_bytes(&self, chunk: ChunkHandle, from: Offset, data: &[u8]) -> bool {
        self.store.holds_at(chunk, from, data)
    }

    /// The chunk's version here.
    pub fn version(&self, chunk: ChunkHandle) -> u64 {
        self.store.meta(chunk).version
    }

    /// Takes `source`'s regions of `[from, to)` of `chunk`: a clone copied
    /// those bytes, so the same mutations wrote them here.
    pub fn copy_regions(
        &mut self,
        source: &ViewStore,
        chunk: ChunkHandle,
        from: Offset,
        to: Offset,
    ) {
        let copied: Vec<Region> = source
            .regions_from(chunk, from)
            .take_while(|r| r.start < to)
            .map(|r| Region {
                start: r.start.max(from),
                end: r.end.min(to),
                ..r
            })
            .collect();
        for r in copied {
            overwrite(
                self.regions.entry(chunk).or_default(),
                &mut self.stamps,
                chunk,
                r,
            );
        }
    }
}

/// What a step changed of a replica, for the properties' focus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touched {
    /// Bytes `[from, to)` of a chunk installed by a clone, whose regions
    /// are to be copied from the source.
    Cloned(ChunkHandle, Offset, Offset),
    /// Bytes `[from, to)` of a chunk.
    Range(ChunkHandle, Offset, Offset),
    /// The chunk's metadata only (a serial used up).
    Meta(ChunkHandle),
    /// Everything about the chunk (its version, so which replicas count).
    Whole(ChunkHandle),
}

/// Puts `new` over whatever regions it covers, cutting those it overlaps,
/// and keeps the count of regions per stamp.
fn overwrite(
    regions: &mut Vec<Region>,
    stamps: &mut HashMap<(ChunkHandle, Stamp), u32>,
    chunk: ChunkHandle,
    new: Region,
) {
    if new.start >= new.end {
        return;
    }
    let i = regions.partition_point(|r| r.end <= new.start);
    let mut j = i;
    let mut left = None;
    let mut right = None;
    while j < regions.len() && regions[j].start < new.end {
        let r = regions[j];
        if r.start < new.start {
            left = Some(Region {
                end: new.start,
                ..r
            });
        }
        if r.end > new.end {
            right = Some(Region {
                start: new.end,
                ..r
            });
        }
        j += 1;
    }
    for r in &regions[i..j] {
        if let Some(n) = stamps.get_mut(&(chunk, r.stamp)) {
            *n -= 1;
            if *n == 0 {
                stamps.remove(&(chunk, r.stamp));
            }
        }
    }
    let replacement: Vec<Region> = left.into_iter().chain([new]).chain(right).collect();
    for r in &replacement {
        *stamps.entry((chunk, r.stamp)).or_default() += 1;
    }
    regions.splice(i..j, replacement);
}

impl StampedStore for ViewStore {
    type Payload = Bytes;

    fn damaged(&self, chunk: ChunkHandle) -> Option<u32> {
        self.store
            .is_damaged(chunk)
            .then(|| self.store.incarnation())
    }

    fn replica_meta(&self, chunk: ChunkHandle) -> ReplicaMeta {
        self.store.meta(chunk)
    }

    fn data_len(&self, chunk: ChunkHandle) -> Offset {
        self.store.chunk_len(chunk)
    }

    fn handles(&self) -> impl Iterator<Item = ChunkHandle> + '_ {
        self.regions.keys().copied()
    }

    fn regions(&self, chunk: ChunkHandle) -> impl Iterator<Item = Region> + '_ {
        self.regions.get(&chunk).into_iter().flatten().copied()
    }

    fn regions_from(
        &self,
        chunk: ChunkHandle,
        offset: Offset,
    ) -> impl Iterator<Item = Region> + '_ {
        let rs: &[Region] = self.regions.get(&chunk).map_or(&[], |v| &v[..]);
        let i = rs.partition_point(|r| r.end <= offset);
        rs[i..].iter().copied()
    }

    fn has_stamp(&self, chunk: ChunkHandle, stamp: Stamp) -> bool {
        self.stamps.contains_key(&(chunk, stamp))
    }

    fn holds_part(
        &self,
        chunk: ChunkHandle,
        at: Offset,
        record: &Bytes,
        from: Offset,
        to: Offset,
    ) -> bool {
        let want = &record.as_slice()[from as usize..to as usize];
        self.store.holds_at(chunk, at + from, want)
    }

    fn same_data(&self, other: &Self, chunk: ChunkHandle, from: Offset, to: Offset) -> bool {
        self.store.same_bytes(&other.store, chunk, from, to)
    }
}
