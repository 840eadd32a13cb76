//! One wire message (`Msg<Bytes>`, what every master, chunkserver and
//! client receives), decoded as the receive path does; what decodes
//! round-trips.
//! The checks are `leasehold::fuzzing::message`, which `impl/tests/fuzz_corpus.rs`
//! replays over the committed corpus in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leasehold::fuzzing::message(data));
