//! The OTOML decoder on any bytes (see `billing_api::fuzzing::otoml_decode`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| billing_api::fuzzing::otoml_decode(data));
