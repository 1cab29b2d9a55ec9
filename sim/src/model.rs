//! The independent model: the rules of `docs/otoml.md` and the README's
//! exactly-once section, kept in plain maps. It never calls the ledger or the
//! decoder; it decides each file's and record's fate from what the generator
//! meant to write ([`FileSpec`]), the way the documents say.

use std::collections::{BTreeMap, BTreeSet};

use crate::world::{FileBody, FileRec, FileSpec, Tree};

/// The per-file and per-record limits the simulated aggregator runs with.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_file_bytes: u64,
    pub max_records: u64,
    pub max_record_cents: i64,
}

/// The values a key was applied (or held) with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Charge {
    pub user: String,
    pub node: String,
    pub cost: i64,
}

/// The counters of one pass, as its summary reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub applied: u64,
    pub duplicate: u64,
    pub conflict: u64,
    pub pending: u64,
    pub invalid: u64,
    pub cents: i64,
}

/// What the model knows of one node.
#[derive(Debug, Clone, Default)]
pub struct NodeModel {
    /// Path -> blob id of every file read (or rejected for good) so far.
    pub seen: BTreeMap<String, String>,
    /// Whether the last pass over the node failed.
    pub failed: bool,
    /// Whether any pass has gone over the node.
    pub visited: bool,
}

/// What a payment call should answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayAnswer {
    Recorded,
    Conflict,
    UnknownUser,
}

#[derive(Debug, Clone, Default)]
pub struct Model {
    pub users: BTreeSet<String>,
    pub payments: BTreeMap<String, (String, i64)>,
    pub paid: BTreeMap<String, i64>,
    pub consumed: BTreeMap<String, i64>,
    pub applied: BTreeMap<String, Charge>,
    pub held: BTreeMap<String, Charge>,
    /// Conflicting versions listed: (key, user, node, cost).
    pub conflicts: BTreeSet<(String, String, String, i64)>,
    /// Invalid records listed: (node, path, index).
    pub invalid: BTreeSet<(String, String, u32)>,
    /// Files rejected whole: (reason, node, path, blob id).
    pub files: BTreeSet<(&'static str, String, String, String)>,
    pub nodes: BTreeMap<String, NodeModel>,
    /// The head of the last pass that left nothing to check again (no node
    /// failed, no file over a limit): a pass at that head has nothing to do.
    pub clean_head: Option<String>,
}

impl Model {
    pub fn balance(&self, user: &str) -> (i64, i64) {
        (
            self.paid.get(user).copied().unwrap_or(0),
            self.consumed.get(user).copied().unwrap_or(0),
        )
    }

    /// `register_user`: the user exists from now on, and every record held
    /// for them applies in the same step.
    pub fn register(&mut self, user: &str) -> u64 {
        self.users.insert(user.to_string());
        let keys: Vec<String> = self
            .held
            .iter()
            .filter(|(_, c)| c.user == user)
            .map(|(k, _)| k.clone())
            .collect();
        let mut counts = Counts::default();
        for key in &keys {
            let charge = self.held.remove(key).expect("listed above");
            self.debit(key, charge, &mut counts);
        }
        counts.applied
    }

    /// `record_payment`: idempotent by id; the same id with other content is
    /// a conflict; a payment needs a registered user.
    pub fn pay(&mut self, id: &str, user: &str, amount: i64) -> PayAnswer {
        match self.payments.get(id) {
            Some((u, a)) if u == user && *a == amount => return PayAnswer::Recorded,
            Some(_) => return PayAnswer::Conflict,
            None => {}
        }
        if !self.users.contains(user) {
            return PayAnswer::UnknownUser;
        }
        self.payments
            .insert(id.to_string(), (user.to_string(), amount));
        *self.paid.entry(user.to_string()).or_default() += amount;
        PayAnswer::Recorded
    }

    fn debit(&mut self, key: &str, charge: Charge, counts: &mut Counts) {
        *self.consumed.entry(charge.user.clone()).or_default() += charge.cost;
        counts.applied += 1;
        counts.cents += charge.cost;
        self.applied.insert(key.to_string(), charge);
    }

