//! Stable JSON-RPC error codes, documented in `openrpc.json`.

/// The body is not valid JSON, or could not be read (JSON-RPC standard code).
pub const PARSE_ERROR: i32 = -32700;
/// The request is not a valid JSON-RPC call: an id that is not a string, a
/// non-negative integer or null, or a call sent as a notification (no id)
/// (JSON-RPC standard code). Answered with HTTP 400; nothing was run.
pub const INVALID_REQUEST: i32 = -32600;
/// The request body is over the server's size limit. Answered with HTTP 413.
pub const REQUEST_TOO_LARGE: i32 = -32007;

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
