//! One of every message, shared by the tests that need the whole
//! vocabulary: the fuzz corpora's seeds (fuzz_corpus.rs) and the check of
//! docs/tcp.md's message table against the wire (wire.rs).

use leasehold::nodes::RealMsg;
use leasehold::Bytes;
use leasehold_model::msg::{
    ApplyOp, ChunkIndex, ClientOp, ClonePart, Failure, LeaseInfo, Msg, MutationKind, OpResult,
};
use leasehold_model::types::{ClonePiece, DataId, Stamp, StoreError};
use stateright::actor::Id;
use std::collections::BTreeSet;

/// One of every message a node can receive, named by variant. The match
/// in `variant` has no wildcard: a new message fails to compile here until
/// it has a seed.
pub fn every_message() -> Vec<(String, RealMsg)> {
    fn variant(m: &RealMsg) -> &'static str {
        match m {
            Msg::Submit { .. } => "Submit",
            Msg::Done { .. } => "Done",
            Msg::OpenFile { .. } => "OpenFile",
            Msg::FileOpened { .. } => "FileOpened",
            Msg::FindLease { .. } => "FindLease",
            Msg::LeaseHolder { .. } => "LeaseHolder",
            Msg::Locate { .. } => "Locate",
            Msg::Located { .. } => "Located",
            Msg::NoLease { .. } => "NoLease",
            Msg::LeaseOffer { .. } => "LeaseOffer",
            Msg::NewVersion { .. } => "NewVersion",
            Msg::VersionAck { .. } => "VersionAck",
            Msg::LeaseRequest { .. } => "LeaseRequest",
            Msg::LeaseGrant { .. } => "LeaseGrant",
            Msg::RevokeLease { .. } => "RevokeLease",
            Msg::LeaseRevoked { .. } => "LeaseRevoked",
            Msg::ChunkReport { .. } => "ChunkReport",
            Msg::ReportRequest => "ReportRequest",
            Msg::PushData { .. } => "PushData",
            Msg::DataPushed { .. } => "DataPushed",
            Msg::Mutate { .. } => "Mutate",
            Msg::Apply { .. } => "Apply",
            Msg::Applied { .. } => "Applied",
            Msg::MutationDone { .. } => "MutationDone",
            Msg::ChunkFull { .. } => "ChunkFull",
            Msg::MutationFailed { .. } => "MutationFailed",
            Msg::Read { .. } => "Read",
            Msg::ReadReply { .. } => "ReadReply",
            Msg::ApplyGap { .. } => "ApplyGap",
            Msg::ReplicaFailed { .. } => "ReplicaFailed",
            Msg::PushRefused { .. } => "PushRefused",
            Msg::CloneChunk { .. } => "CloneChunk",
            Msg::FetchChunk { .. } => "FetchChunk",
            Msg::ChunkPart { .. } => "ChunkPart",
            Msg::HeartBeat { .. } => "HeartBeat",
            Msg::RenameFile { .. } => "RenameFile",
            Msg::FileRenamed { .. } => "FileRenamed",
            Msg::DeleteReplica { .. } => "DeleteReplica",
            Msg::SnapshotFile { .. } => "SnapshotFile",
            Msg::SnapshotTaken { .. } => "SnapshotTaken",
            Msg::CopyChunk { .. } => "CopyChunk",
            Msg::ChunkCopied { .. } => "ChunkCopied",
            Msg::ApplyBatch { .. } => "ApplyBatch",
        }
    }
    const VARIANTS: usize = 43;
    let data = DataId {
        client: 4,
        seq: 300,
    };
    let stamp = Stamp {
        epoch: 3,
        serial: 1 << 40,
    };
    let info = LeaseInfo {
        file: 2,
        index: 1,
        chunk: 7,
        version: 5,
        epoch: 3,
        primary: Some(Id::from(1)),
        secondaries: vec![Id::from(2), Id::from(3)],
    };
    let bytes = |n: usize| Bytes::from((0..n).map(|i| i as u8).collect::<Vec<_>>());
    let msgs: Vec<RealMsg> = vec![
        Msg::Submit {
            op_id: 8589935592,
            op: ClientOp::Open {
                path: "/logs/a".into(),
                create: true,
            },
        },
        Msg::Submit {
            op_id: 2,
            op: ClientOp::Append {
                file: 2,
                data: bytes(40),
            },
        },
        Msg::Submit {
            op_id: 8589937592,
            op: ClientOp::Write {
                file: 2,
                index: 0,
                offset: 100,
                data: bytes(3),
            },
        },
        Msg::Submit {
            op_id: 4,
            op: ClientOp::Read {
                file: 2,
                index: 1,
                offset: 0,
                len: u64::MAX,
            },
        },
        Msg::Submit {
            op_id: 8589939592,
            op: ClientOp::Stat { file: 2, index: 0 },
        },
        Msg::Done {
            op_id: 6,
            result: OpResult::Opened { file: 2, chunks: 3 },
        },
        Msg::Done {
            op_id: 8589941592,
            result: OpResult::Mutated {
                chunk: 7,
                index: 1,
                offset: 64,
                stamp,
            },
        },
        Msg::Done {
            op_id: 8,
            result: OpResult::Read { data: bytes(9) },
        },
        Msg::Done {
            op_id: 8589943592,
            result: OpResult::Stat {
                info: info.clone(),
                chunks: 2,
            },
        },
        Msg::Done {
            op_id: 10,
            result: OpResult::Failed(Failure::Store(StoreError::Io("disk on fire".into()))),
        },
        Msg::OpenFile {
            path: "/a/b.log".into(),
            create: false,
        },
        Msg::FileOpened {
            path: "/a/b.log".into(),
            file: Ok(2),
            chunks: 1,
        },
        Msg::FileOpened {
            path: String::new(),
            file: Err(Failure::BadPath),
            chunks: 0,
        },
        Msg::FindLease {
            file: 2,
            index: ChunkIndex::Last,
        },
        Msg::FindLease {
            file: 2,
            index: ChunkIndex::At(4),
        },
        Msg::LeaseHolder {
            info: info.clone(),
            chunks: 2,
        },
        Msg::Locate { file: 2, index: 0 },
        Msg::Located {
            info: Some(info.clone()),
            chunks: 2,
        },
        Msg::Located {
            info: None,
            chunks: 0,
        },
        Msg::NoLease {
            file: 2,
            index: ChunkIndex::Last,
            reason: Failure::NoLeaseNow,
        },
        Msg::LeaseOffer {
            chunk: 7,
            epoch: 3,
            version: 5,
            incarnation: 1,
        },
        Msg::NewVersion {
            chunk: 7,
            version: 5,
            incarnation: 2,
        },
        Msg::VersionAck {
            chunk: 7,
            version: 5,
        },
        Msg::LeaseRequest { chunk: 7, epoch: 3 },
        Msg::LeaseGrant {
            chunk: 7,
            epoch: 3,
            extension: 2,
            version: 5,
            secondaries: vec![Id::from(2)],
        },
        Msg::RevokeLease { chunk: 7, epoch: 3 },
        Msg::LeaseRevoked { chunk: 7, epoch: 3 },
        Msg::ChunkReport {
            incarnation: 1,
            chunks: vec![(7, 5), (u64::MAX, 1)],
        },
        Msg::ReportRequest,
        Msg::PushData {
            data,
            chunk: 7,
            fragment: 1,
            last: true,
            bytes: bytes(100),
            chain: vec![Id::from(2), Id::from(3)],
            client: Id::from(4),
        },
        Msg::DataPushed { data },
        Msg::Mutate {
            chunk: 7,
            epoch: 3,
            kind: MutationKind::Append,
            data,
        },
        Msg::Mutate {
            chunk: 7,
            epoch: 3,
            kind: MutationKind::Write { offset: 65536 },
            data,
        },
        Msg::Apply {
            chunk: 7,
            version: 5,
            stamp,
            op: ApplyOp::WriteAt { offset: 10, data },
        },
        Msg::Apply {
            chunk: 7,
            version: 5,
            stamp,
            op: ApplyOp::PadTo { end: 1 << 26 },
        },
        Msg::Apply {
            chunk: 7,
            version: 5,
            stamp,
            op: ApplyOp::Skip,
        },
        Msg::Applied {
            chunk: 7,
            stamp,
            result: Ok(()),
        },
        Msg::Applied {
            chunk: 7,
            stamp,
            result: Err(Failure::StaleReplica),
        },
        Msg::MutationDone {
            chunk: 7,
            data,
            offset: 128,
            stamp,
        },
        Msg::ChunkFull { chunk: 7, data },
        Msg::MutationFailed {
            chunk: 7,
            data,
            reason: Failure::Store(StoreError::Corrupt),
        },
        Msg::Read {
            chunk: 7,
            version: 5,
            offset: 0,
            len: 4096,
        },
        Msg::ReadReply {
            chunk: 7,
            offset: 0,
            result: Ok(bytes(17)),
        },
        Msg::ReadReply {
            chunk: 7,
            offset: 0,
            result: Err(Failure::NotFound),
        },
        Msg::ApplyGap {
            chunk: 7,
            version: 5,
            from: stamp,
            until: Stamp {
                epoch: 3,
                serial: (1 << 40) + 3,
            },
        },
        Msg::ReplicaFailed {
            chunk: 7,
            version: 5,
            error: StoreError::NoSpace,
        },
        Msg::PushRefused {
            data,
            reason: Failure::Busy,
        },
        Msg::CloneChunk {
            chunk: 7,
            version: 6,
            source: Id::from(1),
            incarnation: 2,
        },
        Msg::FetchChunk {
            chunk: 7,
            version: 6,
            from: 4 << 20,
        },
        Msg::ChunkPart {
            chunk: 7,
            version: 6,
            from: 0,
            part: Ok(ClonePart {
                applied: stamp,
                pieces: vec![ClonePiece::Bytes(bytes(33))],
                next: Some(33),
            }),
        },
        Msg::ChunkPart {
            chunk: 7,
            version: 6,
            from: 33,
            part: Err(Failure::StaleReplica),
        },
        Msg::HeartBeat {
            incarnation: 3,
            extensions: vec![(7, 3, 2), (9, 1, 1)],
        },
        Msg::RenameFile {
            from: "/logs/a".into(),
            to: "/logs/b".into(),
        },
        Msg::FileRenamed {
            from: "/logs/a".into(),
            to: "/logs/b".into(),
            file: Err(Failure::Exists),
        },
        Msg::DeleteReplica {
            chunk: 7,
            version: 4,
        },
        Msg::SnapshotFile {
            from: "/logs/a".into(),
            to: "/logs/snap".into(),
        },
        Msg::SnapshotTaken {
            from: "/logs/a".into(),
            to: "/logs/snap".into(),
            file: Ok(3),
        },
        Msg::CopyChunk {
            chunk: 7,
            to: 9,
            version: 4,
            incarnation: 1,
        },
        Msg::ChunkCopied {
            chunk: 9,
            version: 4,
        },
        Msg::ApplyBatch {
            chunk: 7,
            version: 5,
            applies: vec![
                (stamp, ApplyOp::WriteAt { offset: 64, data }),
                (
                    Stamp {
                        serial: stamp.serial + 1,
                        ..stamp
                    },
                    ApplyOp::PadTo { end: 1 << 26 },
                ),
            ],
        },
    ];
    let names: BTreeSet<&str> = msgs.iter().map(variant).collect();
    assert_eq!(names.len(), VARIANTS, "a seed for every message");
    msgs.into_iter()
        .enumerate()
        .map(|(i, m)| (format!("{}-{i}", variant(&m)), m))
        .collect()
}
