//! Which page of an admin list a request asks for (`?page=N`, 1 when none), and what the store
//! reads for it: [`PER_PAGE`] rows and one more (which says whether there is a next page) at
//! offset `(N - 1) × PER_PAGE`. Any page is one query (`upkeep_store::Paging`), however far
//! back: there is no last page but the list's end.
//!
//! Not here: the lists themselves (`pages.rs`, `incidents.rs`), the queries (the store's).

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use serde::Deserialize;

use crate::ApiError;

/// Rows a page shows.
pub(super) const PER_PAGE: u32 = 50;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    #[serde(default)]
    page: Option<String>,
}

/// Page `number` of a list: where it starts and how many rows to read for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Paged {
    pub number: u32,
    pub offset: u32,
    /// [`PER_PAGE`] and one more.
    pub read: u32,
}

/// The page asked for (1 when none), or a 400 naming what was sent.
pub(super) fn page_number(q: Result<Query<PageQuery>, QueryRejection>) -> Result<Paged, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Some(raw) = q.page else {
        return Ok(paged(1).expect("page 1 starts at 0"));
    };
    raw.trim()
        .parse::<u32>()
        .ok()
        .and_then(paged)
        .ok_or_else(|| ApiError::bad_request(format!("`{raw}` is not a page number")))
}

/// Page `number`, if it is one (1 on, its offset within what the store takes).
fn paged(number: u32) -> Option<Paged> {
    let offset = number.checked_sub(1)?.checked_mul(PER_PAGE)?;
    Some(Paged {
        number,
        offset,
        read: PER_PAGE + 1,
    })
}

/// What the store would read for page `p` of a list the daemon reads whole (the windows not
/// done are few): the same rows, so [`shown`] and [`listed`] page it like any other list.
pub(super) fn read_from<T>(all: Vec<T>, p: Paged) -> Vec<T> {
    all.into_iter()
        .skip(p.offset as usize)
        .take(p.read as usize)
        .collect()
}

/// The rows page `p` shows out of what was read for it, and the numbers of the pages before
/// and after it, if there are.
pub(super) fn shown<T>(mut rows: Vec<T>, p: Paged) -> (Vec<T>, Option<u32>, Option<u32>) {
    let more = rows.len() > PER_PAGE as usize && paged(p.number + 1).is_some();
    rows.truncate(PER_PAGE as usize);
    (
        rows,
        (p.number > 1).then(|| p.number - 1),
        more.then(|| p.number + 1),
    )
}

/// One page of an admin list as its template takes it: `{KEY: rows, page, newer, older}`, or
/// `{KEY: null, page}` for a list that is off (`None`: no `[notify]`, say).
pub(super) fn listed<T: serde::Serialize>(
    key: &str,
    rows: Option<Vec<T>>,
    p: Paged,
) -> serde_json::Value {
    let Some(rows) = rows else {
        return serde_json::json!({ key: null, "page": p.number });
    };
    let (rows, newer, older) = shown(rows, p);
    serde_json::json!({ key: rows, "page": p.number, "newer": newer, "older": older })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(query: &str) -> Result<Paged, ApiError> {
        let uri: axum::http::Uri = format!("/x?{query}").parse().unwrap();
        page_number(Query::try_from_uri(&uri))
    }

    #[test]
    fn any_page_is_an_offset_and_a_bad_one_is_named() {
        assert_eq!(
            ask("").unwrap(),
            Paged {
                number: 1,
                offset: 0,
                read: 51
            }
        );
        assert_eq!(ask("page=2").unwrap().offset, 50);
        // Past the 200 pages the lists used to stop at.
        assert_eq!(ask("page=1000").unwrap().offset, 49_950);
        for bad in ["page=0", "page=-1", "page=x", "page=99999999999"] {
            assert!(ask(bad).is_err(), "{bad}");
        }
        assert_eq!(ask("page=85899346").unwrap().offset, 4_294_967_250);
        assert!(
            ask("page=85899347").is_err(),
            "its offset is past what the store takes"
        );
        assert!(ask("sort=id").is_err(), "an unknown field");
    }

    #[test]
    fn the_one_more_row_says_whether_there_is_a_next_page() {
        let p = ask("page=2").unwrap();
        let (rows, newer, older) = shown((0..51).collect::<Vec<u32>>(), p);
        assert_eq!((rows.len(), newer, older), (50, Some(1), Some(3)));
        let (rows, newer, older) = shown((0..50).collect::<Vec<u32>>(), p);
        assert_eq!((rows.len(), newer, older), (50, Some(1), None));
        let (rows, newer, older) = shown(Vec::<u32>::new(), ask("").unwrap());
        assert_eq!((rows.len(), newer, older), (0, None, None));
        // A list read whole is cut as the store would have read it.
        let all: Vec<u32> = (0..120).collect();
        let (rows, newer, older) = shown(read_from(all.clone(), p), p);
        assert_eq!(
            (rows[0], rows.len(), newer, older),
            (50, 50, Some(1), Some(3))
        );
        let last = ask("page=3").unwrap();
        let (rows, newer, older) = shown(read_from(all, last), last);
        assert_eq!(
            (rows[0], rows.len(), newer, older),
            (100, 20, Some(2), None)
        );
    }
}
