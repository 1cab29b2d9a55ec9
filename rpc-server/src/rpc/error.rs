//! The one place where domain errors become JSON-RPC errors, with the stable
//! codes documented in `openrpc.json`.

use billing_api::error_codes;
use billing_api::text::echo;
use jsonrpsee::types::ErrorObjectOwned;

use super::envelope::Unanswerable;

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

/// A `reconcile` that could not run (the repo or the ledger failed).
pub fn reconcile_failed(e: &anyhow::Error) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        error_codes::INTERNAL,
        format!("reconcile failed: {e:#}"),
        None::<()>,
    )
}

/// Bad params caught before reaching the ledger.
pub fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(error_codes::INVALID_PARAMS, message.into(), None::<()>)
}

/// A request body over the server's limit (HTTP 413).
pub fn request_too_large(limit: u32) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        error_codes::REQUEST_TOO_LARGE,
        format!(
            "the request body is over this server's limit of {limit} bytes; nothing was run. \
             Send smaller requests: split a batch, or page through lists with `cursor`"
        ),
        None::<()>,
    )
}

/// A request body that could not be read to its end (HTTP 400).
pub fn body_unreadable(reason: &str) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        error_codes::PARSE_ERROR,
        format!(
            "the request body could not be read ({}); nothing was run. Send the request again",
            echo(reason)
        ),
        None::<()>,
    )
}

/// What is wrong with one call that could not be answered, and how to fix it.
fn unanswerable_reason(problem: &Unanswerable) -> String {
    match problem {
        Unanswerable::Notification { method } => {
            let method = match method {
                Some(m) => format!("`{}`", echo(m)),
                None => "the call".to_string(),
            };
            format!(
                "{method} was sent as a notification (without an `id`); this server runs no \
                 notification, since its result or error could not be sent back. Send it with \
                 an `id`, e.g. \"id\": 1"
            )
        }
        Unanswerable::NoUsableId { method } => format!(
            "`{}` came without a usable `id` (none, or not a string, a non-negative integer or \
             null), so its result or error could not be sent back; this server runs no \
             notification. Send it with an `id`, e.g. \"id\": 1",
            echo(method)
        ),
        Unanswerable::BadId { found } => format!(
            "the `id` is {found}; an id must be a string, a non-negative integer or null. Send \
             it with e.g. \"id\": 1"
        ),
        Unanswerable::Malformed(reason) => format!(
            "not a JSON-RPC call ({}); send {{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \
             \"…\", \"params\": {{…}}}}",
            echo(reason)
        ),
    }
}

/// A single call refused before it ran (HTTP 400).
pub fn unanswerable_call(problem: &Unanswerable) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        error_codes::INVALID_REQUEST,
        format!(
            "invalid request, nothing was run: {}",
            unanswerable_reason(problem)
        ),
        None::<()>,
    )
}

/// A batch refused before any of it ran, because of the listed entries (HTTP 400).
/// `data.refused_entries` holds the indices of every such entry.
pub fn unanswerable_batch(problems: &[(usize, Unanswerable)]) -> ErrorObjectOwned {
    const SHOWN: usize = 3;
    let mut message = String::from("invalid batch, nothing in it was run: ");
    for (n, (index, problem)) in problems.iter().take(SHOWN).enumerate() {
        if n > 0 {
            message.push_str("; ");
        }
        message.push_str(&format!("entry {index}: {}", unanswerable_reason(problem)));
    }
    if problems.len() > SHOWN {
        message.push_str(&format!(
            "; and {} more entries (listed in data.refused_entries)",
            problems.len() - SHOWN
        ));
    }
    message.push_str(". Fix these entries and send the batch again");
    let indices: Vec<usize> = problems.iter().map(|(i, _)| *i).collect();
    ErrorObjectOwned::owned(
        error_codes::INVALID_REQUEST,
        message,
        Some(serde_json::json!({ "refused_entries": indices })),
    )
}
