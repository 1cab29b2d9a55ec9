//! The dashboard given any server answer (see `tui_admin::fuzzing::server_response`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tui_admin::fuzzing::server_response(data);
});
