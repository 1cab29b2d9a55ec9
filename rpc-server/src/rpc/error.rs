//! The one place where domain errors become JSON-RPC errors, with the stable
//! codes documented in `openrpc.json`.

use billing_api::error_codes;
use jsonrpsee::types::ErrorObjectOwned;

use crate::aggregate::PassFailed;
use crate::store::StoreError;

/// Maps a ledger error to its JSON-RPC error.
pub fn store_error(e: StoreError) -> ErrorObjectOwned {
    let code = match &e {
        StoreError::NotFound { .. } => error_codes::NOT_FOUND,
        StoreError::Conflict(_) => error_codes::CONFLICT,
        StoreError::InvalidInput(_) | StoreError::Overflow(_) => error_codes::INVALID_PARAMS,
        StoreError::Locked { .. }
        | StoreError::Storage(_)
        | StoreError::Io(_)
        | StoreError::WritesRefused(_) => error_codes::INTERNAL,
    };
    ErrorObjectOwned::owned(code, e.to_string(), None::<()>)
}

/// A pass that failed as a whole; its recorded summary travels as `data`.
pub fn pass_failed(e: &PassFailed) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        error_codes::AGGREGATION_FAILED,
        e.to_string(),
        Some(&*e.summary),
    )
}

/// Bad params caught before reaching the ledger.
pub fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(error_codes::INVALID_PARAMS, message.into(), None::<()>)
}
