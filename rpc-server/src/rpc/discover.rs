//! The OpenRPC document served by `rpc.discover`: the top-level `openrpc.json`,
//! compiled in so the binary always serves the document it was built with.

const OPENRPC_JSON: &str = include_str!("../../../openrpc.json");

/// The parsed document.
pub fn document() -> serde_json::Value {
    serde_json::from_str(OPENRPC_JSON).expect("openrpc.json is valid JSON (checked by tests)")
}
