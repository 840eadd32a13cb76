//! The fuzz corpora (`fuzz/corpus/<target>/`) replayed through the checks
//! the fuzz targets run (`leasehold::fuzzing`), without a fuzzing engine:
//! every input the fuzzer kept is decoded again by every `cargo test`, on
//! stable. The seeds the corpora grew from are checked here too, and
//! `write_seeds` (ignored; `cargo test -p leasehold --test fuzz_corpus --
//! --ignored`) writes them into the corpora.

use leasehold::config::{ClusterConfig, Leases};
use leasehold::filestore::{Durability, FileStore};
use leasehold::frame::{self, Envelope};
use leasehold::fuzzing;
use leasehold::host::ConnLimits;
use leasehold::nodes::RealMsg;
use leasehold::Bytes;
use leasehold_model::msg::{
    ApplyOp, ChunkIndex, ClientOp, ClonePart, Failure, LeaseInfo, Msg, MutationKind, OpResult,
};
use leasehold_model::types::{ChunkStore, ClonePiece, DataId, Stamp, StoreError};
use stateright::actor::Id;
use std::collections::BTreeSet;
use std::fs;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

const TARGETS: [&str; 4] = ["frame", "message", "chunk_meta", "cluster_toml"];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Runs `check` on every file of `target`'s corpus, naming the file that
/// fails. Returns how many there were.
fn replay(target: &str, mut check: impl FnMut(&[u8])) -> usize {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    for path in &files {
        let data = fs::read(path).unwrap();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
            eprintln!("corpus file {} fails its check", path.display());
            resume_unwind(panic);
        }
    }
    files.len()
}

/// Replays `target`'s corpus through its check.
fn replay_corpus(target: &str) {
    let files = replay(target, check_of(target));
    assert_replayed(target, files);
}

fn assert_replayed(target: &str, files: usize) {
    // The seeds alone are more than this: an empty or lost corpus is a
    // failure, not a pass.
    assert!(files >= 5, "{target}: only {files} corpus files");
}

#[test]
fn frame_corpus() {
    replay_corpus("frame");
}

#[test]
fn message_corpus() {
    replay_corpus("message");
}

#[test]
fn chunk_meta_corpus() {
    replay_corpus("chunk_meta");
}

/// The `.meta` corpus once more, through a store opened over each file: the
/// load at open, reads checked against the loaded checksums, and a write.
#[test]
fn chunk_meta_corpus_in_a_store() {
    let files = replay("chunk_meta", |data| {
        let dir = tempfile::tempdir().unwrap();
        fuzzing::chunk_meta_in_store(data, dir.path());
    });
    assert_replayed("chunk_meta", files);
}

#[test]
fn cluster_toml_corpus() {
    replay_corpus("cluster_toml");
}

#[test]
fn seeds_pass_the_checks() {
    for (target, seeds) in seeds() {
        for (name, data) in seeds {
            if let Err(panic) = catch_unwind(|| check_of(target)(&data)) {
                eprintln!("seed {target}/{name} fails its check");
                resume_unwind(panic);
            }
        }
    }
}

/// Writes the seeds into the corpora, as `seed-<name>`; the fuzzer and
/// `cargo fuzz cmin` may keep them or not.
#[test]
#[ignore = "writes into fuzz/corpus; run by hand to reseed"]
fn write_seeds() {
    for (target, seeds) in seeds() {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).unwrap();
        for (name, data) in seeds {
            fs::write(dir.join(format!("seed-{name}")), data).unwrap();
        }
    }
}

fn check_of(target: &str) -> fn(&[u8]) {
    match target {
        "frame" => fuzzing::frame,
        "message" => fuzzing::message,
        "chunk_meta" => fuzzing::chunk_meta,
        "cluster_toml" => fuzzing::cluster_toml,
        _ => unreachable!("no target {target}"),
    }
}

type Seeds = Vec<(String, Vec<u8>)>;

