//! APPEND-2's order of acknowledged record appends ([00107]), evaluated two
//! ways with one meaning.
//!
//! The property (see [`super::properties::append_2`]) is a statement about
//! pairs: no *later* acknowledged append is placed at or before an earlier
//! one. The model's views hold a handful of acknowledgements and only the
//! relation "started after" (its state keeps no clock), so the pairs are
//! compared one by one ([`holds_pairwise`]). A real run's view holds tens
//! of thousands, each with the instants its operation started and was
//! acknowledged; comparing pairs there costs the square of that, most of
//! `leasehold validate`'s time. [`holds_sorted`] answers the same question
//! in n log n from those instants, and a test below checks on random sets
//! that the two never disagree.

use crate::types::{ChunkHandle, FileId, Offset, Stamp};

/// One acknowledged record append as APPEND-2 reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Where it landed: its file and the chunk's index in the file, the
    /// chunk, and its bytes `[offset, end)` in the chunk.
    pub file: FileId,
    pub index: u32,
    pub chunk: ChunkHandle,
    pub offset: Offset,
    pub end: Offset,
    /// The lease grant order, then serial, its primary gave it ([0090]).
    pub stamp: Stamp,
    /// When its operation started and when it was acknowledged, on one
    /// clock, if the view has instants: `b` started after `a` was
    /// acknowledged exactly when `b.instants.0 >= a.instants.1`.
    pub instants: Option<(u64, u64)>,
}

/// Whether `b` breaks the order against `a`: `b` is later than `a` (a
/// higher stamp in the same chunk, or started after `a`'s
/// acknowledgement) and yet not placed after it (in the same chunk, it
/// starts before `a` ends; otherwise, in the same file at no later index).
pub fn out_of_order(a: &Placed, b: &Placed, b_started_after_a: impl FnOnce() -> bool) -> bool {
    if b.chunk == a.chunk {
        return b.offset < a.end && (b.stamp > a.stamp || b_started_after_a());
    }
    b.file == a.file && b.index <= a.index && b_started_after_a()
}

/// APPEND-2 by pairs: every pair with one of `focused` (indices into
/// `all`), both ways.
pub fn holds_pairwise(
    all: &[Placed],
    focused: impl Iterator<Item = usize>,
    started_after: impl Fn(usize, usize) -> bool,
) -> bool {
    focused.into_iter().all(|x| {
        all.iter().enumerate().all(|(y, p)| {
            y == x
                || !out_of_order(&all[x], p, || started_after(y, x))
                    && !out_of_order(p, &all[x], || started_after(x, y))
        })
    })
}

