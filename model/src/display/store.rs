//! The model's store as strips: what `impl Debug for MemStore` prints,
//! inside a chunkserver's block and on its own. A file of its own because
//! it draws the model's implementation of the host interface, not a
//! role's state.

use crate::memstore::*;
use crate::types::*;
use std::fmt::{self, Display, Formatter};

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
///
/// A damaged replica (a crash tore its sync) is drawn as `damaged`.
pub fn mem_store(store: &MemStore, f: &mut Formatter<'_>) -> fmt::Result {
    let mut first = true;
    for (chunk, r) in store.replicas().iter().enumerate() {
        if r.meta.version == 0 && r.cells.is_empty() && !r.damaged {
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
        if r.damaged {
            return f.write_str("damaged (a torn sync): refuses every read and change");
        }
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
                if rec.id.client == DataId::PREFILLED_CLIENT {
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
    use std::fmt::Debug;

    fn rec(client: u64, seq: u32, units: u8) -> RecordToken {
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
        s.write_at(0, 0, &rec(DataId::PREFILLED_CLIENT, 0, 2), Stamp::default())
            .unwrap();
        s.write_at(0, 2, &rec(0, 0, 2), stamp(1, 1)).unwrap();
        // A later write overwrote the record's first unit.
        s.write_at(0, 2, &rec(1, 0, 1), stamp(2, 1)).unwrap();
        assert_eq!(
            format!("{:?}", Store(&s)),
            "chunk 0 v0 [old×2 | d1.0@e2#1 | ~d0.0[2/2]@e1#1] end 4/4"
        );
    }
}
