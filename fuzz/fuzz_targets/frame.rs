//! Frames as a peer sends them: the frame decoder on whole buffers and fed
//! piece by piece, and every frame that parses round-trips.
//! The checks are `leasehold::fuzzing::frame`, which `impl/tests/fuzz_corpus.rs`
//! replays over the committed corpus in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leasehold::fuzzing::frame(data));