/// APPEND-2 over every pair of `all`, from the instants: `None` if some
/// append has none, or if two chunks share a place in a file (only an
/// unknown chunk's stand-in place could), where only pairs give the answer.
///
/// For each append `a`, the appends that could break the order against it
/// are summarised so that one lookup finds whether any does:
/// * a higher stamp in the same chunk: of `a`'s chunk's appends, sorted by
///   stamp, the lowest offset among those with a higher stamp than `a`'s
///   must be at or past `a`'s end;
/// * started after `a`'s acknowledgement: of `a`'s file's appends, sorted
///   by start, the least place (chunk index, offset) among those that
///   started at or after `a`'s acknowledgement must be at or past
///   (`a`'s index, `a`'s end). In `a`'s chunk that is the offset test;
///   in another chunk its index differs from `a`'s, so the offset never
///   decides.
pub fn holds_sorted(all: &[Placed]) -> Option<bool> {
    let instants: Vec<(u64, u64)> = all.iter().map(|p| p.instants).collect::<Option<_>>()?;
    // An operation acknowledged at the instant it started would, by the
    // instants, have started after itself; only pairs (which skip `a`
    // against itself) answer then.
    if instants.iter().any(|(start, ack)| start >= ack) {
        return None;
    }
    let mut by_place: Vec<(FileId, u32, ChunkHandle)> =
        all.iter().map(|p| (p.file, p.index, p.chunk)).collect();
    by_place.sort_unstable();
    by_place.dedup();
    if by_place
        .windows(2)
        .any(|w| (w[0].0, w[0].1) == (w[1].0, w[1].1))
    {
        return None;
    }

    // Higher stamps in the same chunk.
    let mut by_stamp: Vec<usize> = (0..all.len()).collect();
    by_stamp.sort_unstable_by_key(|&i| (all[i].chunk, std::cmp::Reverse(all[i].stamp)));
    for run in by_stamp.chunk_by(|&i, &j| all[i].chunk == all[j].chunk) {
        // Highest stamp first: the lowest offset among strictly higher
        // stamps seen so far, updated only once a stamp's ties are past.
        let mut lowest_above = Offset::MAX;
        for ties in run.chunk_by(|&i, &j| all[i].stamp == all[j].stamp) {
            if ties.iter().any(|&a| lowest_above < all[a].end) {
                return Some(false);
            }
            for &b in ties {
                lowest_above = lowest_above.min(all[b].offset);
            }
        }
    }

    // Started after the acknowledgement, in the same file.
    let mut by_start: Vec<usize> = (0..all.len()).collect();
    by_start.sort_unstable_by_key(|&i| (all[i].file, instants[i].0));
    for run in by_start.chunk_by(|&i, &j| all[i].file == all[j].file) {
        // least[k]: the least place among run[k..].
        let mut least = vec![(u32::MAX, Offset::MAX); run.len() + 1];
        for k in (0..run.len()).rev() {
            let b = &all[run[k]];
            least[k] = least[k + 1].min((b.index, b.offset));
        }
        for &a in run {
            let first_later = run.partition_point(|&b| instants[b].0 < instants[a].1);
            if least[first_later] < (all[a].index, all[a].end) {
                return Some(false);
            }
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small xorshift generator: the test needs varied sets, not a
    /// dependency.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn random_set(rng: &mut Rng) -> Vec<Placed> {
        let n = 1 + rng.below(7) as usize;
        (0..n)
            .map(|_| {
                let chunk = rng.below(3);
                let offset = rng.below(6);
                let start = rng.below(8);
                Placed {
                    // Chunks 0 and 1 are one file's first two; chunk 2 is
                    // another file's.
                    file: (chunk == 2) as FileId,
                    index: (chunk == 1) as u32,
                    chunk,
                    offset,
                    end: offset + rng.below(3),
                    stamp: Stamp {
                        epoch: rng.below(2),
                        serial: rng.below(4),
                    },
                    instants: Some((start, start + 1 + rng.below(4))),
                }
            })
            .collect()
    }

    #[test]
    fn sorted_and_pairwise_agree_on_random_sets() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut held, mut broken) = (0, 0);
        for _ in 0..200_000 {
            let all = random_set(&mut rng);
            let after =
                |b: usize, a: usize| all[b].instants.unwrap().0 >= all[a].instants.unwrap().1;
            let pairs = holds_pairwise(&all, 0..all.len(), after);
            assert_eq!(holds_sorted(&all), Some(pairs), "{all:#?}");
            if pairs {
                held += 1;
            } else {
                broken += 1;
            }
        }
        // Both answers occur often, so the agreement means something.
        assert!(
            held > 10_000 && broken > 10_000,
            "{held} held, {broken} broken"
        );
    }

    #[test]
    fn without_instants_or_with_a_shared_place_only_pairs_answer() {
        let p = Placed {
            file: 0,
            index: 0,
            chunk: 0,
            offset: 0,
            end: 1,
            stamp: Stamp::default(),
            instants: Some((0, 1)),
        };
        assert_eq!(
            holds_sorted(&[
                p,
                Placed {
                    instants: None,
                    ..p
                }
            ]),
            None
        );
        assert_eq!(holds_sorted(&[p, Placed { chunk: 1, ..p }]), None);
        assert_eq!(
            holds_sorted(&[
                p,
                Placed {
                    instants: Some((1, 1)),
                    ..p
                }
            ]),
            None
        );
        assert_eq!(holds_sorted(&[p]), Some(true));
    }
}
