//! Golden frames: the wire format that docs/tcp.md specifies, byte for
//! byte. A change here is a protocol change for every other implementation.

use leasehold::frame::{self, Envelope, Parsed};
use leasehold::nodes::RealMsg;
use leasehold::Bytes;
use leasehold_model::msg::{Failure, Msg, MutationKind};
use leasehold_model::types::{DataId, Stamp, StoreError};
use stateright::actor::Id;

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
    // PushData is variant 18: data id, fragment, last, bytes (length +
    // raw), chain (length + ids), client.
    let msg = Msg::PushData {
        data: DataId { client: 4, seq: 1 },
        fragment: 0,
        last: true,
        bytes: Bytes::from(&b"abc"[..]),
        chain: vec![Id::from(2), Id::from(3)],
        client: Id::from(4),
    };
    assert_eq!(
        frame_of(4, 1, msg),
        [0, 0, 0, 15, 4, 1, 18, 4, 1, 0, 1, 3, b'a', b'b', b'c', 2, 2, 3, 4]
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
