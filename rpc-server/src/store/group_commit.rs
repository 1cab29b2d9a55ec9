//! Group commit of payments: payments that wait for the write lock at the same
//! time are committed in one transaction, so they share one flush to disk
//! instead of queueing for one each.
//!
//! Each caller queues its payment, then takes the commit lock. The first to get
//! it (the leader) commits every queued payment, its own included, and hands
//! each caller its own result; a caller whose payment a leader committed finds
//! its result when it gets the lock, and returns at once. A payment is refused
//! (conflict, unknown user, overflow) before it writes anything, so a refused
//! payment never affects the others of its group; a storage failure fails the
//! whole group, and every caller gets it.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::StoreError;

/// Most payments committed in one transaction.
const MAX_GROUP: usize = 256;

/// Where a queued payment's result arrives.
pub(super) type Slot<R> = Arc<OnceLock<Result<R, StoreError>>>;

/// A queue of work items `T` with results `R`, committed in groups.
pub(super) struct GroupCommit<T, R> {
    queue: Mutex<Vec<(T, Slot<R>)>>,
    commit: Mutex<()>,
}

impl<T, R: Clone> GroupCommit<T, R> {
    pub fn new() -> Self {
        GroupCommit {
            queue: Mutex::new(Vec::new()),
            commit: Mutex::new(()),
        }
    }

    /// Queues `item` and returns its result. `commit` runs with the commit
    /// lock held, on a group of queued items in queue order (this caller's
    /// among them, or an earlier group first), and returns one result per
    /// item, or one error for the whole group.
    pub fn submit(
        &self,
        item: T,
        mut commit: impl FnMut(&[T]) -> Result<Vec<Result<R, StoreError>>, StoreError>,
    ) -> Result<R, StoreError> {
        let slot: Slot<R> = Arc::new(OnceLock::new());
        self.lock_queue().push((item, slot.clone()));
        let _leader = self.commit.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(result) = slot.get() {
                return result.clone();
            }
            let group: Vec<(T, Slot<R>)> = {
                let mut queue = self.lock_queue();
                let n = queue.len().min(MAX_GROUP);
                queue.drain(..n).collect()
            };
            if group.is_empty() {
                // Only a leader that panicked mid-commit drains items without
                // answering them; its transaction was not committed.
                return Err(StoreError::Storage(
                    "the group commit this request was part of failed unexpectedly (see the \
                     log) and nothing of it was written; send it again (it is idempotent)"
                        .to_string(),
                ));
            }
            let (items, slots): (Vec<T>, Vec<Slot<R>>) = group.into_iter().unzip();
            match commit(&items) {
                Ok(results) => {
                    debug_assert_eq!(results.len(), slots.len());
                    for (slot, result) in slots.iter().zip(results) {
                        let _ = slot.set(result);
                    }
                    // A short result list must not leave a caller waiting forever.
                    for slot in &slots {
                        let _ = slot.set(Err(StoreError::Storage(
                            "a payment of a committed group got no result".to_string(),
                        )));
                    }
                }
                Err(e) => {
                    for slot in &slots {
                        let _ = slot.set(Err(e.clone()));
                    }
                }
            }
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<(T, Slot<R>)>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[test]
    fn concurrent_items_share_commits_and_each_gets_its_own_result() {
        let group: Arc<GroupCommit<u32, u32>> = Arc::new(GroupCommit::new());
        let commits = Arc::new(Mutex::new(Vec::new()));
        let start = Arc::new(Barrier::new(16));
        let threads: Vec<_> = (0..16u32)
            .map(|i| {
                let (group, commits, start) = (group.clone(), commits.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    group.submit(i, |items| {
                        commits.lock().unwrap().push(items.to_vec());
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        Ok(items
                            .iter()
                            .map(|&n| {
                                if n % 5 == 0 {
                                    Err(StoreError::Conflict(format!("item {n}")))
                                } else {
                                    Ok(n * 10)
                                }
                            })
                            .collect())
                    })
                })
            })
            .collect();
        for (i, t) in threads.into_iter().enumerate() {
            let result = t.join().unwrap();
            if i % 5 == 0 {
                assert!(matches!(result, Err(StoreError::Conflict(m)) if m == format!("item {i}")));
            } else {
                assert_eq!(result.unwrap(), i as u32 * 10);
            }
        }
        let commits = commits.lock().unwrap();
        let mut all: Vec<u32> = commits.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..16).collect::<Vec<_>>(),
            "every item committed once"
        );
        assert!(
            commits.len() < 16,
            "16 items waiting together took {} commits",
            commits.len()
        );
    }

    #[test]
    fn a_leader_that_panics_leaves_no_one_waiting() {
        let group: Arc<GroupCommit<u32, u32>> = Arc::new(GroupCommit::new());
        // Item 1 holds the commit lock while items 2 and 3 queue up behind it;
        // whichever of them leads the next group panics on item 2.
        let commit = |items: &[u32]| -> Result<Vec<Result<u32, StoreError>>, StoreError> {
            if items.contains(&2) {
                panic!("a bug in the commit");
            }
            Ok(items.iter().map(|&n| Ok(n)).collect())
        };
        // Item 1's commit starts, then waits until 2 and 3 are both queued, so
        // that they form one group however slowly the threads are scheduled.
        let (committing_tx, committing) = std::sync::mpsc::channel();
        let first = {
            let group = group.clone();
            std::thread::spawn(move || {
                group.submit(1, |items| {
                    committing_tx.send(()).unwrap();
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                    while group.lock_queue().len() < 2 {
                        assert!(std::time::Instant::now() < deadline, "2 and 3 never queued");
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    commit(items)
                })
            })
        };
        committing.recv().unwrap();
        let queued: Vec<_> = [2, 3]
            .into_iter()
            .map(|n| {
                let group = group.clone();
                std::thread::spawn(move || group.submit(n, commit))
            })
            .collect();
        assert_eq!(first.join().unwrap().unwrap(), 1);
        let outcomes: Vec<_> = queued.into_iter().map(|t| t.join()).collect();
        // One led the group and panicked; the other was in that group and gets an
        // error saying to send it again, instead of waiting forever.
        assert_eq!(outcomes.iter().filter(|o| o.is_err()).count(), 1);
        let answered: Vec<_> = outcomes.into_iter().filter_map(Result::ok).collect();
        assert!(
            matches!(&answered[..], [Err(StoreError::Storage(m))] if m.contains("send it again")),
            "{answered:?}"
        );
        assert_eq!(group.submit(4, |items| Ok(vec![Ok(items[0])])).unwrap(), 4);
    }

    #[test]
    fn a_failed_commit_fails_every_item_of_its_group() {
        let group: GroupCommit<u32, u32> = GroupCommit::new();
        let result = group.submit(1, |_| Err(StoreError::Io("disk full".into())));
        assert!(matches!(result, Err(StoreError::Io(m)) if m == "disk full"));
        assert_eq!(group.submit(2, |items| Ok(vec![Ok(items[0])])).unwrap(), 2);
    }
}
