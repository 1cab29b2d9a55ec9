//! Failpoints at every ledger write step, for the deterministic simulator
//! (`sim/`). They exist only when the crate is built with the `failpoints`
//! feature; without it [`write_step!`] expands to nothing.
//!
//! Every write transaction of either backend passes three steps: `begin`
//! (before the transaction starts), `commit` (its work done, before the
//! commit) and `committed` (after the commit, before the caller hears of it).
//! All three evaluate the one failpoint [`WRITE_STEP`], so a simulation can
//! say "the 7th write step from now fails, and every one after it" with
//! `fail::cfg(WRITE_STEP, "6*off->return")`: a crash at that point, as the
//! ledger sees it (nothing more is written), until the process is "restarted"
//! by dropping the store and opening the ledger again.

/// The name of the failpoint every ledger write step evaluates.
pub const WRITE_STEP: &str = "ledger-write-step";

/// The error a failing write step returns in place of its work.
#[cfg(feature = "failpoints")]
pub(crate) fn crashed(step: &str) -> super::StoreError {
    super::StoreError::Storage(format!(
        "the ledger write step `{step}` failed at the failpoint `{WRITE_STEP}` (a simulated \
         crash); open the ledger again to recover"
    ))
}

/// Evaluates the write-step failpoint: returns `Err(wrap(error))` from the
/// enclosing function when it is set to fail.
macro_rules! write_step {
    ($step:literal) => {
        $crate::store::failpoints::write_step!($step, std::convert::identity)
    };
    ($step:literal, $wrap:expr) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($crate::store::failpoints::WRITE_STEP, |_| {
            Err($wrap($crate::store::failpoints::crashed($step)))
        });
    };
}

pub(crate) use write_step;
