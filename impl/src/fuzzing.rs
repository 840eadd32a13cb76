//! The checks behind the fuzz targets in `fuzz/` and their corpus replay
//! in `cargo test` (`impl/tests/fuzz_corpus.rs`), so that both run the same
//! code. Each takes arbitrary bytes, hands them to one of the decoders that
//! read what a peer, a disk or an operator gives a node, and panics only if
//! the decoder did, or broke a property stated here (mostly: what decodes
//! encodes again to something that decodes to the same). Not an API.

use std::path::Path;

use crate::config::{ClusterConfig, Role};
use crate::frame::{self, Envelope, FrameError, Parsed, FRAME_HEADER_BYTES};
use crate::host::HostConfig;
use crate::nodes::{self, RealMsg};

pub use crate::filestore::fuzzing::{chunk_meta, chunk_meta_in_store};

/// Piece sizes a stream of frames is fed to the decoder in: a byte at a
/// time, a header's worth, and all at once.
const STREAM_STEPS: [usize; 3] = [1, FRAME_HEADER_BYTES, usize::MAX];

/// `data` as what a peer sends: frames parsed off the front of a buffer
/// one after another (`frame::check`, `frame::parse`), and the same bytes
/// arriving piece by piece through the receive path (`frame::take`), which
/// must agree with them. Every frame that parses encodes again to one that
/// parses to the same envelope.
pub fn frame(data: &[u8]) {
    let mut whole = Vec::new();
    let mut rest = data;
    let failed = loop {
        let checked = frame::check(rest);
        match frame::parse::<RealMsg>(rest) {
            Ok(Parsed::Frame(envelope, used)) => {
                assert!(matches!(checked, Ok(Some(n)) if FRAME_HEADER_BYTES + n == used));
                frame_round_trip(&envelope);
                whole.push(envelope);
                rest = &rest[used..];
            }
            Ok(Parsed::Incomplete) => {
                assert!(matches!(checked, Ok(None)));
                break false;
            }
            Err(e) => {
                // The header decides Oversized; only a whole frame can be
                // Malformed (an empty one is known from its header).
                match (&checked, &e) {
                    (Err(_), _) => {}
                    (Ok(Some(_)), FrameError::Malformed(_)) => {}
                    _ => panic!("check said {checked:?}, parse {e}"),
                }
                let _ = e.to_string();
                break true;
            }
        }
    };
    for step in STREAM_STEPS {
        let mut buf = bytes::BytesMut::new();
        let mut streamed = Vec::new();
        let mut streamed_failed = false;
        'feed: for piece in data.chunks(step.min(data.len().max(1))) {
            buf.extend_from_slice(piece);
            loop {
                match frame::take::<RealMsg>(&mut buf) {
                    Ok(Some(envelope)) => streamed.push(envelope),
                    Ok(None) => break,
                    Err(_) => {
                        // The host closes the connection here.
                        streamed_failed = true;
                        break 'feed;
                    }
                }
            }
        }
        assert_eq!(streamed, whole, "fed in pieces of {step} bytes");
        assert_eq!(streamed_failed, failed, "fed in pieces of {step} bytes");
    }
}

fn frame_round_trip(envelope: &Envelope<RealMsg>) {
    let _ = format!("{:?}", envelope.msg);
    let encoded = frame::encode(envelope).expect("a frame that parsed encodes");
    match frame::parse::<RealMsg>(&encoded) {
        Ok(Parsed::Frame(again, used)) => {
            assert_eq!(used, encoded.len());
            assert_eq!(&again, envelope);
        }
        other => panic!("an encoded frame parses back, not as {other:?}"),
    }
}

/// `data` as one message, decoded as the receive path does (payloads
/// shared with the frame they arrived in) and as a plain copy; both agree.
/// A decoded message shows itself for the log, and its own encoding is no
/// longer than the bytes it was decoded from and decodes to the same.
pub fn message(data: &[u8]) {
    let plain = postcard::take_from_bytes::<RealMsg>(data).map(|(m, rest)| (m, rest.len()));
    let arrived = bytes::Bytes::copy_from_slice(data);
    let shared = crate::payload::decoding_from(&arrived, || {
        postcard::take_from_bytes::<RealMsg>(&arrived).map(|(m, rest)| (m, rest.len()))
    });
    match (plain, shared) {
        (Ok((msg, rest)), Ok(shared)) => {
            assert_eq!((&msg, rest), (&shared.0, shared.1));
            let _ = (format!("{msg:?}"), msg.act());
            let encoded = postcard::to_allocvec(&msg).expect("a decoded message encodes");
            assert!(encoded.len() <= data.len() - rest);
            let (again, tail) =
                postcard::take_from_bytes::<RealMsg>(&encoded).expect("an encoded message decodes");
            assert!(tail.is_empty());
            assert_eq!(again, msg);
        }
        (Err(_), Err(_)) => {}
        (plain, shared) => panic!("decoders disagree: {plain:?}, {shared:?}"),
    }
}

