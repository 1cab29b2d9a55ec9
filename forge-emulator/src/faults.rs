//! Request counting and fault injection.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// What to do to a matching request instead of (or on top of) answering it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status and a JSON error body.
    Status { status: u16 },
    /// Wait this long, then answer normally.
    Delay { ms: u64 },
    /// Answer 200 with the first half of the real body (valid HTTP, broken JSON).
    Truncate,
    /// Send the headers and part of the body, then drop the connection.
    Abort,
    /// Answer 429 with `Retry-After: <secs>`.
    RateLimit { retry_after_secs: u64 },
    /// Answer 429 with `Retry-After` as an HTTP date `secs` from now, as a
    /// proxy may.
    RateLimitDate { retry_after_secs: u64 },
    /// Answer 200 with an HTML page, as a misconfigured proxy would.
    NotJson,
    /// Drop the last entry of a `git/trees` page but keep `total_count` and
    /// `truncated`: a listing that silently lost an entry.
    DropEntry,
    /// Answer a `git/trees` page with no entries but `truncated: true`.
    EmptyTruncated,
    /// Answer with the top-level JSON `field` set to `value` (`null` included),
    /// as a forge of another version or kind might.
    SetField {
        field: String,
        value: serde_json::Value,
    },
}

/// A fault for the requests of one endpoint (or all, when `endpoint` is `None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// Endpoint name as counted in the stats (`branch`, `trees`, `blobs`, ...).
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How many matching requests it hits; `None` = until cleared.
    #[serde(default)]
    pub times: Option<u32>,
    /// Chance in [0, 1] that a matching request is hit, drawn per request;
    /// `None` = always.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Only requests whose URL path contains this (e.g. one tree's sha).
    #[serde(default)]
    pub path_contains: Option<String>,
}

impl Fault {
    /// A fault hitting the next `times` requests of `endpoint`.
    pub fn new(endpoint: &str, kind: FaultKind, times: u32) -> Self {
        Self {
            endpoint: Some(endpoint.to_string()),
            kind,
            times: Some(times),
            probability: None,
            path_contains: None,
        }
    }

    /// Limits the fault to requests whose URL path contains `fragment`.
    pub fn on_path(mut self, fragment: &str) -> Self {
        self.path_contains = Some(fragment.to_string());
        self
    }

    /// Why the fault cannot be installed, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        match self.probability {
            Some(p) if !(0.0..=1.0).contains(&p) => Err(format!(
                "fault probability {p} is not between 0 and 1; give a chance such as 0.2, or \
                 leave `probability` out to hit every matching request"
            )),
            _ => Ok(()),
        }
    }
}

/// Seed of the generator behind `probability` faults until [`Control::seed`].
pub const DEFAULT_SEED: u64 = 0;

/// Requests served per endpoint, and the installed faults.
#[derive(Default)]
pub struct Control {
    inner: Mutex<ControlState>,
}

struct ControlState {
    counts: BTreeMap<String, u64>,
    faults: Vec<Fault>,
    injected: u64,
    /// Draws for `probability` faults: one stream, reproducible from its seed.
    rng: StdRng,
}

impl Default for ControlState {
    fn default() -> Self {
        Self {
            counts: BTreeMap::new(),
            faults: Vec::new(),
            injected: 0,
            rng: StdRng::seed_from_u64(DEFAULT_SEED),
        }
    }
}

/// A snapshot of the request counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// API requests (not `/_emulator` ones) per endpoint name.
    pub requests: BTreeMap<String, u64>,
    /// Sum of `requests`.
    pub total: u64,
    /// Requests that were hit by a fault.
    pub faults_injected: u64,
}

impl Control {
    /// Counts one request to `endpoint` and returns the fault to apply, if any.
    pub fn on_request(&self, endpoint: &str, path: &str) -> Option<FaultKind> {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *state.counts.entry(endpoint.to_string()).or_default() += 1;
        let position = state.faults.iter().position(|f| {
            f.endpoint.as_deref().is_none_or(|e| e == endpoint)
                && f.path_contains.as_deref().is_none_or(|p| path.contains(p))
                && f.times != Some(0)
        })?;
        if let Some(p) = state.faults[position].probability
            && !state.rng.random_bool(p)
        {
            return None;
        }
        let fault = &mut state.faults[position];
        let kind = fault.kind.clone();
        if let Some(times) = fault.times.as_mut() {
            *times -= 1;
        }
        state.faults.retain(|f| f.times != Some(0));
        state.injected += 1;
        Some(kind)
    }

    pub fn stats(&self) -> Stats {
        let state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Stats {
            total: state.counts.values().sum(),
            requests: state.counts.clone(),
            faults_injected: state.injected,
        }
    }

    pub fn reset_stats(&self) {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        state.counts.clear();
        state.injected = 0;
    }

    /// Installs `fault` after those already there.
    ///
    /// # Panics
    ///
    /// If [`Fault::check`] refuses it (a probability outside [0, 1]).
    pub fn add_fault(&self, fault: Fault) {
        if let Err(why) = fault.check() {
            panic!("{why}");
        }
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        state.faults.push(fault);
    }

    pub fn clear_faults(&self) {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        state.faults.clear();
    }

    pub fn faults(&self) -> Vec<Fault> {
        let state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        state.faults.clone()
    }

    /// Restarts the generator behind `probability` faults from `seed`: the
    /// same seed and requests give the same faults.
    pub fn seed(&self, seed: u64) {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        state.rng = StdRng::seed_from_u64(seed);
    }
}
