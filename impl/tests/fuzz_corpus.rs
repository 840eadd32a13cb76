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
use leasehold_model::types::{ChunkStore, Stamp};
use stateright::actor::Id;
use std::fs;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "common/messages.rs"]
mod messages;
use messages::every_message;

const TARGETS: [&str; 8] = [
    "frame",
    "message",
    "chunk_meta",
    "cluster_toml",
    "trace",
    "foreign_trace",
    "storage",
    "hello",
];

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

/// The metadata corpus once more, through a store opened over each file: the
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
fn trace_corpus() {
    replay_corpus("trace");
}

#[test]
fn foreign_trace_corpus() {
    replay_corpus("foreign_trace");
}

#[test]
fn storage_corpus() {
    replay_corpus("storage");
}

#[test]
fn hello_corpus() {
    replay_corpus("hello");
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
        "trace" => fuzzing::trace,
        "foreign_trace" => fuzzing::foreign_trace,
        "storage" => fuzzing::storage,
        "hello" => fuzzing::hello,
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
    let hellos = hello_files(&frames);
    let out = vec![
        ("frame", frames),
        ("message", encoded),
        ("chunk_meta", store_files()),
        ("cluster_toml", cluster_files()),
        ("trace", trace_files(&messages)),
        ("foreign_trace", foreign_files()),
        ("storage", storage_files()),
        ("hello", hellos),
    ];
    assert_eq!(
        out.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        TARGETS,
        "a seed list for every target"
    );
    out
}

/// Trace files: a client's few steps, the same cut short (torn) and with
/// a commit mark, as `TraceWriter` frames them.
fn trace_files(messages: &[(String, RealMsg)]) -> Seeds {
    use leasehold::trace::{
        TraceActor, TraceCommand, TraceHeader, TraceInitial, TraceInput, TraceRecord, TraceStep,
    };
    use leasehold::validate::encode_records;
    let cluster = ClusterConfig::local(3, Path::new("/tmp/seed")).unwrap();
    let header = TraceRecord::Header(TraceHeader {
        node: 4,
        start: 0,
        actor: TraceActor::Client {
            number: 4,
            report_to: Some(u64::MAX - 1),
            fragment_max: 65536,
        },
        protocol: leasehold::nodes::protocol_cfg(&cluster).unwrap(),
        clock_ns: 1_000,
        initial: TraceInitial::Empty,
    });
    let steps: Vec<TraceRecord> = messages
        .iter()
        .take(6)
        .enumerate()
        .map(|(n, (_, msg))| {
            TraceRecord::Step(TraceStep {
                n: n as u64,
                clock_ns: 2_000 + n as u64,
                input: if n == 0 {
                    TraceInput::Start { restored: None }
                } else {
                    TraceInput::Msg {
                        src: 0,
                        msg: msg.clone(),
                    }
                },
                commands: vec![TraceCommand::Send {
                    dst: 1,
                    msg: msg.clone(),
                }],
                digest: n as u64,
            })
        })
        .collect();
    let mut records = vec![header];
    records.extend(steps);
    let plain = encode_records(&records).unwrap();
    records.insert(4, TraceRecord::Committed { steps: 3 });
    let committed = encode_records(&records).unwrap();
    let torn = committed[..committed.len() - 5].to_vec();
    vec![
        ("client".into(), plain),
        ("committed".into(), committed),
        ("torn".into(), torn),
    ]
}

/// The foreign traces of specs/examples/foreign-append, one per node.
fn foreign_files() -> Seeds {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/examples/foreign-append");
    let mut files: Seeds = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Master storage files: an empty master's, and one with a file of two
/// chunks.
fn storage_files() -> Seeds {
    use leasehold::host::encode_storage;
    use leasehold_model::master::{ChunkMeta, FileMeta, MasterDurable};
    let empty = MasterDurable::default();
    let one = MasterDurable {
        files: vec![FileMeta {
            name: "/logs/a".into(),
            chunks: vec![0, 1],
        }],
        chunks: (0..2)
            .map(|i| ChunkMeta {
                file: 0,
                index: i,
                version: 3,
                epoch: 5,
                grants: 2,
                granted: 3,
                granted_to: vec![Id::from(1), Id::from(3)],
                replicas: vec![Id::from(1), Id::from(2), Id::from(3)],
            })
            .collect(),
    };
    [("empty", empty), ("one-file", one)]
        .into_iter()
        .map(|(name, d)| {
            (
                name.into(),
                encode_storage(&postcard::to_allocvec(&d).unwrap()),
            )
        })
        .collect()
}

/// Metadata slots as a store writes them (one slot used, both, several
/// blocks, no data), a store's `incarnation` file, and a slot of an older
/// format.
fn store_files() -> Seeds {
    const B: u64 = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::open_with(dir.path(), 4 * B, Durability::PageCache).unwrap();
    let stamp = |serial| Stamp { epoch: 1, serial };
    // A replica's metadata slots: the end of its data file.
    let meta = |chunk: u64| {
        let file = fs::read(dir.path().join(format!("chunk-{chunk}.dat"))).unwrap();
        file[leasehold::filestore::metadata_offset(4 * B) as usize..].to_vec()
    };
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
position = 3
"#;
    vec![
        ("local".into(), local.to_toml().into_bytes()),
        ("full".into(), full.to_toml().into_bytes()),
        ("handwritten".into(), handwritten.as_bytes().to_vec()),
    ]
}

/// Connection openings: hellos with and without a secret, a client's
/// with and without one, one followed by a frame, a frame with no hello
/// (an open cluster), and hellos cut short, misspelt, of an unknown
/// version or announcing a secret over the limit.
fn hello_files(frames: &Seeds) -> Seeds {
    let magic = b"LHHELLO1";
    let greet = |secret: &[u8]| {
        let mut h = magic.to_vec();
        h.extend_from_slice(&(secret.len() as u16).to_be_bytes());
        h.extend_from_slice(secret);
        h
    };
    let with_frame = [greet(b"s3cret"), frames[0].1.clone()].concat();
    let mut misspelt = greet(b"x");
    misspelt[3] = b'J';
    let mut over = magic.to_vec();
    over.extend_from_slice(&u16::MAX.to_be_bytes());
    let client = |id: u64, secret: &[u8]| {
        let mut h = b"LHHELLO2".to_vec();
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&(secret.len() as u16).to_be_bytes());
        h.extend_from_slice(secret);
        h
    };
    let mut version = greet(b"x");
    version[7] = b'3';
    vec![
        ("secret".into(), greet(b"s3cret")),
        ("empty-secret".into(), greet(b"")),
        ("not-text".into(), greet(&[0xff, 0xfe, 0])),
        ("then-frame".into(), with_frame),
        ("frame-only".into(), frames[0].1.clone()),
        ("cut".into(), greet(b"s3cret")[..12].to_vec()),
        ("magic-cut".into(), magic[..5].to_vec()),
        ("misspelt".into(), misspelt),
        ("over-limit".into(), over),
        ("client-open".into(), client(1 << 40, b"")),
        ("client-secret".into(), client(u64::MAX, b"s3cret")),
        (
            "client-then-frame".into(),
            [client(7, b""), frames[0].1.clone()].concat(),
        ),
        (
            "client-cut".into(),
            client(1 << 40, b"s3cret")[..14].to_vec(),
        ),
        ("unknown-version".into(), version),
    ]
}
