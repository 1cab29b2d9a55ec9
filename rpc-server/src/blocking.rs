//! Work kept off the async runtime: store operations (blocking redb work) on
//! the blocking pool, and a pass's decoding on low-priority threads.

use crate::store::{Store, StoreError};

/// Runs `op` on a blocking thread with a handle to the store.
pub async fn with_store<T, F>(store: &Store, op: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
{
    store.on_blocking_thread(op).await
}

/// How much lower than the server's other threads a pass decodes (a nice
/// value increment; raising it needs no privilege).
const BACKGROUND_NICE: i32 = 10;

/// Runs `f`, CPU-heavy work of a pass (decoding usage files), on a thread of
/// its own at a lower scheduling priority: with every core busy decoding,
/// requests (payments, balance reads) and the ledger writer still get a CPU at
/// once. An error says that the thread could not start or panicked.
pub async fn background<T, F>(what: &str, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("pass-{what}"))
        .spawn(move || {
            lower_priority();
            let _ = tx.send(f());
        })
        .map_err(|e| format!("cannot start a {what} thread: {e}"))?;
    rx.await.map_err(|_| {
        format!("the {what} thread stopped without a result (it panicked; see the log)")
    })
}

/// Lowers the calling thread's priority (Linux: the nice value is per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let now = rustix::process::getpriority_process(None).unwrap_or(0);
        // Best effort: at worst the pass decodes at normal priority, as before.
        let _ = rustix::process::setpriority_process(None, now + BACKGROUND_NICE);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[tokio::test]
    async fn background_work_runs_at_a_lower_priority() {
        let here = rustix::process::getpriority_process(None).unwrap();
        let there = super::background("test", || rustix::process::getpriority_process(None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(there, (here + super::BACKGROUND_NICE).min(19));
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), here);
    }

    #[tokio::test]
    async fn a_panic_in_background_work_is_an_error() {
        let err = super::background("test", || -> u32 { panic!("boom") })
            .await
            .unwrap_err();
        assert!(err.contains("panicked"), "{err}");
    }
}
