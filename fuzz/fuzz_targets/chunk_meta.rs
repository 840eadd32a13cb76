//! A chunk's `.meta` file (two slots, per-block checksums) and the
//! `incarnation` file, loaded; what loads encodes back to its bytes.
//! The checks are `leasehold::fuzzing::chunk_meta`, which `impl/tests/fuzz_corpus.rs`
//! replays over the committed corpus in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leasehold::fuzzing::chunk_meta(data));
