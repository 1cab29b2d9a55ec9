//! Runs store operations (blocking redb work) off the async runtime.

use crate::store::{Store, StoreError};

/// Runs `op` on a blocking thread with a handle to the store.
pub async fn with_store<T, F>(store: &Store, op: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || op(&store))
        .await
        .map_err(|e| StoreError::Storage(format!("store task failed: {e}")))?
}

/// Current time as unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
