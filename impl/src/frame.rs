//! Wire format: length-prefixed frames carrying one addressed message each.
//!
//! ```text
//! +----------------+--------------------------------------------+
//! | len: u32 (BE)  | postcard(Envelope { src, dst, msg })       |
//! +----------------+--------------------------------------------+
//! ```
//!
//! `len` counts the payload only. Parsing checks before it parses: a buffer
//! that does not yet hold a whole frame is [`Parsed::Incomplete`] (not an
//! error), a header announcing more than [`FRAME_PAYLOAD_BYTES_MAX`] is
//! rejected before any of the payload is buffered, and a payload that does not
//! decode exactly (garbage, truncated fields, trailing bytes) is
//! [`FrameError::Malformed`]. The caller closes that one connection.
//!
//! Why postcard: it is maintained, has a written and frozen 1.0 wire
//! specification, encodes integers as varints (protocol messages are mostly
//! small ids, versions and serials), writes byte strings as length + raw
//! bytes (pushed data costs no per-byte overhead), and decodes from a slice,
//! so a length inside the payload can never make it allocate more than the
//! frame it came in. bincode 1.x would need explicit limit options for that
//! and is no longer maintained.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use stateright::actor::Id;

/// Bytes in the length prefix.
pub const FRAME_HEADER_BYTES: usize = 4;

/// Largest payload a frame may carry: one 16 MiB data fragment plus room for
/// the envelope and the message's own fields. A peer announcing more is
/// treated as broken, so one connection can never make the host buffer more
/// than this (plus one read) in memory.
// WIRE-1: every frame is length-prefixed and bounded by this maximum.
pub const FRAME_PAYLOAD_BYTES_MAX: usize = 16 * 1024 * 1024 + 64 * 1024;

/// Largest frame on the wire, header included.
pub const FRAME_BYTES_MAX: usize = FRAME_HEADER_BYTES + FRAME_PAYLOAD_BYTES_MAX;

// The length prefix is a u32, so the limit must be expressible in it.
const _: () = assert!(FRAME_PAYLOAD_BYTES_MAX <= u32::MAX as usize);

/// One message in flight: who sent it, whom it is for, and the message.
/// `Id` serializes as its `u64`, so both addresses are sized on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<M> {
    pub src: Id,
    pub dst: Id,
    pub msg: M,
}

/// Why a frame could not be encoded or parsed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame payload of {len} bytes exceeds the limit of {max} bytes")]
    Oversized { len: u64, max: u64 },
    #[error("malformed frame payload: {0}")]
    Malformed(String),
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Outcome of looking at the front of a receive buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<M> {
    /// The buffer does not hold a whole frame yet; read more and retry.
    Incomplete,
    /// A whole frame: the envelope and how many buffer bytes it used.
    Frame(Envelope<M>, usize),
}

/// The payload length `envelope` encodes to, refused if over the limit.
/// Sizing first costs a walk of the message without its bytes, and saves
/// the copies of a growing buffer (a 64 KiB push fragment was copied about
/// three times) and any work on an oversized message.
fn sized<M: Serialize>(envelope: &Envelope<M>) -> Result<usize, FrameError> {
    let payload_bytes = postcard::experimental::serialized_size(envelope)
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    if payload_bytes > FRAME_PAYLOAD_BYTES_MAX {
        return Err(FrameError::Oversized {
            len: payload_bytes as u64,
            max: FRAME_PAYLOAD_BYTES_MAX as u64,
        });
    }
    Ok(payload_bytes)
}

/// Encodes one envelope as a complete frame (header and payload).
pub fn encode<M: Serialize>(envelope: &Envelope<M>) -> Result<Vec<u8>, FrameError> {
    let payload_bytes = sized(envelope)?;
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload_bytes);
    frame.extend_from_slice(&(payload_bytes as u32).to_be_bytes());
    let frame =
        postcard::to_extend(envelope, frame).map_err(|e| FrameError::Encode(e.to_string()))?;
    debug_assert_eq!(frame.len(), FRAME_HEADER_BYTES + payload_bytes);
    Ok(frame)
}

/// One encoded frame as the pieces to write in order: the header and the
/// message's bytes, where each large payload is a piece of its own that
/// shares the message's buffer instead of a copy (see [`encode_shared`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoded {
    pieces: Vec<bytes::Bytes>,
    len: usize,
}

impl Encoded {
    /// Bytes on the wire, header included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn pieces(&self) -> &[bytes::Bytes] {
        &self.pieces
    }

    /// The frame's bytes in one buffer (a copy; for tests and tools).
    pub fn to_vec(&self) -> Vec<u8> {
        self.pieces.concat()
    }
}

impl From<Vec<u8>> for Encoded {
    fn from(frame: Vec<u8>) -> Self {
        let len = frame.len();
        Encoded {
            pieces: vec![frame.into()],
            len,
        }
    }
}

