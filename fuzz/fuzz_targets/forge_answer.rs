//! The forge client's reading of any answer body (see `billing_server::fuzzing::forge_answer`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| billing_server::fuzzing::forge_answer(data));
