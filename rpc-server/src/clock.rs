//! The server's clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Current time as unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The time an [`Aggregator`](crate::aggregate::Aggregator) stamps on what it
/// writes (applied records, runs, node failures, events): the machine's, or
/// one that a simulation moves, so that a replayed seed writes the same ledger.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The machine's clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads `at` (unix milliseconds); whoever holds `at` moves it.
    pub fn manual(at: Arc<AtomicU64>) -> Clock {
        Clock { manual: Some(at) }
    }

    pub fn now_ms(&self) -> u64 {
        match &self.manual {
            Some(at) => at.load(Ordering::SeqCst),
            None => now_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_reads_what_its_holder_set() {
        let at = Arc::new(AtomicU64::new(1_764_547_200_000));
        let clock = Clock::manual(at.clone());
        assert_eq!(clock.now_ms(), 1_764_547_200_000);
        at.store(1_764_547_201_000, Ordering::SeqCst);
        assert_eq!(clock.clone().now_ms(), 1_764_547_201_000);
        let system = Clock::system().now_ms();
        assert!(system > 1_764_547_200_000, "the machine's clock: {system}");
    }
}