/// A postcard output that copies small writes into the current piece and
/// takes a lent payload (see [`crate::payload::encoding_shared`]) as a
/// piece of its own.
struct PieceFlavor {
    current: Vec<u8>,
    pieces: Vec<bytes::Bytes>,
}

impl postcard::ser_flavors::Flavor for PieceFlavor {
    type Output = Vec<bytes::Bytes>;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() >= crate::payload::LENT_PAYLOAD_BYTES_MIN {
            if let Some(lent) = crate::payload::lent_payload(data) {
                if !self.current.is_empty() {
                    let done = std::mem::take(&mut self.current);
                    self.pieces.push(done.into());
                }
                self.pieces.push(lent);
                return Ok(());
            }
        }
        self.current.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.current.push(data);
        Ok(())
    }

    fn finalize(mut self) -> postcard::Result<Vec<bytes::Bytes>> {
        if !self.current.is_empty() {
            self.pieces.push(self.current.into());
        }
        Ok(self.pieces)
    }
}

/// [`encode`], with each payload of at least
/// [`crate::payload::LENT_PAYLOAD_BYTES_MIN`] shared rather than copied:
/// the same bytes on the wire, in pieces for a vectored write.
pub fn encode_shared<M: Serialize>(envelope: &Envelope<M>) -> Result<Encoded, FrameError> {
    let payload_bytes = sized(envelope)?;
    let len = FRAME_HEADER_BYTES + payload_bytes;
    // A message without a large payload is one piece, sized exactly so
    // that it becomes a `Bytes` without reallocating; one with a large
    // payload (or many fields) starts with room for what is copied.
    let first = len.min(FRAME_HEADER_BYTES + crate::payload::LENT_PAYLOAD_BYTES_MIN);
    let mut current = Vec::with_capacity(first);
    current.extend_from_slice(&(payload_bytes as u32).to_be_bytes());
    let flavor = PieceFlavor {
        current,
        pieces: Vec::new(),
    };
    let pieces = crate::payload::encoding_shared(|| {
        postcard::serialize_with_flavor(envelope, flavor)
            .map_err(|e| FrameError::Encode(e.to_string()))
    })?;
    debug_assert_eq!(pieces.iter().map(|p| p.len()).sum::<usize>(), len);
    Ok(Encoded { pieces, len })
}

/// Checks whether `buf` starts with a whole, acceptable frame, and parses it.
pub fn parse<M: DeserializeOwned>(buf: &[u8]) -> Result<Parsed<M>, FrameError> {
    let Some(payload_bytes) = check(buf)? else {
        return Ok(Parsed::Incomplete);
    };
    let payload = &buf[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + payload_bytes];
    let (envelope, rest) = postcard::take_from_bytes::<Envelope<M>>(payload)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        // A payload longer than its message means sender and receiver
        // disagree on the message type; decoding on would be guessing.
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes after the message",
            rest.len()
        )));
    }
    Ok(Parsed::Frame(envelope, FRAME_HEADER_BYTES + payload_bytes))
}

/// Takes the first whole frame off `buf` and parses it, lending the frame
/// to the payload decoder so that pushed data is shared, not copied (see
/// [`crate::payload::decoding_from`]). `None` if more bytes are needed.
/// The frame's bytes are consumed even when it is malformed.
pub fn take<M: DeserializeOwned>(
    buf: &mut bytes::BytesMut,
) -> Result<Option<Envelope<M>>, FrameError> {
    let Some(payload_bytes) = check(buf)? else {
        return Ok(None);
    };
    let frame = buf.split_to(FRAME_HEADER_BYTES + payload_bytes).freeze();
    crate::payload::decoding_from(&frame, || match parse(&frame)? {
        Parsed::Frame(envelope, _) => Ok(Some(envelope)),
        Parsed::Incomplete => unreachable!("a checked frame is whole"),
    })
}

