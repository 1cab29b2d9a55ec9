//! Compares the real ledger with the model after a step.

use std::collections::{BTreeMap, BTreeSet};

use billing_api::{NodeStatus, RejectReason};
use billing_server::store::{Store, StoreError, all_pages};

use crate::model::{Charge, Counts, Model};

/// Every difference found, one per line; `Ok` when there is none.
pub fn ledger(store: &Store, model: &Model, users: &[String]) -> Result<(), String> {
    let mut diffs = Vec::new();
    if let Err(e) = compare(store, model, users, &mut diffs) {
        diffs.push(format!("reading the ledger failed: {e}"));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n"))
    }
}

/// Notes `what` when the ledger's value differs from the model's; the two are
/// printed (Debug) only then, as formatting them after every step would cost
/// more than the comparison.
fn differ<T: PartialEq + std::fmt::Debug + ?Sized>(
    diffs: &mut Vec<String>,
    what: &str,
    got: &T,
    want: &T,
) {
    if got != want {
        diffs.push(format!(
            "{what}:\n    ledger: {got:?}\n    model:  {want:?}"
        ));
    }
}

fn compare(
    store: &Store,
    model: &Model,
    users: &[String],
    diffs: &mut Vec<String>,
) -> Result<(), StoreError> {
    let counts = store.overview_counts()?;
    let recount = store.recount()?;
    differ(diffs, "counters against a recount", &counts, &recount);

    let consumed = all_pages(|c| store.list_consumed(None, c, 1000))?;
    let applied: BTreeMap<String, Charge> = consumed
        .iter()
        .map(|c| {
            (
                c.idempotency_key.clone(),
                Charge {
                    user: c.user_sid.clone(),
                    node: c.node_name.clone(),
                    cost: c.cost_cents,
                },
            )
        })
        .collect();
    differ(
        diffs,
        "records listed twice in the consumed index",
        &consumed.len(),
        &applied.len(),
    );
    differ(diffs, "applied records", &applied, &model.applied);

    let rejected = all_pages(|c| store.list_rejected(c, 1000))?;
    let mut held = BTreeMap::new();
    let mut conflicts = BTreeSet::new();
    let mut invalid = BTreeSet::new();
    let mut files = BTreeSet::new();
    for item in rejected {
        let key = item.idempotency_key.clone().unwrap_or_default();
        let user = item.user_sid.clone().unwrap_or_default();
        let cost = item.cost_cents.unwrap_or_default();
        match (item.reason, item.record_index) {
            (RejectReason::UnknownUser, _) => {
                let charge = Charge {
                    user,
                    node: item.node_name.clone(),
                    cost,
                };
                if held.insert(key.clone(), charge).is_some() {
                    diffs.push(format!("the held record `{key}` is listed twice"));
                }
            }
            (RejectReason::Conflict, _) => {
                conflicts.insert((key, user, item.node_name.clone(), cost));
            }
            (RejectReason::Invalid, Some(index)) => {
                invalid.insert((item.node_name.clone(), item.file_path.clone(), index));
            }
            (reason, None) if item.record_count.is_none() => {
                files.insert((
                    reason.as_str(),
                    item.node_name.clone(),
                    item.file_path.clone(),
                    item.blob_id.clone(),
                ));
            }
            (reason, index) => diffs.push(format!(
                "an item the model never makes: {reason:?} at {index:?} of {} ({:?} records)",
                item.file_path, item.record_count
            )),
        }
    }
    differ(diffs, "held records", &held, &model.held);
    differ(diffs, "conflicts listed", &conflicts, &model.conflicts);
    differ(diffs, "invalid records listed", &invalid, &model.invalid);
    differ(diffs, "files rejected whole", &files, &model.files);

    for user in users {
        let want = model.users.contains(user).then(|| {
            let (paid, used) = model.balance(user);
            (paid, used, paid - used)
        });
        let got = match store.get_balance(user) {
            Ok(b) => Some((
                b.total_paid_cents,
                b.total_consumed_cents,
                b.credit_balance_cents,
            )),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        differ(
            diffs,
            &format!("(paid, consumed, balance) of {user}"),
            &got,
            &want,
        );
        if let Some((paid, _, balance)) = got {
            let payments: i128 = all_pages(|c| store.list_payments(Some(user), c, 1000))?
                .iter()
                .map(|p| i128::from(p.amount_cents))
                .sum();
            let used: i128 = all_pages(|c| store.list_consumed(Some(user), c, 1000))?
                .iter()
                .map(|c| i128::from(c.cost_cents))
                .sum();
            differ(
                diffs,
                &format!("balance = Σ payments − Σ applied, for {user}"),
                &i128::from(balance),
                &(payments - used),
            );
            differ(
                diffs,
                &format!("paid of {user} against its payments"),
                &i128::from(paid),
                &payments,
            );
        }
    }

    let nodes: BTreeMap<String, (NodeStatus, u64)> = store
        .nodes()?
        .into_iter()
        .map(|n| (n.node_name, (n.status, n.records_consumed_total)))
        .collect();
    let want: BTreeMap<String, (NodeStatus, u64)> = model
        .nodes
        .iter()
        .filter(|(_, n)| n.visited)
        .map(|(name, n)| {
            let status = if n.failed {
                NodeStatus::Error
            } else {
                NodeStatus::Ok
            };
            (name.clone(), (status, model.consumed_from(name)))
        })
        .collect();
    for (name, node) in model.nodes.iter().filter(|(_, n)| n.visited) {
        let files: BTreeMap<String, String> = store.consumed_files(name)?.into_iter().collect();
        differ(
            diffs,
            &format!("files of {name} read (path -> blob)"),
            &files,
            &node.seen,
        );
    }
    differ(diffs, "nodes (status, records consumed)", &nodes, &want);
    Ok(())
}

/// Compares a pass's counters with the model's.
pub fn counters(summary: &billing_api::AggregateSummary, want: &Counts) -> Result<(), String> {
    let got = Counts {
        applied: summary.records_applied,
        duplicate: summary.records_duplicate,
        conflict: summary.records_conflict,
        pending: summary.records_pending,
        invalid: summary.records_invalid,
        cents: summary.cents_debited,
    };
    if got == *want {
        Ok(())
    } else {
        Err(format!(
            "the pass's counters:\n    ledger: {got:?}\n    model:  {want:?}\n    (the pass \
             at {:?}: {} nodes, {} skipped, {} files read, {} rejected)",
            summary.head_commit,
            summary.nodes_total,
            summary.nodes_skipped,
            summary.files_read,
            summary.files_rejected
        ))
    }
}

#[cfg(test)]
mod tests {
    use billing_api::RegisterUser;

    use super::*;

    /// The comparison is only worth something if it speaks up: a model that
    /// differs from the ledger by one payment, one applied record or one
    /// node must be reported.
    #[test]
    fn each_kind_of_difference_is_reported() {
        let store = Store::in_memory().unwrap();
        let user = RegisterUser {
            user_sid: "u0".into(),
            display_name: None,
            email: None,
        };
        store.register_user(&user, 1).unwrap();
        let users = ["u0".to_string()];
        let mut model = Model::default();
        model.register("u0");
        assert_eq!(ledger(&store, &model, &users), Ok(()));

        let mut paid = model.clone();
        paid.pay("p1", "u0", 5);
        let err = ledger(&store, &paid, &users).unwrap_err();
        assert!(err.contains("(paid, consumed, balance) of u0"), "{err}");

        let mut applied = model.clone();
        applied.applied.insert(
            "k1".into(),
            Charge {
                user: "u0".into(),
                node: "n0".into(),
                cost: 3,
            },
        );
        let err = ledger(&store, &applied, &users).unwrap_err();
        assert!(err.contains("applied records"), "{err}");

        let mut node = model.clone();
        node.nodes.entry("n0".into()).or_default().visited = true;
        let err = ledger(&store, &node, &users).unwrap_err();
        assert!(err.contains("nodes (status, records consumed)"), "{err}");

        let mut file = model;
        file.files
            .insert(("unparseable", "n0".into(), "f".into(), "b".into()));
        let err = ledger(&store, &file, &users).unwrap_err();
        assert!(err.contains("files rejected whole"), "{err}");
    }
}
