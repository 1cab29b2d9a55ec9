//! Request state of fetched data: [`Remote`] for a single value and [`Paged`]
//! for one page of a server-side list with the cursors to move between pages,
//! and [`FetchError`], why a fetch failed.

use billing_api::types::Page;

/// Why a fetch failed, as far as the operator needs to know.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ErrorKind {
    /// HTTP 401: the admin secret is wrong.
    Unauthorized,
    /// The server could not be reached or did not answer in time.
    Unreachable,
    /// The server answered with a JSON-RPC error.
    Server,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FetchError {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Fetched<T> = Result<T, FetchError>;

/// One value fetched from the server, with its request state. The last good
/// value stays while a refresh is in flight or after it failed.
#[derive(Debug, Clone)]
pub struct Remote<T> {
    pub data: Option<T>,
    pub loading: bool,
    pub error: Option<String>,
}

impl<T> Default for Remote<T> {
    fn default() -> Self {
        Self {
            data: None,
            loading: false,
            error: None,
        }
    }
}

impl<T> Remote<T> {
    pub(crate) fn accept(&mut self, result: Fetched<T>) {
        self.loading = false;
        match result {
            Ok(value) => {
                self.data = Some(value);
                self.error = None;
            }
            Err(err) => self.error = Some(err.message),
        }
    }
}

/// One page of a server-side list plus the cursors needed to move between
/// pages; only this page is held in memory.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub loaded: bool,
    /// Cursor of every page from the first to the current one (`None` = first page).
    pub cursors: Vec<Option<String>>,
    pub next_cursor: Option<String>,
    pub selected: usize,
    pub loading: bool,
    pub error: Option<String>,
    /// Sequence number of the newest request; older answers are dropped.
    seq: u64,
}

impl<T> Default for Paged<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            loaded: false,
            cursors: vec![None],
            next_cursor: None,
            selected: 0,
            loading: false,
            error: None,
            seq: 0,
        }
    }
}

/// Where a page request points: which slot of the cursor stack and which cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub seq: u64,
    pub page_index: usize,
    pub cursor: Option<String>,
}

impl<T> Paged<T> {
    /// Zero-based number of the page on screen.
    pub fn page_index(&self) -> usize {
        self.cursors.len().saturating_sub(1)
    }

    pub(crate) fn request(&mut self, page_index: usize, cursor: Option<String>) -> PageRequest {
        self.seq += 1;
        self.loading = true;
        PageRequest {
            seq: self.seq,
            page_index,
            cursor,
        }
    }

    pub(crate) fn current(&mut self) -> PageRequest {
        let index = self.page_index();
        let cursor = self.cursors.last().cloned().flatten();
        self.request(index, cursor)
    }

    pub(crate) fn first(&mut self) -> PageRequest {
        self.request(0, None)
    }

    /// Forgets the page on screen and its cursors (they belong to another
    /// query) and asks for the first page; answers to earlier requests are
    /// dropped like any stale answer.
    pub(crate) fn restart(&mut self) -> PageRequest {
        self.items.clear();
        self.loaded = false;
        self.cursors = vec![None];
        self.next_cursor = None;
        self.selected = 0;
        self.error = None;
        self.first()
    }

    pub(crate) fn next(&mut self) -> Option<PageRequest> {
        let cursor = self.next_cursor.clone()?;
        let index = self.page_index() + 1;
        Some(self.request(index, Some(cursor)))
    }

    /// The request for the page on screen again, unless one is in flight.
    pub(crate) fn refresh(&mut self) -> Option<PageRequest> {
        (!self.loading).then(|| self.current())
    }

    /// The request for the next (`forward`) or previous page, if there is one.
    pub(crate) fn turn(&mut self, forward: bool) -> Option<PageRequest> {
        if forward { self.next() } else { self.prev() }
    }

    pub(crate) fn prev(&mut self) -> Option<PageRequest> {
        let index = self.page_index().checked_sub(1)?;
        let cursor = self.cursors[index].clone();
        Some(self.request(index, cursor))
    }

    /// Takes the answer to `req` if it is the newest request; says whether it was.
    pub(crate) fn accept(&mut self, req: PageRequest, result: Fetched<Page<T>>) -> bool {
        if req.seq != self.seq {
            return false;
        }
        self.loading = false;
        match result {
            Ok(page) => {
                let same_page = req.page_index == self.page_index();
                self.cursors.truncate(req.page_index);
                self.cursors.push(req.cursor);
                self.items = page.items;
                self.next_cursor = page.next_cursor;
                self.loaded = true;
                self.error = None;
                if !same_page {
                    self.selected = 0;
                }
            }
            Err(err) => self.error = Some(err.message),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(items: &[u32], next: Option<&str>) -> Fetched<Page<u32>> {
        Ok(Page {
            items: items.to_vec(),
            next_cursor: next.map(str::to_string),
        })
    }

    fn down() -> Fetched<Page<u32>> {
        Err(FetchError {
            kind: ErrorKind::Unreachable,
            message: "connection refused".into(),
        })
    }

    #[test]
    fn a_failed_next_page_keeps_the_page_on_screen() {
        let mut list = Paged::<u32>::default();
        let req = list.first();
        list.accept(req, page(&[1, 2], Some("c2")));
        list.selected = 1;
        let req = list.next().unwrap();
        list.accept(req, down());
        assert_eq!(list.items, vec![1, 2]);
        assert_eq!(list.page_index(), 0);
        assert_eq!(list.selected, 1);
        assert_eq!(list.error.as_deref(), Some("connection refused"));
        // The next success clears the error and moves on.
        let req = list.next().unwrap();
        list.accept(req, page(&[3], None));
        assert_eq!(
            (list.items.clone(), list.page_index(), list.error.clone()),
            (vec![3], 1, None)
        );
        assert!(list.next().is_none(), "no cursor past the last page");
    }

    #[test]
    fn a_refresh_of_the_same_page_keeps_the_selection() {
        let mut list = Paged::<u32>::default();
        let req = list.first();
        list.accept(req, page(&[1, 2, 3], None));
        list.selected = 2;
        let req = list.current();
        list.accept(req, page(&[1, 2, 3, 4], None));
        assert_eq!(list.selected, 2);
    }

    #[test]
    fn a_restart_drops_the_page_its_cursors_and_answers_to_older_requests() {
        let mut list = Paged::<u32>::default();
        let req = list.first();
        list.accept(req, page(&[1, 2], Some("c2")));
        let req = list.next().unwrap();
        list.accept(req, page(&[3, 4], Some("c3")));
        let late = list.current();
        let req = list.restart();
        assert_eq!((req.page_index, req.cursor.clone()), (0, None));
        assert!(list.items.is_empty() && !list.loaded && list.loading);
        assert_eq!(list.page_index(), 0);
        list.accept(late, page(&[9], None));
        assert!(
            list.items.is_empty(),
            "an answer of the old query is dropped"
        );
        list.accept(req, page(&[5], None));
        assert_eq!((list.items.clone(), list.page_index()), (vec![5], 0));
    }

    #[test]
    fn remote_keeps_the_last_good_value_on_error() {
        let mut remote = Remote::<u32>::default();
        remote.accept(Ok(7));
        remote.accept(Err(FetchError {
            kind: ErrorKind::Server,
            message: "boom".into(),
        }));
        assert_eq!(remote.data, Some(7));
        assert_eq!(remote.error.as_deref(), Some("boom"));
    }
}
