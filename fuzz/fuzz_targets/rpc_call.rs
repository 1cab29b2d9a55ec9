//! Any params for any JSON-RPC method, through the server's method table in
//! process, over a real ledger and repo in a directory of this process's own
//! (see `billing_server::fuzzing::RpcFixture`).
#![no_main]

use std::sync::OnceLock;

use billing_server::fuzzing::RpcFixture;

fn fixture() -> &'static RpcFixture {
    static FIXTURE: OnceLock<RpcFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("billing-fuzz-rpc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        RpcFixture::new(&dir)
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fixture().call(data);
});