fn seeds() -> Vec<(&'static str, Seeds)> {
    let messages = every_message();
    let envelope = |i: usize, msg: &RealMsg| Envelope {
        src: Id::from(i % 5),
        dst: Id::from(i % 3),
        msg: msg.clone(),
    };
    let mut frames: Seeds = messages
        .iter()
        .enumerate()
        .map(|(i, (name, msg))| (name.clone(), frame::encode(&envelope(i, msg)).unwrap()))
        .collect();
    // A stream of frames, and one cut short.
    let stream: Vec<u8> = frames.iter().take(3).flat_map(|(_, f)| f.clone()).collect();
    frames.push(("stream".into(), stream.clone()));
    frames.push(("stream-cut".into(), stream[..stream.len() - 2].to_vec()));
    let encoded: Seeds = messages
        .iter()
        .map(|(name, msg)| (name.clone(), postcard::to_allocvec(msg).unwrap()))
        .collect();
    let out = vec![
        ("frame", frames),
        ("message", encoded),
        ("chunk_meta", store_files()),
        ("cluster_toml", cluster_files()),
    ];
    assert_eq!(
        out.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        TARGETS,
        "a seed list for every target"
    );
    out
}

/// One of every message a node can receive, named by variant. The match
/// in `variant` has no wildcard: a new message fails to compile here until
/// it has a seed.
fn every_message() -> Vec<(String, RealMsg)> {
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
        }
    }
    const VARIANTS: usize = 37;
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
            extensions: vec![(7, 3), (9, 1)],
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
    ];
    let names: BTreeSet<&str> = msgs.iter().map(variant).collect();
    assert_eq!(names.len(), VARIANTS, "a seed for every message");
    msgs.into_iter()
        .enumerate()
        .map(|(i, m)| (format!("{}-{i}", variant(&m)), m))
        .collect()
}

/// `.meta` files as a store writes them (one slot used, both, several
/// blocks, no data), a store's `incarnation` file, and a slot of the
/// previous format.
fn store_files() -> Seeds {
    const B: u64 = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::open_with(dir.path(), 4 * B, Durability::PageCache).unwrap();
    let stamp = |serial| Stamp { epoch: 1, serial };
    let meta = |chunk: u64| fs::read(dir.path().join(format!("chunk-{chunk}.meta"))).unwrap();
    let mut out = Seeds::new();
    store.set_version(1, 2).unwrap();
    store.sync().unwrap();
    out.push(("meta-empty".into(), meta(1)));
    store
        .write_at(1, 0, &Bytes::from(vec![5u8; 1000]), stamp(1))
        .unwrap();
    store.sync().unwrap();
    out.push(("meta-both-slots".into(), meta(1)));
    store
        .write_at(
            2,
            0,
            &Bytes::from(vec![9u8; (2 * B + 7) as usize]),
            stamp(2),
        )
        .unwrap();
    store.pad_to(2, 3 * B, stamp(3)).unwrap();
    store.set_version(2, 9).unwrap();
    store.sync().unwrap();
    out.push(("meta-blocks".into(), meta(2)));
    let mut old = meta(1);
    old[..8].copy_from_slice(b"LHCHUNK1");
    out.push(("meta-old-format".into(), old));
    store.count_restart().unwrap();
    out.push((
        "incarnation".into(),
        fs::read(dir.path().join("incarnation")).unwrap(),
    ));
    out
}

/// cluster.toml as `leasehold cluster` writes it, and with every optional
/// field set.
fn cluster_files() -> Seeds {
    let base = Path::new("/srv/leasehold");
    let local = ClusterConfig::local_with_clients(3, 2, base).unwrap();
    let full = local
        .clone()
        .with_leases(Leases::Short)
        .with_durability(Durability::PageCache)
        .with_trace_dir(Some("traces".into()))
        .with_secret(Some(ClusterConfig::random_secret()))
        .unwrap()
        .with_limits(ConnLimits {
            connections_max: 64,
            ..ConnLimits::default()
        })
        .unwrap()
        .with_push_fragment_bytes(1 << 20)
        .unwrap();
    let handwritten = r#"
chunk_bytes = 67108864          # 64 MiB
leases = "gfs"

[limits]
connections_max = 1024
hello_timeout_ms = 2000

[[node]]
id = 0
role = "master"
addr = "127.0.0.1:7000"
data_dir = "master"

[[node]]
id = 1
role = "chunkserver"
addr = "[::1]:7001"
data_dir = "cs1"
position = 10
disk_bytes_max = 1073741824

[[node]]
id = 2
role = "client"
addr = "127.0.0.1:7002"
data_dir = "client"
"#;
    vec![
        ("local".into(), local.to_toml().into_bytes()),
        ("full".into(), full.to_toml().into_bytes()),
        ("handwritten".into(), handwritten.as_bytes().to_vec()),
    ]
}
