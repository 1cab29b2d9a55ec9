//! The ledger rules, written as plainly as possible: what registrations,
//! payments and usage records do to users, balances and the applied and held
//! records. `store_invariants.rs` runs random operations on the store and on
//! this model and checks after each step that they agree.

use std::collections::{BTreeMap, BTreeSet};

/// What a usage record charges: user, node and cost.
pub type Charge = (String, String, i64);

/// What the ledger does with one usage record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Applied,
    /// Its key is applied or held with the same charge: nothing changes.
    Duplicate,
    /// Its key is applied or held with another charge: nothing changes.
    Conflict,
    /// Its user is not registered: held until they are.
    Held,
    /// Not a record the ledger takes (undecodable, or a negative cost).
    Invalid,
    /// It would overflow one of its user's figures: not applied, and never
    /// will be, as a user's total consumed only grows. Counted as invalid.
    Overflow,
}

/// Why a payment is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its id is taken by a payment with other content.
    Conflict,
    UnknownUser,
    /// It would overflow the user's total paid or balance.
    Overflow,
}

/// Records by verdict, as a pass's outcome counts them.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Counts {
    pub applied: u64,
    pub duplicate: u64,
    pub conflict: u64,
    pub pending: u64,
    pub invalid: u64,
}

impl Counts {
    pub fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Applied => self.applied += 1,
            Verdict::Duplicate => self.duplicate += 1,
            Verdict::Conflict => self.conflict += 1,
            Verdict::Held => self.pending += 1,
            Verdict::Invalid | Verdict::Overflow => self.invalid += 1,
        }
    }
}

#[derive(Default, Debug)]
pub struct Model {
    pub users: BTreeSet<String>,
    /// Payment id -> (user, amount).
    pub payments: BTreeMap<String, (String, i64)>,
    paid: BTreeMap<String, i64>,
    consumed: BTreeMap<String, i64>,
    /// Idempotency key -> charge, for records applied.
    pub applied: BTreeMap<String, Charge>,
    /// Idempotency key -> charge, for records held (user not registered).
    pub held: BTreeMap<String, Charge>,
    /// Keys of records refused for overflow: free for another charge.
    pub refused: BTreeSet<String>,
    /// The sum of all balances: 128-bit, so it never overflows.
    pub total_balance: i128,
}

impl Model {
    pub fn paid(&self, sid: &str) -> i64 {
        self.paid.get(sid).copied().unwrap_or(0)
    }

    pub fn consumed(&self, sid: &str) -> i64 {
        self.consumed.get(sid).copied().unwrap_or(0)
    }

    /// Paid minus consumed: both are in `0..=i64::MAX`, so this fits.
    pub fn balance(&self, sid: &str) -> i64 {
        self.paid(sid) - self.consumed(sid)
    }

    /// Registered users whose balance is below zero.
    pub fn overdrawn(&self) -> u64 {
        self.users
            .iter()
            .filter(|sid| self.balance(sid) < 0)
            .count() as u64
    }

    /// Registers `sid` (again: no change) and applies its held records, by key.
    pub fn register(&mut self, sid: &str) {
        self.users.insert(sid.to_string());
        let keys: Vec<String> = self
            .held
            .iter()
            .filter(|(_, charge)| charge.0 == sid)
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            let charge = self.held.remove(&key).unwrap();
            self.debit(&key, charge);
        }
    }

    /// Credits a payment; the same id with the same content again changes nothing.
    pub fn pay(&mut self, id: &str, sid: &str, amount: i64) -> Result<(), Refusal> {
        match self.payments.get(id) {
            Some(stored) if *stored == (sid.to_string(), amount) => return Ok(()),
            Some(_) => return Err(Refusal::Conflict),
            None => {}
        }
        if !self.users.contains(sid) {
            return Err(Refusal::UnknownUser);
        }
        let fits = self.paid(sid).checked_add(amount).is_some()
            && self.balance(sid).checked_add(amount).is_some();
        if !fits {
            return Err(Refusal::Overflow);
        }
        self.payments
            .insert(id.to_string(), (sid.to_string(), amount));
        *self.paid.entry(sid.to_string()).or_default() += amount;
        self.total_balance += i128::from(amount);
        Ok(())
    }

    /// A decoded usage record of key `key`: deduplicated by key against the
    /// applied and held records, then applied or held.
    pub fn record(&mut self, key: &str, charge: Charge) -> Verdict {
        if charge.2 < 0 {
            return Verdict::Invalid;
        }
        if let Some(existing) = self.applied.get(key).or_else(|| self.held.get(key)) {
            return if *existing == charge {
                Verdict::Duplicate
            } else {
                Verdict::Conflict
            };
        }
        if self.users.contains(&charge.0) {
            self.debit(key, charge)
        } else {
            self.held.insert(key.to_string(), charge);
            Verdict::Held
        }
    }

    /// `apply_pending`: every held record of a registered user, by user then
    /// key. Registration applies them already, so this finds none.
    pub fn apply_pending(&mut self) -> Counts {
        let mut keys: Vec<(String, String)> = self
            .held
            .iter()
            .filter(|(_, charge)| self.users.contains(&charge.0))
            .map(|(key, charge)| (charge.0.clone(), key.clone()))
            .collect();
        keys.sort();
        let mut counts = Counts::default();
        for (_, key) in keys {
            let charge = self.held.remove(&key).unwrap();
            counts.add(self.debit(&key, charge));
        }
        counts
    }

    /// Debits a registered user unless one of their figures would overflow
    /// (the sum of all balances never refuses).
    fn debit(&mut self, key: &str, charge: Charge) -> Verdict {
        let (sid, cost) = (charge.0.as_str(), charge.2);
        let fits = self.consumed(sid).checked_add(cost).is_some()
            && self.balance(sid).checked_sub(cost).is_some();
        if !fits {
            self.refused.insert(key.to_string());
            return Verdict::Overflow;
        }
        *self.consumed.entry(sid.to_string()).or_default() += cost;
        self.total_balance -= i128::from(cost);
        self.applied.insert(key.to_string(), charge);
        Verdict::Applied
    }
}