/// The check half of parsing: the payload length if a whole frame is
/// buffered, `None` if more bytes are needed, an error if the header is
/// unacceptable (known from the first four bytes alone).
pub fn check(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(header) = buf.get(..FRAME_HEADER_BYTES) else {
        return Ok(None);
    };
    let payload_bytes =
        u32::from_be_bytes(header.try_into().expect("header is four bytes")) as usize;
    if payload_bytes > FRAME_PAYLOAD_BYTES_MAX {
        return Err(FrameError::Oversized {
            len: payload_bytes as u64,
            max: FRAME_PAYLOAD_BYTES_MAX as u64,
        });
    }
    if payload_bytes == 0 {
        // Every envelope encodes to at least two bytes (two ids).
        return Err(FrameError::Malformed("empty frame".into()));
    }
    if buf.len() < FRAME_HEADER_BYTES + payload_bytes {
        return Ok(None);
    }
    Ok(Some(payload_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    enum Msg {
        Ping(u64),
        Data {
            seq: u32,
            bytes: crate::payload::Bytes,
        },
    }

    fn envelope(msg: Msg) -> Envelope<Msg> {
        Envelope {
            src: Id::from(1),
            dst: Id::from(2),
            msg,
        }
    }

    #[test]
    fn take_consumes_frame_by_frame() {
        let a = envelope(Msg::Data {
            seq: 1,
            bytes: vec![5u8; 5000].into(),
        });
        let b = envelope(Msg::Ping(2));
        let mut buf = bytes::BytesMut::new();
        buf.extend_from_slice(&encode(&a).unwrap());
        buf.extend_from_slice(&encode(&b).unwrap()[..3]);
        assert_eq!(take::<Msg>(&mut buf).unwrap(), Some(a));
        assert_eq!(take::<Msg>(&mut buf).unwrap(), None, "b is not whole yet");
        buf.extend_from_slice(&encode(&b).unwrap()[3..]);
        assert_eq!(take::<Msg>(&mut buf).unwrap(), Some(b));
        assert!(buf.is_empty());
        // A malformed frame is consumed with its error.
        let mut bad = encode(&envelope(Msg::Ping(3))).unwrap();
        bad[4] = 0xff;
        buf.extend_from_slice(&bad);
        assert!(take::<Msg>(&mut buf).is_err());
        assert!(buf.is_empty());
    }

    #[test]
    fn round_trip() {
        let e = envelope(Msg::Data {
            seq: 7,
            bytes: vec![1u8, 2, 3].into(),
        });
        let frame = encode(&e).unwrap();
        assert_eq!(frame[..4], ((frame.len() - 4) as u32).to_be_bytes());
        assert_eq!(parse::<Msg>(&frame).unwrap(), Parsed::Frame(e, frame.len()));
    }

    #[test]
    fn two_frames_back_to_back_parse_one_at_a_time() {
        let a = envelope(Msg::Ping(1));
        let b = envelope(Msg::Ping(u64::MAX));
        let mut buf = encode(&a).unwrap();
        let a_bytes = buf.len();
        buf.extend(encode(&b).unwrap());
        assert_eq!(parse::<Msg>(&buf).unwrap(), Parsed::Frame(a, a_bytes));
        assert_eq!(
            parse::<Msg>(&buf[a_bytes..]).unwrap(),
            Parsed::Frame(b, buf.len() - a_bytes)
        );
    }

    #[test]
    fn every_truncation_is_incomplete_not_an_error() {
        let frame = encode(&envelope(Msg::Data {
            seq: 1,
            bytes: vec![9u8; 300].into(),
        }))
        .unwrap();
        for cut in 0..frame.len() {
            assert_eq!(
                parse::<Msg>(&frame[..cut]).unwrap(),
                Parsed::Incomplete,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn oversized_header_is_rejected_before_the_payload_arrives() {
        let header = ((FRAME_PAYLOAD_BYTES_MAX + 1) as u32).to_be_bytes();
        assert!(matches!(
            parse::<Msg>(&header),
            Err(FrameError::Oversized { .. })
        ));
        assert!(matches!(
            parse::<Msg>(&u32::MAX.to_be_bytes()),
            Err(FrameError::Oversized { .. })
        ));
    }

    #[test]
    fn oversized_message_is_not_encoded() {
        let bytes = vec![0u8; FRAME_PAYLOAD_BYTES_MAX].into();
        assert!(matches!(
            encode(&envelope(Msg::Data { seq: 0, bytes })),
            Err(FrameError::Oversized { .. })
        ));
    }

    #[test]
    fn largest_data_fragment_fits_in_a_frame() {
        let bytes = vec![0u8; 16 * 1024 * 1024].into();
        let frame = encode(&envelope(Msg::Data {
            seq: u32::MAX,
            bytes,
        }))
        .unwrap();
        assert!(frame.len() <= FRAME_BYTES_MAX);
    }

    #[test]
    fn garbage_payload_is_malformed() {
        // A variant index no `Msg` has.
        let mut frame = vec![0, 0, 0, 3, 1, 2, 200];
        assert!(matches!(
            parse::<Msg>(&frame),
            Err(FrameError::Malformed(_))
        ));
        // HTTP spoken at a Leasehold port: a huge announced length.
        assert!(matches!(
            parse::<Msg>(b"GET / HTTP/1.1\r\n\r\n"),
            Err(FrameError::Oversized { .. })
        ));
        // Valid message followed by junk inside the same frame.
        let good = encode(&envelope(Msg::Ping(5))).unwrap();
        frame = good.clone();
        frame.push(0xff);
        let len = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            parse::<Msg>(&frame),
            Err(FrameError::Malformed(_))
        ));
        // A byte string claiming more bytes than the frame holds.
        let lying = [0, 0, 0, 6, 1, 2, 1, 1, 0xff, 0x7f];
        assert!(matches!(
            parse::<Msg>(&lying),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn empty_frame_is_malformed() {
        assert!(matches!(
            parse::<Msg>(&[0, 0, 0, 0]),
            Err(FrameError::Malformed(_))
        ));
    }
}
