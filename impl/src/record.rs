//! Record framing for record append, as the GFS paper describes it: each
//! record carries a checksum so readers can find valid records among
//! padding and partial data, and a unique id so they can drop the
//! duplicates that at-least-once append leaves behind ([00107]).
//!
//! ```text
//! +-------------+------------+-------------+-----------------+----------+
//! | magic "LhRc"| len: u32 LE| id: u64 LE  | crc32c: u32 LE  | data ... |
//! +-------------+------------+-------------+-----------------+----------+
//! ```
//!
//! The CRC32C covers `len`, `id` and the data. Padding is zeros ([00105]),
//! and the magic has no zero byte, so padding never parses as a record. A
//! scanner that finds no valid record at a position moves on one byte: a
//! failed append may have left a partial record, or an acknowledged one may
//! have been written over part of an older one on some replica ([00106]).

/// Marks the start of a framed record. No zero byte, so padding (zeros)
/// never looks like a record.
pub const RECORD_MAGIC: [u8; 4] = *b"LhRc";
/// Bytes of framing before a record's data.
pub const RECORD_HEADER_BYTES: u64 = 4 + 4 + 8 + 4;

const _: () = assert!(RECORD_MAGIC[0] != 0 && RECORD_MAGIC[1] != 0);
const _: () = assert!(RECORD_MAGIC[2] != 0 && RECORD_MAGIC[3] != 0);

/// Frames `data` as one record with `id`.
pub fn frame(id: u64, data: &[u8]) -> Vec<u8> {
    let len = u32::try_from(data.len()).expect("record length fits u32 (checked by the caller)");
    let mut out = Vec::with_capacity(RECORD_HEADER_BYTES as usize + data.len());
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[4..16]), data);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// One valid record found in a chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found<'a> {
    pub id: u64,
    /// Where the record's framing starts in the scanned buffer.
    pub at: usize,
    pub data: &'a [u8],
}

/// Every valid record in `buf` (one chunk's data, as one replica holds it),
/// in order, skipping padding, partial records and garbage. Records whose
/// data is longer than `data_bytes_max` are not believed.
pub fn scan(buf: &[u8], data_bytes_max: u64) -> Vec<Found<'_>> {
    let mut found = Vec::new();
    let header = RECORD_HEADER_BYTES as usize;
    let mut at = 0usize;
    while at + header <= buf.len() {
        // Jump to the next candidate magic.
        let Some(skip) = buf[at..]
            .windows(RECORD_MAGIC.len())
            .position(|w| w == RECORD_MAGIC)
        else {
            break;
        };
        at += skip;
        match parse_at(buf, at, data_bytes_max) {
            Some(record) => {
                at += header + record.data.len();
                found.push(record);
            }
            None => at += 1,
        }
    }
    found
}

fn parse_at(buf: &[u8], at: usize, data_bytes_max: u64) -> Option<Found<'_>> {
    let header = RECORD_HEADER_BYTES as usize;
    let h = buf.get(at..at + header)?;
    let len = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
    if u64::from(len) > data_bytes_max {
        return None;
    }
    let id = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(h[16..20].try_into().expect("4 bytes"));
    let data = buf.get(at + header..at + header + len as usize)?;
    if crc32c::crc32c_append(crc32c::crc32c(&h[4..16]), data) != crc {
        return None;
    }
    Some(Found { id, at, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_records_among_padding_partials_and_garbage() {
        let a = frame(1, b"alpha");
        let b = frame(2, b"");
        let c = frame(3, &[0u8; 100]);
        let mut buf = vec![0u8; 17];
        buf.extend_from_slice(&a);
        buf.extend_from_slice(&c[..30]); // a partial record
        buf.extend_from_slice(b"LhRcjunk");
        buf.extend_from_slice(&b);
        buf.extend_from_slice(&a); // a duplicate: the scanner reports it
        buf.extend_from_slice(&c);
        buf.extend_from_slice(&[0u8; 64]);
        let found: Vec<(u64, &[u8])> = scan(&buf, 1000).iter().map(|f| (f.id, f.data)).collect();
        assert_eq!(
            found,
            vec![
                (1, &b"alpha"[..]),
                (2, &b""[..]),
                (1, &b"alpha"[..]),
                (3, &[0u8; 100][..])
            ]
        );
        assert_eq!(scan(&buf, 1000)[0].at, 17);
    }

    #[test]
    fn zeros_and_corruption_are_not_records() {
        assert!(scan(&[0u8; 4096], 1 << 20).is_empty());
        let mut r = frame(9, b"payload");
        *r.last_mut().unwrap() ^= 1;
        assert!(scan(&r, 1 << 20).is_empty());
        // An implausible length is not believed.
        assert!(scan(&frame(9, &[1u8; 64]), 63).is_empty());
    }

    #[test]
    fn a_record_overwritten_in_part_is_skipped_and_the_one_over_it_found() {
        // [00106]: a secondary writes at the primary's offset even over
        // data it already has.
        let old = frame(1, &[7u8; 50]);
        let new = frame(2, b"new");
        let mut buf = old.clone();
        buf[10..10 + new.len()].copy_from_slice(&new);
        let found = scan(&buf, 1000);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].id, found[0].at), (2, 10));
    }
}
