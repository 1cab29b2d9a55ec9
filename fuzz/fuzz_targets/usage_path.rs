//! Usage path parsing on any text (see `billing_api::fuzzing::usage_path`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| billing_api::fuzzing::usage_path(data));
