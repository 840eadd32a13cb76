//! See `leasehold::fuzzing::hello` for what this target checks;
//! `impl/tests/fuzz_corpus.rs` replays its committed corpus in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leasehold::fuzzing::hello(data));
