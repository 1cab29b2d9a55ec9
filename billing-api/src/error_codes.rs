//! Stable JSON-RPC error codes, documented in `openrpc.json`.

/// Params are missing, mistyped or out of range (JSON-RPC standard code).
pub const INVALID_PARAMS: i32 = -32602;
/// An internal error; the message says what failed.
pub const INTERNAL: i32 = -32603;
/// The named user (or other entity) does not exist.
pub const NOT_FOUND: i32 = -32001;
/// The request conflicts with what is stored (e.g. a reused `payment_id`).
pub const CONFLICT: i32 = -32002;
/// The aggregation pass could not run or failed as a whole.
pub const AGGREGATION_FAILED: i32 = -32003;