    /// One pass over the repo at `head` (its files in `tree`), skipping the
    /// nodes in `failed` (their reads failed: nothing of theirs changes but
    /// their status).
    pub fn pass(
        &mut self,
        head: Option<&str>,
        tree: &Tree,
        failed: &BTreeSet<String>,
        limits: Limits,
    ) -> Counts {
        let mut counts = Counts::default();
        // No commit yet, or nothing new since a pass that left nothing behind.
        let Some(head) = head.filter(|h| self.clean_head.as_deref() != Some(*h)) else {
            return counts;
        };
        let mut unread = false;
        let mut by_node: BTreeMap<&str, Vec<(&str, &str, &FileSpec, usize)>> = BTreeMap::new();
        for (path, file) in tree {
            // Every directory `nodes/<valid name>` is a node, whatever it holds;
            // only the usage files directly in it are read.
            let mut parts = path.split('/');
            let (Some("nodes"), Some(node), Some(name)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if !node_name_ok(node) {
                continue;
            }
            let entry = by_node.entry(node).or_default();
            if parts.next().is_none() && usage_name(name).is_some() {
                entry.push((path, &file.blob, &file.spec, file.bytes.len()));
            }
        }
        for (node, files) in by_node {
            let state = self.nodes.entry(node.to_string()).or_default();
            state.visited = true;
            if failed.contains(node) {
                state.failed = true;
                continue;
            }
            state.failed = false;
            for (path, blob, spec, len) in files {
                unread |= !self.file(node, path, blob, spec, len, limits, &mut counts);
            }
        }
        if failed.is_empty() && !unread {
            self.clean_head = Some(head.to_string());
        }
        counts
    }

    /// Reads one file if it is new; `false` when it stays unread (over a
    /// limit: checked again at every pass).
    #[allow(clippy::too_many_arguments)]
    fn file(
        &mut self,
        node: &str,
        path: &str,
        blob: &str,
        spec: &FileSpec,
        len: usize,
        limits: Limits,
        counts: &mut Counts,
    ) -> bool {
        let seen = &self.nodes[node].seen;
        if seen.get(path).map(String::as_str) == Some(blob) {
            return true;
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        let hour = usage_name(name).expect("only usage files are listed");
        // Rejected whole and read again when the content changes.
        let once = |reason| Some((reason, true));
        // Rejected whole and checked again at every pass.
        let every = |reason| Some((reason, false));
        let whole = if !hour_exists(hour) {
            once("invalid_name")
        } else if len as u64 > limits.max_file_bytes {
            every("too_large")
        } else {
            match &spec.body {
                FileBody::Lfs => once("lfs_pointer"),
                FileBody::Malformed | FileBody::BadVersion => once("unparseable"),
                FileBody::Records(recs) if recs.len() as u64 > limits.max_records => {
                    every("too_many_records")
                }
                FileBody::Records(_) => None,
            }
        };
        if let Some((reason, consumed)) = whole {
            self.files
                .insert((reason, node.into(), path.into(), blob.into()));
            if consumed {
                self.mark_seen(node, path, blob);
            }
            return consumed;
        }
        let FileBody::Records(recs) = &spec.body else {
            unreachable!("whole-file outcomes handled above")
        };
        for (index, rec) in recs.iter().enumerate() {
            self.record(node, path, index as u32, rec, limits, counts);
        }
        self.mark_seen(node, path, blob);
        // A file read at last is no longer over a limit.
        for reason in ["too_large", "too_many_records"] {
            self.files
                .remove(&(reason, node.into(), path.into(), blob.into()));
        }
        true
    }

    fn mark_seen(&mut self, node: &str, path: &str, blob: &str) {
        let state = self.nodes.get_mut(node).expect("visited");
        state.seen.insert(path.into(), blob.into());
    }

    fn record(
        &mut self,
        node: &str,
        path: &str,
        index: u32,
        rec: &FileRec,
        limits: Limits,
        counts: &mut Counts,
    ) {
        let valid = text_ok(&rec.key, 256)
            && rec.user.as_deref().is_some_and(|u| text_ok(u, 128))
            && rec.node == node
            && (0..=limits.max_record_cents).contains(&rec.cost);
        if !valid {
            counts.invalid += 1;
            self.invalid.insert((node.into(), path.into(), index));
            return;
        }
        let charge = Charge {
            user: rec.user.clone().expect("checked"),
            node: rec.node.clone(),
            cost: rec.cost,
        };
        let known = self
            .applied
            .get(&rec.key)
            .or_else(|| self.held.get(&rec.key));
        match known {
            Some(existing) if *existing == charge => counts.duplicate += 1,
            Some(_) => {
                counts.conflict += 1;
                self.conflicts
                    .insert((rec.key.clone(), charge.user, charge.node, charge.cost));
            }
            None if self.users.contains(&charge.user) => self.debit(&rec.key, charge, counts),
            None => {
                counts.pending += 1;
                self.held.insert(rec.key.clone(), charge);
            }
        }
    }

    /// Records applied from `node`'s files.
    pub fn consumed_from(&self, node: &str) -> u64 {
        self.applied.values().filter(|c| c.node == node).count() as u64
    }
}

/// `1..=max` bytes, no control characters.
fn text_ok(text: &str, max: usize) -> bool {
    (1..=max).contains(&text.len()) && !text.chars().any(char::is_control)
}

/// `[A-Za-z0-9._-]{1,128}`, not `.` or `..`.
pub fn node_name_ok(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The `YYYY-MM-DD-HH` of a name `usage_<YYYY-MM-DD-HH>.otoml`.
fn usage_name(name: &str) -> Option<&str> {
    let stamp = name.strip_prefix("usage_")?.strip_suffix(".otoml")?;
    let shape = stamp.len() == 13
        && stamp.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 | 10 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    shape.then_some(stamp)
}

/// Whether the hour exists, in 1970 or later.
fn hour_exists(stamp: &str) -> bool {
    let num = |r: std::ops::Range<usize>| stamp[r].parse::<u32>().expect("digits");
    let (year, month, day, hour) = (num(0..4), num(5..7), num(8..10), num(11..13));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    year >= 1970 && (1..=days).contains(&day) && hour <= 23
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_that_do_not_exist_are_told_apart() {
        assert!(hour_exists("2026-11-27-10"));
        assert!(hour_exists("2024-02-29-23"));
        assert!(!hour_exists("2026-02-29-10"));
        assert!(!hour_exists("2026-02-30-10"));
        assert!(!hour_exists("2026-11-27-24"));
        assert!(!hour_exists("1969-12-31-23"));
        assert!(!hour_exists("2026-13-01-00"));
    }

    #[test]
    fn only_usage_names_are_read() {
        assert_eq!(
            usage_name("usage_2026-11-27-10.otoml"),
            Some("2026-11-27-10")
        );
        assert_eq!(usage_name("usage_2026-11-27-10.toml"), None);
        assert_eq!(usage_name("usage_2026-11-27.otoml"), None);
        assert!(node_name_ok("n-1.a_b"));
        assert!(!node_name_ok("bad node"));
        assert!(!node_name_ok(".."));
    }
}
