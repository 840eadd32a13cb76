//! Golden frames: the wire format that docs/tcp.md specifies, byte for
//! byte. A change here is a protocol change for every other implementation.

use leasehold::frame::{self, Envelope, Parsed};
use leasehold::nodes::RealMsg;
use leasehold::Bytes;
use leasehold_model::msg::{Failure, Msg, MutationKind};
use leasehold_model::types::{DataId, Stamp, StoreError};
use stateright::actor::Id;

#[path = "common/messages.rs"]
mod messages;
use messages::every_message;

fn frame_of(src: usize, dst: usize, msg: RealMsg) -> Vec<u8> {
    let bytes = frame::encode(&Envelope {
        src: Id::from(src),
        dst: Id::from(dst),
        msg: msg.clone(),
    })
    .unwrap();
    match frame::parse::<RealMsg>(&bytes).unwrap() {
        Parsed::Frame(env, used) => {
            assert_eq!(used, bytes.len());
            assert_eq!(env.msg, msg);
        }
        Parsed::Incomplete => panic!("a whole frame"),
    }
    bytes
}

#[test]
fn record_append_request() {
    // Mutate is variant 20; MutationKind::Append is 0; 300 = varint ac 02.
    let msg = Msg::Mutate {
        chunk: 7,
        epoch: 3,
        kind: MutationKind::Append,
        data: DataId {
            client: 4,
            seq: 300,
        },
    };
    assert_eq!(
        frame_of(4, 1, msg),
        [0, 0, 0, 9, 4, 1, 20, 7, 3, 0, 4, 0xac, 0x02]
    );
}

#[test]
fn pushed_fragment_carries_raw_bytes() {
    // PushData is variant 18: data id, chunk, fragment, last, bytes
    // (length + raw), chain (length + ids), client.
    let msg = Msg::PushData {
        data: DataId { client: 4, seq: 1 },
        chunk: 7,
        fragment: 0,
        last: true,
        bytes: Bytes::from(&b"abc"[..]),
        chain: vec![Id::from(2), Id::from(3)],
        client: Id::from(4),
    };
    assert_eq!(
        frame_of(4, 1, msg),
        [0, 0, 0, 16, 4, 1, 18, 4, 1, 7, 0, 1, 3, b'a', b'b', b'c', 2, 2, 3, 4]
    );
}

#[test]
fn failure_with_a_store_error() {
    // MutationFailed is variant 25; Failure::Store is 9; Corrupt is 2.
    let msg = Msg::MutationFailed {
        chunk: 7,
        data: DataId { client: 4, seq: 1 },
        reason: Failure::Store(StoreError::Corrupt),
    };
    assert_eq!(frame_of(2, 4, msg), [0, 0, 0, 8, 2, 4, 25, 7, 4, 1, 9, 2]);
}

#[test]
fn gap_report() {
    // ApplyGap is variant 28, last, so every earlier index is unchanged:
    // chunk, version, from (epoch, serial), until (epoch, serial).
    let msg = Msg::ApplyGap {
        chunk: 7,
        version: 2,
        from: Stamp {
            epoch: 3,
            serial: 5,
        },
        until: Stamp {
            epoch: 3,
            serial: 8,
        },
    };
    assert_eq!(
        frame_of(2, 1, msg),
        [0, 0, 0, 9, 2, 1, 28, 7, 2, 3, 5, 3, 8]
    );
}

/// Rows of docs/tcp.md's message table: (index, name, field names).
fn documented_messages() -> Vec<(u64, String, Vec<String>)> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/tcp.md")).unwrap();
    let table = doc
        .split("### Messages")
        .nth(1)
        .expect("docs/tcp.md has a Messages section");
    let mut rows = vec![];
    for line in table.lines().skip_while(|l| !l.starts_with("| 0 |")) {
        if !line.starts_with("| ") {
            break;
        }
        let cells: Vec<&str> = line.split(" | ").collect();
        let index: u64 = cells[0].trim_start_matches("| ").parse().unwrap();
        let name = cells[1].split('`').nth(1).unwrap().to_string();
        let fields = cells[2]
            .split('`')
            .nth(1)
            .unwrap_or("")
            .split(", ")
            .filter_map(|piece| {
                let (name, _) = piece.split_once(": ")?;
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    .then(|| name.to_string())
            })
            .collect();
        rows.push((index, name, fields));
    }
    rows
}

/// docs/tcp.md's message table is the wire format: every message, at its
/// postcard variant index, with its fields in the order they are encoded.
/// Another implementation can be written from it, and a change to `Msg`
/// that the table does not follow fails here.
#[test]
fn docs_tcp_lists_every_message_at_its_wire_index_with_its_fields_in_order() {
    let mut actual: Vec<(u64, String, Vec<String>)> = every_message()
        .iter()
        .map(|(_, m)| {
            let encoded = postcard::to_allocvec(m).unwrap();
            assert!(encoded[0] < 0x80, "a one-byte variant index");
            let (name, fields) = match serde_json::to_value(m).unwrap() {
                serde_json::Value::String(name) => (name, vec![]),
                serde_json::Value::Object(o) => {
                    let (name, body) = o.into_iter().next().unwrap();
                    let fields = match body {
                        serde_json::Value::Object(f) => f.keys().cloned().collect(),
                        _ => vec![],
                    };
                    (name, fields)
                }
                other => panic!("{other}"),
            };
            (u64::from(encoded[0]), name, fields)
        })
        .collect();
    // Several samples of some messages: one row each.
    actual.sort();
    actual.dedup();
    let documented = documented_messages();
    assert_eq!(
        actual.len(),
        documented.len(),
        "docs/tcp.md lists {} messages, Msg has {}",
        documented.len(),
        actual.len()
    );
    for (a, d) in actual.iter().zip(&documented) {
        assert_eq!(a, d, "docs/tcp.md's row for message {} differs", a.0);
    }
    // Every variant is sampled once: indices 0..n with no gap.
    assert!(actual.iter().enumerate().all(|(i, a)| a.0 == i as u64));
}

/// The frames a node sends (`encode_shared`, whose large payloads are
/// pieces shared with the message) are, byte for byte, the frames the
/// format specifies (`encode`), for every message and for payloads on
/// both sides of the sharing threshold.
#[test]
fn shared_frames_are_the_specified_bytes() {
    let envelope = |msg: RealMsg| Envelope {
        src: Id::from(1),
        dst: Id::from(2),
        msg,
    };
    for (name, msg) in every_message() {
        let e = envelope(msg);
        let shared = frame::encode_shared(&e).unwrap();
        assert_eq!(shared.to_vec(), frame::encode(&e).unwrap(), "{name}");
        assert_eq!(shared.len(), shared.to_vec().len(), "{name}");
    }
    let data = DataId { client: 4, seq: 9 };
    let threshold = leasehold::payload::LENT_PAYLOAD_BYTES_MIN;
    for size in [threshold - 1, threshold, 64 * 1024] {
        let payload = Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>());
        let e = envelope(Msg::PushData {
            data,
            chunk: 0,
            fragment: 3,
            last: false,
            bytes: payload.clone(),
            chain: vec![Id::from(3)],
            client: Id::from(4),
        });
        let shared = frame::encode_shared(&e).unwrap();
        assert_eq!(shared.to_vec(), frame::encode(&e).unwrap(), "{size} bytes");
        // At the threshold and above, the payload goes out as the buffer
        // it is held in, not a copy.
        let lent = shared
            .pieces()
            .iter()
            .any(|p| p.as_ptr() == payload.as_slice().as_ptr() && p.len() == size);
        assert_eq!(lent, size >= threshold, "{size} bytes");
    }
}