/// `data` as a cluster.toml (not UTF-8: with replacement characters, as
/// `ClusterConfig::load` refuses it outright). A config that loads has a
/// host config for every node, gives the protocol's parameters or a
/// reason why not, and writes out as TOML that loads as the same config.
pub fn cluster_toml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let base = Path::new("/etc/leasehold");
    let config = match ClusterConfig::parse(&text, base) {
        Ok(config) => config,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    if let Err(e) = nodes::protocol_cfg(&config) {
        let _ = e.to_string();
    }
    for node in &config.nodes {
        assert!(node.data_dir.as_ref().is_none_or(|d| d.is_absolute()));
        // A server has a host to run in; a client place has none (a
        // client runs under an id of its own, listening nowhere).
        let host = HostConfig::from_cluster(&config, node.actor_id());
        assert_eq!(host.is_ok(), node.role != Role::Client, "{node:?}");
        let _ = nodes::position(node);
    }
    let written = config.to_toml();
    match ClusterConfig::parse(&written, base) {
        Ok(again) => assert_eq!(again, config, "written as:\n{written}"),
        Err(e) => panic!("a written config loads again: {e}\n{written}"),
    }
}

/// `data` as a trace file of Leasehold's own (`leasehold validate` reads
/// what a killed node left): it parses or is refused with an error, never
/// a panic. A trace that parses has its commits within its steps, and its
/// records written out again parse to the same header and steps.
pub fn trace(data: &[u8]) {
    let path = Path::new("fuzz.trace");
    let Ok(t) = crate::trace::parse_trace(path, data).map_err(|e| e.to_string()) else {
        return;
    };
    assert!(t.committed <= t.steps.len());
    let _ = t.steps.iter().map(|s| format!("{:?}", s.input)).count();
    let bytes = crate::validate::encode_records(&crate::validate::records_of(&t))
        .expect("a trace that parsed encodes");
    let again = crate::trace::parse_trace(path, &bytes).expect("written records parse");
    assert_eq!(again.header, t.header);
    assert_eq!(again.steps, t.steps);
    assert!(!again.torn_tail);
}

/// `data` as a foreign trace file (JSON lines, `validate --foreign`): it
/// parses or is refused with an error, never a panic; a parsed trace has
/// one recorded list of mutations (or none) per step, every step counted
/// as carried out.
pub fn foreign_trace(data: &[u8]) {
    let path = Path::new("fuzz.jsonl");
    match crate::trace::parse_foreign(path, data) {
        Ok(t) => {
            assert_eq!(t.applied.len(), t.trace.steps.len());
            assert_eq!(t.trace.committed, t.trace.steps.len());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `data` as a node's storage file (`actor-<id>.storage`, read at every
/// start): a master's durable state decodes or is refused with an error;
/// what decodes saves again as bytes that decode to the same.
pub fn storage(data: &[u8]) {
    use leasehold_model::master::MasterDurable;
    match crate::host::decode_storage::<MasterDurable>(data) {
        Ok(d) => {
            let payload = postcard::to_allocvec(&d).expect("a decoded state encodes");
            let again = crate::host::decode_storage::<MasterDurable>(&crate::host::encode_storage(
                &payload,
            ))
            .expect("saved bytes decode");
            assert_eq!(again, d);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `data` as the first bytes of a connection (the hello, issue #15): how
/// the reader reads its opening (`host::opening`). A decision made on a
/// prefix is the decision on every longer input (a reader decides as soon
/// as it can, and more bytes must not change its mind), and a whole hello
/// whose secret is text is the one `host::hello` writes for that secret
/// (and client id, if it names one).
pub fn hello(data: &[u8]) {
    use crate::host::{opening, Opening, HELLO_HEADER_BYTES};
    let whole = opening(data);
    for cut in 0..=data.len() {
        match opening(&data[..cut]) {
            Opening::NeedMore => {}
            decided => {
                assert_eq!(decided, whole, "decided at {cut} bytes");
                break;
            }
        }
    }
    match whole {
        Opening::Hello {
            len,
            secret,
            reply_to,
        } => {
            assert!(HELLO_HEADER_BYTES <= secret && secret <= len && len <= data.len());
            if let Ok(text) = std::str::from_utf8(&data[secret..len]) {
                let written = crate::host::hello(Some(text), reply_to);
                assert_eq!(written, &data[..len]);
            }
        }
        Opening::Bad { why, .. } => assert!(!why.is_empty()),
        Opening::NeedMore | Opening::Frames => {}
    }
}
