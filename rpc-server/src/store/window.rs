//! Paging through the ledger's listings: every page of one (`all_pages`),
//! and applied records in a time window (`list_consumed` with `from` / `to`):
//! the newest-first listing, filtered by `applied_at`, a bounded amount of it
//! per page.

use billing_api::{ConsumedRecord, Page, rfc3339_to_millis};

use super::{Store, StoreError};

/// Applied records read per page at most while looking for ones in the
/// window: a page may end with fewer items than asked (even none) and a
/// `next_cursor`, so that one call never scans the whole ledger.
pub const WINDOW_SCAN: usize = 10_000;

/// Every item of a paged listing, in the order the pages give them.
pub fn all_pages<T>(
    mut page: impl FnMut(Option<&str>) -> Result<Page<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = page(cursor.as_deref())?;
        items.extend(p.items);
        match p.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(items),
        }
    }
}

/// `[from, to)` in unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
}

impl Window {
    /// Parses RFC 3339 bounds; `None` when neither is given.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Option<Window>, StoreError> {
        let at = |name: &str, text: Option<&str>| {
            text.map(|t| {
                rfc3339_to_millis(t).ok_or_else(|| {
                    StoreError::InvalidInput(format!(
                        "{name} `{}` is not an RFC 3339 time; send e.g. 2026-11-01T00:00:00Z",
                        billing_api::text::echo(t)
                    ))
                })
            })
            .transpose()
        };
        let window = Window {
            from_ms: at("from", from)?,
            to_ms: at("to", to)?,
        };
        Ok((window.from_ms.is_some() || window.to_ms.is_some()).then_some(window))
    }

    pub(super) fn holds(&self, record: &ConsumedRecord) -> bool {
        let at = rfc3339_to_millis(&record.applied_at).unwrap_or(0);
        self.from_ms.is_none_or(|from| at >= from) && self.to_ms.is_none_or(|to| at < to)
    }
}

impl Store {
    /// Up to `limit` applied records in `window`, newest first, from `cursor`.
    pub fn list_consumed_in(
        &self,
        user_sid: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
        window: Window,
    ) -> Result<Page<ConsumedRecord>, StoreError> {
        let mut items = Vec::new();
        let mut cursor = cursor.map(str::to_string);
        let mut scanned = 0;
        loop {
            // Never more than still wanted: the page's cursor is then exact.
            let want = limit - items.len() as u32;
            let page = self.list_consumed(user_sid, cursor.as_deref(), want)?;
            scanned += page.items.len();
            items.extend(page.items.into_iter().filter(|r| window.holds(r)));
            cursor = page.next_cursor;
            if items.len() as u32 == limit || cursor.is_none() || scanned >= WINDOW_SCAN {
                return Ok(Page {
                    items,
                    next_cursor: cursor,
                });
            }
        }
    }
}
