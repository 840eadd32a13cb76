//! [`Bytes`]: the host's [`Payload`], real bytes where the model has tokens.

use leasehold_model::types::{ClonePiece, CloneSlice, Offset, Payload, StoreError};
use serde::{Deserialize, Deserializer, Serialize};
use std::cell::RefCell;
use std::fmt::{self, Debug, Formatter};

/// Bytes shown by `Debug` before it elides the rest.
const DEBUG_PREFIX_BYTES: usize = 8;

/// Data a client pushes and a replica writes.
///
/// Wraps `bytes::Bytes` so that clones (the actor state is copied on write,
/// and pushed data is forwarded to the next replica while it is buffered) are
/// reference counts, not copies. Serializes as one byte string, so a frame
/// carries it as a length and the raw bytes.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes(bytes::Bytes);

/// Payloads at least this long are lent to a frame being encoded rather
/// than copied into it (see [`encoding_shared`]); below it a copy costs
/// less than a piece of its own in the write.
pub const LENT_PAYLOAD_BYTES_MIN: usize = 4 * 1024;

thread_local! {
    /// The received frame being decoded on this thread, if its decoder
    /// lent it (see [`decoding_from`]).
    static SHARED_FRAME: RefCell<Option<bytes::Bytes>> = const { RefCell::new(None) };
    /// While a frame is encoded on this thread (see [`encoding_shared`]):
    /// the large payloads serialized so far, for the encoder to take as
    /// pieces instead of copying their bytes.
    static LENT_PAYLOADS: RefCell<Option<Vec<bytes::Bytes>>> = const { RefCell::new(None) };
}

/// Runs `encode` with large payloads lent to it: while it runs, a
/// [`Bytes`] of at least [`LENT_PAYLOAD_BYTES_MIN`] that is serialized
/// leaves a shared handle behind, which [`lent_payload`] finds by the
/// address of the bytes the serializer was handed. A pushed fragment then
/// goes out on the next hop as the buffer it arrived in (issue #13: the
/// copy into each forwarded frame was 5.5% of the cluster's CPU on 1 MiB
/// appends, docs/performance.md). The wire bytes are the same either way.
pub fn encoding_shared<T>(encode: impl FnOnce() -> T) -> T {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            LENT_PAYLOADS.with(|l| l.borrow_mut().take());
        }
    }
    LENT_PAYLOADS.with(|l| *l.borrow_mut() = Some(Vec::new()));
    let _clear = Clear;
    encode()
}

/// The payload lent under [`encoding_shared`] whose bytes are exactly
/// `bytes` (the same memory, not merely equal), if any.
pub fn lent_payload(bytes: &[u8]) -> Option<bytes::Bytes> {
    LENT_PAYLOADS.with(|l| {
        l.borrow().as_ref().and_then(|lent| {
            lent.iter()
                .find(|p| p.as_ptr() == bytes.as_ptr() && p.len() == bytes.len())
                .cloned()
        })
    })
}

/// As one byte string (a frame carries it as a length and the raw bytes),
/// lent to the encoder when one is listening (see [`encoding_shared`]).
impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.len() >= LENT_PAYLOAD_BYTES_MIN {
            LENT_PAYLOADS.with(|l| {
                if let Some(lent) = l.borrow_mut().as_mut() {
                    lent.push(self.0.clone());
                }
            });
        }
        s.serialize_bytes(&self.0)
    }
}

/// Runs `decode` with `frame` lent to [`Bytes`]'s deserializer: payloads
/// borrowed from inside `frame` become slices of it instead of copies, so
/// a pushed fragment crosses a hop without being copied out of the receive
/// buffer.
pub fn decoding_from<T>(frame: &bytes::Bytes, decode: impl FnOnce() -> T) -> T {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            SHARED_FRAME.with(|f| f.borrow_mut().take());
        }
    }
    SHARED_FRAME.with(|f| *f.borrow_mut() = Some(frame.clone()));
    let _clear = Clear;
    decode()
}

/// In JSON (foreign traces) a payload is an array of byte values.
impl schemars::JsonSchema for Bytes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Bytes".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <Vec<u8>>::json_schema(generator)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Bytes;
            fn expecting(&self, f: &mut Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Bytes, E> {
                let shared = SHARED_FRAME.with(|f| {
                    f.borrow().as_ref().and_then(|frame| {
                        let range = frame.as_ptr_range();
                        let inside = range.start <= v.as_ptr() && v.as_ptr_range().end <= range.end;
                        inside.then(|| frame.slice_ref(v))
                    })
                });
                Ok(Bytes(
                    shared.unwrap_or_else(|| bytes::Bytes::copy_from_slice(v)),
                ))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(bytes::Bytes::copy_from_slice(v)))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v.into()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Bytes, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(Bytes(v.into()))
            }
        }
        d.deserialize_bytes(Visit)
    }
}

