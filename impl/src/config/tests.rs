use super::*;

const EXAMPLE: &str = r#"
    [[node]]
    id = 0
    role = "master"
    addr = "127.0.0.1:7000"
    data_dir = "master"

    [[node]]
    id = 1
    role = "chunkserver"
    addr = "127.0.0.1:7001"
    data_dir = "/abs/cs1"
    position = 10

    [[node]]
    id = 2
    role = "client"
    position = 3
"#;

#[test]
fn parses_and_resolves_relative_dirs() {
    let c = ClusterConfig::parse(EXAMPLE, Path::new("/etc/lh")).unwrap();
    assert_eq!(c.chunk_bytes, CHUNK_BYTES_DEFAULT);
    assert_eq!(
        c.node(Id::from(0)).unwrap().dir(),
        Path::new("/etc/lh/master")
    );
    assert_eq!(c.node(Id::from(1)).unwrap().dir(), Path::new("/abs/cs1"));
    assert_eq!(c.node(Id::from(2)).unwrap().data_dir, None);
    assert!(matches!(
        c.addr(Id::from(2)),
        Err(ConfigError::NoAddress(2))
    ));
    assert_eq!(c.ids_with_role(Role::Chunkserver), vec![Id::from(1)]);
    assert_eq!(c.node(Id::from(0)).unwrap().position, None);
    assert_eq!(c.node(Id::from(2)).unwrap().position, Some(3));
    assert!(matches!(
        c.node(Id::from(9)),
        Err(ConfigError::UnknownId(_))
    ));
}

#[test]
fn refuses_duplicates_and_junk() {
    let dup_addr = EXAMPLE.replace("127.0.0.1:7000", "127.0.0.1:7001");
    assert!(matches!(
        ClusterConfig::parse(&dup_addr, Path::new("/")),
        Err(ConfigError::DuplicateAddr { .. })
    ));
    let dup_id = EXAMPLE.replace("id = 2", "id = 1");
    assert!(matches!(
        ClusterConfig::parse(&dup_id, Path::new("/")),
        Err(ConfigError::DuplicateId(1))
    ));
    let dup_dir = EXAMPLE.replace("\"/abs/cs1\"", "\"master\"");
    assert!(matches!(
        ClusterConfig::parse(&dup_dir, Path::new("/")),
        Err(ConfigError::DuplicateDataDir { .. })
    ));
    // A client listens nowhere and keeps nothing: an address or a data
    // directory for one is a mistake worth saying (an older file, most
    // likely); a server without either cannot run.
    for (field, value) in [("addr", "\"127.0.0.1:7002\""), ("data_dir", "\"client\"")] {
        let client_place = EXAMPLE.replace(
            "position = 3",
            &format!("position = 3\n    {field} = {value}"),
        );
        let e = ClusterConfig::parse(&client_place, Path::new("/")).unwrap_err();
        assert!(matches!(e, ConfigError::ClientPlace(2)), "{e}");
        assert!(e.to_string().contains("remove them"), "{e}");
    }
    let no_addr = EXAMPLE.replace("addr = \"127.0.0.1:7001\"", "");
    assert!(matches!(
        ClusterConfig::parse(&no_addr, Path::new("/")),
        Err(ConfigError::ServerPlace(1))
    ));
    let bad_role = EXAMPLE.replace("\"client\"\n", "\"janitor\"\n");
    assert!(matches!(
        ClusterConfig::parse(&bad_role, Path::new("/")),
        Err(ConfigError::Parse { .. })
    ));
    let unknown_field = format!("{EXAMPLE}\nmystery = 1\n");
    assert!(matches!(
        ClusterConfig::parse(&unknown_field, Path::new("/")),
        Err(ConfigError::Parse { .. })
    ));
    assert!(matches!(
        ClusterConfig::parse("node = []", Path::new("/")),
        Err(ConfigError::Empty)
    ));
    for bytes in [0, CHUNK_BYTES_MAX + 1, i64::MAX as u64] {
        let chunks = format!("chunk_bytes = {bytes}\n{EXAMPLE}");
        let e = ClusterConfig::parse(&chunks, Path::new("/")).unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::ZeroChunkBytes | ConfigError::ChunkBytesTooLarge { .. }
            ),
            "{e}"
        );
    }
    let most = format!("chunk_bytes = {CHUNK_BYTES_MAX}\n{EXAMPLE}");
    ClusterConfig::parse(&most, Path::new("/")).unwrap();
    for bytes in [0, 1 << 30] {
        let fragments = format!("push_fragment_bytes = {bytes}\n{EXAMPLE}");
        assert!(matches!(
            ClusterConfig::parse(&fragments, Path::new("/")),
            Err(ConfigError::PushFragmentBytes { .. })
        ));
    }
    // Zero could mean "unbounded" or "nothing at all", and the host
    // would do neither (it takes one message at a time): refused.
    let no_inbox = format!("{EXAMPLE}\n[limits]\ninbox_bytes_max = 0\n");
    assert!(matches!(
        ClusterConfig::parse(&no_inbox, Path::new("/")),
        Err(ConfigError::Limits(_))
    ));
    let durability = format!("durability = \"sometimes\"\n{EXAMPLE}");
    assert!(matches!(
        ClusterConfig::parse(&durability, Path::new("/")),
        Err(ConfigError::Parse { .. })
    ));
    // A chunkserver's room for chunk data: positive, and its own.
    let room = |node: &str, bytes: u64| {
        EXAMPLE.replace(
            &format!("data_dir = {node}"),
            &format!("data_dir = {node}\n        disk_bytes_max = {bytes}"),
        )
    };
    let ok = ClusterConfig::parse(&room("\"/abs/cs1\"", 4096), Path::new("/")).unwrap();
    assert_eq!(ok.node(Id::from(1)).unwrap().disk_bytes_max, Some(4096));
    for bad in [room("\"/abs/cs1\"", 0), room("\"master\"", 4096)] {
        assert!(matches!(
            ClusterConfig::parse(&bad, Path::new("/")),
            Err(ConfigError::DiskBytesMax(_))
        ));
    }
}

#[test]
fn unreadable_file_names_the_path() {
    let err = ClusterConfig::load(Path::new("/nonexistent/leasehold.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string().contains("/nonexistent/leasehold.toml"),
        "{err}"
    );
}

#[test]
fn local_cluster_round_trips_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let c = ClusterConfig::local(3, dir.path()).unwrap();
    assert_eq!(c.nodes.len(), 5);
    assert_eq!(c.ids_with_role(Role::Master), vec![Id::from(0)]);
    assert_eq!(c.ids_with_role(Role::Chunkserver), Id::vec_from(1..4));
    assert_eq!(c.ids_with_role(Role::Client), vec![Id::from(4)]);
    assert!(c.nodes.iter().all(|n| match n.role {
        Role::Client => n.addr.is_none() && n.data_dir.is_none(),
        _ => n
            .addr
            .is_some_and(|a| a.ip() == Ipv4Addr::LOCALHOST && a.port() != 0),
    }));
    let path = dir.path().join("cluster.toml");
    c.write(&path).unwrap();
    assert_eq!(ClusterConfig::load(&path).unwrap(), c);
    // Non-default choices are written and read back.
    let c = c
        .with_durability(Durability::PageCache)
        .with_push_fragment_bytes(256 << 10)
        .unwrap();
    c.write(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("durability = \"page-cache\""), "{text}");
    assert_eq!(ClusterConfig::load(&path).unwrap(), c);
}
