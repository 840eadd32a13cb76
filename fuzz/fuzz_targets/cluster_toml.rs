//! cluster.toml from arbitrary bytes; a config that loads writes out as
//! one that loads the same.
//! The checks are `leasehold::fuzzing::cluster_toml`, which `impl/tests/fuzz_corpus.rs`
//! replays over the committed corpus in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leasehold::fuzzing::cluster_toml(data));