impl Bytes {
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Cuts the data into fragments of at most `fragment_bytes_max` bytes
    /// for a pipelined push ([0098]); the fragments share this buffer, so
    /// cutting copies nothing. Empty data is one empty fragment, so a push
    /// always has something to carry.
    pub fn fragments(&self, fragment_bytes_max: u64) -> Vec<Bytes> {
        assert!(
            fragment_bytes_max > 0,
            "fragments must hold at least one byte"
        );
        if self.0.is_empty() {
            return vec![self.clone()];
        }
        let step = usize::try_from(fragment_bytes_max).unwrap_or(usize::MAX);
        (0..self.0.len())
            .step_by(step)
            .map(|at| Bytes(self.0.slice(at..self.0.len().min(at.saturating_add(step)))))
            .collect()
    }
}

impl Debug for Bytes {
    // Protocol messages and states carry payloads and are logged; a 16 MiB
    // dump would drown the log, so show the length and a recognisable prefix.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}B[", self.0.len())?;
        for b in self.0.iter().take(DEBUG_PREFIX_BYTES) {
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > DEBUG_PREFIX_BYTES {
            write!(f, "..")?;
        }
        write!(f, "]")
    }
}

impl Payload for Bytes {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn concat(fragments: &[Self]) -> Self {
        // A single fragment is the common case: no copy.
        if let [only] = fragments {
            return only.clone();
        }
        let total: usize = fragments.iter().map(|f| f.0.len()).sum();
        let mut joined = Vec::with_capacity(total);
        for fragment in fragments {
            joined.extend_from_slice(&fragment.0);
        }
        Bytes(joined.into())
    }

    /// Zero-copy fragments for a pipelined push ([0098]).
    fn split(&self, fragment_max: u64) -> Vec<Self> {
        self.fragments(fragment_max)
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v.into())
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Bytes(bytes::Bytes::copy_from_slice(v))
    }
}

impl From<bytes::Bytes> for Bytes {
    fn from(v: bytes::Bytes) -> Self {
        Bytes(v)
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A part of a clone as a byte store sends it (re-replication): the bytes
/// read from `from`, as one piece, and where the next part starts given
/// the replica's length `len`.
pub fn clone_slice(data: Bytes, from: Offset, len: Offset) -> CloneSlice<Bytes> {
    let end = from + data.as_slice().len() as u64;
    let next = (end < len).then_some(end);
    if data.as_slice().is_empty() {
        (vec![], next)
    } else {
        (vec![ClonePiece::Bytes(data)], next)
    }
}

/// The bytes of a clone's part, for a byte store to install; a piece of
/// another kind of store (the model's units) is refused.
pub fn clone_bytes(pieces: &[ClonePiece<Bytes>]) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::new();
    for piece in pieces {
        match piece {
            ClonePiece::Bytes(b) => bytes.extend_from_slice(b.as_slice()),
            other => {
                return Err(StoreError::Io(format!(
                    "a clone piece of another kind of store: {other:?}"
                )))
            }
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_short() {
        let b = Bytes::from(vec![0xabu8; 1 << 20]);
        assert_eq!(format!("{b:?}"), "1048576B[abababababababab..]");
        assert_eq!(format!("{:?}", Bytes::from(&b"\x01\x02"[..])), "2B[0102]");
    }

    #[test]
    fn concat_joins_in_order() {
        let parts = [
            Bytes::from(&b"ab"[..]),
            Bytes::from(&b""[..]),
            Bytes::from(&b"cde"[..]),
        ];
        assert_eq!(Bytes::concat(&parts).as_slice(), b"abcde");
        assert_eq!(Bytes::concat(&parts[..1]).as_slice(), b"ab");
        assert!(Bytes::concat(&[]).is_empty());
    }

    #[test]
    fn fragments_concat_back_to_the_whole() {
        let whole = Bytes::from((0..=255u8).collect::<Vec<_>>());
        for max in [1, 7, 100, 256, 1000, u64::MAX] {
            let parts = whole.fragments(max);
            assert!(parts.iter().all(|p| p.len() <= max && !p.is_empty()));
            assert_eq!(parts.len() as u64, 256u64.div_ceil(max.min(256)));
            assert_eq!(Bytes::concat(&parts), whole);
        }
        assert_eq!(Bytes::default().fragments(4), vec![Bytes::default()]);
    }

    #[test]
    fn split_is_fragments() {
        let whole = Bytes::from(vec![7u8; 1000]);
        assert_eq!(Payload::split(&whole, 300), whole.fragments(300));
        assert_eq!(Payload::split(&whole, 300).len(), 4);
    }

    #[test]
    fn decoding_from_a_lent_frame_shares_it_and_copies_otherwise() {
        let frame =
            bytes::Bytes::from(postcard::to_allocvec(&Bytes::from(vec![9u8; 1000])).unwrap());
        let shared: Bytes = decoding_from(&frame, || postcard::from_bytes(&frame).unwrap());
        assert_eq!(shared, Bytes::from(vec![9u8; 1000]));
        assert!(
            frame.as_ptr_range().contains(&shared.as_ptr()),
            "not shared"
        );
        // Without a lent frame (or after it), the bytes are copied.
        let copied: Bytes = postcard::from_bytes(&frame).unwrap();
        assert_eq!(copied, shared);
        assert!(!frame.as_ptr_range().contains(&copied.as_ptr()));
    }

    #[test]
    fn serializes_as_length_and_raw_bytes() {
        let encoded = postcard::to_allocvec(&Bytes::from(&b"xyz"[..])).unwrap();
        assert_eq!(encoded, [3, b'x', b'y', b'z']);
    }
}
