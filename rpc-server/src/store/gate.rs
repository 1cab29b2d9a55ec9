//! Who writes next: service writes (payments, registrations) go before the
//! next part of an aggregation pass.
//!
//! redb has one writer at a time and its write lock is not fair: a pass that
//! commits a chunk and asks for the lock again at once can win it over a
//! payment that has been waiting, again and again. So a service write announces
//! itself here before it asks redb for the lock, and the pass:
//! - stops its current transaction at the next item boundary once a service
//!   write waits (after a little work, so it always progresses);
//! - before its next transaction, waits until no service write is waiting, for
//!   at most [`PASS_MAX_WAIT`], so a stream of payments slows a pass down but
//!   never stops it.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The longest a pass waits for service writes before it takes its turn anyway.
pub const PASS_MAX_WAIT: Duration = Duration::from_millis(10);
/// The least work a pass transaction does before it yields to a service write.
pub const PASS_MIN_WORK: Duration = Duration::from_millis(1);

#[derive(Default)]
pub(super) struct WriteGate {
    /// Service writes waiting for, or holding, the write lock.
    waiting: Mutex<usize>,
    none_waiting: Condvar,
}

/// Held by a service write from before it asks for the write lock until its
/// transaction ends.
pub(super) struct ServiceTurn<'a> {
    gate: &'a WriteGate,
}

impl WriteGate {
    /// Announces a service write.
    pub fn service(&self) -> ServiceTurn<'_> {
        *self.lock() += 1;
        ServiceTurn { gate: self }
    }

    /// Whether a service write waits for (or holds) the write lock.
    pub fn service_waiting(&self) -> bool {
        *self.lock() > 0
    }

    /// Waits, before a pass transaction, until no service write waits, or
    /// `max` has passed.
    pub fn pass_turn(&self, max: Duration) {
        let deadline = Instant::now() + max;
        let mut waiting = self.lock();
        while *waiting > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            waiting = self
                .none_waiting
                .wait_timeout(waiting, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ServiceTurn<'_> {
    fn drop(&mut self) {
        let mut waiting = self.gate.lock();
        *waiting -= 1;
        if *waiting == 0 {
            self.gate.none_waiting.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_pass_waits_for_a_service_write_to_finish() {
        let gate = Arc::new(WriteGate::default());
        let turn = gate.service();
        assert!(gate.service_waiting());
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waiter = {
            let (gate, ended) = (gate.clone(), ended.clone());
            std::thread::spawn(move || {
                let t0 = Instant::now();
                gate.pass_turn(Duration::from_secs(10));
                (
                    ended.load(std::sync::atomic::Ordering::SeqCst),
                    t0.elapsed(),
                )
            })
        };
        // Time for the pass to ask; it must still be waiting when the write ends.
        std::thread::sleep(Duration::from_millis(50));
        ended.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(turn);
        let (after_write, waited) = waiter.join().unwrap();
        assert!(!gate.service_waiting());
        assert!(
            after_write,
            "the pass went on while a service write held its turn"
        );
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    }

    #[test]
    fn a_pass_waits_no_longer_than_its_limit() {
        let gate = WriteGate::default();
        let _turn = gate.service();
        let t0 = Instant::now();
        gate.pass_turn(Duration::from_millis(30));
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(30), "waited {waited:?}");
        assert!(gate.service_waiting());
    }
}
